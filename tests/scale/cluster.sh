# Helpers of the several-servers tests (scale_test.sh, failover_test.sh), sourced: kyotaku servers over one
# PostgreSQL behind the balancer of docs/examples/haproxy.cfg, the load they carry (a batch, re-inquiries,
# consent registrations) and what is checked afterwards. The caller sets kyotaku, src, work and A (the facility).

# check NAME COMMAND… and finish (tests/lib/check.sh).
source "$src/tests/lib/check.sh"

# free_port: a port no one listens on now; listening_port: waits until a server listens (scripts/lib/).
source "$src/scripts/lib/ports.sh"
source "$src/scripts/lib/serve.sh"

# start_servers N DB_URL [ENV…]: N servers started at the same time on one database (they migrate it concurrently),
# each on any free port; sets pids[0..N-1] and ports[0..N-1]; ends the test if one does not start (scripts/lib/serve.sh).
pids=() ports=()
start_servers() {
    local n=$1 db=$2
    shift 2
    for i in $(seq 0 $((n - 1))); do
        env "$@" "$kyotaku" serve --port 0 --db "$db" --key-file "$work/kyotaku.key" --rules "$src/rules" --tls-dir "$work/pki" \
            --test-clock 2024-07-31 > "$work/serve$i.log" 2>&1 &
        pids[i]=$!
    done
    for i in $(seq 0 $((n - 1))); do ports[i]=$(listening_port "$work/serve$i.log" "${pids[i]}") || exit 1; done
}

# start_balancer: HAProxy with docs/examples/haproxy.cfg as operators get it, only its addresses replaced (the
# listening address, the servers', the CA file): sets lb (its port) and haproxy_pid. Retried on another port when
# the chosen one was taken meanwhile.
haproxy_pid=""
start_balancer() {
    local example=$src/docs/examples/haproxy.cfg
    for _ in $(seq 20); do
        lb=$(free_port)
        sed -e "s|bind :443|bind 127.0.0.1:$lb|" -e "s|/etc/haproxy/kyotaku-server-ca.pem|$work/pki/ca.pem|" \
            -e "s|10.0.0.11:443|127.0.0.1:${ports[0]}|" -e "s|10.0.0.12:443|127.0.0.1:${ports[1]}|" -e "s|10.0.0.13:443|127.0.0.1:${ports[2]}|" \
            "$example" > "$work/haproxy.cfg"
        # Every address of the example was replaced (the example changed shape otherwise: then this test must too).
        if sed 's/#.*//' "$work/haproxy.cfg" | grep -Eq '10\.0\.0\.|:443([^0-9]|$)|/etc/haproxy'; then echo "docs/examples/haproxy.cfg: an address the test does not replace"; exit 1; fi
        haproxy -db -f "$work/haproxy.cfg" > "$work/haproxy.log" 2>&1 &
        haproxy_pid=$!
        for _ in $(seq 100); do curl -s --cacert "$work/pki/ca.pem" "https://127.0.0.1:$lb/healthz" > /dev/null && break; sleep 0.1; done
        curl -s --cacert "$work/pki/ca.pem" "https://127.0.0.1:$lb/healthz" | grep -q ok && break
        kill "$haproxy_pid" 2>/dev/null; wait "$haproxy_pid" 2>/dev/null; haproxy_pid=""
    done
    [ -n "$haproxy_pid" ] || { echo "haproxy did not start"; cat "$work/haproxy.log"; exit 1; }
    U=https://127.0.0.1:$lb
    # HAProxy warns of nothing in the example (it did of a backend without timeouts).
    check "HAProxy takes docs/examples/haproxy.cfg without a warning" bash -c "! haproxy -c -f '$work/haproxy.cfg' 2>&1 | grep -qi 'warn'"
}

cert() { case $1 in admin) echo "--cert $work/pki/admin.pem --key $work/pki/admin.key" ;; A) echo "--cert $work/pki/facility-$A.pem --key $work/pki/facility-$A.key" ;; esac; }
call() { curl -sS --cacert "$work/pki/ca.pem" $(cert "$1") -X "$2" -H 'Content-Type: application/json' ${4:+--data-binary "$4"} "$U$3"; }
req='{"category":"訪問診療等","insurer_number":"06132013","symbol":"123","number":"4567","branch":"01","birthdate":"1940-05-01"}'

# batch_csv ROWS FILE: every 1,000th row has a bad check digit (its own error).
batch_csv() {
    { echo "arbitrary_identifier,insurer_number,symbol,number,branch,birthdate"
      for i in $(seq "$1"); do
          if [ $((i % 1000)) = 0 ]; then echo "row$i,06132012,123,4567,01,1940-05-01"; else echo "row$i,06132013,123,4567,01,1940-05-01"; fi
      done; } > "$2"
}
# upload FILE NAME: prints the reception number of the batch (empty when it was not accepted).
upload() {
    curl -sS --cacert "$work/pki/ca.pem" $(cert A) -H 'Content-Type: text/csv' --data-binary @"$1" "$U/api/v1/batch/reinquiry?file_identifier=$2" |
        sed -n 's/.*"reception_number":"\([0-9]*\)".*/\1/p'
}

