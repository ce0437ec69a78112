#!/bin/sh
# Runs every fuzz target of the build BUILD (or those named in TARGETS) for SECONDS each, from the seeds and the
# corpus it keeps growing in BUILD/corpus: sh tests/fuzz/run.sh BUILD SECONDS [TARGETS]. Prints a table (executions per second, corpus size) and
# exits non-zero if any target found a crash, a leak, a time-out or an allocation past 512 MB; the input that
# did it is kept in BUILD/artifacts/ and should become a regression test.
set -u
build=$1
seconds=$2
targets=${3:-frame msgpack event json_args authkey server client broker}
mkdir -p "$build/artifacts"
status=0
printf '%-10s %8s %12s %10s %s\n' target seconds "execs/s" corpus result
for target in $targets; do
  corpus="$build/corpus/$target"
  mkdir -p "$corpus"
  log="$build/artifacts/$target.log"
  "$build/tests/fuzz/fuzz-$target" -max_total_time="$seconds" -rss_limit_mb=512 -timeout=10 -max_len=4096 \
    -print_final_stats=1 -artifact_prefix="$build/artifacts/$target-" "$corpus" "$build/seeds/$target" >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  files=$(find "$corpus" -type f | wc -l)
  if [ "$rc" -eq 0 ]; then result=ok; else result="FAILED (exit $rc, see $log)"; status=1; fi
  printf '%-10s %8s %12s %10s %s\n' "$target" "$seconds" "${execs:-?}" "$files" "$result"
  [ "$rc" -eq 0 ] || tail -n 30 "$log" >&2
done
exit $status
