#!/usr/bin/env bash
# Rule releases move forward only (issue 23, "What fails today" 1), over real TLS: the server records the highest
# release it served in its database and refuses an older signed bundle on SIGHUP and at start, naming both numbers;
# other rules under a release number already served are refused too; going back is the operator's explicit
# rollback_to, logged, reported by --check-config, after which the older release is the floor.
# Usage: release_e2e.sh KYOTAKU SOURCE_DIR   (with KYOTAKU_TEST_PG set: on that PostgreSQL)
set -uo pipefail
kyotaku=$1 src=$2
py=/usr/bin/python3
source "$(dirname "$0")/testlib.sh"
db="$work/db.sqlite"
if [ -n "${KYOTAKU_TEST_PG:-}" ]; then
    db=$KYOTAKU_TEST_PG
    psql -q "$KYOTAKU_TEST_PG" -c 'DROP SCHEMA public CASCADE; CREATE SCHEMA public;' > /dev/null
fi
"$src/scripts/make-test-pki" "$work/pki" $A > /dev/null
(cd "$work" && "$kyotaku" keygen policy > /dev/null)

# Release 1: the official rules (診療予約日 up to 90 days ahead). Release 2: 30 days.
"$kyotaku" compile "$src/rules" -o "$work/r1.bundle" --release 1 --sign "$work/policy.key" > /dev/null
cp -r "$src/rules" "$work/rules2"
sed -i 's/^param 診療予約日の受付日数 = 90$/param 診療予約日の受付日数 = 30/' "$work/rules2/50_consent_page.rules"
check "the test edits release 2" grep -q "受付日数 = 30" "$work/rules2/50_consent_page.rules"
# The rule tests that pin 90 days go with the change (compile --sign refuses rules whose own tests fail).
"$py" - "$work/rules2/tests/consent_page_test.rules" <<'PY'
import re, sys
path = sys.argv[1]
text = open(path, encoding="utf-8").read()
for name in ("診療予約日は受付日数の最後の日まで受け付ける", "診療予約日は90日先まで受け付ける"):
    text, n = re.subn(r'\ntest "' + name + r'" \{.*?\n\}\n', "\n", text, flags=re.S)
    assert n == 1, name
open(path, "w", encoding="utf-8").write(text)
PY
check "release 2's own tests pass" "$kyotaku" test "$work/rules2" > /dev/null
"$kyotaku" compile "$work/rules2" -o "$work/r2.bundle" --release 2 --sign "$work/policy.key" > /dev/null
cp -r "$work/rules2" "$work/rules2b"
sed -i 's/^param 診療予約日の受付日数 = 30$/param 診療予約日の受付日数 = 31/' "$work/rules2b/50_consent_page.rules"
"$kyotaku" compile "$work/rules2b" -o "$work/r2b.bundle" --release 2 --sign "$work/policy.key" > /dev/null
out=$("$kyotaku" verify-bundle "$work/r2.bundle" --trust "$work/policy.pub")
key=$(sed -n 's/.*key \([0-9a-f]\{16\}\).*/\1/p' <<< "$out")
check "verify-bundle shows the release and the signing key" grep -q "release 2.*signature verified, key [0-9a-f]\{16\}" <<< "$out"

cp "$work/r2.bundle" "$work/serving.bundle"
serve=("$kyotaku" serve --port 0 --db "$db" --key-file "$work/kyotaku.key" --rules "$work/serving.bundle" --trust "$work/policy.pub"
       --tls-dir "$work/pki" --test-clock 2024-07-31)
start_server "$work/serve.log" "${serve[@]}"
cat > "$work/metrics.py" <<'PY'
import sys
from prometheus_client.parser import text_string_to_metric_families
families = {f.name: f for f in text_string_to_metric_families(sys.stdin.read())}
info = families["kyotaku_rules_info"].samples[0].labels
print(info["release"], info["key"], int(families["kyotaku_rules_release"].samples[0].value))
PY
metrics() { api admin "$U/metrics" | "$py" "$work/metrics.py"; }
check "release 2 is in service, and /metrics names it and its key" test "$(metrics)" = "2 $key 2"
check "rules_loaded names the release and the signing key" grep -q "\"event\":\"rules_loaded\".*\"release\":2.*\"key\":\"$key\"" "$work/serve.log"
check "the page gets release 2 exactly" cmp -s "$work/r2.bundle" <(api none "$U/web/rules.bundle")

