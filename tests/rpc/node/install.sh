#!/bin/sh
# Installs the node peers (zerorpc 0.9.8 on zeromq 6's prebuilt binding) into DIR, a copy of this folder.
# Exit 77 (ctest: skipped) when node or npm is missing and this is not CI, where a missing peer is a failure.
set -eu
src=$(dirname "$0")
dir=$1
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "SKIPPED: node and npm are needed for the zerorpc-node interop tests (apt-get install nodejs npm)" >&2
  [ "${CI:-}" = "true" ] && exit 1
  exit 77
fi
mkdir -p "$dir"
cp -R "$src/package.json" "$src/peer.js" "$src/zeromq-shim" "$dir/"
cd "$dir"
if [ ! -d node_modules/zerorpc ] || [ package.json -nt node_modules/.package-lock.json ]; then
  npm install --no-audit --no-fund --loglevel=error
fi
node -e 'require("zerorpc")'
