#!/usr/bin/env bash
# kyotaku prove (issue 23 item 8): the official invariants proven; a deliberately false invariant, and a rule change
# that breaks an official one, refuted with a counterexample that kyotaku eval confirms; kyotaku check runs the proofs.
# Usage: prove_test.sh KYOTAKU SOURCE_DIR
set -uo pipefail
kyotaku=$1 src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# check NAME COMMAND… and finish (tests/lib/check.sh).
source "$src/tests/lib/check.sh"

start=$(date +%s.%N)
"$kyotaku" prove "$src/rules" > "$work/official.txt"
rc=$?
echo "kyotaku prove rules: $(echo "$(date +%s.%N) - $start" | bc) s (wall clock, this machine, now)"
cat "$work/official.txt"
check "the official invariants are proven (exit 0)" test $rc -eq 0
check "at least 8 invariants, each 証明済み" test "$(grep -c '^証明済み' "$work/official.txt")" -ge 8
check "none refuted" bash -c "! grep -q '^反例あり\|^不明' '$work/official.txt'"
check "the domain is stated" grep -q "^範囲: 日付は .*〜2030-12-31 のすべての日" "$work/official.txt"

# A deliberately false invariant: 往診 within a continuing relationship may re-inquire (通知 第2).
cp -r "$src/rules" "$work/false"
printf '\ninvariant 往診は再照会しない "往診では再照会できない (誤り)":\n  visit_kind == 往診 implies not reinquiry_allowed\n' >> "$work/false/60_invariants.rules"
"$kyotaku" prove "$work/false" > "$work/false.txt"
check "a false invariant exits 1" test $? -eq 1
check "it is refuted" grep -q "^反例あり  往診は再照会しない" "$work/false.txt"
check "the official ones are still proven" test "$(grep -c '^証明済み' "$work/false.txt")" -ge 8
facts=$(sed -n 's/^  反例の事実: //p' "$work/false.txt" | head -1)
check "the counterexample's facts are shown" test -n "$facts"
check "and explained as kyotaku explain does" grep -q "■ 再照会できるか (reinquiry_allowed) = true" "$work/false.txt"
answer=$(printf '%s\n' "$facts" | "$kyotaku" eval --rules "$work/false")
check "kyotaku eval confirms it: a 往診 whose re-inquiry is allowed" bash -c "[[ '$answer' == *'\"reinquiry_allowed\":true'* ]] && [[ '$facts' == *'\"visit_kind\":\"往診\"'* ]]"
"$kyotaku" check "$work/false" > /dev/null 2> "$work/check.txt"
check "kyotaku check fails on it" test $? -eq 1
check "and says why" grep -q "反例あり  往診は再照会しない" "$work/check.txt"
check "kyotaku check --no-prove does not prove" "$kyotaku" check --no-prove "$work/false"

# A rule change that breaks an official invariant: the モバイル端末 clause deleted from medical_info_viewable.
cp -r "$src/rules" "$work/broken"
python3 - "$work/broken/40_viewing.rules" <<'PY'
import sys
p = sys.argv[1]
lines = open(p, encoding="utf-8").read().split("\n")
i = next(k for k, l in enumerate(lines) if l.strip().startswith("when terminal == モバイル端末"))
del lines[i:i + 2]
open(p, "w", encoding="utf-8").write("\n".join(lines))
PY
"$kyotaku" prove "$work/broken" > "$work/broken.txt"
check "a change that breaks an invariant exits 1" test $? -eq 1
check "naming the invariant it breaks" grep -q "^反例あり  モバイル端末では閲覧しない" "$work/broken.txt"
check "with a モバイル端末 that may view" bash -c "sed -n 's/^  反例の事実: //p' '$work/broken.txt' | grep -q '\"terminal\":\"モバイル端末\"'"

# Rules without invariants have nothing to prove; without a horizon, nothing is claimed.
mkdir -p "$work/none" "$work/nohorizon"
printf 'fact a : bool\ndecision d : bool = a\n' > "$work/none/a.rules"
check "no invariant: nothing to prove, exit 0" "$kyotaku" prove "$work/none"
printf 'fact a : bool\ndecision d : bool = a\ninvariant i: d or not d\n' > "$work/nohorizon/a.rules"
"$kyotaku" prove "$work/nohorizon" > "$work/nohorizon.txt"
check "no horizon: exit 2" test $? -eq 2
check "saying what is missing" grep -q "horizon" "$work/nohorizon.txt"

# --json (the server's workbench route reads it): the same answers as one JSON object.
mkdir -p "$work/small" "$work/errors"
printf 'asof q\nfact q : date\nfact k : bool\nlet late : bool = q >= 2025-01-01\ndecision d : bool = k and late\nhorizon 2026-12-31\ninvariant 真: d implies k\ninvariant 偽: d implies q >= 2026-01-01\n' > "$work/small/a.rules"
"$kyotaku" prove --json "$work/small" > "$work/small.json"
check "--json: a counterexample exits 1" test $? -eq 1
check "--json: each invariant's status, the counterexample's facts, shown in 和暦, and explained" python3 - "$work/small.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1], encoding="utf-8"))
inv = {i["name"]: i for i in r["invariants"]}
assert r["ok"] is False and r["diagnostics"] == [], r
assert inv["真"]["status"] == "proven" and inv["真"]["facts"] is None, inv["真"]
bad = inv["偽"]
assert bad["status"] == "counterexample" and bad["location"] == "a.rules:8", bad
assert bad["facts"]["k"] is True and bad["facts"]["q"].startswith("2025-"), bad["facts"]
shown = {f["fact"]: f["value"] for f in bad["shown"]}
assert shown["k"] == "はい" and shown["q"].startswith("令和7年") and shown["q"].endswith("(" + bad["facts"]["q"] + ")"), shown
assert "令和7年" in bad["explanation"], bad["explanation"]
PY
printf 'fact k : bool\ndecision d : bool = k and kk\n' > "$work/errors/b.rules"
"$kyotaku" prove --json "$work/errors" > "$work/errors.json"
check "--json: rules with errors exit 2" test $? -eq 2
check "--json: the errors with file, line and column" python3 -c '
import json, sys
d = json.load(open(sys.argv[1], encoding="utf-8"))["diagnostics"][0]
assert d["file"].endswith("b.rules") and d["line"] == 2 and d["column"] == 27 and "kk" in d["ja"], d' "$work/errors.json"

finish
