#!/usr/bin/env bash
# End-to-end checks of the `kyotaku` command. Usage: cli_test.sh KYOTAKU SOURCE_DIR
set -uo pipefail
kyotaku=$1 src=$2
cd "$src"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fails=0 passes=0
check() {  # check NAME COMMAND...: the command must succeed
    local name=$1
    shift
    if "$@"; then passes=$((passes + 1)); else echo "FAIL: $name"; fails=$((fails + 1)); fi
}

# eval: the golden answer of a sample with good and bad lines; bad lines do not change the exit code.
"$kyotaku" eval --rules rules < tests/data/eval_sample.jsonl > "$work/out.jsonl"
check "eval exits 0 with bad lines" test $? -eq 0
check "eval matches the golden answer" diff -u tests/data/eval_sample.expected.jsonl "$work/out.jsonl"
in_lines=$(grep -cv '^[[:space:]]*$' tests/data/eval_sample.jsonl)
check "one answer per non-blank line" test "$(wc -l < "$work/out.jsonl")" -eq "$in_lines"
"$kyotaku" eval --rules rules --input tests/data/eval_sample.jsonl > "$work/out2.jsonl"
check "eval --input equals stdin" cmp -s "$work/out.jsonl" "$work/out2.jsonl"
# An id that is not a JSON number exactly is an error, not echoed into the answer (found by jsonl_fuzz).
bad_id=$(printf '{"id":2/d/////////{}\n{"id":1.50}\n' | "$kyotaku" eval --rules rules)
check "a broken numeric id is an error naming the field" bash -c "[[ '$bad_id' == *'{\"id\":null,\"error\":\"field id:'* ]]"
check "a numeric id is echoed as written" bash -c "[[ '$bad_id' == *'{\"id\":1.50,'* ]]"

# eval: rules that fail to load → non-zero exit, diagnostics on stderr.
mkdir -p "$work/bad"
printf 'fact a : int\ndecision d : bool = a < 2024-01-01\n' > "$work/bad/x.rules"
"$kyotaku" eval --rules "$work/bad" < tests/data/eval_sample.jsonl > /dev/null 2> "$work/err.txt"
check "eval fails when rules fail to load" test $? -ne 0
check "the diagnostic names file:line:column" grep -q "x.rules:2:21: エラー\[型の不一致\]" "$work/err.txt"

# compile → bundle → the same answers; verify against sources; refuse a stale bundle.
"$kyotaku" compile rules -o "$work/rules.bundle" > /dev/null
check "compile writes a bundle" test -s "$work/rules.bundle"
"$kyotaku" compile rules --emit-cpp "$work/rules.cpp" > /dev/null
check "compile --emit-cpp writes C++ naming the rules' source hash" grep -q "kyotaku::GeneratedRules\|GeneratedRules const generated_rules" "$work/rules.cpp"
"$kyotaku" compile rules > /dev/null 2> "$work/compile.err"
check "compile without -o or --emit-cpp is refused" grep -q -- "--emit-cpp" "$work/compile.err"
"$kyotaku" eval --rules "$work/rules.bundle" < tests/data/eval_sample.jsonl > "$work/out3.jsonl"
check "bundle answers equal source answers" cmp -s "$work/out.jsonl" "$work/out3.jsonl"
check "verify-bundle accepts matching sources" "$kyotaku" verify-bundle "$work/rules.bundle" --sources rules
cp -r rules "$work/edited"
sed -i 's/param review_lag = 2/param review_lag = 1/' "$work/edited/30_reinquiry.rules"
"$kyotaku" verify-bundle "$work/rules.bundle" --sources "$work/edited" 2> "$work/err2.txt"
check "verify-bundle refuses edited sources" test $? -ne 0
check "the refusal says why" grep -q "source hash mismatch" "$work/err2.txt"
printf 'KYTKBNDLgarbage' > "$work/broken.bundle"
"$kyotaku" eval --rules "$work/broken.bundle" < /dev/null 2> "$work/err3.txt"
check "a broken bundle is refused" test $? -ne 0

# test: the count line and exit codes.
"$kyotaku" test rules > "$work/test.txt"
check "rule tests pass" test $? -eq 0
check "rule tests print N passed, M failed" grep -Eq '^[0-9]+ passed, 0 failed$' "$work/test.txt"
"$kyotaku" test "$work/edited" > "$work/test2.txt"
check "a failing rule test exits 1" test $? -eq 1
check "failures name file:line" grep -q "reinquiry_test.rules:[0-9]*: 失敗 FAIL" "$work/test2.txt"

# check
check "check accepts the official rules" "$kyotaku" check rules
"$kyotaku" check "$work/bad" 2> /dev/null
check "check rejects bad rules" test $? -eq 1

# explain
"$kyotaku" explain --rules rules "$(sed -n 1p tests/data/eval_sample.jsonl)" > "$work/explain.txt"
check "explain shows the deciding clause" grep -q "決め手: rules/30_reinquiry.rules:" "$work/explain.txt"
"$kyotaku" explain --rules rules '{"id":1,"first_visit":"2024-02-30"}' > "$work/explain2.txt"
check "explain reports bad input" test $? -ne 0

# fmt
printf 'fact   a:int\ndecision d:int=a+1\n' > "$work/messy.rules"
"$kyotaku" fmt --check "$work/messy.rules" > /dev/null
check "fmt --check flags unformatted files" test $? -eq 1
"$kyotaku" fmt -w "$work/messy.rules"
check "fmt -w formats" "$kyotaku" fmt --check "$work/messy.rules"
check "fmt output" test "$(cat "$work/messy.rules")" = "$(printf 'fact a : int\ndecision d : int = a + 1')"

# --help on each command
for c in eval test check explain fmt compile verify-bundle; do
    check "$c --help" "$kyotaku" "$c" --help > /dev/null
done
"$kyotaku" 2> /dev/null
check "no subcommand is an error" test $? -ne 0

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
