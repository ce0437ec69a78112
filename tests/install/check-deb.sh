#!/bin/sh
# Builds the Debian packages from the build tree (CPack), unpacks them into a scratch root (dpkg -x), checks their
# names, dependencies and contents, then builds and runs a consumer against the unpacked tree twice: with CMake's
# find_package and with pkg-config.
set -eu
build=$1
consumer=$2
version=$3
soversion=$(echo "$version" | cut -d. -f1,2)
work=$(mktemp -d "${TMPDIR:-/tmp}/ductrpc-deb-XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "check-deb: $*" >&2; exit 1; }

(cd "$build" && cpack -G DEB -B "$work/packages" >"$work/cpack.log" 2>&1) || { cat "$work/cpack.log" >&2; fail "cpack failed"; }
arch=$(dpkg --print-architecture)
runtime="$work/packages/libductrpc${soversion}_${version}_${arch}.deb"
dev="$work/packages/libductrpc-dev_${version}_${arch}.deb"
tools="$work/packages/ductrpc-tools_${version}_${arch}.deb"
for deb in "$runtime" "$dev" "$tools"; do
  [ -f "$deb" ] || { ls "$work/packages" >&2; fail "no package $(basename "$deb")"; }
  [ "$(dpkg-deb -f "$deb" Version)" = "$version" ] || fail "$(basename "$deb"): version $(dpkg-deb -f "$deb" Version)"
  dpkg-deb -c "$deb" | grep -q "usr/share/doc/.*/copyright" || fail "$(basename "$deb") has no copyright file"
  dpkg -x "$deb" "$work/root"
done

# Dependencies: computed from the binaries for the libraries and tools; exact between our own packages.
depends() { dpkg-deb -f "$1" Depends; }
depends "$runtime" | grep -q "libzmq5" || fail "runtime does not depend on libzmq5: $(depends "$runtime")"
depends "$runtime" | grep -q "libstdc++6" || fail "runtime does not depend on libstdc++6: $(depends "$runtime")"
depends "$dev" | grep -q "libductrpc${soversion} (= $version)" || fail "dev: $(depends "$dev")"
depends "$dev" | grep -q "libmsgpack-cxx-dev" || fail "dev does not depend on libmsgpack-cxx-dev: $(depends "$dev")"
# The tools carry the libraries (statically linked, for their start-up time) and need only the system's.
depends "$tools" | grep -q "libzmq5" || fail "tools do not depend on libzmq5: $(depends "$tools")"
! depends "$tools" | grep -q "libductrpc" || fail "tools depend on the runtime package: $(depends "$tools")"
# No file of one package in another (they can be installed together).
for a in "$runtime" "$dev" "$tools"; do dpkg-deb -c "$a" | awk '$1 !~ /^d/ {print $6}'; done | sort | uniq -d >"$work/dups"
[ ! -s "$work/dups" ] || fail "files in two packages: $(cat "$work/dups")"

libdir=$(dirname "$(find "$work/root" -name "libductrpc-rpc.so.${soversion}" | head -n 1)")
[ -n "$libdir" ] && [ "$libdir" != . ] || fail "libductrpc-rpc.so.${soversion} is not in the runtime package"
for lib in duct rpc; do
  soname=$(objdump -p "$libdir/libductrpc-$lib.so.${soversion}" | awk '$1 == "SONAME" {print $2}')
  [ "$soname" = "libductrpc-$lib.so.${soversion}" ] || fail "libductrpc-$lib's SONAME is $soname"
  [ -L "$libdir/libductrpc-$lib.so" ] || fail "libductrpc-$lib.so (the development link) is missing"
done
[ -f "$work/root/usr/include/ductrpc/rpc/client.hpp" ] || fail "headers are not under include/ductrpc"
[ -f "$work/root/usr/include/ductrpc/duct/version.hpp" ] || fail "duct/version.hpp is not installed"

expected="consumer got [1, 2, 3] and add from $version/$version"
export LD_LIBRARY_PATH="$libdir"

# CMake: find_package(ductrpc) from the unpacked tree and nowhere else.
cmake -S "$consumer" -B "$work/cmake-build" -Dductrpc_DIR="$libdir/cmake/ductrpc" >/dev/null
cmake --build "$work/cmake-build" >/dev/null
out=$("$work/cmake-build/consumer")
[ "$out" = "$expected" ] || fail "CMake consumer printed: $out"

# pkg-config: the .pc files find the tree from where they lie.
export PKG_CONFIG_LIBDIR="$libdir/pkgconfig"
[ "$(pkg-config --modversion ductrpc)" = "$version" ] || fail "pkg-config --modversion ductrpc: $(pkg-config --modversion ductrpc)"
# shellcheck disable=SC2046
${CXX:-c++} -std=c++20 "$consumer/main.cpp" -o "$work/pc-consumer" $(pkg-config --cflags --libs ductrpc)
out=$("$work/pc-consumer")
[ "$out" = "$expected" ] || fail "pkg-config consumer printed: $out"

got=$("$work/root/usr/bin/rpc-call" --version)
[ "$got" = "rpc-call (ductrpc) $version" ] || fail "rpc-call --version: $got"
echo "packages: $(cd "$work/packages" && ls ./*.deb | tr '\n' ' ')"
echo "$out"
