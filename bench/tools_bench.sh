#!/bin/bash
# The tools' benchmark rows, side by side in one run:
#   rpc-call start-up: the median time of `rpc-call ENDPOINT add 1 2` (start, connect, call, exit) against a local
#     rpc-serve, and of a bare program that only creates a ZeroMQ context and socket (target: rpc-call <= 12 ms)
#   duct-cat: 2 GiB through two duct-cats over a Unix socket, against two `socat -b 131072` doing the same
#     (target: >= 1.2x socat's rate)
# Usage: tools_bench.sh BUILD_DIR [--json FILE] [--quick]
set -eu
build=$1
shift
json="" quick=""
while [ $# -gt 0 ]; do
  case $1 in
    --json) json=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    *) echo "usage: tools_bench.sh BUILD_DIR [--json FILE] [--quick]" >&2; exit 2 ;;
  esac
done
call=$build/tools/rpc-call serve=$build/tools/rpc-serve dcat=$build/tools/duct-cat bare=$build/bench/zmq-bare
spawn=$build/bench/spawn-time
T=$(mktemp -d "${TMPDIR:-/tmp}/ductrpc-tools-bench.XXXXXX")
pids=""
trap 'for p in $pids; do kill $p 2>/dev/null || true; done; rm -rf "$T"' EXIT
now() { echo $((${EPOCHREALTIME/./} * 1000)); }  # ns, without starting a process (bash 5)

runs=50 size=2G
[ -n "$quick" ] && runs=10 size=200M
bytes=$(numfmt --from=iec "$size")

mkfifo "$T/serve.fifo"
"$serve" -q --bind tcp://127.0.0.1:0 --bind "ipc://$T/serve.ipc" 2>"$T/serve.fifo" &
pids="$pids $!"
exec 3<"$T/serve.fifo"
read -r -t 20 first <&3
ep=${first##*listening on }
ipc="ipc://$T/serve.ipc"
"$call" "$ep" add 1 2 >/dev/null  # warm: the page cache, the server's first connection
call_ms=$("$spawn" "$runs" "$call" "$ep" add 1 2)
ipc_ms=$("$spawn" "$runs" "$call" "$ipc" add 1 2)
bare_ms=$("$spawn" "$runs" "$bare")

# best_s CMD...: the best of three wall times of CMD, in seconds.
best_s() {
  best=""
  for _ in 1 2 3; do
    s=$(now)
    "$@"
    e=$(now)
    t=$((e - s))
    if [ -z "$best" ] || [ "$t" -lt "$best" ]; then best=$t; fi
  done
  awk -v t="$best" 'BEGIN {printf "%.3f", t / 1e9}'
}
# The data: zeros in 1 MiB writes, a source fast enough not to be what is measured.
source_data() { dd if=/dev/zero bs=1M count=$((bytes >> 20)) status=none; }
# Each side's listener is up before the clock starts; the time is the sender's start to the receiver's end.
ours() {
  rm -f "$T/ours.sock"
  "$dcat" --listen "unix:$T/ours.sock" </dev/null >/dev/null 2>"$T/dc.err" &
  l=$!
  while [ ! -S "$T/ours.sock" ]; do sleep 0.001; done
  source_data | "$dcat" "unix:$T/ours.sock"
  wait $l
}
theirs() {
  rm -f "$T/socat.sock"
  socat -b 131072 -u "UNIX-LISTEN:$T/socat.sock" - >/dev/null &
  l=$!
  while [ ! -S "$T/socat.sock" ]; do sleep 0.001; done
  source_data | socat -b 131072 -u - "UNIX-CONNECT:$T/socat.sock"
  wait $l
}
if command -v socat >/dev/null; then
  ours_s=$(best_s ours)
  socat_s=$(best_s theirs)
else
  echo "socat is not installed: no duct-cat baseline (make deps installs it)" >&2
  ours_s=$(best_s ours)
  socat_s=0
fi

awk -v c="$call_ms" -v i="$ipc_ms" -v b="$bare_ms" -v o="$ours_s" -v s="$socat_s" -v n="$bytes" -v size="$size" 'BEGIN {
  printf "%-44s %12s %12s %8s  %s\n", "case", "ours", "baseline", "ratio", "target"
  printf "%-44s %9.2f ms %9.2f ms %7.2fx  %s\n", "rpc-call start, call, exit, tcp:// (median)", c, b, c / b, "ours <= 12 ms"
  printf "%-44s %9.2f ms %9.2f ms %7.2fx  %s\n", "rpc-call start, call, exit, ipc:// (median)", i, b, i / b, "ours <= 12 ms"
  if (s > 0)
    printf "%-44s %7.2f GB/s %7.2f GB/s %7.2fx  %s\n", "duct-cat " size " over a Unix socket vs socat", n / o / 1e9,
           n / s / 1e9, s / o, "ours >= 1.2x socat"
}'
if [ -n "$json" ]; then
  awk -v c="$call_ms" -v i="$ipc_ms" -v b="$bare_ms" -v o="$ours_s" -v s="$socat_s" -v n="$bytes" 'BEGIN {
    printf "{\"bench\": \"tools\", \"rows\": [\n"
    printf "  {\"case\": \"rpc-call start-up\", \"tcp_median_ms\": %s, \"ipc_median_ms\": %s, \"bare_zmq_median_ms\": %s},\n", c, i, b
    printf "  {\"case\": \"duct-cat vs socat\", \"bytes\": %s, \"duct_cat_s\": %s, \"socat_s\": %s}\n", n, o, s
    printf "]}\n"
  }' >"$json"
  echo "wrote $json"
fi
