#!/usr/bin/env bash
# Backup and restore as docs/operations.md tells an operator: while the server runs and writes, an online backup
# (SQLite: sqlite3 .backup, the online backup API; PostgreSQL: pg_dump); then the server is stopped, the backup
# restored, and the server started on it: every consent acknowledged before the backup began is there, the
# backup is consistent, and the restored server answers.
# Usage: backup_test.sh KYOTAKU SOURCE_DIR   (with KYOTAKU_TEST_PG set: on that PostgreSQL)
set -uo pipefail
kyotaku=$1 src=$2
source "$(dirname "$0")/testlib.sh"
"$src/scripts/make-test-pki" "$work/pki" $A > /dev/null
db="$work/kyotaku.sqlite"
if [ -n "${KYOTAKU_TEST_PG:-}" ]; then
    db=$KYOTAKU_TEST_PG
    psql -q "$db" -c 'DROP SCHEMA public CASCADE; CREATE SCHEMA public;' > /dev/null
    psql -q "$db" -c 'DROP DATABASE IF EXISTS kyotaku_restored' > /dev/null 2>&1
fi
start() { start_server "$work/serve.log" "$kyotaku" serve --port 0 --db "$1" --rules "$src/rules" --tls-dir "$work/pki" --key-file "$work/kyotaku.key" --test-clock 2024-07-31; }
start "$db"
setup_facility
add_consent() { api admin "${json[@]}" -o /dev/null -w '%{http_code}\n' -X POST "$U/api/v1/admin/consents" -d "$consent_body"; }
for _ in $(seq 19); do add_consent > /dev/null; done
count() { api admin "$U/api/v1/admin/consents?facility_code=$A" | grep -o '"id":"' | wc -l; }
before=$(count)
check "20 consents before the backup" test "$before" = 20
# Writes go on during the backup (a bounded loop, stopped after it).
(for _ in $(seq 2000); do [ -f "$work/stop" ] && break; add_consent > /dev/null; done) &
writer=$!
on_exit="touch '$work/stop'; wait $writer 2> /dev/null"
sleep 0.5

if [ -z "${KYOTAKU_TEST_PG:-}" ]; then
    # --- SQLite: the online backup API, through the sqlite3 command (docs/operations.md) ---
    sqlite3 "$db" ".backup '$work/backup.sqlite'"
    check "the backup command succeeds while the server writes" test $? -eq 0
    touch "$work/stop"; wait "$writer"
    check "the backup is consistent" test "$(sqlite3 "$work/backup.sqlite" 'PRAGMA integrity_check')" = ok
    in_backup=$(sqlite3 "$work/backup.sqlite" "SELECT COUNT(*) FROM consents")
    stop_server
    # Restore: the server stopped, the database (and its -wal/-shm) replaced by the backup.
    mv "$db" "$work/damaged.sqlite"
    rm -f "$db-wal" "$db-shm"
    cp "$work/backup.sqlite" "$db"
    start "$db"
else
    # --- PostgreSQL: pg_dump while the server runs, pg_restore into a new database ---
    pg_dump --format=custom --file="$work/kyotaku.dump" "$db"
    check "pg_dump succeeds while the server writes" test $? -eq 0
    touch "$work/stop"; wait "$writer"
    stop_server
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
check "the restored server is ready" test "$(status none "$U/readyz")" = 200
check "and re-inquires from the restored consents" grep -q '"allowed":true' <<< "$(api staff "${json[@]}" -X POST "$U/api/v1/reinquiry" -d "$reinquiry")"
check "and takes writes" test "$(add_consent)" = 201
stop_server
[ -n "${KYOTAKU_TEST_PG:-}" ] && psql -q "$db" -c 'DROP DATABASE kyotaku_restored' > /dev/null
finish
