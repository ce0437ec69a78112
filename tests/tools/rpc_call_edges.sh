#!/bin/bash
# The rough edges a new user hits with rpc-call: a token from --async that --wait takes as it is; several "-" and
# @FILE arguments; usage errors (exit 2, "rpc-call:" prefix, short messages); a readable --inspect on a terminal;
# and a call that rpc-call gives up on (a signal, --timeout, a closed stdout) stopped on the server, not only here.
. "$(dirname "$0")/lib.sh"
start_server

# --async prints the bare token; --wait, --poll and --cancel take it as it is, and quoted as JSON too.
expect_rc 0 "$RPC_CALL" "$EP" --async sleep 0.2
tok=$(cat "$T/out")
[[ $tok =~ ^[0-9a-f]+$ ]] || fail "--async printed '$tok', not a bare token"
expect_rc 0 "$RPC_CALL" "$EP" --wait "$tok"
expect_out 0.2
expect_rc 0 "$RPC_CALL" "$EP" --async sleep 0.2
tok=$(cat "$T/out")
expect_rc 0 "$RPC_CALL" "$EP" --wait "\"$tok\""
expect_out 0.2
expect_rc 0 "$RPC_CALL" "$EP" --poll "\"$tok\""
expect_out '{"state": "done", "result": 0.2}'

# Each "-" is the next JSON value on stdin; stdin must hold exactly as many.
expect_rc 0 "$RPC_CALL" "$EP" add - - <<<'40 2'
expect_out 42
expect_rc 0 "$RPC_CALL" "$EP" echo - < <(printf '{"a":\n 1}\n')   # one value over two lines
expect_out '{"a": 1}'
expect_rc 2 "$RPC_CALL" "$EP" add - - <<<'1'
expect_err_has "rpc-call: - number 2: stdin has no JSON value left for it"
expect_rc 2 "$RPC_CALL" "$EP" add - - <<<'1 2 3'
expect_err_has "rpc-call: stdin holds more JSON values than the 2 - arguments take"

# @FILE: the file's contents as an argument (JSON where it parses, else text, else bytes); @@ for a literal @.
printf '{"k": [1, 2]}\n' >"$T/config.json"
expect_rc 0 "$RPC_CALL" "$EP" echo "@$T/config.json"
expect_out '{"k": [1, 2]}'
printf 'two words\n' >"$T/text"
expect_rc 0 "$RPC_CALL" "$EP" echo "@$T/text"
expect_out '"two words\n"'
printf '\377\000' >"$T/bytes"
expect_rc 0 "$RPC_CALL" "$EP" echo "@$T/bytes"
expect_out '{"$bin": "ff00"}'
expect_rc 0 "$RPC_CALL" "$EP" echo @@home
expect_out '"@home"'
expect_rc 0 "$RPC_CALL" --string "$EP" echo "@$T/config.json"   # --string: the file's text as a string
expect_out '"{\"k\": [1, 2]}\n"'
expect_rc 2 "$RPC_CALL" "$EP" echo "@$T/no-such-file"
expect_err_has "rpc-call: @$T/no-such-file: No such file or directory"
expect_rc 2 "$RPC_CALL" "$EP" echo @
expect_err_has "rpc-call: @ needs a file name"
expect_rc 2 "$RPC_CALL" "$EP" echo "@$T"                         # a directory is not an argument
expect_err_has "rpc-call: @$T:"

# The demo methods take hostile numbers calmly: integers add exactly over msgpack's whole range or fail clearly
# (no wrap-round, no crash of a sanitized build); sleep refuses NaN-like, negative and huge times.
expect_rc 0 "$RPC_CALL" "$EP" add 9223372036854775807 1
expect_out 9223372036854775808
expect_rc 0 "$RPC_CALL" "$EP" add 18446744073709551615 -1
expect_out 18446744073709551614
expect_rc 1 "$RPC_CALL" "$EP" add 18446744073709551615 1
expect_err_has "OverflowError: add(): the sum does not fit in 64 bits"
expect_rc 1 "$RPC_CALL" "$EP" add -9223372036854775808 -1
expect_err_has "OverflowError"
for bad in -1 1e300; do
  expect_rc 1 "$RPC_CALL" "$EP" sleep "$bad"
  expect_err_has "ValueError: sleep() takes 0 to 86400 seconds"
done

