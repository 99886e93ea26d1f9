#!/usr/bin/env bash
# Several servers over one PostgreSQL behind Debian's HAProxy in TCP passthrough (mutual TLS stays end to end),
# configured as docs/examples/haproxy.cfg: a 100,000-row batch and individual re-inquiries go through the balancer
# while one server is SIGKILLed mid-way. Checks: every row answered exactly once, no acknowledged consent lost,
# interactive requests keep succeeding (only those in flight on the killed server may fail). Run by
# with_postgres.sh (KYOTAKU_TEST_PG). Usage: scale_test.sh KYOTAKU SOURCE_DIR
set -uo pipefail
kyotaku=$1 src=$2
work=$(mktemp -d)
cleanup() {
    touch "$work/stop.scale"
    for p in "${pids[@]}" $haproxy_pid; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
. "$(dirname "$0")/cluster.sh"
[ -n "${KYOTAKU_TEST_PG:-}" ] || { echo "KYOTAKU_TEST_PG is not set (run through tests/server/with_postgres.sh)"; exit 1; }
command -v haproxy > /dev/null || { echo "haproxy is not installed (scripts/setup installs it)"; exit 1; }
admin_db=$KYOTAKU_TEST_PG
psql -q "$admin_db" -c 'DROP SCHEMA public CASCADE; CREATE SCHEMA public;' > /dev/null
A=0110113719
"$src/scripts/make-test-pki" "$work/pki" $A 1340100021 1360100018 > /dev/null

# The key file the servers share (URL keys are sealed with it; each server of a deployment gets the same one).
(umask 077; openssl rand -hex 32 > "$work/kyotaku.key")
start_servers 3 "$KYOTAKU_TEST_PG"
check "three servers started together on one database" test ${#ports[@]} -eq 3
start_balancer

check "demo data loads through the balancer" "$src/scripts/demo-data" "$U" "$work/pki" 2024-07-31
check "a re-inquiry through the balancer is allowed" bash -c "[[ '$(call A POST /api/v1/reinquiry "$req")' == *'\"allowed\":true'* ]]"

batch_csv 100000 "$work/batch.csv"
rn=$(upload "$work/batch.csv" scale)
check "the batch is accepted through the balancer" test -n "$rn"
start_load scale

# SIGKILL server 1 once the servers are answering the batch (bounded: a minute without a first answered row fails).
for _ in $(seq 600); do [ "$(job_column "$rn" done)" -gt 0 ] 2>/dev/null && break; sleep 0.1; done
before_kill=$(job_column "$rn" done)
check "the servers answer the batch together" test "${before_kill:-0}" -gt 0
kill -9 "${pids[1]}"; wait "${pids[1]}" 2>/dev/null
killed_at=$(date +%s.%N)
echo "SIGKILL server 1 after $before_kill rows"
# The job finishes on the other two, as long as it makes progress (the killed server's leases expire).
wait_for_job "$rn"
check "the job finished after the SIGKILL" test "$(job_column "$rn" 'finished_at IS NOT NULL')" = t
stop_load scale
check_batch "$rn" 100000
# Each good row's answer is in 資格確認履歴 exactly once (issue 24: one entry per patient answered), whichever server
# answered it and however often the killed server's chunks were taken over; the bad rows (every 1000th: an insurer
# number whose check digit fails) are answered with their error and look no one up.
logged=$(psql -qtA "$admin_db" -c "SELECT COUNT(*) || ' ' || COUNT(DISTINCT detail_json::json->>'row') FROM inquiry_log WHERE kind = '一括再照会' AND reception_number = '$rn'")
echo "the batch's entries in the history, and its distinct rows: $logged"
check "every good row is in the history once, whichever server answered it" test "$logged" = "99900 99900"

# A request in flight on the killed server fails (its connection is cut); one that started after the kill never
# does: the balancer sends a refused connection to another server (option redispatch) and takes the dead one out.
total=$(cat "$work"/interactive.scale.* | wc -l)
failed=$(cat "$work"/interactive.scale.* | grep -c '^fail')
late=$(cat "$work"/interactive.scale.* | awk -v t="$killed_at" '$1 == "fail" && $2 > t {n++} END {print n + 0}')
echo "interactive re-inquiries: $total, failed $failed (in flight on the killed server), failed that started after the kill $late"
check "interactive requests kept succeeding" test "$total" -gt 20
check "only requests in flight on the killed server failed" test "$failed" -le 3
check "no request that started after the kill failed" test "$late" -eq 0

echo "consents acknowledged through the balancer: $(wc -l < "$work/acked.scale")"
check_consents scale "$admin_db"

finish
