#!/usr/bin/env bash
# Backup and restore as docs/operations.md tells an operator: while the server runs and writes, an online backup
# (SQLite: sqlite3 .backup, the online backup API; PostgreSQL: pg_dump); then the server is stopped, the backup
# restored, and the server started on it: every consent acknowledged before the backup began is there, the
# backup is consistent, and the restored server answers.
# Usage: backup_test.sh KYOTAKU SOURCE_DIR   (with KYOTAKU_TEST_PG set: on that PostgreSQL)
set -uo pipefail
kyotaku=$1 src=$2
work=$(mktemp -d)
pid="" writer=""
cleanup() { [ -n "$writer" ] && kill "$writer" 2>/dev/null; [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
fails=0 passes=0
check() { local name=$1; shift; if "$@"; then passes=$((passes + 1)); else echo "FAIL: $name"; fails=$((fails + 1)); fi; }
A=0110113719
"$src/scripts/make-test-pki" "$work/pki" $A > /dev/null
db="$work/kyotaku.sqlite"
if [ -n "${KYOTAKU_TEST_PG:-}" ]; then
    db=$KYOTAKU_TEST_PG
    psql -q "$db" -c 'DROP SCHEMA public CASCADE; CREATE SCHEMA public;' > /dev/null
    psql -q "$db" -c 'DROP DATABASE IF EXISTS kyotaku_restored' > /dev/null 2>&1
fi
start() {  # start DB
    "$kyotaku" serve --port 0 --db "$1" --rules "$src/rules" --tls-dir "$work/pki" --test-clock 2024-07-31 > "$work/serve.log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do
        port=$(sed -n 's/^listening on https:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$work/serve.log")
        [ -n "$port" ] && U=https://127.0.0.1:$port && return 0
        sleep 0.1
    done
    echo "server did not start:"; cat "$work/serve.log"; exit 1
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null; pid=""; }
admin=(--cacert "$work/pki/ca.pem" --cert "$work/pki/admin.pem" --key "$work/pki/admin.key" -sS -H 'Content-Type: application/json')
fac=(--cacert "$work/pki/ca.pem" --cert "$work/pki/facility-$A.pem" --key "$work/pki/facility-$A.key" -sS -H 'Content-Type: application/json')
manager=(--cacert "$work/pki/ca.pem" --cert "$work/pki/facility-$A-manager.pem" --key "$work/pki/facility-$A-manager.key" -sS -H 'Content-Type: application/json')
start "$db"
curl "${admin[@]}" -X POST "$U/api/v1/admin/facilities" -d "{\"code\":\"$A\",\"name\":\"A\",\"kind\":\"医科\"}" > /dev/null
curl "${manager[@]}" -X PUT "$U/api/v1/settings" -d '{"terms_agreed":true,"home_visit_enabled":true}' > /dev/null
person=$(curl "${admin[@]}" -X POST "$U/api/v1/admin/insured-persons" -d '{"insurer_number":"06132013","symbol":"123","number":"4567","branch":"01","birthdate":"1940-05-01","name":"在宅 花子","burden_ratio":"010","valid_from":"2020-04-01"}' | sed 's/.*"person_key":"\([0-9a-f]*\)".*/\1/')
consent="{\"facility_code\":\"$A\",\"person_key\":\"$person\",\"visit_kind\":\"訪問診療\",\"first_visit\":\"2024-04-15\",\"identity_method\":\"暗証番号\",\"items\":[\"薬剤情報\"]}"
add_consent() { curl "${admin[@]}" -o /dev/null -w '%{http_code}\n' -X POST "$U/api/v1/admin/consents" -d "$consent"; }
for _ in $(seq 20); do add_consent > /dev/null; done
count() { curl "${admin[@]}" "$U/api/v1/admin/consents?facility_code=$A" | grep -o '"id":"' | wc -l; }
before=$(count)
check "20 consents before the backup" test "$before" = 20
# Writes go on during the backup (a bounded loop, stopped after it).
(for _ in $(seq 2000); do [ -f "$work/stop" ] && break; add_consent > /dev/null; done) &
writer=$!
sleep 0.5

if [ -z "${KYOTAKU_TEST_PG:-}" ]; then
    # --- SQLite: the online backup API, through the sqlite3 command (docs/operations.md) ---
    sqlite3 "$db" ".backup '$work/backup.sqlite'"
    check "the backup command succeeds while the server writes" test $? -eq 0
    touch "$work/stop"; wait "$writer"; writer=""
    check "the backup is consistent" test "$(sqlite3 "$work/backup.sqlite" 'PRAGMA integrity_check')" = ok
    in_backup=$(sqlite3 "$work/backup.sqlite" "SELECT COUNT(*) FROM consents")
    stop
    # Restore: the server stopped, the database (and its -wal/-shm) replaced by the backup.
    mv "$db" "$work/damaged.sqlite"
    rm -f "$db-wal" "$db-shm"
    cp "$work/backup.sqlite" "$db"
    start "$db"
else
    # --- PostgreSQL: pg_dump while the server runs, pg_restore into a new database ---
    pg_dump --format=custom --file="$work/kyotaku.dump" "$db"
    check "pg_dump succeeds while the server writes" test $? -eq 0
    touch "$work/stop"; wait "$writer"; writer=""
    stop
    psql -q "$db" -c 'CREATE DATABASE kyotaku_restored' > /dev/null
    restored=${db%/*}/kyotaku_restored
    pg_restore --no-owner --dbname="$restored" "$work/kyotaku.dump"
    check "pg_restore succeeds" test $? -eq 0
    in_backup=$(psql -qAt "$restored" -c "SELECT COUNT(*) FROM consents")
    start "$restored"
fi
echo "consents in the backup: $in_backup (20 before it began)"
check "every consent from before the backup is in it" test "$in_backup" -ge "$before"
check "the restored server serves them all" test "$(count)" = "$in_backup"
check "the restored server is ready" test "$(curl -sS -o /dev/null -w '%{http_code}' --cacert "$work/pki/ca.pem" "$U/readyz")" = 200
req='{"category":"訪問診療等","insurer_number":"06132013","symbol":"123","number":"4567","branch":"01","birthdate":"1940-05-01"}'
check "and re-inquires from the restored consents" bash -c "[[ '$(curl "${fac[@]}" -X POST "$U/api/v1/reinquiry" -d "$req")' == *'\"allowed\":true'* ]]"
check "and takes writes" test "$(add_consent)" = 201
stop
[ -n "${KYOTAKU_TEST_PG:-}" ] && psql -q "$db" -c 'DROP DATABASE kyotaku_restored' > /dev/null

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