# Usage errors: exit 2, prefixed, short.
expect_rc 2 "$RPC_CALL" tcp://127.0.0.1:99999 add 1 2
expect_err_has "rpc-call: ENDPOINT: tcp://127.0.0.1:99999: the port must be a number from 0 to 65535"
expect_rc 2 "$RPC_CALL" bogus://x add 1 2
expect_err_has "rpc-call: ENDPOINT: cannot connect to bogus://x"
expect_rc 2 "$RPC_CALL" "$EP" --list extra
expect_err_has "rpc-call: METHOD: --list, --wait, --poll and --cancel take no METHOD, got 'extra'"
expect_rc 2 "$RPC_CALL" "$EP" --wait "$tok" extra
expect_err_has "rpc-call: METHOD:"
for bad in 0 -1 nan inf 1e300 x; do
  expect_rc 2 "$RPC_CALL" --timeout "$bad" "$EP" add 1 2
  case $bad in
    x) expect_err_has "rpc-call: --timeout: 'x' is not a number of seconds" ;;
    0 | -1 | nan) expect_err_has "rpc-call: --timeout: must be > 0, got $bad" ;;
    *) expect_err_has "rpc-call: --timeout: must be at most a year" ;;
  esac
  [ "$(wc -c <"$T/err")" -lt 200 ] || fail "--timeout $bad: a long message: $(cat "$T/err")"
done
expect_rc 2 "$RPC_CALL" --json "$EP" add 1 2
expect_err_has "rpc-call: --json: goes with --inspect"

# --inspect: JSON when stdout is not a terminal (or with --json), one readable line per method on a terminal.
expect_rc 0 "$RPC_CALL" --inspect "$EP" add
expect_out '{"args": [{"name": "a"}, {"name": "b"}], "doc": "Adds two numbers."}'
if command -v script >/dev/null; then
  script -qec "$RPC_CALL --inspect $EP add" /dev/null >"$T/tty" </dev/null
  tr -d '\r' <"$T/tty" >"$T/out"
  expect_out "add(a, b) — Adds two numbers."
  script -qec "$RPC_CALL --inspect $EP" /dev/null </dev/null | tr -d '\r' >"$T/out"
  grep -qx "count(n) — Streams the integers from 0 up to n." "$T/out" || fail "--inspect on a terminal: $(cat "$T/out")"
  [ "$(wc -l <"$T/out")" -eq 5 ] || fail "--inspect on a terminal printed $(wc -l <"$T/out") lines, not 5"
  script -qec "$RPC_CALL --inspect --json $EP add" /dev/null </dev/null | tr -d '\r' >"$T/out"
  expect_out '{"args": [{"name": "a"}, {"name": "b"}], "doc": "Adds two numbers."}'
else
  echo "SKIP: the terminal form of --inspect needs script(1) (bsdutils)" >&2
fi

# A stream whose reader goes away stops its producer at once (not after two heartbeat periods), and rpc-call exits
# 141, as a program that SIGPIPE ends.
"$RPC_CALL" "$EP" count 100000000 | head -1 >"$T/out"
rc=${PIPESTATUS[0]}
expect_out 0
[ "$rc" -eq 141 ] || fail "rpc-call | head -1 exited $rc, not 141"
await() {  # await WHAT CONDITION...: polls CONDITION for up to 5 s
  what=$1
  shift
  for _ in $(seq 100); do
    "$@" && return 0
    sleep 0.05
  done
  fail "$what (log: $(cat "$T/serve.log"))"
  return 1
}
await "the stream's producer was not stopped" grep -q "count \[100000000\] -> Cancelled" "$T/serve.log"
stop_server

# A signal or --timeout stops the call on the server: its command is killed at once, not when it ends (30 s) or
# when the missing heartbeats tell the server (two periods).
start_server --exec "hold=sh -c 'echo \$\$ >\"\$0\"; exec sleep 30'"
n=0
for how in INT TERM HUP timeout; do
  n=$((n + 1))
  if [ "$how" = timeout ]; then
    expect_rc 4 "$RPC_CALL" --timeout 1 "$EP" hold "$T/pid$n"
  else
    "$RPC_CALL" "$EP" hold "$T/pid$n" >/dev/null 2>&1 &
    caller=$!
    await "the command did not start" test -s "$T/pid$n" || continue
    kill "-$how" "$caller"
    wait "$caller"
    rc=$?
    want=$((128 + $(kill -l "$how")))
    [ "$rc" -eq "$want" ] || fail "rpc-call ended by SIG$how exited $rc, not $want"
  fi
  pid=$(cat "$T/pid$n")
  await "SIG$how: the command $pid was not killed" sh -c "! kill -0 $pid 2>/dev/null"
  # The count is taken anew at every poll (a $(...) here would be taken once, before the first).
  await "SIG$how: the server did not log the call cancelled" \
    sh -c 'test "$(grep -c "hold .* -> " "$0")" -ge "$1"' "$T/serve.log" "$n"
done
finish
