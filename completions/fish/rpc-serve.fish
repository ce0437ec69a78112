# fish completion for rpc-serve(1)
complete -c rpc-serve -f
complete -c rpc-serve -s h -l help -d 'Print the options and exit'
complete -c rpc-serve -l version -d 'Print the version and exit'
complete -c rpc-serve -s b -l bind -x -a 'tcp://127.0.0.1: ipc://' -d 'Listen on ENDPOINT'
complete -c rpc-serve -s n -l name -x -d 'The name _zerorpc_name reports'
complete -c rpc-serve -s e -l exec -x -d 'Serve NAME by running COMMAND (NAME=COMMAND)'
complete -c rpc-serve -l shell -d 'Run commands with /bin/sh -c'
complete -c rpc-serve -l stream -x -d "Stream method NAME's output by lines"
complete -c rpc-serve -l stream-raw -x -d "Stream method NAME's output as bytes"
complete -c rpc-serve -l timeout -x -d "Kill method NAME's command after SECONDS (NAME=SECONDS)"
complete -c rpc-serve -s j -l jobs -x -d 'Calls running at once, at most'
complete -c rpc-serve -l client-jobs -x -d 'Calls of one client running at once, at most'
complete -c rpc-serve -l client-queue -x -d 'Calls of one client waiting for a slot, at most'
complete -c rpc-serve -l heartbeat -x -d 'Heartbeat period in seconds'
complete -c rpc-serve -l defer-after -x -d 'Answer with a token after SECONDS'
complete -c rpc-serve -l keep-results -x -d 'Keep deferred results for SECONDS'
complete -c rpc-serve -l shutdown -x -a 'drain abort' -d 'What SIGTERM does'
complete -c rpc-serve -l grace -x -d 'How long a drain may take'
complete -c rpc-serve -s q -l quiet -d 'No log line per call'
complete -c rpc-serve -s v -l verbose -d 'Log arguments in full'
complete -c rpc-serve -l log-json -d 'Log JSON lines instead of text'
complete -c rpc-serve -l allow-options -x -d 'Let callers of NAME pass options'
complete -c rpc-serve -l max-args -x -d 'Refuse calls of NAME with more than N arguments'
complete -c rpc-serve -l keygen -r -F -d 'Write a CURVE key pair as certificates and exit'
complete -c rpc-serve -l curve-secret -r -F -d 'Serve with CURVE, the key pair in FILE'
complete -c rpc-serve -l curve-allow -r -F -d 'Admit only the client keys in PATH'
complete -c rpc-serve -l list-jobs -d 'Let _ductrpc_list show jobs no CURVE key owns'
