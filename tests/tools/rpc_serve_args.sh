#!/bin/bash
# A caller cannot turn a served command against the server's files: arguments that begin with '-' are refused unless
# the method allows options (--allow-options), and --max-args caps the operands (no file name after grep's
# pattern). The man page's own example, `--exec 'grep=grep -n'`, read /etc/shadow and anything else the server
# could read before these.
. "$(dirname "$0")/lib.sh"
printf 'one\nERROR two\nthree\n' >"$T/log"
echo "secret" >"$T/private"
start_server --exec 'grep=grep -n' --max-args grep=1 --exec 'list=ls' --allow-options list --exec 'cat=cat'

expect_rc 0 sh -c '"$0" --stdin "$1" grep ERROR <"$2"' "$RPC_CALL" "$EP" "$T/log"   # the intended use
expect_out '"2:ERROR two"'
expect_rc 1 "$RPC_CALL" "$EP" grep '' "$T/private"                                   # a file after the pattern
expect_err_has "BadArgument: grep takes at most 1 argument, got 2"
for opt in -r --files0-from=/etc/passwd -f/etc/passwd --; do
  expect_rc 1 "$RPC_CALL" "$EP" grep "$opt"
  expect_err_has "BadArgument: grep: argument 1 ('$opt') begins with '-', and grep takes no options from callers"
done
expect_rc 1 "$RPC_CALL" --string "$EP" cat "$T/private" -                            # no --max-args: operands pass,
expect_err_has "BadArgument: cat: argument 2 ('-') begins with '-'"                  # options still do not
expect_rc 1 "$RPC_CALL" "$EP" cat -1                                                 # a negative number, as text
expect_err_has "BadArgument: cat: argument 1 ('-1')"
expect_rc 0 "$RPC_CALL" --raw "$EP" list -d /                                        # allowed options
expect_out /
grep -q "grep \[\"\", \"$T/private\"\] -> BadArgument" "$T/serve.log" || fail "the refusal is not logged: $(cat "$T/serve.log")"
stop_server

# ipc:// never clobbers a file: not a regular file, not another server's live socket; the socket goes at exit,
# and "ipc://" alone listens in a private directory.
echo "keep me" >"$T/precious"
expect_rc 1 "$RPC_SERVE" --bind "ipc://$T/precious"
expect_err_has "rpc-serve: cannot listen on ipc://$T/precious: $T/precious exists and is not a socket"
[ "$(cat "$T/precious")" = "keep me" ] || fail "rpc-serve replaced a regular file"
"$RPC_SERVE" --bind "ipc://$T/live.sock" 2>"$T/first.log" &
first=$!
expect_rc 0 "$RPC_CALL" "ipc://$T/live.sock" add 1 2                            # it is up
expect_rc 1 "$RPC_SERVE" --bind "ipc://$T/live.sock"
expect_err_has "another server listens on $T/live.sock"
expect_rc 0 "$RPC_CALL" "ipc://$T/live.sock" add 1 2                            # and still serving
kill -TERM "$first"
wait "$first"
[ -e "$T/live.sock" ] && fail "rpc-serve left its socket behind"
TMPDIR="$T" "$RPC_SERVE" --bind ipc:// 2>"$T/private.log" &
private=$!
for _ in $(seq 100); do grep -q "listening on" "$T/private.log" && break; sleep 0.05; done
ipc=$(sed -n 's/.*listening on \(ipc:[^ ]*\)$/\1/p' "$T/private.log")
path=${ipc#ipc://}
case $path in "$T"/ductrpc-*/rpc.sock) ;; *) fail "ipc:// listened on '$ipc', not in a private directory under \$TMPDIR" ;; esac
[ "$(stat -c %a "${path%/*}")" = 700 ] || fail "the private directory ${path%/*} is not mode 0700"
expect_rc 0 "$RPC_CALL" "$ipc" add 1 2
kill -TERM "$private"
wait "$private"
[ -e "${path%/*}" ] && fail "the private directory ${path%/*} stayed behind"

# Garbage from a client is dropped, counted and logged, at most a line a second; the server goes on serving.
if /usr/bin/python3 -c 'import zmq' 2>/dev/null; then
  start_server
  /usr/bin/python3 - "$EP" <<'PY' || fail "could not send garbage"
import sys, zmq
s = zmq.Context().socket(zmq.DEALER)
s.connect(sys.argv[1])
for i in range(50):
    s.send_multipart([b"", b"not msgpack at all %d" % i])
# Then a ping on the same connection, which ZeroMQ delivers after the garbage: its answer means the server has
# read (and counted) all fifty. msgpack by hand: [{"message_id": "ping", "v": 3}, "_zerorpc_ping", []].
s.send_multipart([b"", b"\x93\x82\xaamessage_id\xa4ping\xa1v\x03\xad_zerorpc_ping\x90"])
if not s.poll(20000):
    sys.exit("no answer to the ping sent after the garbage")
s.recv_multipart()
s.close(linger=0)
PY
  expect_rc 0 "$RPC_CALL" "$EP" add 1 2
  for _ in $(seq 300); do grep -q "dropped .* malformed" "$T/serve.log" && break; sleep 0.05; done
  grep -q "rpc-serve: dropped [0-9]* malformed or unroutable events" "$T/serve.log" || fail "no dropped line: $(cat "$T/serve.log")"
  [ "$(grep -c dropped "$T/serve.log")" -le 3 ] || fail "the dropped events flood the log: $(cat "$T/serve.log")"
  stop_server
else
  [ "${CI:-}" = true ] && fail "python3-zmq is missing in CI"
  echo "SKIP (part): python3-zmq is not installed: the dropped-events log was not checked" >&2
fi

# Bad rules are usage errors, named.
expect_rc 2 "$RPC_SERVE" --bind tcp://127.0.0.1:0 --exec 'grep=grep' --max-args grep=x
expect_err_has "rpc-serve: --max-args: grep: 'x' is not a count from 0 to 1000"
expect_rc 2 "$RPC_SERVE" --bind tcp://127.0.0.1:0 --exec 'grep=grep' --max-args other=1
expect_err_has "rpc-serve: --max-args: other is not a method given with --exec"
expect_rc 2 "$RPC_SERVE" --bind tcp://127.0.0.1:0 --exec 'grep=grep' --allow-options other
expect_err_has "rpc-serve: --allow-options: other is not a method given with --exec"
for bad in nan -1 0 1e300 x; do
  expect_rc 2 "$RPC_SERVE" --bind tcp://127.0.0.1:0 --exec 'grep=grep' --timeout "grep=$bad"
  expect_err_has "rpc-serve: --timeout: grep: "
done
finish
