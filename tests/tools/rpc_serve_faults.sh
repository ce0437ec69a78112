#!/bin/bash
# Commands that fail badly: one that is missing, one that crashes, one that floods stdout past the output limit.
# Each call fails with a CommandFailed that says what happened, and the server goes on serving. And rpc-serve
# itself SIGKILLed mid-call: its guard process ends the running command's group.
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

# SIGKILL leaves rpc-serve no chance to end its commands: the guard it forked at start does, TERM then KILL. The
# command is a shell (the group's leader) with a child of its own; both must go.
start_server --exec "hang=sh -c 'sleep 1000 & echo \$\$ \$! >\"\$0.tmp\"; mv \"\$0.tmp\" \"\$0\"; wait'"
"$RPC_CALL" "$EP" hang "$T/hang" >/dev/null 2>&1 &
caller=$!
for _ in $(seq 200); do [ -s "$T/hang" ] && break; sleep 0.05; done
read -r leader child <"$T/hang" || fail "the hang command never started"
stop_server KILL
for pid in $leader $child; do
  wait_gone "$pid" 5 || { fail "command process $pid outlived a SIGKILLed rpc-serve"; kill -9 "$pid"; }
done
kill "$caller" 2>/dev/null
wait "$caller" 2>/dev/null
finish
