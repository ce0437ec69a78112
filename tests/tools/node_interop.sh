#!/bin/bash
# The tools with the real zerorpc for node: a node client calls and streams from rpc-serve; rpc-call calls,
# lists and streams from a node server.
. "$(dirname "$0")/lib.sh"
peer="${NODE_PEERS:-}/peer.js"
if ! command -v node >/dev/null || [ ! -f "$peer" ]; then
  if [ "${CI:-}" = true ]; then echo "FAIL: node or the zerorpc peers are missing in CI" >&2; exit 1; fi
  echo "SKIP: node or the zerorpc node peers ($peer) are not installed" >&2
  exit 77
fi
start_server
expect_rc 0 node "$peer" client "$EP" add '[40, 2]'
expect_out 42
expect_rc 0 node "$peer" stream "$EP" count '[3]'
expect_out "$(printf '0\n1\n2\nEND')"
expect_rc 0 node "$peer" client "$EP" _zerorpc_inspect '[]'
grep -q '"add":{"args":\[{"name":"a"},{"name":"b"}\],"doc":"Adds two numbers."}' "$T/out" ||
  fail "node's inspect of rpc-serve gave $(cat "$T/out")"
expect_rc 1 node "$peer" client "$EP" fail '["from node"]'
grep -q "DemoError: from node" "$T/out" || fail "node saw '$(cat "$T/out")'"

node "$peer" server "ipc://$T/node.ipc" &
node_pid=$!
expect_rc 0 "$RPC_CALL" --connect-timeout 30 "ipc://$T/node.ipc" add 1 2
expect_out 3
expect_rc 0 "$RPC_CALL" "ipc://$T/node.ipc" count 3
expect_out "$(printf '0\n1\n2')"
expect_rc 0 "$RPC_CALL" --raw "ipc://$T/node.ipc" --list
grep -qx add "$T/out" || fail "--list on node gave '$(cat "$T/out")'"
expect_rc 1 "$RPC_CALL" "ipc://$T/node.ipc" boom 'bad day'
expect_err_has "bad day"
kill "$node_pid"
wait "$node_pid" 2>/dev/null
finish
