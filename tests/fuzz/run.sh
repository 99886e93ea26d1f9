#!/usr/bin/env bash
# Builds the engine's fuzz targets with clang's libFuzzer (+ AddressSanitizer, UBSan) and runs each for a fixed
# time: any bytes as a rule file (seeded with the official rules and the golden diagnostics; inputs up to 16 KiB,
# so that deep nesting is reached), the grammar-aware generator of rule files (rule_gen_fuzz: valid rule sets with
# deep nesting and long chains of lets, and randomly altered compiled programs through the bundle validator), then
# the JSON Lines reader (kyotaku eval's input) for half as long, seeded with tests/data.
# Usage: run.sh CLANG++ SRC OUT SECONDS
set -euo pipefail
cxx=$1 src=$2 out=$3 seconds=$4
mkdir -p "$out/corpus"
launcher=""
command -v ccache > /dev/null && launcher=ccache
sources=(calendar/calendar.cpp syntax/grammar.cpp syntax/source.cpp syntax/diagnostics.cpp syntax/format.cpp
         check/checker.cpp compile/compiler.cpp compile/program.cpp compile/driver.cpp eval/evaluator.cpp
         eval/jsonl.cpp eval/testing.cpp eval/explain.cpp eval/diff.cpp bundle/bundle.cpp)
flags=(-std=c++20 -O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -I "$src/engine/include"
       -DKYOTAKU_JSONL_SIMDJSON=1)  # the native JSON Lines reader, as kyotaku eval uses it
objs=()
for s in "${sources[@]}"; do
    o="$out/$(echo "$s" | tr / _).o"
    # Rebuild an object only when its source or a header changed.
    if [ ! -f "$o" ] || [ -n "$(find "$src/engine" -newer "$o" -name '*.[hc]pp' -print -quit)" ]; then
        $launcher "$cxx" "${flags[@]}" -c "$src/engine/$s" -o "$o" &
        while [ "$(jobs -r | wc -l)" -ge 2 ]; do wait -n; done
    fi
    objs+=("$o")
done
wait
$launcher "$cxx" "${flags[@]}" -c "$src/tests/fuzz/rule_parser_fuzz.cpp" -o "$out/target.o"
"$cxx" -fsanitize=fuzzer,address,undefined "$out/target.o" "${objs[@]}" -lsimdjson -o "$out/rule_parser_fuzz"
# The grammar-aware generator.
$launcher "$cxx" "${flags[@]}" -c "$src/tests/fuzz/rule_gen_fuzz.cpp" -o "$out/gen_target.o"
"$cxx" -fsanitize=fuzzer,address,undefined "$out/gen_target.o" "${objs[@]}" -lsimdjson -o "$out/rule_gen_fuzz"
mkdir -p "$out/gen-corpus"
# The JSON Lines reader (kyotaku eval's input) against the official rules.
$launcher "$cxx" "${flags[@]}" -DKYOTAKU_FUZZ_RULES="\"$src/rules\"" -c "$src/tests/fuzz/jsonl_fuzz.cpp" -o "$out/jsonl_target.o"
"$cxx" -fsanitize=fuzzer,address,undefined "$out/jsonl_target.o" "${objs[@]}" -lsimdjson -o "$out/jsonl_fuzz"
cp "$src"/rules/*.rules "$src"/rules/tests/*.rules "$src"/tests/golden/diagnostics/*.rules "$out/corpus/" 2>/dev/null || true
mkdir -p "$out/jsonl-corpus"
head -c 20000 "$src/tests/data/eval_sample.jsonl" | split -l 1 - "$out/jsonl-corpus/line-"
cd "$out"
# -timeout: an input that takes longer than 10 s is reported as a hang.
status=0
./rule_parser_fuzz -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=16384 -print_final_stats=1 corpus 2>&1 | tail -15 || status=1
echo "== rule_gen_fuzz"
./rule_gen_fuzz -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -max_len=8192 -print_final_stats=1 gen-corpus 2>&1 | tail -8 || status=1
echo "== jsonl_fuzz"
./jsonl_fuzz -max_total_time="$((seconds / 2))" -timeout=10 -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1 jsonl-corpus 2>&1 | tail -8 || status=1
exit $status
