#!/bin/bash
# rpc-call's exit codes, each from a real cause: 0 success, 1 remote error (Name: message; the traceback with -v),
# 2 usage, 3 cannot connect or lost remote, 4 timeout, 5 cancelled, 6 still running.
. "$(dirname "$0")/lib.sh"
start_server --heartbeat 0.2

expect_rc 0 "$RPC_CALL" "$EP" add 1 2
expect_rc 1 "$RPC_CALL" "$EP" fail 'it broke'
expect_err_has "DemoError: it broke"
expect_rc 1 "$RPC_CALL" "$EP" no_such_method
expect_err_has "NameError: no_such_method"
expect_rc 2 "$RPC_CALL" "$EP"                              # no method
expect_err_has "a method to call is needed"
expect_rc 2 "$RPC_CALL" --no-such-option "$EP" add
expect_rc 2 "$RPC_CALL" --list "$EP" add 1                 # arguments without a call
expect_rc 2 sh -c 'echo "{oops" | "$0" "$1" echo -' "$RPC_CALL" "$EP"
expect_err_has "not JSON"
# Nothing listens on this private path: nobody answers.
expect_rc 3 "$RPC_CALL" --connect-timeout 0.3 "ipc://$T/nobody" add 1 2
expect_err_has "cannot connect to ipc://$T/nobody"
expect_rc 4 "$RPC_CALL" --timeout 0.2 "$EP" sleep 5
expect_err_has "within"

# Deferred: still running (6), then cancelled (5).
expect_rc 0 "$RPC_CALL" --raw "$EP" --async sleep 30
token=$(cat "$T/out")
[ -n "$token" ] || fail "--async printed no token"
expect_rc 6 "$RPC_CALL" "$EP" --poll "$token"
expect_out '{"state": "running"}'
expect_rc 6 "$RPC_CALL" --timeout 0.3 "$EP" --wait "$token"
expect_rc 0 "$RPC_CALL" "$EP" --cancel "$token"
expect_out true
expect_rc 5 "$RPC_CALL" "$EP" --wait "$token"
expect_err_has "Cancelled"
expect_rc 1 "$RPC_CALL" "$EP" --poll no-such-token
expect_err_has "UnknownToken"

# The server goes away while a call waits on it: lost remote (3), within two heartbeat periods. The call is
# running once its first progress report has come.
"$RPC_CALL" --heartbeat 0.2 --progress "$EP" sleep 30 >"$T/out" 2>"$T/lost.err" &
caller=$!
for _ in $(seq 1000); do grep -qs done "$T/lost.err" && break; sleep 0.01; done
grep -qs done "$T/lost.err" || fail "the long call never reported progress"
kill -KILL "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null
SERVER_PID=""
wait "$caller"
rc=$?
[ "$rc" -eq 3 ] || fail "a call whose server died exited $rc, not 3 ($(cat "$T/lost.err"))"
grep -q "lost remote" "$T/lost.err" || fail "no lost remote in '$(cat "$T/lost.err")'"
finish
