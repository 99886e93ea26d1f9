#!/usr/bin/env bash
# Runs the engine's fuzz targets (clang's libFuzzer + AddressSanitizer, UBSan) each for a fixed time: any bytes as
# a rule file (seeded with the official rules and the golden diagnostics; inputs up to 16 KiB, so that deep nesting
# is reached), the grammar-aware generator of rule files (rule_gen_fuzz: valid rule sets with
# deep nesting and long chains of lets, and randomly altered compiled programs through the bundle validator), then
# the JSON Lines reader (kyotaku eval's input) for half as long, seeded with tests/data.
# The targets are built by the build (tests/fuzz/CMakeLists.txt); this only seeds and runs them.
# Usage: run.sh BIN SRC OUT SECONDS
set -euo pipefail
bin=$1 src=$2 out=$3 seconds=$4
mkdir -p "$out/corpus" "$out/gen-corpus"
cp "$src"/rules/*.rules "$src"/rules/tests/*.rules "$src"/tests/golden/diagnostics/*.rules "$out/corpus/" 2>/dev/null || true
mkdir -p "$out/jsonl-corpus"
head -c 20000 "$src/tests/data/eval_sample.jsonl" | split -l 1 - "$out/jsonl-corpus/line-"
cd "$out"
# -timeout: an input that takes longer than 10 s is reported as a hang.
source "$src/tests/fuzz/report.sh"
status=0
fuzz_run rule_parser_fuzz rule_parser_fuzz.log 15 \
    "$bin/rule_parser_fuzz" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=16384 -print_final_stats=1 corpus || status=1
echo "== rule_gen_fuzz"
fuzz_run rule_gen_fuzz rule_gen_fuzz.log 8 \
    "$bin/rule_gen_fuzz" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -max_len=8192 -print_final_stats=1 gen-corpus || status=1
echo "== jsonl_fuzz"
fuzz_run jsonl_fuzz jsonl_fuzz.log 8 \
    "$bin/jsonl_fuzz" -max_total_time="$((seconds / 2))" -timeout=10 -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1 jsonl-corpus || status=1
exit $status
