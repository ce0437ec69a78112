#!/bin/bash
# rpc-broker with rpc-serve workers, as processes: calls spread over three workers; a token collected by another
# rpc-call process; a worker SIGKILLed mid-call fails the call with LostRemote within two of its heartbeats and the
# next call succeeds on another; a worker joining while calls run; --prefetch keeps calls at a busy worker; a
# draining worker takes no new calls; a broker restart is survived by workers and clients; hostile input on both
# sides; usage errors.
. "$(dirname "$0")/lib.sh"
: "${RPC_BROKER:?}"
BROKER_PID=""
PF_BROKER=""
WORKERS=""
cleanup_broker() {
  for p in $WORKERS $BROKER_PID $PF_BROKER; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  cleanup
}
trap cleanup_broker EXIT

# start_broker [options...]: a broker with its frontend on tcp port 0 and its backend at $T/back; sets FE.
start_broker() {
  rm -f "$T/broker.fifo"
  mkfifo "$T/broker.fifo"
  "$RPC_BROKER" --frontend tcp://127.0.0.1:${FE_PORT:-0} --backend "ipc://$T/back" "$@" 2>"$T/broker.fifo" &
  BROKER_PID=$!
  exec 4<"$T/broker.fifo"
  if ! read -r -t 20 first <&4; then
    echo "FAIL: rpc-broker did not say where it listens" >&2
    exit 1
  fi
  FE=${first##*frontend on }
  cat <&4 >>"$T/broker.log" &
  exec 4<&-
}

# start_worker NAME [rpc-serve options...]: a worker of the broker, heartbeating every 0.5 s; sets WORKER_PID. Its
# methods: who (its name), slow (marks $T/started.NAME, then sleeps a minute), nap S (marks $T/napping.NAME).
start_worker() {
  name=$1
  shift
  "$RPC_SERVE" --connect "ipc://$T/back" --name "$name" --heartbeat 0.5 --grace 5 --shell -e who="echo $name" \
    -e slow="touch $T/started.$name; exec sleep 60" -e nap="touch $T/napping.$name; sleep \"\$1\"; echo \"\$1\"" "$@" \
    2>>"$T/$name.log" &
  WORKER_PID=$!
  WORKERS="$WORKERS $WORKER_PID"
}

# Clients heartbeat as often as the workers: a side takes the other as lost after two of its own periods. A script,
# not a function, so that expect_rc's timeout can run it.
printf '#!/bin/sh\nexec timeout -k 5 60 "%s" --heartbeat 0.5 "$@"\n' "$RPC_CALL" >"$T/call"
chmod +x "$T/call"
call="$T/call"

# until_ok SECONDS CMD...: runs CMD until it succeeds, at most SECONDS (polling the condition, not sleeping it out).
until_ok() {
  limit=$1
  shift
  for _ in $(seq $((limit * 20))); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  fail "not within ${limit}s: $*"
  return 1
}

# kill_workers: SIGKILL every worker, then wait until the broker has given them up (it lists no method).
no_methods() { [ "$("$call" "$FE" --list)" = "[]" ]; }
kill_workers() {
  for p in $WORKERS; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  WORKERS=""
  until_ok 10 no_methods
}

start_broker --heartbeat 0.25

# --- calls spread: three workers of one job each take one slow call each
for w in w1 w2 w3; do start_worker "$w" --jobs 1; done
until_ok 10 sh -c "[ \"\$('$RPC_CALL' '$FE' --list)\" = '[\"nap\", \"slow\", \"who\"]' ]"
callers=""
for _ in 1 2 3; do
  "$call" "$FE" slow >/dev/null 2>&1 &
  callers="$callers $!"
done
all_started() { [ -e "$T/started.w1" ] && [ -e "$T/started.w2" ] && [ -e "$T/started.w3" ]; }
until_ok 10 all_started
expect_rc 0 "$call" -r "$FE" _zerorpc_name
expect_out "rpc-broker"
for p in $callers; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
kill_workers

# --- a token from one rpc-call process, collected by another through the broker
start_worker keeper
until_ok 10 "$call" "$FE" who
expect_rc 0 "$call" --async "$FE" nap 0.3
token=$(cat "$T/out")
case $token in w????????????-*) ;; *) fail "a worker's token names it: got '$token'" ;; esac
expect_rc 0 "$call" -r --wait "$token" "$FE"
expect_out "0.3"
expect_rc 1 "$call" --wait "wffffffffffff-00" "$FE"
expect_err_has "UnknownToken"
kill_workers

