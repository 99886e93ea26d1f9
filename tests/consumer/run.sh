#!/usr/bin/env bash
# An integrator's project, exactly as the README shows it: installs the engine into a throwaway prefix, takes the
# README's CMakeLists.txt and main.cpp (the fenced blocks after the "consumer:" markers) verbatim, builds them
# against the installed package with find_package(kyotaku) — no CMAKE_CXX_STANDARD: the target brings C++20 — and
# runs the program on the official rules. Also: the installed library holds no host-specific instructions (AVX2).
# Usage: run.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" > "$work/install.log"
test -f "$work/prefix/lib/cmake/kyotaku/kyotakuConfig.cmake" || { echo "package config not installed"; exit 1; }
mkdir -p "$work/app"
# The fenced code block that follows `<!-- consumer: NAME -->` in the README.
extract() {
    awk -v name="$1" '
        $0 == "<!-- consumer: " name " -->" { found = 1; next }
        found && /^```/ { if (inside) exit; inside = 1; next }
        inside { print }' "$src/README.md"
}
extract CMakeLists.txt > "$work/app/CMakeLists.txt"
extract main.cpp > "$work/app/main.cpp"
test -s "$work/app/CMakeLists.txt" && test -s "$work/app/main.cpp" || { echo "README: consumer blocks not found"; exit 1; }
cmake -S "$work/app" -B "$work/build" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" > "$work/configure.log" || { cat "$work/configure.log"; exit 1; }
cmake --build "$work/build" > "$work/build.log" || { cat "$work/build.log"; exit 1; }
out=$("$work/build/app" "$src/rules")
echo "$out"
grep -q "^window_end = 2024-07-31" <<< "$out" || { echo "FAIL: window_end not read"; exit 1; }
grep -q "^reinquiry_allowed: yes — " <<< "$out" || { echo "FAIL: reinquiry_allowed not read"; exit 1; }
grep -q "^medical_info_viewable = null (missing facts)" <<< "$out" || { echo "FAIL: a null outcome not read"; exit 1; }
# No AVX (ymm registers) in what is installed: the JSON reader picks its SIMD kernel when it runs.
for lib in "$work"/prefix/lib/libkyotaku*.a; do
    n=$(objdump -d --no-show-raw-insn "$lib" | grep -c '%ymm' || true)
    [ "$n" -eq 0 ] || { echo "FAIL: $lib has $n AVX instructions"; exit 1; }
done
echo "installed libraries: no AVX instructions"
