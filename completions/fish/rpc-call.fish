# fish completion for rpc-call(1)
complete -c rpc-call -s h -l help -d 'Print the options and exit'
complete -c rpc-call -l version -d 'Print the version and exit'
complete -c rpc-call -s s -l string -d 'Send every ARG as a string'
complete -c rpc-call -l stdin -d 'Stream stdin as a chunked request, by lines'
complete -c rpc-call -l chunk-size -x -d 'With --stdin, raw chunks of N bytes'
complete -c rpc-call -s r -l raw -d 'Print strings without quotes'
complete -c rpc-call -s p -l pretty -d 'Print indented JSON'
complete -c rpc-call -l progress -d 'Show progress reports on stderr'
complete -c rpc-call -l async -d 'Start a deferred call and print its token'
complete -c rpc-call -l wait -x -d 'Wait for a deferred call'
complete -c rpc-call -l poll -x -d 'Print the state of a deferred call'
complete -c rpc-call -l cancel -x -d 'Cancel a deferred call'
complete -c rpc-call -s l -l list -d 'List the methods'
complete -c rpc-call -s i -l inspect -d 'Describe the methods, or METHOD'
complete -c rpc-call -l json -d 'With --inspect, print JSON on a terminal too'
complete -c rpc-call -s t -l timeout -x -d 'Give up after SECONDS'
complete -c rpc-call -l heartbeat -x -d 'Heartbeat period in seconds'
complete -c rpc-call -l connect-timeout -x -d 'Give up connecting after SECONDS'
complete -c rpc-call -s v -l verbose -d 'Print the remote traceback with an error'
complete -c rpc-call -l curve-server -r -F -d 'Speak CURVE to the server of this public certificate'
complete -c rpc-call -l curve-secret -r -F -d 'This client'"'"'s key pair, from a secret certificate'

# The positional words typed so far (options and their values left out).
function __rpc_call_positionals
    set --local words (commandline -opc)
    set -e words[1]
    set --local skip 0
    for w in $words
        if test $skip -eq 1
            set skip 0
        else if contains -- $w --chunk-size -t --timeout --heartbeat --connect-timeout --wait --poll --cancel \
                --curve-server --curve-secret
            set skip 1
        else if not string match -q -- '-*' $w
            echo $w
        end
    end
end

# The method slot: the names the server at ENDPOINT lists, if it answers within a second or two.
function __rpc_call_methods
    set --local positionals (__rpc_call_positionals)
    test (count $positionals) -eq 1; or return
    rpc-call --raw --list --connect-timeout 1 --timeout 2 $positionals[1] 2>/dev/null
end

complete -c rpc-call -f -n 'test (count (__rpc_call_positionals)) -eq 0' -a 'tcp://127.0.0.1: ipc://'
complete -c rpc-call -f -n 'test (count (__rpc_call_positionals)) -eq 1' -a '(__rpc_call_methods)'
