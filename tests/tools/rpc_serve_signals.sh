#!/bin/bash
# rpc-serve on SIGTERM: drains (a running call finishes, new ones are refused), and a second signal aborts.
. "$(dirname "$0")/lib.sh"

# Each section's call reports to a file of its own: a wait for the first progress report must not find the last
# section's (the caller's redirection empties a file only once it has started).

# Drain: the running sleep gets its result.
start_server
"$RPC_CALL" --progress "$EP" sleep 1 >"$T/slow.out" 2>"$T/drained.err" &
caller=$!
for _ in $(seq 1000); do grep -qs done "$T/drained.err" && break; sleep 0.01; done
grep -qs done "$T/drained.err" || fail "the long call never started"
stop_server TERM
[ "$SERVER_RC" -eq 0 ] || fail "a drained rpc-serve exited $SERVER_RC"
wait "$caller" || fail "the call running during the drain failed: $(cat "$T/drained.err")"
[ "$(cat "$T/slow.out")" = 1 ] || fail "the drained call returned '$(cat "$T/slow.out")'"
grep -q "SIGTERM, draining" "$T/serve.log" || fail "no drain in the log: $(cat "$T/serve.log")"

# A second signal aborts: the running call is cancelled (exit 5) instead of finishing its 30 s.
start_server
"$RPC_CALL" --progress "$EP" sleep 30 >"$T/slow.out" 2>"$T/second.err" &
caller=$!
for _ in $(seq 1000); do grep -qs done "$T/second.err" && break; sleep 0.01; done
grep -qs done "$T/second.err" || fail "the call to be aborted never reported progress: $(cat "$T/second.err")"
kill -TERM "$SERVER_PID"
for _ in $(seq 1000); do grep -q draining "$T/serve.log" && break; sleep 0.01; done
kill -INT "$SERVER_PID"
wait_server
[ "$SERVER_RC" -eq 0 ] || fail "an aborted rpc-serve exited $SERVER_RC"
wait "$caller"
rc=$?
[ "$rc" -eq 5 ] ||
  fail "the aborted call exited $rc, not 5 (cancelled): $(cat "$T/second.err"); log: $(cat "$T/serve.log")"
grep -q "second signal, aborting" "$T/serve.log" || fail "no abort in the log: $(cat "$T/serve.log")"

# --shutdown abort: the first signal cancels the running call.
start_server --shutdown abort
"$RPC_CALL" --progress "$EP" sleep 30 >"$T/slow.out" 2>"$T/aborted.err" &
caller=$!
for _ in $(seq 1000); do grep -qs done "$T/aborted.err" && break; sleep 0.01; done
grep -qs done "$T/aborted.err" || fail "the call for --shutdown abort never reported progress: $(cat "$T/aborted.err")"
stop_server TERM
[ "$SERVER_RC" -eq 0 ] || fail "an aborting rpc-serve exited $SERVER_RC"
wait "$caller"
rc=$?
[ "$rc" -eq 5 ] ||
  fail "the call aborted by --shutdown abort exited $rc, not 5: $(cat "$T/aborted.err"); log: $(cat "$T/serve.log")"
finish
