#!/usr/bin/env bash
# End-to-end checks of the `kyotaku` command. Usage: cli_test.sh KYOTAKU SOURCE_DIR
set -uo pipefail
kyotaku=$1 src=$2
cd "$src"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# check NAME COMMAND… and finish (tests/lib/check.sh).
source "$src/tests/lib/check.sh"

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

# The command is a front and the full command (cli/CMakeLists.txt): the front, which answers eval, loads none of the
# libraries of serve, prove and signed bundles; alone (without libexec/kyotaku/kyotaku-full beside it) it still
# answers eval, and says what it cannot run for anything else.
needed=$(readelf -d "$kyotaku")
check "the front does not need Z3, OpenSSL, libpq or SQLite" \
    bash -c "! grep -Eq 'NEEDED.*\[(libz3|libssl|libcrypto|libpq|libsqlite3)' <<< '$needed'"
mkdir -p "$work/alone"
cp "$kyotaku" "$work/alone/kyotaku"
"$work/alone/kyotaku" eval --rules rules < tests/data/eval_sample.jsonl > "$work/alone.jsonl"
check "the front alone answers eval as the command does" cmp -s "$work/out.jsonl" "$work/alone.jsonl"
"$work/alone/kyotaku" --version > /dev/null 2> "$work/alone.err"
check "the front alone exits 2 for another command" test $? -eq 2
check "and names the full command it cannot run" grep -q "kyotaku-full: 実行できません / cannot run" "$work/alone.err"
"$kyotaku" eval --rules rules --trust /nonexistent.pub < /dev/null 2> "$work/trust.err"
check "eval with --trust is the full command's (it reads the key)" grep -q -- "--trust /nonexistent.pub" "$work/trust.err"

# eval: a line that is not JSON is answered with the column (in characters, not bytes) where it stops being JSON.
not_json=$(printf '%s\n' '{"id":"b","terminal":"モバイル端末",,}' | "$kyotaku" eval --rules rules)
check "a line that is not JSON names its column" \
    test "$not_json" = '{"id":"b","error":"JSON として読めません (31 文字目) / not valid JSON (column 31)"}'

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
check "explain shows the deciding clause" grep -q "決め手 30_reinquiry.rules:" "$work/explain.txt"
"$kyotaku" explain --rules rules '{"id":1,"first_visit":"2024-02-30"}' > "$work/explain2.txt"
check "explain reports bad input" test $? -ne 0

# fmt
printf 'fact   a:int\ndecision d:int=a+1\n' > "$work/messy.rules"
"$kyotaku" fmt --check "$work/messy.rules" > /dev/null
check "fmt --check flags unformatted files" test $? -eq 1
"$kyotaku" fmt -w "$work/messy.rules"
check "fmt -w formats" "$kyotaku" fmt --check "$work/messy.rules"
check "fmt output" test "$(cat "$work/messy.rules")" = "$(printf 'fact a : int\ndecision d : int = a + 1')"

# eval: a line whose id comes after the faulty field is still answered with its id.
late_id=$(printf '{"first_visit":"2024-02-30","id":"late"}\n' | "$kyotaku" eval --rules rules)
check "eval echoes an id that follows the faulty field" bash -c "[[ '$late_id' == '{\"id\":\"late\",\"error\":\"field first_visit:'* ]]"

# check --strict: warnings (unused names) fail it; without --strict they are printed and the check passes.
mkdir -p "$work/unused"
printf 'fact a : int\nfact b : int\nlet dead = a + 1\ndecision d : int = a\n' > "$work/unused/u.rules"
"$kyotaku" check "$work/unused" > /dev/null 2> "$work/unused.txt"
check "unused names are warnings, not errors" test $? -eq 0
check "the warning names the unused let" grep -q "let「dead」はどの decision にも使われていません" "$work/unused.txt"
check "the warning names the unused fact" grep -q "fact「b」" "$work/unused.txt"
"$kyotaku" check --strict "$work/unused" > /dev/null 2>&1
check "check --strict fails on warnings" test $? -eq 1
check "check --json gives structured diagnostics" bash -c "'$kyotaku' check --json '$work/unused' | grep -q '\"severity\":\"warning\",\"kind\":\"unused\"'"

# explain: compact by default, the long form with --full.
"$kyotaku" explain --rules rules "$(sed -n 2p tests/data/eval_sample.jsonl)" > "$work/compact.txt"
"$kyotaku" explain --rules rules --full "$(sed -n 2p tests/data/eval_sample.jsonl)" > "$work/full.txt"
check "explain shows the values a passed-over condition compared" grep -q "query_date〈令和6年9月10日 (2024-09-10)〉 <= window_end〈令和6年7月31日 (2024-07-31)〉 が偽" "$work/compact.txt"
check "explain --full is the long form" grep -q "→ 条件が偽" "$work/full.txt"
check "the compact form is shorter" test "$(wc -l < "$work/compact.txt")" -lt "$(wc -l < "$work/full.txt")"

