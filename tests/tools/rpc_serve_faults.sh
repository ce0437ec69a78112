#!/bin/bash
# Commands that fail badly: one that is missing, one that crashes, one that floods stdout past the output limit.
# Each call fails with a CommandFailed that says what happened, and the server goes on serving.
. "$(dirname "$0")/lib.sh"
start_server --exec 'missing=/no/such/cmd' --exec 'crash=sh -c "kill -SEGV \$\$"' --exec 'flood=yes' --exec 'echo=echo'

expect_rc 1 "$RPC_CALL" "$EP" missing
expect_err_has "CommandFailed: missing: cannot run /no/such/cmd: No such file or directory"
expect_rc 1 "$RPC_CALL" "$EP" crash
expect_err_has "CommandFailed: crash: killed by signal 11"
expect_rc 1 "$RPC_CALL" "$EP" flood
expect_err_has "CommandFailed: flood: yes wrote more than 67108864 bytes"
pgrep -P "$SERVER_PID" -x yes >/dev/null && fail "the flooding command was left running"
expect_rc 0 "$RPC_CALL" "$EP" echo still here
expect_out '"still here"'
stop_server
[ "$SERVER_RC" -eq 0 ] || fail "rpc-serve exited $SERVER_RC after the faults"
finish
