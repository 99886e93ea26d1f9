#!/usr/bin/env bash
# Installs the engine into a throwaway prefix and builds tests/consumer against it with find_package(kyotaku).
set -euo pipefail
build=$1 src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" > "$work/install.log"
test -f "$work/prefix/lib/cmake/kyotaku/kyotakuConfig.cmake" || { echo "package config not installed"; exit 1; }
cmake -S "$src/tests/consumer" -B "$work/build" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" > "$work/configure.log" || { cat "$work/configure.log"; exit 1; }
cmake --build "$work/build" > "$work/build.log" || { cat "$work/build.log"; exit 1; }
out=$("$work/build/consumer" "$src/rules")
echo "$out"
[ "$out" = "reinquiry_allowed=true" ]