# --- a worker SIGKILLed mid-call: the call ends as lost within about two of its heartbeats (1 s)
start_worker solo --jobs 1
SOLO=$WORKER_PID
until_ok 10 "$call" "$FE" who
"$call" "$FE" slow >"$T/slow.out" 2>"$T/slow.err" &
CALL_PID=$!
until_ok 10 test -e "$T/started.solo"
start=$(date +%s%N)
kill -KILL "$SOLO"
wait "$CALL_PID"
rc=$?
took=$((($(date +%s%N) - start) / 1000000))
[ "$rc" -eq 3 ] || fail "a call whose worker died exited $rc, not 3 (lost): $(cat "$T/slow.err")"
grep -q "lost" "$T/slow.err" || fail "the lost call's error says nothing of the loss: $(cat "$T/slow.err")"
[ "$took" -lt 3000 ] || fail "the loss took ${took} ms (two heartbeats are 1000 ms)"
start_worker next
until_ok 10 "$call" "$FE" who
expect_rc 0 "$call" -r "$FE" who
expect_out "next"
kill_workers

# --- a worker joining while a call waits: the only worker is busy (one job), the call queues in the broker
# (heartbeated by it), and the worker that joins takes it
start_worker busy --jobs 1
until_ok 10 "$call" "$FE" who
"$call" "$FE" slow >/dev/null 2>&1 &
SLOW_CALL=$!
until_ok 10 test -e "$T/started.busy"
"$call" -r "$FE" who >"$T/queued.out" 2>&1 &
QUEUED=$!
start_worker late
wait "$QUEUED" || fail "the queued call failed: $(cat "$T/queued.out")"
[ "$(cat "$T/queued.out")" = "late" ] || fail "the queued call went to '$(cat "$T/queued.out")', not the worker that joined"
kill "$SLOW_CALL" 2>/dev/null
wait "$SLOW_CALL" 2>/dev/null
kill_workers

# --- --prefetch: a worker of one job with --prefetch 3 takes three calls at once, so none waits in a broker whose
# queue holds one (at the default, 1, the third call was Overloaded there); they wait at the worker, and are lost
# with it. One python3-zmq connection sends the calls and then a ping: the broker answers the ping after routing
# every call before it, so any Overloaded has come by then.
py=/usr/bin/python3  # Debian's, with python3-zmq (not whatever python3 comes first on PATH)
if "$py" -c 'import zmq' 2>/dev/null; then
  "$RPC_BROKER" --frontend "ipc://$T/pf-front" --backend "ipc://$T/pf-back" --queue 1 --heartbeat 0.25 -q \
    2>>"$T/pf-broker.log" &
  PF_BROKER=$!
  "$RPC_SERVE" --connect "ipc://$T/pf-back" --name hoarder --heartbeat 0.5 --jobs 1 --prefetch 3 --shell \
    -e slow="exec sleep 60" -e who="echo hoarder" 2>>"$T/hoarder.log" &
  HOARDER=$!
  WORKERS="$WORKERS $HOARDER"
  until_ok 10 "$call" "ipc://$T/pf-front" who
  "$py" - "ipc://$T/pf-front" "$HOARDER" <<'EOF' || fail "a worker with --prefetch 3 did not hold its three calls"
import os, signal, sys, zmq
ctx = zmq.Context()
c = ctx.socket(zmq.DEALER)
c.connect(sys.argv[1])
def request(cid, method):  # [{"message_id": cid, "v": 3}, method, []]
    return b"\x93\x82\xaamessage_id\xc4\x02" + cid + b"\xa1v\x03" + bytes([0xa0 + len(method)]) + method + b"\x90"
for cid, method in [(b"c1", b"slow"), (b"c2", b"who"), (b"c3", b"who")]:
    c.send_multipart([b"", request(cid, method)])
c.send_multipart([b"", request(b"p1", b"_zerorpc_ping")])
def next_reply():
    assert c.poll(10000), "no reply within 10 s"
    return c.recv_multipart()[-1]
while b"\xc4\x02p1" not in (m := next_reply()):  # until the ping's answer: heartbeats only, no ERR
    assert b"ERR" not in m, "a call was refused: %r" % m
os.kill(int(sys.argv[2]), signal.SIGKILL)
lost = set()
while len(lost) < 3:
    m = next_reply()
    if b"LostRemote" in m:
        lost.add(m[m.index(b"response_to\xc4\x02") + 13:][:2])