# start_load TAG: three loops of re-inquiries (each a new TLS connection) and one of consent registrations through
# the balancer, until $work/stop.TAG exists. Each re-inquiry writes "ok START END" or "fail START END http=… curl=…"
# (Unix times, the HTTP status, curl's exit code) to $work/interactive.TAG.*; each acknowledged (201) consent its id
# to $work/acked.TAG, a failed one "fail START END http=… curl=…" to $work/consent-fails.TAG.
loops=()
start_load() {
    local tag=$1
    for w in 1 2 3; do
        ( while [ ! -f "$work/stop.$tag" ]; do
              t0=$(date +%s.%N)
              r=$(curl -sS --max-time 30 --cacert "$work/pki/ca.pem" $(cert A) -H 'Content-Type: application/json' --data-binary "$req" \
                  -w ' %{http_code}' "$U/api/v1/reinquiry" 2>/dev/null)
              code=$?
              if [[ $r == *'"allowed":true'* ]]; then echo "ok $t0 $(date +%s.%N)"; else echo "fail $t0 $(date +%s.%N) http=${r##* } curl=$code"; fi
          done > "$work/interactive.$tag.$w" ) &
        loops+=($!)
    done
    local person consent_body
    person=$(psql -qtA "$admin_db" -c "SELECT person_key FROM insured_persons LIMIT 1")
    consent_body="{\"facility_code\":\"$A\",\"person_key\":\"$person\",\"visit_kind\":\"往診\",\"first_visit\":\"2024-07-31\",\"identity_method\":\"暗証番号\",\"items\":[\"薬剤情報\"]}"
    ( while [ ! -f "$work/stop.$tag" ]; do
          t0=$(date +%s.%N)
          r=$(curl -sS --max-time 30 --cacert "$work/pki/ca.pem" $(cert admin) -H 'Content-Type: application/json' -w ' %{http_code}' \
              --data-binary "$consent_body" "$U/api/v1/admin/consents" 2>/dev/null)
          code=$?
          if [[ $r == *' 201' ]]; then echo "$r" | sed 's/.*"id":"\([0-9a-f]*\)".*/\1/' >> "$work/acked.$tag"
          else echo "fail $t0 $(date +%s.%N) http=${r##* } curl=$code" >> "$work/consent-fails.$tag"; fi
      done ) &
    loops+=($!)
    touch "$work/acked.$tag" "$work/consent-fails.$tag"
}
stop_load() {
    touch "$work/stop.$1"
    for l in "${loops[@]}"; do wait "$l" 2>/dev/null; done  # each loop ends after its request in flight
    loops=()
}

job_column() { psql -qtA "$admin_db" -c "SELECT $2 FROM batch_jobs WHERE reception_number = '$1'"; }
# wait_for_job RN: until the job is finished, as long as it makes progress (a minute without a row answered fails).
wait_for_job() {
    local last=-1 idle=0 now
    while [ $idle -lt 600 ]; do
        [ "$(job_column "$1" 'finished_at IS NOT NULL')" = t ] && return 0
        now=$(job_column "$1" done)
        if [ "${now:-0}" -gt "$last" ]; then last=${now:-0}; idle=0; else idle=$((idle + 1)); fi
        sleep 0.1
    done
    return 1
}
# check_batch RN ROWS: every row answered exactly once with its real answer (no row answered with a server error).
check_batch() {
    local rn=$1 rows=$2
    curl -sS --cacert "$work/pki/ca.pem" $(cert A) "$U/api/v1/batch/reinquiry/$rn/result" > "$work/result.$rn.jsonl"
    check "the job finished, not failed" test "$(job_column "$rn" "CASE WHEN failed_at IS NULL AND finished_at IS NOT NULL THEN 'ok' END")" = ok
    check "every row is answered exactly once, in order" bash -c "[ \$(grep -c '\"row\":' '$work/result.$rn.jsonl') = $rows ] && [ \$(grep -o '\"row\":[0-9]*' '$work/result.$rn.jsonl' | sort -u | wc -l) = $rows ]"
    check "the job's count agrees" test "$(job_column "$rn" done)" = "$rows"
    check "the bad rows have their own error" bash -c "[ \$(grep -c '\"processing_result_status\":2' '$work/result.$rn.jsonl') = $((rows / 1000)) ]"
    check "the good rows are answered" bash -c "[ \$(grep -c '\"allowed\":true' '$work/result.$rn.jsonl') = $((rows - rows / 1000)) ]"
    check "no row is answered with a server error" bash -c "! grep -q 'internal error' '$work/result.$rn.jsonl'"
}
# check_consents TAG DB_URL: every acknowledged consent is in that database, none twice.
check_consents() {
    sort "$work/acked.$1" > "$work/acked.$1.sorted"
    psql -qtA "$2" -c "SELECT id FROM consents WHERE facility_code = '$A'" | sort > "$work/stored.$1"
    check "consents were acknowledged ($1)" test "$(wc -l < "$work/acked.$1.sorted")" -gt 5
    check "every acknowledged consent is stored ($1)" bash -c "comm -23 '$work/acked.$1.sorted' '$work/stored.$1' | wc -l | grep -qx 0"
    check "no consent is stored twice ($1)" bash -c "uniq -d '$work/stored.$1' | wc -l | grep -qx 0"
}
