#!/usr/bin/env bash
# The `kyotaku` command's malloc (KYOTAKU_ALLOCATOR, cli/CMakeLists.txt): the library it was configured with is the one
# a running `kyotaku` allocates from (`kyotaku --version` asks the dynamic linker where malloc comes from), and the
# line is the process's own: another allocator preloaded (LD_PRELOAD) is named instead.
# Usage: allocator_test.sh KYOTAKU ALLOCATOR SOURCE_DIR   (ALLOCATOR: system, tcmalloc or jemalloc)
set -uo pipefail
kyotaku=$1 allocator=$2 src=$3
# check NAME COMMAND… and finish (tests/lib/check.sh).
source "$src/tests/lib/check.sh"
declare -A library=([system]=libc.so. [tcmalloc]=libtcmalloc_minimal.so. [jemalloc]=libjemalloc.so.)
expected=${library[$allocator]:-}
check "the configured allocator is one of system, tcmalloc, jemalloc" test -n "$expected"

out=$("$kyotaku" --version 2>&1)
check "kyotaku --version exits 0" test $? = 0
echo "$out"
check "and says malloc comes from $expected" grep -q "^malloc: ${expected//./\\.}[0-9]*$" <<< "$out"
if [ "$allocator" != system ]; then
    check "the command needs $expected (dynamic section)" bash -c "readelf -d '$kyotaku' | grep -q 'NEEDED.*\[${expected//./\\.}'"
fi

# Preloaded ahead of it, another allocator's malloc is the process's: the line is found at run time, not written in.
other=""
for lib in /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4; do
    [ -e "$lib" ] && [[ "$(basename "$lib")" != "$expected"* ]] && { other=$lib; break; }
done
if [ -n "$other" ]; then
    out=$(LD_PRELOAD=$other "$kyotaku" --version 2>&1)
    check "with $(basename "$other") preloaded, --version names it" grep -qx "malloc: $(basename "$other")" <<< "$out"
else
    echo "no other allocator installed: the preloaded case not run"
fi
finish