# SIGHUP with the older signed release 1 copied over it: refused, naming both numbers; release 2 stays.
cp "$work/r1.bundle" "$work/serving.bundle"
kill -HUP "$server_pid"
for _ in $(seq 300); do grep -q rules_reload_failed "$work/serve.log" && break; sleep 0.1; done
check "an older release is refused on SIGHUP, naming both numbers" grep -q '"event":"rules_reload_failed".*release 1 is older than release 2' "$work/serve.log"
check "and release 2 stays in service" test "$(metrics)" = "2 $key 2"
check "the page still gets release 2" cmp -s "$work/r2.bundle" <(api none "$U/web/rules.bundle")
# Other rules under release number 2: refused too.
cp "$work/r2b.bundle" "$work/serving.bundle"
kill -HUP "$server_pid"
for _ in $(seq 300); do [ "$(grep -c rules_reload_failed "$work/serve.log")" -ge 2 ] && break; sleep 0.1; done
check "other rules under a release already served are refused" grep -q '"event":"rules_reload_failed".*release 2 was served from other rules' "$work/serve.log"
stop_server

# A restart with release 1 on the same database: refused at start, naming both numbers.
cp "$work/r1.bundle" "$work/serving.bundle"
"${serve[@]}" > "$work/start1.log" 2>&1
check "a restart with an older release exits 2" test $? -eq 2
check "naming both release numbers" grep -q "リリース 1 は、このデータベースで使った最も新しいリリース 2 より古い" "$work/start1.log"
out=$("${serve[@]}" --check-config 2>&1); rc=$?
check "--check-config says the server would not start, and why" test $rc -eq 1
check "--check-config names the floor" grep -q "rules release floor: release 2" <<< "$out"
check "--check-config names the refusal" grep -q "release 1 is older than release 2" <<< "$out"

# The operator goes back on purpose: rollback_to = 1, reported by --check-config and logged.
out=$("${serve[@]}" --rollback-to 1 --check-config 2>&1); rc=$?
check "--check-config accepts the rollback the operator asks for" test $rc -eq 0
check "--check-config reports rollback_to and where it came from" grep -q "rollback_to = 1  (--rollback-to)" <<< "$out"
check "--check-config says it goes back from 2 to 1" grep -q "goes back from release 2 to release 1" <<< "$out"
start_server "$work/rollback.log" "${serve[@]}" --rollback-to 1
check "the rollback is logged as a warning naming both releases" grep -q '"level":"warning".*"event":"rules_rollback".*"release":1,.*"from_release":2\|"event":"rules_rollback".*"from_release":2.*"level":"warning"' "$work/rollback.log"
check "release 1 is in service" test "$(metrics)" = "1 $key 1"
stop_server
# Release 1 is now the floor: a restart without the flag takes it, and release 2 moves forward again.
start_server "$work/after.log" "${serve[@]}"
check "after the rollback, release 1 starts without the flag" test "$(metrics)" = "1 $key 1"
cp "$work/r2.bundle" "$work/serving.bundle"
kill -HUP "$server_pid"
for _ in $(seq 300); do [ "$(metrics)" = "2 $key 2" ] && break; sleep 0.1; done
check "a newer release is taken on SIGHUP" test "$(metrics)" = "2 $key 2"
stop_server
# The history in the database: 2 served, back to 1, 2 again.
if [ -n "${KYOTAKU_TEST_PG:-}" ]; then
    history=$(psql -qAt "$KYOTAKU_TEST_PG" -c "SELECT event || ':' || release_number || ':' || from_release FROM rule_release_history ORDER BY at" | tr '\n' ' ')
else
    history=$(sqlite3 "$db" "SELECT event || ':' || release_number || ':' || from_release FROM rule_release_history ORDER BY rowid" | tr '\n' ' ')
fi
check "the database keeps the history of releases and rollbacks" test "$history" = "served:2:0 rollback:1:2 served:2:1 "
finish
