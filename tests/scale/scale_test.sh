#!/usr/bin/env bash
# Several servers over one PostgreSQL behind Debian's HAProxy in TCP passthrough (mutual TLS stays end to end):
# a 100,000-row batch and individual re-inquiries go through the balancer while one server is SIGKILLed
# mid-way. Checks: every row answered exactly once, no acknowledged consent lost, interactive requests keep
# succeeding. Run by with_postgres.sh (KYOTAKU_TEST_PG). Usage: scale_test.sh KYOTAKU SOURCE_DIR
set -uo pipefail
kyotaku=$1 src=$2
work=$(mktemp -d)
pids=() haproxy_pid=""
cleanup() {
    for p in "${pids[@]}" $haproxy_pid; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
fails=0 passes=0
check() { local name=$1; shift; if "$@"; then passes=$((passes + 1)); else echo "FAIL: $name"; fails=$((fails + 1)); fi; }
[ -n "${KYOTAKU_TEST_PG:-}" ] || { echo "KYOTAKU_TEST_PG is not set (run through tests/server/with_postgres.sh)"; exit 1; }
command -v haproxy > /dev/null || { echo "haproxy is not installed (scripts/setup installs it)"; exit 1; }
psql -q "$KYOTAKU_TEST_PG" -c 'DROP SCHEMA public CASCADE; CREATE SCHEMA public;' > /dev/null
A=0110113719
"$src/scripts/make-test-pki" "$work/pki" $A 1340100021 1360100018 > /dev/null

# The key file the servers share (URL keys are sealed with it; each server of a deployment gets the same one).
(umask 077; openssl rand -hex 32 > "$work/kyotaku.key")
# Three servers, started at the same time (they migrate one empty database concurrently), on any free port.
start_server() {  # start_server N
    "$kyotaku" serve --port 0 --db "$KYOTAKU_TEST_PG" --key-file "$work/kyotaku.key" --rules "$src/rules" --tls-dir "$work/pki" --test-clock 2024-07-31 \
        > "$work/serve$1.log" 2>&1 &
    pids[$1]=$!
}
for n in 0 1 2; do start_server $n; done
ports=()
source "$src/scripts/lib/serve.sh"
for n in 0 1 2; do ports[$n]=$(listening_port "$work/serve$n.log" "${pids[$n]}") || exit 1; done
check "three servers started together on one database" test ${#ports[@]} -eq 3

# HAProxy in TCP mode: TLS passes through, so each server sees the client certificate. The health check is the
# one docs/operations.md gives (GET /readyz over TLS, the server's certificate verified), only more frequent: a
# server that goes away, or is not ready, is marked down; a connection refused is dispatched to another server.
for _ in $(seq 20); do
    lb=$(shuf -i 20000-60000 -n 1)
    cat > "$work/haproxy.cfg" <<CFG
global
    maxconn 2000
defaults
    mode tcp
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    retries 3
    option redispatch
frontend kyotaku
    bind 127.0.0.1:$lb
    default_backend servers
backend servers
    balance roundrobin
    option httpchk GET /readyz
    default-server check check-ssl verify required ca-file $work/pki/ca.pem inter 200ms fall 1 rise 2
    server s0 127.0.0.1:${ports[0]}
    server s1 127.0.0.1:${ports[1]}
    server s2 127.0.0.1:${ports[2]}
CFG
    haproxy -db -f "$work/haproxy.cfg" > "$work/haproxy.log" 2>&1 &
    haproxy_pid=$!
    for _ in $(seq 50); do curl -s --cacert "$work/pki/ca.pem" "https://127.0.0.1:$lb/healthz" > /dev/null && break; sleep 0.1; done
    curl -s --cacert "$work/pki/ca.pem" "https://127.0.0.1:$lb/healthz" | grep -q ok && break
    kill "$haproxy_pid" 2>/dev/null; wait "$haproxy_pid" 2>/dev/null; haproxy_pid=""
done
[ -n "$haproxy_pid" ] || { echo "haproxy did not start"; cat "$work/haproxy.log"; exit 1; }
U=https://127.0.0.1:$lb
cert() { case $1 in admin) echo "--cert $work/pki/admin.pem --key $work/pki/admin.key" ;; A) echo "--cert $work/pki/facility-$A.pem --key $work/pki/facility-$A.key" ;; esac; }
call() { curl -sS --cacert "$work/pki/ca.pem" $(cert "$1") -X "$2" -H 'Content-Type: application/json' ${4:+--data-binary "$4"} "$U$3"; }

check "demo data loads through the balancer" "$src/scripts/demo-data" "$U" "$work/pki" 2024-07-31
req='{"category":"訪問診療等","insurer_number":"06132013","symbol":"123","number":"4567","branch":"01","birthdate":"1940-05-01"}'
check "a re-inquiry through the balancer is allowed" bash -c "[[ '$(call A POST /api/v1/reinquiry "$req")' == *'\"allowed\":true'* ]]"

# The batch: 100,000 rows, every 1,000th with a bad check digit (its own error).
{ echo "arbitrary_identifier,insurer_number,symbol,number,branch,birthdate"
  for i in $(seq 100000); do
      if [ $((i % 1000)) = 0 ]; then echo "row$i,06132012,123,4567,01,1940-05-01"; else echo "row$i,06132013,123,4567,01,1940-05-01"; fi
  done; } > "$work/batch.csv"