# diff: the official rules against a copy with 窓の月数 = 4.
cp -r rules "$work/four"
sed -i 's/^param 窓の月数 = 3$/param 窓の月数 = 4/' "$work/four/20_window.rules"
"$kyotaku" diff --old rules --new "$work/four" --corpus generated --cases 5000 > "$work/diff.md"
check "diff exits 1 when answers change" test $? -eq 1
check "diff reports window_end in Japanese Markdown" grep -q "^## 当初の期間の末日 (window_end): " "$work/diff.md"
check "diff groups by the deciding clause" grep -q "旧の決め手: .* (30_reinquiry.rules:[0-9]*)$" "$work/diff.md"
"$kyotaku" diff --old rules --new "$work/four" --corpus generated --cases 2000 --format json > "$work/diff.json"
check "diff --format json" grep -q '"changed":true' "$work/diff.json"
# (the sample's readable lines: its deliberately bad ones make a corpus that cannot be compared, exit 2 below)
head -8 tests/data/eval_sample.jsonl > "$work/readable.jsonl"
"$kyotaku" diff --old rules --new rules < "$work/readable.jsonl" > "$work/same.md"
check "diff of identical rules over JSON Lines exits 0" test $? -eq 0
check "and says nothing changed" grep -q "変わった答えはありません" "$work/same.md"
"$kyotaku" diff --old rules --new rules < tests/data/eval_sample.jsonl > /dev/null 2> "$work/unreadable.txt"
check "a corpus with lines neither rule set reads exits 2" test $? -eq 2
check "naming the first unreadable line" grep -q "行 9: field facility_kind" "$work/unreadable.txt"

# Signed bundles: keygen, compile --sign, and --trust on the loaders.
"$kyotaku" keygen "$work/policy" > /dev/null && "$kyotaku" keygen "$work/other" > /dev/null
check "keygen writes a private key only its owner reads" test "$(stat -c %a "$work/policy.key")" = 600
"$kyotaku" compile rules -o "$work/signed.bundle" --sign "$work/policy.key" > "$work/sign.txt" 2> /dev/null
check "compile --sign names the key" grep -q "signed by key" "$work/sign.txt"
check "a signed bundle loads with its key" bash -c "'$kyotaku' eval --rules '$work/signed.bundle' --trust '$work/policy.pub' < tests/data/eval_sample.jsonl | cmp -s - '$work/out.jsonl'"
check "a signed bundle loads without --trust too" bash -c "'$kyotaku' eval --rules '$work/signed.bundle' < tests/data/eval_sample.jsonl | cmp -s - '$work/out.jsonl'"
"$kyotaku" eval --rules "$work/rules.bundle" --trust "$work/policy.pub" < /dev/null 2> "$work/unsigned.txt"
check "an unsigned bundle is refused with --trust" test $? -ne 0
check "the refusal says it is not signed" grep -q "署名がありません" "$work/unsigned.txt"
"$kyotaku" test "$work/signed.bundle" --trust "$work/other.pub" > /dev/null 2> "$work/other.txt"
check "a bundle signed by another key is refused" grep -q "not trusted (fingerprint" "$work/other.txt"
cp "$work/signed.bundle" "$work/tampered.bundle"
byte=$(od -An -tu1 -j200 -N1 "$work/tampered.bundle" | tr -d ' ')
printf "\\x$(printf %02x $((byte ^ 1)))" | dd of="$work/tampered.bundle" bs=1 seek=200 conv=notrunc 2> /dev/null
"$kyotaku" explain --rules "$work/tampered.bundle" --trust "$work/policy.pub" '{}' > /dev/null 2> "$work/tampered.txt"
check "a tampered bundle is refused" grep -q "does not verify" "$work/tampered.txt"
"$kyotaku" eval --rules rules --trust "$work/policy.pub" < /dev/null 2> "$work/sources.txt"
check "rule sources are refused when a key is configured" grep -q "ルールのソース" "$work/sources.txt"
check "verify-bundle checks the signature" "$kyotaku" verify-bundle "$work/signed.bundle" --trust "$work/policy.pub"
"$kyotaku" verify-bundle "$work/tampered.bundle" --trust "$work/policy.pub" 2> /dev/null
check "verify-bundle refuses a tampered bundle" test $? -ne 0

