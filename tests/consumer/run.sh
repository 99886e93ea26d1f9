#!/usr/bin/env bash
# An integrator's project, exactly as the README shows it: installs the engine into a throwaway prefix, takes the
# README's CMakeLists.txt and main.cpp (the fenced blocks after the "consumer:" markers) verbatim, builds them
# against the installed package with find_package(kyotaku) — no CMAKE_CXX_STANDARD: the target brings C++20 — and
# runs the program on the official rules; builds the same program with the installed pkg-config file's flags; checks
# that a C++17 consumer gets the C++20 message at its first include. Also: the installed library holds no
# host-specific instructions (AVX2).
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
# pkg-config, for vendors who do not use CMake: the same main.cpp built with nothing but the installed kyotaku.pc's flags
# (the compiler's default standard is C++17: the flags bring C++20).
pcdir=$(dirname "$(find "$work/prefix" -name kyotaku.pc)")
flags=$(PKG_CONFIG_PATH="$pcdir" pkg-config --cflags --libs kyotaku) || { echo "FAIL: pkg-config kyotaku"; exit 1; }
echo "pkg-config --cflags --libs kyotaku: $flags"
g++ -o "$work/app-pc" "$work/app/main.cpp" $flags || { echo "FAIL: main.cpp does not build with pkg-config's flags"; exit 1; }
"$work/app-pc" "$src/rules" | grep -q "^window_end = 2024-07-31" || { echo "FAIL: the pkg-config build does not decide"; exit 1; }
PKG_CONFIG_PATH="$pcdir" pkg-config --exists kyotaku-signing || { echo "FAIL: kyotaku-signing.pc"; exit 1; }
# A C++17 consumer is told at its first include, and nothing deeper is compiled.
if err=$(g++ -std=c++17 -I"$work/prefix/include" -fsyntax-only -x c++ - <<< '#include <kyotaku/engine.hpp>' 2>&1); then
    echo "FAIL: a C++17 consumer compiled"; exit 1
fi
first=$(grep -m1 'error' <<< "$err")
echo "C++17: $first"
grep -q 'kyotaku needs C++20: compile with -std=c++20' <<< "$first" || { echo "FAIL: the first error is not the C++20 message"; echo "$err"; exit 1; }
if grep -q 'calendar.hpp\|program.hpp' <<< "$err"; then echo "FAIL: errors from deeper headers"; echo "$err"; exit 1; fi
# No AVX (ymm registers) in what is installed: the JSON reader picks its SIMD kernel when it runs.
for lib in "$work"/prefix/lib/libkyotaku*.a; do
    n=$(objdump -d --no-show-raw-insn "$lib" | grep -c '%ymm' || true)
    [ "$n" -eq 0 ] || { echo "FAIL: $lib has $n AVX instructions"; exit 1; }
done
echo "installed libraries: no AVX instructions"
