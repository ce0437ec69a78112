#!/bin/sh
# Installs the build tree into a private prefix, then configures, builds and runs a consumer project against it.
set -eu
build=$1
consumer=$2
version=$3
work=$(mktemp -d "${TMPDIR:-/tmp}/ductrpc-install-XXXXXX")
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >/dev/null
# The tools, their man pages and completions land where man and the shells look.
for f in bin/rpc-call bin/rpc-serve bin/rpc-broker bin/duct-cat share/man/man1/rpc-broker.1 share/man/man1/rpc-call.1 share/man/man1/rpc-serve.1 \
         share/man/man1/duct-cat.1 share/fish/vendor_completions.d/duct-cat.fish \
         share/bash-completion/completions/rpc-call share/zsh/site-functions/_rpc-call \
         share/fish/vendor_completions.d/rpc-call.fish share/doc/ductrpc-tools/copyright; do
  [ -e "$work/prefix/$f" ] || { echo "not installed: $f" >&2; exit 1; }
done
# Installed outside the loader's paths, the tools find the libraries through their RPATH.
got=$("$work/prefix/bin/rpc-call" --version)
[ "$got" = "rpc-call (ductrpc) $version" ] || { echo "rpc-call --version: $got" >&2; exit 1; }
cmake -S "$consumer" -B "$work/build" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/build" >/dev/null
out=$("$work/build/consumer")
[ "$out" = "consumer got [1, 2, 3] and add from $version/$version" ] || { echo "unexpected output: $out" >&2; exit 1; }
echo "$out"
