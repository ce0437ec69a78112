#!/bin/bash
# A shell script starts a long call, goes on, and collects the result later — from another rpc-call process.
. "$(dirname "$0")/lib.sh"
start_server

expect_rc 0 "$RPC_CALL" --raw "$EP" --async sleep 0.5
token=$(cat "$T/out")
expect_rc 0 "$RPC_CALL" "$EP" --wait "$token"
expect_out 0.5
expect_rc 0 "$RPC_CALL" "$EP" --poll "$token"             # fetched again until it expires
expect_out '{"state": "done", "result": 0.5}'
stop_server

# --keep-results: a result is kept that long after it is done, then its token is unknown (looked for, not waited).
start_server --keep-results 0
expect_rc 0 "$RPC_CALL" --raw "$EP" --async sleep 1
token=$(cat "$T/out")
expect_rc 0 "$RPC_CALL" "$EP" --wait "$token"           # a waiter from before the end gets the result
expect_out 1
for _ in $(seq 1000); do "$RPC_CALL" "$EP" --poll "$token" >/dev/null 2>&1 || break; sleep 0.01; done
expect_rc 1 "$RPC_CALL" "$EP" --poll "$token"
expect_err_has "UnknownToken"

# Progress: JSON lines on stderr when it is not a terminal, then the result on stdout.
expect_rc 0 "$RPC_CALL" --progress "$EP" sleep 0.35
expect_out 0.35
grep -q '"total": 0.35' "$T/err" || fail "no progress reports on stderr: '$(cat "$T/err")'"
[ "$(grep -c '"done"' "$T/err")" -ge 2 ] || fail "fewer than two progress reports: '$(cat "$T/err")'"
finish
