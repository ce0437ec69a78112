#!/bin/bash
# rpc-call against rpc-serve's demo set: arguments (JSON, strings, --string, - from stdin), output forms (one JSON
# line, --raw, --pretty, bytes), a stream one line per item, --list and --inspect.
. "$(dirname "$0")/lib.sh"
start_server

expect_rc 0 "$RPC_CALL" "$EP" add 1 2
expect_out 3
expect_rc 0 "$RPC_CALL" "$EP" add 1.5 2
expect_out 3.5
expect_rc 0 "$RPC_CALL" "$EP" add -1 -2                  # after METHOD everything is an argument
expect_out -3
expect_rc 0 "$RPC_CALL" "$EP" echo '{"a": [1, true, null]}'
expect_out '{"a": [1, true, null]}'
expect_rc 0 "$RPC_CALL" "$EP" echo 'not json'             # a string where it is not JSON
expect_out '"not json"'
expect_rc 0 "$RPC_CALL" --string "$EP" echo 42            # --string: always a string
expect_out '"42"'
expect_rc 1 "$RPC_CALL" --string "$EP" add 1 2           # the server sees two strings
expect_err_has "TypeError: add() adds two numbers, not str and str"
expect_rc 0 "$RPC_CALL" --raw "$EP" echo 'two words'
expect_out 'two words'
expect_rc 0 "$RPC_CALL" --pretty "$EP" echo '[1, 2]'
expect_out "$(printf '[\n  1,\n  2\n]')"
expect_rc 0 "$RPC_CALL" "$EP" echo '{"$bin": "00ff"}'     # bytes, both ways
expect_out '{"$bin": "00ff"}'
echo '{"from": "stdin"}' >"$T/in.json"
expect_rc 0 sh -c '"$0" "$1" echo - <"$2"' "$RPC_CALL" "$EP" "$T/in.json"
expect_out '{"from": "stdin"}'

# A stream: one JSON value per line, flushed as each arrives.
expect_rc 0 "$RPC_CALL" "$EP" count 4
expect_out "$(printf '0\n1\n2\n3')"
expect_rc 0 "$RPC_CALL" "$EP" count 0
[ -s "$T/out" ] && fail "an empty stream printed '$(cat "$T/out")'"

expect_rc 0 "$RPC_CALL" "$EP" --list
expect_out '["add", "count", "echo", "fail", "sleep"]'
expect_rc 0 "$RPC_CALL" --raw "$EP" --list
expect_out "$(printf 'add\ncount\necho\nfail\nsleep')"
expect_rc 0 "$RPC_CALL" "$EP" --inspect add
expect_out '{"args": [{"name": "a"}, {"name": "b"}], "doc": "Adds two numbers."}'
expect_rc 0 "$RPC_CALL" "$EP" --inspect
grep -q '"name": "rpc-serve"' "$T/out" || fail "--inspect did not name the server: $(cat "$T/out")"

# Several servers in one comma-separated ENDPOINT: the call goes whole to one that is there (with a 0.3 s heartbeat,
# one sent where nobody listens would fail as lost), a stream included.
dead="ipc://$T/nobody"
for i in 1 2 3 4; do
  expect_rc 0 "$RPC_CALL" --heartbeat 0.3 "$dead,$EP,$dead-too" add "$i" 1
  expect_out "$((i + 1))"
done
expect_rc 0 "$RPC_CALL" --heartbeat 0.3 "$dead,$EP" count 3
expect_out "$(printf '0\n1\n2')"
expect_rc 2 "$RPC_CALL" "$EP,tcp://127.0.0.1:port" add 1 2
expect_err_has "tcp://127.0.0.1:port: the port must be a number"
finish