# Issue 23, "What fails today" 3 and 4: diff compares params and exported lets; an empty corpus and a misspelt key
# are errors; eval, explain and test name the nearest fact.
cp -r rules "$work/days30"
sed -i 's/^param 診療予約日の受付日数 = 90$/param 診療予約日の受付日数 = 30/' "$work/days30/50_consent_page.rules"
"$kyotaku" diff --old rules --new "$work/days30" --corpus generated --cases 3000 > "$work/days30.md"
check "a changed param is a change (exit 1)" test $? -eq 1
check "named with both values" grep -q '方針の値 (param) `診療予約日の受付日数`: 90 → 30' "$work/days30.md"
check "and the exported let it feeds" grep -q "^## 診療予約日を受け付ける: " "$work/days30.md"
"$kyotaku" diff --old rules --new "$work/days30" < /dev/null > /dev/null 2> "$work/empty.txt"
check "an empty corpus is an error (exit 2)" test $? -eq 2
check "saying there was nothing to compare" grep -q "no cases" "$work/empty.txt"
printf '{"id":1,"facility_kind":"医科","reviewed_claims_months":["2024-04"]}\n' > "$work/typo.jsonl"
"$kyotaku" diff --old rules --new rules < "$work/typo.jsonl" > "$work/typo.md" 2> "$work/typo.txt"
check "a corpus line neither rule set reads is an error (exit 2)" test $? -eq 2
check "naming the line and the nearest fact" grep -q "行 1: field reviewed_claims_months: .*「reviewed_claim_months」のことですか" "$work/typo.txt"
check "eval names the nearest fact" bash -c "'$kyotaku' eval --rules rules < '$work/typo.jsonl' | grep -q 'field reviewed_claims_months: このルールにない項目です (「reviewed_claim_months」のことですか?)'"
check "explain names the nearest fact" bash -c "'$kyotaku' explain --rules rules '{\"reviewed_claims_months\":[]}' | grep -q '「reviewed_claim_months」のことですか'"
cp -r rules "$work/testtypo"
printf '\ntest "書き間違い" {\n  given\n    reviewed_claims_months = {}\n  expect\n    window_end = null\n}\n' >> "$work/testtypo/tests/window_test.rules"
"$kyotaku" test "$work/testtypo" > /dev/null 2> "$work/testtypo.txt"
check "a rule-file test with a misspelt fact is an error naming the nearest" grep -q "「reviewed_claim_months」のことですか" "$work/testtypo.txt"
# param followed by version: a hint that a versioned let is the way (issue 23 item 9).
mkdir -p "$work/paramversion"
printf 'asof q\nfact q : date\nparam 窓の月数 version "改正後" from 2027-04-01 { otherwise => 6 }\ndecision d : bool = true\n' > "$work/paramversion/a.rules"
"$kyotaku" check "$work/paramversion" 2> "$work/pv.txt"
check "param … version says to use a let with versions" grep -q "施行日で変わる値は version のある let に書きます" "$work/pv.txt"

# Releases (issue 23): compile --sign refuses rules whose own tests fail; the release number and the key are shown.
"$kyotaku" compile "$work/edited" -o "$work/failing.bundle" --sign "$work/policy.key" > /dev/null 2> "$work/failing.txt"
check "compile --sign refuses rules whose tests fail" test $? -eq 1
check "naming the failing test and saying it did not sign" grep -q "失敗 FAIL.*" "$work/failing.txt"
check "and that it did not sign" grep -q "rule test(s) fail: not signed" "$work/failing.txt"
check "no bundle is written" test ! -e "$work/failing.bundle"
"$kyotaku" compile rules -o "$work/release3.bundle" --release 3 --sign "$work/policy.key" > "$work/r3.txt"
check "compile prints a zero-padded 16-digit source hash" grep -q "source hash [0-9a-f]\{16\}," "$work/r3.txt"
check "compile --release names the release" grep -q "release 3, signed by key" "$work/r3.txt"
"$kyotaku" verify-bundle "$work/release3.bundle" --trust "$work/policy.pub" > "$work/v3.txt"
check "verify-bundle shows the release and the key" grep -q "release 3, signature verified, key [0-9a-f]\{16\}" "$work/v3.txt"
"$kyotaku" verify-bundle "$work/rules.bundle" > "$work/v0.txt"
check "an unnumbered bundle is not a release" grep -q "not a release (release 0), unsigned" "$work/v0.txt"
"$kyotaku" verify-bundle "$work/release3.bundle" --report "$work/v3.txt" 2> "$work/report.txt"
check "verify-bundle --report refuses a report the bundle does not name" test $? -eq 1

# fmt measures display width (issue 23 item 9): deleting one line of a multi-line set of Japanese names leaves the
# file canonical (the formatter counted characters and wanted the shorter set on one line).
cp -r rules "$work/oneless"
grep -q '^  訪問看護,$' "$work/oneless/30_reinquiry.rules" && sed -i '0,/^  訪問看護,$/{/^  訪問看護,$/d}' "$work/oneless/30_reinquiry.rules"
check "the test deleted one line of a multi-line set" test "$(diff rules/30_reinquiry.rules "$work/oneless/30_reinquiry.rules" | grep -c '^<')" -eq 1
check "fmt --check accepts a multi-line set with one line deleted" "$kyotaku" fmt --check "$work/oneless/30_reinquiry.rules"

# --help on each command
for c in eval test check explain fmt compile verify-bundle diff keygen; do
    check "$c --help" "$kyotaku" "$c" --help > /dev/null
done
"$kyotaku" 2> /dev/null
check "no subcommand is an error" test $? -ne 0

finish
