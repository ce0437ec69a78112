#!/bin/bash
# rpc-serve --exec: arguments appended as argv (no shell), a chunked request piped to stdin (checksums compared,
# by lines and as raw chunks), stdout as the result or a stream of lines, CommandFailed with the exit status and
# the tail of stderr, a time limit, --shell.
. "$(dirname "$0")/lib.sh"
start_server --exec 'args=printf %s|' --exec sum=sha256sum --exec 'wc=wc -c' --exec 'lines=cat' --stream lines \
  --exec 'broken=ls /no/such/path' --exec 'slow=sleep 30' --timeout slow=0.3 \
  --exec 'quoted=printf "[%s]" "a b" '"'"'c  d'"'"' e\ f' --exec 'bytes=cat' --stream-raw bytes

expect_rc 0 "$RPC_CALL" --raw "$EP" args 'two words' '*' 3
expect_out 'two words|*|3|'                                  # each argument whole, nothing expanded
expect_rc 0 "$RPC_CALL" "$EP" args '{"k": 1}'
expect_out '"{\"k\": 1}|"'                                   # a JSON argument goes as its JSON text

# A chunked request arrives on stdin byte for byte: text by lines, binary as raw chunks.
seq 1 20000 >"$T/text"
head -c 3000000 /dev/urandom >"$T/binary"
expect_rc 0 sh -c '"$0" --raw --stdin "$1" sum <"$2"' "$RPC_CALL" "$EP" "$T/text"
[ "$(cut -d' ' -f1 "$T/out")" = "$(sha256sum <"$T/text" | cut -d' ' -f1)" ] || fail "text arrived changed"
expect_rc 0 sh -c '"$0" --raw --stdin --chunk-size 65536 "$1" sum <"$2"' "$RPC_CALL" "$EP" "$T/binary"
[ "$(cut -d' ' -f1 "$T/out")" = "$(sha256sum <"$T/binary" | cut -d' ' -f1)" ] || fail "binary arrived changed"
expect_rc 0 sh -c '"$0" --raw --stdin --chunk-size 1000 "$1" wc <"$2"' "$RPC_CALL" "$EP" "$T/binary"
expect_out 3000000
expect_rc 0 "$RPC_CALL" "$EP" wc                           # a plain call: empty stdin; text loses its last newline
expect_out '"0"'

# --stream: the output's lines, one item each, as they come.
expect_rc 0 sh -c '"$0" --raw --stdin "$1" lines <"$2"' "$RPC_CALL" "$EP" "$T/text"
cmp -s "$T/out" "$T/text" || fail "a streamed command's lines came back changed"

# --stream-raw: the output's bytes as they come, back unchanged through rpc-call --raw.
expect_rc 0 sh -c '"$0" --raw --stdin --chunk-size 65536 "$1" bytes <"$2"' "$RPC_CALL" "$EP" "$T/binary"
expect_rc 0 sh -c '"$0" --raw --stdin --chunk-size 65536 "$1" bytes <"$2" | cmp -s - "$2"' "$RPC_CALL" "$EP" "$T/binary"

expect_rc 1 "$RPC_CALL" "$EP" broken
expect_err_has "CommandFailed: broken: exit status 2: "
expect_err_has "No such file or directory"
expect_rc 1 "$RPC_CALL" "$EP" slow
expect_err_has "Timeout: slow: the command ran past its limit of 300 ms"
expect_rc 0 "$RPC_CALL" --raw "$EP" quoted x           # quotes and backslashes split as a shell would
expect_out '[a b][c  d][e f][x]'
stop_server
[ "$SERVER_RC" -eq 0 ] || fail "rpc-serve exited $SERVER_RC after SIGTERM"

# --shell: the command runs under sh -c, the call's arguments as "$@". --name: what inspect reports.
start_server --shell --exec 'greet=echo "hello, $1"' --name greeter
expect_rc 0 "$RPC_CALL" --raw "$EP" greet world
expect_out 'hello, world'
expect_rc 0 "$RPC_CALL" "$EP" --inspect
grep -q '"name": "greeter"' "$T/out" || fail "--name greeter: inspect said $(cat "$T/out")"
stop_server

# --jobs: with one slot taken by a long call, another call waits its turn (and here times out); with two, it runs.
call_beside_a_long_one() {  # JOBS WANT_RC
  start_server --jobs "$1" --shutdown abort
  rm -f "$T/long.err"  # else the wait below may find the last call's report before this caller empties it
  "$RPC_CALL" --progress "$EP" sleep 30 >/dev/null 2>"$T/long.err" &
  long=$!
  for _ in $(seq 1000); do grep -qs done "$T/long.err" && break; sleep 0.01; done
  expect_rc "$2" "$RPC_CALL" --timeout 0.5 "$EP" add 1 2
  stop_server
  wait "$long" 2>/dev/null
}
call_beside_a_long_one 1 4
call_beside_a_long_one 2 0

expect_rc 2 "$RPC_SERVE" --exec nameonly
expect_err_has "NAME=VALUE"
expect_rc 2 "$RPC_SERVE" --exec a=true --stream b
expect_err_has "b is not a method given with --exec"
expect_rc 2 "$RPC_SERVE" --exec 'a=sh -c "unterminated'
expect_err_has "unterminated"
expect_rc 2 "$RPC_SERVE" --shutdown later
finish
