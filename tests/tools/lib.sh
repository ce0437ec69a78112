# Shared by the tool tests: a private directory, a server started on port 0 whose endpoint is read from its own
# stderr (no fixed ports, no sleeps), and checks that say what they expected. Every process a test starts is
# ended by PID when it exits.
set -u
: "${RPC_CALL:?}" "${RPC_SERVE:?}"
T=$(mktemp -d "${TMPDIR:-/tmp}/ductrpc-tools.XXXXXX")
SERVER_PID=""
failures=0

cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null; fi
  rm -rf "$T"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# start_server [rpc-serve options...]: starts rpc-serve on tcp://127.0.0.1:0; sets EP and SERVER_PID. Its log goes
# to $T/serve.log once the first line (the endpoint) has been read; the log of a server started before is gone by
# the time this returns (so that a wait for a line cannot find the last server's), and the log is whole once
# wait_server (or stop_server) has returned.
start_server() {
  rm -f "$T/serve.fifo"
  mkfifo "$T/serve.fifo"
  "$RPC_SERVE" --bind tcp://127.0.0.1:0 "$@" 2>"$T/serve.fifo" &
  SERVER_PID=$!
  exec 3<"$T/serve.fifo"
  if ! read -r -t 20 first <&3; then
    echo "FAIL: rpc-serve $* did not say where it listens" >&2
    exit 1
  fi
  EP=${first##*listening on }
  case $first in  # --log-json
    '{'*) EP=$(printf '%s' "$first" | sed 's/.*"endpoint": "\([^"]*\)".*/\1/') ;;
  esac
: >"$T/serve.log"
  cat <&3 >>"$T/serve.log" &
  LOG_PID=$!
  exec 3<&-
}

# wait_server: waits for the server to end, and for its log to be written out; sets SERVER_RC.
wait_server() {
  wait "$SERVER_PID"
  SERVER_RC=$?
  SERVER_PID=""
  wait "$LOG_PID"
}

# stop_server [SIGNAL]: ends the server and waits for it (wait_server); sets SERVER_RC.
stop_server() {
  kill "-${1:-TERM}" "$SERVER_PID"
  wait_server
}

# expect_rc WANT CMD...: runs CMD with its stdout in $T/out and stderr in $T/err; checks its exit code. A CMD that
# hangs is killed after 60 s (exit 124), so that the failure names it instead of the whole test timing out.
expect_rc() {
  want=$1
  shift
  timeout -k 5 60 "$@" >"$T/out" 2>"$T/err"
  rc=$?
  if [ "$rc" -ne "$want" ]; then
    fail "$* exited $rc, not $want; stdout: $(head -c 300 "$T/out"); stderr: $(head -c 300 "$T/err")"
  fi
}

# expect_out TEXT: the last command's stdout was exactly TEXT (and a newline).
expect_out() {
  printf '%s\n' "$1" >"$T/want"
  cmp -s "$T/want" "$T/out" || fail "stdout was '$(cat "$T/out")', not '$1'"
}

# expect_err_has TEXT: the last command's stderr contains TEXT.
expect_err_has() {
  grep -qF -- "$1" "$T/err" || fail "stderr '$(cat "$T/err")' lacks '$1'"
}

# wait_gone PID [SECONDS]: waits (polling, at most SECONDS, default 5) until PID has ended: gone, or a zombie that
# its new parent has yet to reap. Returns 1 if it still runs.
wait_gone() {
  for _ in $(seq $((${2:-5} * 20))); do
    state=$(sed 's/.*) \(.\).*/\1/' "/proc/$1/stat" 2>/dev/null) || return 0
    [ "$state" = Z ] && return 0
    sleep 0.05
  done
  return 1
}

finish() {
  if [ "$failures" -ne 0 ]; then
    echo "$failures check(s) failed" >&2
    exit 1
  fi
  echo "all checks passed"
}
