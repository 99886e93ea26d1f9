#!/usr/bin/env bash
# Transient database faults are retried, never answered (issue 21 item 1; docs/operations.md "12. High
# availability"): every PostgreSQL session of the servers is ended — what a failover or a network reset does,
# `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'kyotaku'` — at random moments
# while three servers behind the balancer answer a 50,000-row batch, take batch uploads, consent registrations and
# re-inquiries. Checks: the servers keep running; the job finishes (not failed) with every row's real answer, none
# "internal error"; every acknowledged upload and consent is stored once and every upload's job finishes too; no
# interactive request is answered 500 (one whose commit was in doubt may be a 503 with Retry-After: counted and
# printed); every answered re-inquiry has its 資格確認履歴 line. Run by with_postgres.sh (KYOTAKU_TEST_PG).
# Usage: terminate_test.sh KYOTAKU SOURCE_DIR
set -uo pipefail
kyotaku=$1 src=$2
work=$(mktemp -d)
terminator=""
cleanup() {
    touch "$work/stop.t" "$work/stop.terminate"
    for p in "${pids[@]}" $haproxy_pid $terminator "${loops[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
. "$src/tests/scale/cluster.sh"
[ -n "${KYOTAKU_TEST_PG:-}" ] || { echo "KYOTAKU_TEST_PG is not set (run through tests/server/with_postgres.sh)"; exit 1; }
command -v haproxy > /dev/null || { echo "haproxy is not installed (scripts/setup installs it)"; exit 1; }
admin_db=$KYOTAKU_TEST_PG
psql -q "$admin_db" -c 'DROP SCHEMA public CASCADE; CREATE SCHEMA public;' > /dev/null
A=0110113719
"$src/scripts/make-test-pki" "$work/pki" $A 1340100021 1360100018 > /dev/null
(umask 077; openssl rand -hex 32 > "$work/kyotaku.key")
start_servers 3 "$KYOTAKU_TEST_PG"
start_balancer
check "demo data loads through the balancer" "$src/scripts/demo-data" "$U" "$work/pki" 2024-07-31

rows=50000
batch_csv $rows "$work/batch.csv"
rn=$(upload "$work/batch.csv" terminated)
check "the batch is accepted" test -n "$rn"
start_load t
# Uploads of 200 rows, each acknowledged one's reception number to $work/uploads.t, a failed one to upload-fails.t.
batch_csv 200 "$work/small.csv"
( n=0
  while [ ! -f "$work/stop.t" ]; do
      n=$((n + 1)) t0=$(date +%s.%N)
      r=$(curl -sS --max-time 60 --cacert "$work/pki/ca.pem" $(cert A) -H 'Content-Type: text/csv' --data-binary @"$work/small.csv" \
          -w ' %{http_code}' "$U/api/v1/batch/reinquiry?file_identifier=up$n" 2>/dev/null)
      code=$?
      if [[ ${r##* } == 2?? ]]; then sed -n 's/.*"reception_number":"\([0-9]*\)".*/\1/p' <<< "$r" >> "$work/uploads.t"
      else echo "fail $t0 $(date +%s.%N) http=${r##* } curl=$code" >> "$work/upload-fails.t"; fi
  done ) &
loops+=($!)
touch "$work/uploads.t" "$work/upload-fails.t"

# The faults: once the batch is being answered, every session of the servers is ended 15 times, 0.2 to 1.5 s apart
# (the moments are random: inside a chunk's reads, its write, a COPY, a commit, or between them).
for _ in $(seq 600); do [ "$(job_column "$rn" done)" -gt 0 ] 2>/dev/null && break; sleep 0.1; done
check "the servers answer the batch" test "$(job_column "$rn" done)" -gt 0
( for _ in $(seq 15); do
      [ -f "$work/stop.terminate" ] && break
      sleep "$(awk -v r=$RANDOM 'BEGIN {printf "%.2f", 0.2 + 1.3 * r / 32767}')"
      psql -qtA "$admin_db" -c "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'kyotaku'" \
          >> "$work/terminated" 2>&1
  done ) &
terminator=$!
wait "$terminator"; terminator=""
terminated=$(awk '{n += $1} END {print n + 0}' "$work/terminated")
echo "sessions terminated: $terminated in $(wc -l < "$work/terminated") rounds, after $(job_column "$rn" done) of $rows rows were answered"
check "sessions were terminated" test "$terminated" -gt 15
check "the job finishes" wait_for_job "$rn"
stop_load t
for i in 0 1 2; do check "server $i kept running" kill -0 "${pids[i]}"; done

check_batch "$rn" $rows
check_consents t "$admin_db"
# Every acknowledged upload is stored once and answered in full.
uploads=$(sort "$work/uploads.t" | uniq | wc -l)
check "uploads were acknowledged" test "$uploads" -gt 2
for up in $(cat "$work/uploads.t"); do wait_for_job "$up" || break; done
stored=$(psql -qtA "$admin_db" -c "SELECT COUNT(*) FROM batch_jobs WHERE file_identifier LIKE 'up%'")
check "every acknowledged upload is stored, once" bash -c "[ \$(sort '$work/uploads.t' | uniq -d | wc -l) = 0 ] && [ $stored -ge $uploads ] && \
    [ \$(psql -qtA '$admin_db' -c \"SELECT COUNT(*) FROM batch_jobs WHERE reception_number IN ($(sed "s/.*/'&'/" "$work/uploads.t" | paste -sd,))\") = $uploads ]"
check "every upload's job finished with all its rows, none failed" test \
    "$(psql -qtA "$admin_db" -c "SELECT COUNT(*) FROM batch_jobs WHERE file_identifier LIKE 'up%' AND (finished_at IS NULL OR failed_at IS NOT NULL OR done <> 200)")" = 0
check "no row of any job is answered with a server error" test \
    "$(psql -qtA "$admin_db" -c "SELECT COUNT(*) FROM batch_results WHERE result_json LIKE '%internal error%'")" = 0

# Interactive requests: never a 500.
cat "$work"/interactive.t.* "$work/consent-fails.t" "$work/upload-fails.t" > "$work/requests"
reinquiries=$(cat "$work"/interactive.t.* | wc -l)
consents=$(wc -l < "$work/acked.t")
failed=$(grep -c '^fail' "$work/requests")
echo "re-inquiries $reinquiries, consents acknowledged $consents, uploads acknowledged $uploads; failed requests $failed:" \
     "$(grep '^fail' "$work/requests" | grep -o 'http=[0-9]*' | sort | uniq -c | tr '\n' ' ')"
check "interactive requests were made" test "$reinquiries" -gt 20
# Every re-inquiry answered is in 資格確認履歴 (its line is committed before the answer goes out; PostgreSQL's appender
# commits the lines of many requests as one group, whose session may be the one ended): the loops' only 再照会.
answered=$(cat "$work"/interactive.t.* | grep -c '^ok')
logged=$(psql -qtA "$admin_db" -c "SELECT COUNT(*) FROM inquiry_log WHERE facility_code = '$A' AND kind = '再照会'")
echo "re-inquiries answered $answered, 再照会 lines in 資格確認履歴 $logged"
check "every answered re-inquiry has its 資格確認履歴 line" test "$logged" -ge "$answered"
check "no interactive request was answered 500" bash -c "! grep -q 'http=500' '$work/requests'"
check "every failed request is a 503 (its commit in doubt), never a broken connection" bash -c "! grep '^fail' '$work/requests' | grep -qv 'http=503'"
check "no job was logged as failed" bash -c "! grep -h '\"event\":\"batch_job\"' '$work'/serve?.log | grep -q '\"state\":\"failed\"'"

finish
