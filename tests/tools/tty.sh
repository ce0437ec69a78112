#!/bin/bash
# What the tools show only on a terminal, run under script(1) for a pseudo-terminal: rpc-call's progress bar and the
# time a --wait has spent, duct-cat's rates.
. "$(dirname "$0")/lib.sh"
: "${DUCT_CAT:?}"
if ! command -v script >/dev/null; then
  [ "${CI:-}" = true ] && { echo "FAIL: script(1) is missing in CI" >&2; exit 1; }
  echo "SKIP: script(1) (util-linux) is not installed" >&2
  exit 77
fi
# on_tty CMD: runs the shell command CMD with a terminal as stdin, stdout and stderr; its output in $T/tty.
on_tty() { script -qec "$1" /dev/null </dev/null >"$T/tty" 2>&1; }

start_server
on_tty "'$RPC_CALL' --progress '$EP' sleep 0.5" || fail "rpc-call --progress failed: $(cat "$T/tty")"
grep -q '\[#' "$T/tty" || fail "no progress bar on a terminal: $(cat -v "$T/tty")"
grep -q '%' "$T/tty" || fail "no percentage on a terminal: $(cat -v "$T/tty")"
grep -q '"done"' "$T/tty" && fail "JSON progress lines on a terminal: $(cat -v "$T/tty")"

token=$("$RPC_CALL" --raw "$EP" --async sleep 1.5)
on_tty "'$RPC_CALL' '$EP' --wait '$token'" || fail "rpc-call --wait failed: $(cat "$T/tty")"
grep -q "waiting for $token: 1 s" "$T/tty" || fail "no time spent shown while waiting: $(cat -v "$T/tty")"
[ "$(tr -d '\r' <"$T/tty" | sed 's/.*\x1b\[K//' | tail -1)" = 1.5 ] || fail "no result after the wait: $(cat -v "$T/tty")"

"$DUCT_CAT" --listen unix: --lines </dev/null >/dev/null 2>"$T/listen.err" &
listener=$!
for _ in $(seq 1000); do grep -q listening "$T/listen.err" && break; sleep 0.01; done
addr=$(sed -n 's/.*listening on //p' "$T/listen.err")
# Lines spread over a second and a half, so that the rates are shown a few times.
on_tty "for i in \$(seq 15); do echo \$i; sleep 0.1; done | '$DUCT_CAT' --progress --lines '$addr'" ||
  fail "duct-cat --progress failed: $(cat "$T/tty")"
wait "$listener"
grep -q 'msg/s' "$T/tty" || fail "no rates from duct-cat --progress on a terminal: $(cat -v "$T/tty")"
finish
