#!/bin/bash
# The tools, end to end: rpc-serve's demo set called from a shell script with rpc-call (a call, a stream, progress,
# a deferred result collected later), a command turned into a method, and one tool's chunked output piped to
# another through duct-cat. Usage: demo.sh BUILD_DIR
set -eu
bin=$1/tools
T=$(mktemp -d "${TMPDIR:-/tmp}/ductrpc-demo.XXXXXX")
pids=""
trap 'for p in $pids; do kill $p 2>/dev/null || true; done; rm -rf "$T"' EXIT

step() { printf '\n== %s\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }

# Servers listen on port 0 and say where on stderr (the first line).
mkfifo "$T/serve.fifo"
"$bin/rpc-serve" --bind tcp://127.0.0.1:0 --exec 'greet=printf "hello, %s"' --exec 'upper=tr a-z A-Z' \
  --exec 'numbered=nl -ba' --stream numbered \
  2>"$T/serve.fifo" &
pids="$pids $!"
exec 3<"$T/serve.fifo"
read -r first <&3
ep=${first##*listening on }
cat <&3 >"$T/serve.log" &
mkfifo "$T/demo.fifo"
"$bin/rpc-serve" --bind tcp://127.0.0.1:0 -q 2>"$T/demo.fifo" &
pids="$pids $!"
exec 4<"$T/demo.fifo"
read -r first <&4
demo=${first##*listening on }
cat <&4 >/dev/null &

step "a shell script calling a service ($demo)"
show "$bin/rpc-call" "$demo" add 1 2
show "$bin/rpc-call" "$demo" echo '{"list": [1, 2], "text": "é"}'
show "$bin/rpc-call" "$demo" count 3
show "$bin/rpc-call" --progress "$demo" sleep 0.3
show "$bin/rpc-call" "$demo" fail 'on purpose' || echo "(exit $?: a remote error)"
token=$("$bin/rpc-call" --raw "$demo" --async sleep 0.5)
echo "started a deferred call: $token"
show "$bin/rpc-call" "$demo" --poll "$token" || echo "(exit $?: still running)"
show "$bin/rpc-call" "$demo" --wait "$token"

step "commands as methods ($ep)"
show "$bin/rpc-call" --raw "$ep" greet world
printf 'alpha\nbeta\ngamma\n' >"$T/words"
printf '$ %s\n' "rpc-call --stdin --raw $ep upper < words"
"$bin/rpc-call" --stdin --raw "$ep" upper <"$T/words"
printf '$ %s\n' "rpc-call --stdin --raw $ep numbered < words"
"$bin/rpc-call" --stdin --raw "$ep" numbered <"$T/words"

step "two tools piping chunked output through duct-cat"
"$bin/duct-cat" --listen unix: --lines 2>"$T/dc.fifo.err" >"$T/received" </dev/null &
pids="$pids $!"
listener=$!
for _ in $(seq 1000); do grep -q listening "$T/dc.fifo.err" && break; sleep 0.01; done
addr=$(sed -n 's/.*listening on //p' "$T/dc.fifo.err")
printf '$ %s\n' "rpc-call --raw $demo count 5 | duct-cat --lines $addr"
"$bin/rpc-call" --raw "$demo" count 5 | "$bin/duct-cat" --lines "$addr"
wait "$listener"
printf 'the listener received: %s\n' "$(tr '\n' ' ' <"$T/received")"
step "rpc-serve's log"
cat "$T/serve.log"
