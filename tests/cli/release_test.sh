#!/usr/bin/env bash
# kyotaku release (issue 23 item 2): nothing is signed unless check --strict, fmt --check, the tests, the proofs and
# the diff against the previous release all pass; the diff report is written beside the bundle and its SHA-256 is
# inside the signed part with the release number and the key.
# Usage: release_test.sh KYOTAKU SOURCE_DIR
set -uo pipefail
kyotaku=$1 src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# check NAME COMMAND… and finish (tests/lib/check.sh).
source "$src/tests/lib/check.sh"
cd "$work"
"$kyotaku" keygen policy > /dev/null && "$kyotaku" keygen other > /dev/null
cases=(--cases 3000)

# The first release: the official rules, numbered 1.
"$kyotaku" release --previous "$src/rules" --rules "$src/rules" --sign policy.key -o r1.bundle "${cases[@]}" > r1.txt 2>&1
check "a first release needs its number" test $? -eq 1
check "and says so" grep -q "the previous rules carry no release number" r1.txt
check "nothing is written" test ! -e r1.bundle -a ! -e r1.diff.md
"$kyotaku" release --previous "$src/rules" --rules "$src/rules" --sign policy.key -o r1.bundle --release 1 "${cases[@]}" > r1.txt 2>&1
check "release 1" test $? -eq 0
for step in "check --strict" "fmt --check" test prove previous diff sign; do
    check "release 1: step $step passed" grep -q "^ok   $step:" r1.txt
done
check "the diff report is beside the bundle" test -s r1.diff.md
check "verify-bundle shows release 1, the key and the report's hash" bash -c "'$kyotaku' verify-bundle r1.bundle --trust policy.pub --report r1.diff.md | grep -q 'release 1, signature verified, key [0-9a-f]\{16\}, diff report sha256 [0-9a-f]\{64\}, report matches'"
echo tampered >> r1.diff.md
"$kyotaku" verify-bundle r1.bundle --report r1.diff.md 2> /dev/null
check "a changed report is not the release's" test $? -eq 1

# Each failing step refuses to sign, and writes nothing.
refused() {  # refused NAME DIR STEP: a release of DIR fails at STEP
    "$kyotaku" release --previous r1.bundle --rules "$2" --sign policy.key -o "$1.bundle" "${cases[@]}" > "$1.txt" 2>&1
    local rc=$?
    check "$1: refused" test $rc -eq 1
    check "$1: step $3 failed" grep -q "^FAIL $3:" "$1.txt"
    check "$1: nothing signed" grep -q "^FAIL sign: 一つでも失敗したので署名しません" "$1.txt"
    check "$1: nothing written" test ! -e "$1.bundle" -a ! -e "$1.diff.md"
}
cp -r "$src/rules" tests-fail && sed -i 's/^param 診療予約日の受付日数 = 90$/param 診療予約日の受付日数 = 30/' tests-fail/50_consent_page.rules
refused tests-fail tests-fail test
cp -r "$src/rules" unformatted && sed -i 's/^param review_lag = 2$/param   review_lag = 2/' unformatted/30_reinquiry.rules
refused unformatted unformatted "fmt --check"
cp -r "$src/rules" warning && printf '\nlet 使わない値 = 1\n' >> warning/20_window.rules
refused warning warning "check --strict"
cp -r "$src/rules" invariant-broken && printf '\ninvariant 往診は再照会しない:\n  visit_kind == 往診 implies not reinquiry_allowed\n' >> invariant-broken/60_invariants.rules
refused invariant-broken invariant-broken prove
check "the refused proof shows its counterexample" grep -q "反例の事実: {" invariant-broken.txt

# Release 2: a change that passes every step; numbered 1 + 1, its report names the previous release.
cp -r "$src/rules" good && printf '\n# 令和8年の見直しで確認 (リリース2)\n' >> good/20_window.rules
"$kyotaku" release --previous r1.bundle --rules good --sign policy.key -o r2.bundle "${cases[@]}" > r2.txt 2>&1
check "release 2" test $? -eq 0
check "numbered after the previous release" grep -q "^r2.bundle: release 2 (previous 1), signed by key" r2.txt
check "the report heads with the release and the steps" bash -c "head -12 r2.diff.md | grep -q '^# リリース 2 (kyotaku release)' && grep -q '^- prove: ' r2.diff.md"
check "its diff against release 1" grep -q "変わった答えはありません" r2.diff.md
check "release 2 verifies with its report" "$kyotaku" verify-bundle r2.bundle --trust policy.pub --report r2.diff.md
# Forward only: not the same number again, and the previous release must be signed by a trusted key.
"$kyotaku" release --previous r2.bundle --rules good --sign policy.key -o r2again.bundle --release 2 "${cases[@]}" > again.txt 2>&1
check "a release number that does not move forward is refused" bash -c "[ $? -eq 1 ] && grep -q 'does not move forward' again.txt"
"$kyotaku" release --previous r2.bundle --rules good --sign other.key -o r3.bundle "${cases[@]}" > other.txt 2>&1
check "a previous release signed by another key is refused" bash -c "[ $? -eq 1 ] && grep -q 'not trusted' other.txt"
"$kyotaku" release --previous r2.bundle --rules good --sign other.key --trust policy.pub -o r3.bundle "${cases[@]}" > rotate.txt 2>&1
check "a new key with the old one trusted (key rotation)" test $? -eq 0
finish