up=$(curl -sS --cacert "$work/pki/ca.pem" $(cert A) -H 'Content-Type: text/csv' --data-binary @"$work/batch.csv" "$U/api/v1/batch/reinquiry?file_identifier=scale")
rn=$(echo "$up" | sed -n 's/.*"reception_number":"\([0-9]*\)".*/\1/p')
check "the batch is accepted through the balancer" test -n "$rn"

# Interactive load through the balancer: three loops of re-inquiries, each a new TLS connection, until the batch
# is done; each line records whether the answer was right.
loops=()
for w in 1 2 3; do
    ( while [ ! -f "$work/stop" ]; do
          r=$(curl -sS --max-time 30 --cacert "$work/pki/ca.pem" $(cert A) -H 'Content-Type: application/json' --data-binary "$req" "$U/api/v1/reinquiry" 2>/dev/null)
          if [[ $r == *'"allowed":true'* ]]; then echo ok; else echo "fail $(date +%s.%N)"; fi
      done > "$work/interactive.$w" ) &
    loops+=($!)
done
# Consents registered through the balancer while a server dies: each acknowledged (201) one must be kept.
person=$(psql -qtA "$KYOTAKU_TEST_PG" -c "SELECT person_key FROM insured_persons LIMIT 1")
consent_body="{\"facility_code\":\"$A\",\"person_key\":\"$person\",\"visit_kind\":\"往診\",\"first_visit\":\"2024-07-31\",\"identity_method\":\"暗証番号\",\"items\":[\"薬剤情報\"]}"
( while [ ! -f "$work/stop" ]; do
      r=$(curl -sS --max-time 30 --cacert "$work/pki/ca.pem" $(cert admin) -H 'Content-Type: application/json' -w ' %{http_code}' \
          --data-binary "$consent_body" "$U/api/v1/admin/consents" 2>/dev/null)
      [[ $r == *' 201' ]] && echo "$r" | sed 's/.*"id":"\([0-9a-f]*\)".*/\1/' >> "$work/acked"
  done ) &
loops+=($!)

done_rows() { psql -qtA "$KYOTAKU_TEST_PG" -c "SELECT done FROM batch_jobs WHERE reception_number = '$rn'"; }
# SIGKILL server 1 once the servers are answering the batch (bounded: a minute without a first answered row fails).
for _ in $(seq 600); do [ "$(done_rows)" -gt 0 ] 2>/dev/null && break; sleep 0.1; done
before_kill=$(done_rows)
check "the servers answer the batch together" test "${before_kill:-0}" -gt 0
kill -9 "${pids[1]}"; wait "${pids[1]}" 2>/dev/null
killed_at=$(date +%s.%N)
echo "SIGKILL server 1 after $before_kill rows"
# The job finishes on the other two, as long as it makes progress (the killed server's leases expire).
last=-1 idle=0
while [ $idle -lt 600 ]; do
    finished=$(psql -qtA "$KYOTAKU_TEST_PG" -c "SELECT finished_at IS NOT NULL FROM batch_jobs WHERE reception_number = '$rn'")
    [ "$finished" = t ] && break
    now=$(done_rows)
    if [ "${now:-0}" -gt "$last" ]; then last=${now:-0}; idle=0; else idle=$((idle + 1)); fi
    sleep 0.1
done
touch "$work/stop"
for l in "${loops[@]}"; do wait "$l" 2>/dev/null; done  # each loop ends after its request in flight

curl -sS --cacert "$work/pki/ca.pem" $(cert A) "$U/api/v1/batch/reinquiry/$rn/result" > "$work/result.jsonl"
check "the job finished after the SIGKILL" test "$finished" = t
check "every row is answered exactly once, in order" bash -c "[ \$(grep -c '\"row\":' '$work/result.jsonl') = 100000 ] && [ \$(grep -o '\"row\":[0-9]*' '$work/result.jsonl' | sort -u | wc -l) = 100000 ]"
check "the job's count agrees" test "$(done_rows)" = 100000
check "the bad rows have their own error" bash -c "[ \$(grep -c '\"processing_result_status\":2' '$work/result.jsonl') = 100 ]"
check "the good rows are answered" bash -c "[ \$(grep -c '\"allowed\":true' '$work/result.jsonl') = 99900 ]"
check "the job was finished once, by one server" test "$(psql -qtA "$KYOTAKU_TEST_PG" -c "SELECT COUNT(*) FROM inquiry_log WHERE kind = '一括再照会'")" = 1

total=$(cat "$work"/interactive.* | wc -l)
failed=$(cat "$work"/interactive.* | grep -c '^fail')
late=$(cat "$work"/interactive.* | awk -v t="$killed_at" '$1 == "fail" && $2 > t + 5 {n++} END {print n + 0}')
echo "interactive re-inquiries: $total, failed $failed (in flight on the killed server), failed more than 5 s after the kill $late"
check "interactive requests kept succeeding" test "$total" -gt 20
check "only requests in flight on the killed server failed" test "$failed" -le 3
check "no request failed once the balancer knew" test "$late" -eq 0

sort "$work/acked" > "$work/acked.sorted"
call admin GET "/api/v1/admin/consents?facility_code=$A" | grep -o '"id":"[0-9a-f]*"' | sed 's/"id":"\(.*\)"/\1/' | sort > "$work/stored"
echo "consents acknowledged through the balancer: $(wc -l < "$work/acked.sorted")"
check "consents were acknowledged during the test" test "$(wc -l < "$work/acked.sorted")" -gt 5
check "every acknowledged consent is stored" bash -c "comm -23 '$work/acked.sorted' '$work/stored' | wc -l | grep -qx 0"
check "no consent is stored twice" bash -c "uniq -d '$work/stored' | wc -l | grep -qx 0"

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
