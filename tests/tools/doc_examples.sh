#!/bin/bash
# Every shell example in the README (its ```sh blocks) and in the man pages (their EXAMPLES sections) runs, exactly
# as written, so that none can rot. Each document runs as one script (its examples build on each other, as a
# reader would type them) under `bash -e`, in a private directory holding the small files the examples name, and
# in a private network namespace (unshare), so that its fixed ports (4242, 4243, 6000) clash with nothing else.
# Background processes it started end with it. A Python multiprocessing listener with the authkey in ./key waits
# on port 6000 for the example that talks to one.
. "$(dirname "$0")/lib.sh"
src=${DUCTRPC_SOURCE:?}
: "${DUCT_CAT:?}"
bin="$(dirname "$RPC_CALL"):$(dirname "$RPC_SERVE"):$(dirname "$DUCT_CAT")"

if ! unshare -rnpf --mount-proc true 2>/dev/null; then
  [ "${CI:-}" = true ] && fail "unshare -rn does not work in CI"
  echo "SKIP: unshare -rnpf (private network and PID namespaces) is not allowed here" >&2
  exit 77
fi
command -v python3 >/dev/null || { [ "${CI:-}" = true ] && fail "python3 is missing in CI"; echo "SKIP: no python3" >&2; exit 77; }

# The README's ```sh blocks, in order.
markdown_examples() { awk '/^```sh$/ {on = 1; next} /^```/ {on = 0} on' "$1"; }
# A man page's EXAMPLES section: the lines between .nf and .fi, with roff's escapes undone.
man_examples() {
  awk '/^\.SH / {ex = ($2 == "EXAMPLES")} ex && /^\.nf/ {on = 1; next} ex && /^\.fi/ {on = 0} on' "$1" |
    sed -e 's/\\e/\\/g' -e 's/\\-/-/g' -e 's/\\(em/—/g' -e 's/\\f[BIRP]//g'
}

# The files the examples name, made fresh for each document.
make_fixtures() {
  dir=$1
  mkdir -p "$dir"
  for i in $(seq 1000); do
    if [ $((i % 100)) -eq 0 ]; then echo "line $i ERROR disk full"; else echo "line $i ok"; fi
  done >"$dir/big.log"
  head -n 200 "$dir/big.log" >"$dir/app.log"
  printf '{"debug": true, "level": 3}\n' >"$dir/config.json"
  printf '{"task": 1}\n{"task": 2}\n' >"$dir/tasks.jsonl"
  printf 'sesame' >"$dir/key"
  # A worker on DUCT_FD (ductworks framing) that answers each message with the message itself.
  cat >"$dir/worker" <<'PY'
#!/usr/bin/env python3
import os, socket, struct
s = socket.socket(fileno=int(os.environ["DUCT_FD"]))
def exact(n):
    b = b""
    while len(b) < n:
        part = s.recv(n - len(b))
        if not part:
            return None
        b += part
    return b
while True:
    head = exact(5)
    if head is None:
        break
    body = exact(struct.unpack(">I", head[1:])[0])
    s.sendall(head + body)
PY
  chmod +x "$dir/worker"
  cat >"$dir/mp_listener.py" <<'PY'
from multiprocessing.connection import Listener
with Listener(("127.0.0.1", 6000), authkey=open("key", "rb").read()) as l:
    print("ready", flush=True)
    with l.accept() as c:
        c.send_bytes(b"hello from python\n")
PY
}

# run_doc NAME FILE-OF-EXAMPLES: runs it in the private namespace and directory; fails with its output if it fails.
run_doc() {
  name=$1 script=$2
  dir="$T/$name"
  make_fixtures "$dir"
  [ -s "$script" ] || { fail "$name has no shell examples"; return; }
  # run.sh is the first process of a private PID namespace too: when it ends, the kernel ends everything the
  # examples left running in the background.
  cat >"$dir/run.sh" <<RUN
ip link set lo up
cd "$dir"
python3 mp_listener.py >mp.out 2>&1 &
until grep -q ready mp.out 2>/dev/null; do sleep 0.05; done
export PATH="$bin:\$PATH"
bash -e "$script" </dev/null
rc=\$?
# A duct-cat listener left in the background may still be writing what it received: up to 3 s to finish alone.
for _ in \$(seq 60); do pgrep -x duct-cat >/dev/null || break; sleep 0.05; done
exit \$rc
RUN
  if ! timeout -k 5 90 unshare -rnpf --mount-proc --kill-child bash "$dir/run.sh" >"$dir/out" 2>&1; then
    fail "the examples of $name failed: $(tail -n 20 "$dir/out")"
  fi
}

markdown_examples "$src/README.md" >"$T/readme.sh"
run_doc README "$T/readme.sh"
for page in rpc-call rpc-serve duct-cat; do
  man_examples "$src/man/$page.1" >"$T/$page.sh"
  run_doc "$page.1" "$T/$page.sh"
done

# What some examples should have printed (the rest only have to succeed).
grep -qx 42 "$T/README/out" || fail "README: add - - did not print 42: $(cat "$T/README/out")"
grep -qx '"1000"' "$T/README/out" || fail "README: count < big.log did not print \"1000\""
printf '0\n1\n2\n3\n4\n' | cmp -s - "$T/README/received.txt" || fail "README: the duct-cat listener got $(cat "$T/README/received.txt")"
grep -qx "hello from python" "$T/README/out" || fail "README: nothing from Python's multiprocessing listener"
grep -qx '{"task": 2}' "$T/README/out" || fail "README: the worker's answers are missing"
grep -qx '{"debug": true, "level": 3}' "$T/rpc-call.1/out" || fail "rpc-call.1: echo @config.json"
[ "$(grep -c '^line .* ok$' "$T/duct-cat.1/all.log")" -eq 99 ] || fail "duct-cat.1: all.log holds $(wc -l <"$T/duct-cat.1/all.log") lines, not the 100 shipped"
finish