assert lost == {b"c1", b"c2", b"c3"}, lost
c.close(0)
EOF
  wait "$HOARDER" 2>/dev/null
  WORKERS=""
  kill "$PF_BROKER"
  wait "$PF_BROKER" 2>/dev/null
  PF_BROKER=""
else
  echo "SKIP --prefetch: $py cannot import zmq (Debian's python3-zmq)" >&2
  [ "${CI:-}" = true ] && fail "python3-zmq is missing in CI"
fi
expect_rc 2 "$RPC_SERVE" --connect "ipc://$T/back" --prefetch 0
expect_err_has "--prefetch"

# --- a draining worker (SIGTERM) takes no new calls and finishes its own
start_worker drainer --jobs 2
DRAINER=$WORKER_PID
until_ok 10 "$call" "$FE" who
"$call" -r "$FE" nap 1 >"$T/drained.out" 2>&1 &
NAP=$!
until_ok 10 test -e "$T/napping.drainer"
kill -TERM "$DRAINER"
start_worker fresh
for _ in 1 2 3 4 5; do
  expect_rc 0 "$call" -r "$FE" who
  expect_out "fresh"
done
wait "$NAP" || fail "the draining worker's own call failed: $(cat "$T/drained.out")"
[ "$(cat "$T/drained.out")" = "1" ] || fail "the draining worker's call returned '$(cat "$T/drained.out")'"
wait "$DRAINER" || fail "the draining worker exited $?"

# --- a broker restart (same endpoints): the worker announces itself again, the next call succeeds
FE_PORT=${FE##*:}
kill -TERM "$BROKER_PID"
wait "$BROKER_PID"
start_broker --heartbeat 0.25
until_ok 10 "$call" -r "$FE" who
expect_rc 0 "$call" -r "$FE" who
expect_out "fresh"

# --- hostile input: garbage on the frontend and the backend, a READY that lies; the broker keeps serving
if "$py" -c 'import zmq' 2>/dev/null; then
  "$py" - "$FE" "ipc://$T/back" <<'EOF' || fail "the hostile peers could not run"
import sys, zmq
ctx = zmq.Context()
c = ctx.socket(zmq.DEALER); c.connect(sys.argv[1])
w = ctx.socket(zmq.DEALER); w.connect(sys.argv[2])
for junk in [b"", b"\xc1", b"\x93\x80\xa3add\x90", b"\x93\x81\xaamessage_id\xc4\x01x\xa3add\x90" * 3]:
    c.send_multipart([b"", junk])
    c.send_multipart([junk])
# A worker's event for a client and channel it was never given, commands it may not send, a READY out of range.
w.send_multipart([b"\x00\x00abcde", b"", b"\x93\x80\xa2OK\x91\x01"])
w.send_multipart([b"", b"RESET"])
w.send_multipart([b"", b"READY", b"\x82\xa1v\x01\xa4jobs\xce\xff\xff\xff\xff"])
w.send_multipart([b"", b"READY", b"not msgpack"])
w.send_multipart([b"", b"READY"])
# Then a ping on the same connection: answered, so the broker has read everything before it.
c.send_multipart([b"", b"\x93\x82\xaamessage_id\xc4\x02p1\xa1v\x03\xad_zerorpc_ping\x90"])
assert c.poll(10000), "no answer to a ping after the garbage"
w.close(0); c.close(0)
EOF
  expect_rc 0 "$call" -r "$FE" who
  expect_out "fresh"
else
  echo "SKIP hostile peers: $py cannot import zmq (Debian's python3-zmq)" >&2
  [ "${CI:-}" = true ] && fail "python3-zmq is missing in CI"
fi

# --- usage and set-up errors name what failed
expect_rc 2 "$RPC_BROKER" --queue 0
expect_rc 2 "$RPC_BROKER" --curve-allow /nonexistent
expect_err_has "--curve-secret"
expect_rc 1 "$RPC_BROKER" --frontend tcp://127.0.0.1:99999 --backend "ipc://$T/back2"
expect_err_has "tcp://127.0.0.1:99999"
expect_rc 1 "$RPC_BROKER" --frontend "$FE" --backend "ipc://$T/back3"
expect_err_has "$FE"
expect_rc 1 "$RPC_SERVE" --connect udp://127.0.0.1:1
expect_err_has "udp://127.0.0.1:1"
expect_rc 2 "$RPC_SERVE" --connect "ipc://$T/back" --broker-key "$T/none"
expect_err_has "--broker-key"
finish
