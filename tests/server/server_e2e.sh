#!/usr/bin/env bash
# The server over real mutual TLS on loopback: certificates decide who is calling; a certificate from another
# CA is nobody; data survives SIGKILL; a non-loopback bind is refused. Usage: server_e2e.sh KYOTAKU SOURCE_DIR
set -uo pipefail
kyotaku=$1 src=$2
# The work folder, check and finish (testlib.sh; it sources scripts/lib/serve.sh for listening_port).
source "$src/tests/server/testlib.sh"
pid=""
on_exit='[ -z "$pid" ] || kill "$pid" 2> /dev/null'
A=0110113719 B=2714206386
# The database: SQLite in the work folder, or the throwaway PostgreSQL of with_postgres.sh.
db="$work/db.sqlite"
reset_db() { rm -f "$work"/db.sqlite*; }
if [ -n "${KYOTAKU_TEST_PG:-}" ]; then
    db=$KYOTAKU_TEST_PG
    reset_db() { psql -q "$KYOTAKU_TEST_PG" -c 'DROP SCHEMA public CASCADE; CREATE SCHEMA public;' > /dev/null; }
    reset_db
fi
"$src/scripts/make-test-pki" "$work/pki" $A $B > /dev/null
"$src/scripts/make-test-pki" "$work/rogue" $A > /dev/null  # another CA issuing a certificate with A's code

# The server runs on a test clock (its "today" starts at 2024-07-31, 10:00 JST, and the operator may move it): the
# rules decide on the server's date, never on one a request names.
start() {
    "$kyotaku" serve --port 0 --db "$db" --key-file "$work/kyotaku.key" --rules "$src/rules" --tls-dir "$work/pki" --test-clock "${clock_day:-2024-07-31}" > "$work/serve.log" 2>&1 &
    pid=$!
    port=$(listening_port "$work/serve.log" "$pid") || exit 1
}
start
U=https://127.0.0.1:$port
call() {  # call WHO METHOD PATH [BODY] → prints "STATUS BODY"
    local who=$1 method=$2 path=$3 body=${4:-}
    local cert=()
    case $who in
        admin) cert=(--cert "$work/pki/admin.pem" --key "$work/pki/admin.key") ;;
        A|B) local code=${!who}; cert=(--cert "$work/pki/facility-$code.pem" --key "$work/pki/facility-$code.key") ;;
        Am|Bm) local v=${who%m}; local code=${!v}; cert=(--cert "$work/pki/facility-$code-manager.pem" --key "$work/pki/facility-$code-manager.key") ;;
        Ae) cert=(--cert "$work/pki/facility-$A-emr.pem" --key "$work/pki/facility-$A-emr.key") ;;
        rogue) cert=(--cert "$work/rogue/facility-$A.pem" --key "$work/rogue/facility-$A.key") ;;
    esac
    curl -sS --cacert "$work/pki/ca.pem" "${cert[@]}" -X "$method" -H 'Content-Type: application/json' \
        -w ' %{http_code}' ${body:+--data-binary "$body"} "$U$path"
}
status() { call "$@" | awk '{print $NF}'; }

check "health without a certificate" test "$(status none GET /healthz)" = 200
check "admin creates facility A" test "$(status admin POST /api/v1/admin/facilities "{\"code\":\"$A\",\"name\":\"A\",\"kind\":\"医科\"}")" = 201
check "admin creates facility B" test "$(status admin POST /api/v1/admin/facilities "{\"code\":\"$B\",\"name\":\"B\",\"kind\":\"医科\"}")" = 201
check "A's staff certificate cannot change 環境設定" test "$(status A PUT /api/v1/settings '{"terms_agreed":true,"home_visit_enabled":true}')" = 403
check "A's 管理者 enables 訪問診療等機能" test "$(status Am PUT /api/v1/settings '{"terms_agreed":true,"home_visit_enabled":true}')" = 200
person=$(call admin POST /api/v1/admin/insured-persons '{"insurer_number":"06132013","symbol":"123","number":"4567","branch":"01","birthdate":"1940-05-01","name":"在宅 花子","burden_ratio":"010","valid_from":"2020-04-01"}' | sed 's/.*"person_key":"\([0-9a-f]*\)".*/\1/')
check "admin adds A's consent" test "$(status admin POST /api/v1/admin/consents "{\"facility_code\":\"$A\",\"person_key\":\"$person\",\"visit_kind\":\"訪問診療\",\"first_visit\":\"2024-04-15\",\"identity_method\":\"暗証番号\",\"items\":[\"薬剤情報\"]}")" = 201
req='{"category":"訪問診療等","insurer_number":"06132013","symbol":"123","number":"4567","branch":"01","birthdate":"1940-05-01"}'
check "A's re-inquiry is allowed" bash -c "[[ '$(call A POST /api/v1/reinquiry "$req")' == *'\"allowed\":true'* ]]"
# The terminal kind is the certificate's: 電子カルテ端末 may view, a body cannot name a terminal.
curl -sS --cacert "$work/pki/ca.pem" --cert "$work/pki/admin.pem" --key "$work/pki/admin.key" -H 'Content-Type: application/json' \
    --data-binary "{\"person_key\":\"$person\",\"item\":\"薬剤情報\",\"recorded_on\":\"2024-05-01\",\"content\":{\"薬剤\":\"e2e\"}}" "$U/api/v1/admin/medical-records" > /dev/null
view='{"category":"訪問診療等","insurer_number":"06132013","symbol":"123","number":"4567","branch":"01","birthdate":"1940-05-01","item":"薬剤情報"}'
check "the 電子カルテ端末 certificate views the consented item" bash -c "[[ '$(call Ae POST /api/v1/medical-info "$view")' == *'\"allowed\":true'* ]]"
check "a body naming a terminal is refused" test "$(status A POST /api/v1/medical-info '{"category":"訪問診療等","item":"薬剤情報","terminal":"資格確認端末","insurer_number":"06132013","symbol":"123","number":"4567","birthdate":"1940-05-01"}')" = 400
# The day is the server's: a 資格確認日 inside the window does not open it once the operator moves the clock on.
check "the operator moves the test clock" test "$(status admin POST /api/v1/admin/clock '{"today":"2024-08-05"}')" = 200
late='{"category":"訪問診療等","insurer_number":"06132013","symbol":"123","number":"4567","branch":"01","birthdate":"1940-05-01","query_date":"2024-07-31"}'
check "after the window, a past query_date opens nothing" bash -c "[[ '$(call A POST /api/v1/reinquiry "$late")' == *'\"allowed\":false'* && '$(call A POST /api/v1/reinquiry "$late")' != *'在宅'* ]]"
check "a facility cannot move the clock" test "$(status Am POST /api/v1/admin/clock '{"today":"2024-07-31"}')" = 403
check "the operator moves it back" test "$(status admin POST /api/v1/admin/clock '{"today":"2024-07-31"}')" = 200
# A モバイル端末 session (the URL's token in a header, no certificate): refused by the rules, never medical data.
token=$(call A GET /api/v1/url | sed 's/.*\/c\/\([A-Za-z0-9_-]*\)".*/\1/')
mobile=$(curl -sS --cacert "$work/pki/ca.pem" -H "X-Kyotaku-Url-Token: $token" -H 'Content-Type: application/json' -w ' %{http_code}' --data-binary "$view" "$U/api/v1/medical-info")
check "a mobile session is refused medical information by the rules" bash -c "[[ '$mobile' == *'モバイル端末からは'* && '$mobile' == *' 200' && '$mobile' != *records* ]]"
check "a mobile session cannot re-inquire" test "$(curl -sS -o /dev/null -w '%{http_code}' --cacert "$work/pki/ca.pem" -H "X-Kyotaku-Url-Token: $token" -H 'Content-Type: application/json' --data-binary "$req" "$U/api/v1/reinquiry")" = 403
check "B's re-inquiry of A's patient is refused" bash -c "[[ '$(call B POST /api/v1/reinquiry "$req")' == *'\"allowed\":false'* ]]"
check "B does not see the eligibility" bash -c "[[ '$(call B POST /api/v1/reinquiry "$req")' != *'eligibility'* ]]"
check "no certificate: settings refused" test "$(status none GET /api/v1/settings)" = 403
# A certificate from another CA fails the TLS handshake (curl reports 000) or, at most, is nobody (403).
rogue_refused() { local s; s=$(status rogue "$@" 2>/dev/null); [ "$s" = 000 ] || [ "$s" = 403 ]; }
check "another CA's certificate is refused" rogue_refused GET /api/v1/settings
check "another CA's certificate cannot re-inquire" rogue_refused POST /api/v1/reinquiry "$req"
check "bad JSON is a 400" test "$(status A POST /api/v1/reinquiry '{oops')" = 400

# Garbage instead of HTTP inside TLS: answered 400, the server stays up.
printf 'NOT HTTP AT ALL\r\n\r\n' | timeout 5 openssl s_client -quiet -connect 127.0.0.1:$port -CAfile "$work/pki/ca.pem" > "$work/garbage.txt" 2>/dev/null
check "garbage gets a 400" grep -q "400" "$work/garbage.txt"
check "still alive after garbage" test "$(status none GET /healthz)" = 200

# SIGKILL and restart: acknowledged writes are there.
kill -9 "$pid"; wait "$pid" 2>/dev/null; pid=""
start
U=https://127.0.0.1:$port
check "after SIGKILL: A's settings survived" bash -c "[[ '$(call A GET /api/v1/settings)' == *'\"home_visit_enabled\":true'* ]]"
check "after SIGKILL: the consent survived" bash -c "[[ '$(call A POST /api/v1/reinquiry "$req")' == *'\"allowed\":true'* ]]"
check "after SIGKILL: the audit trail survived" bash -c "[[ '$(call Am GET /api/v1/settings/audit)' == *'home_visit_enabled'* ]]"

# A 100,000-row batch, SIGKILLed while it is being answered: after a restart every row is answered exactly once.
{
    echo "arbitrary_identifier,insurer_number,symbol,number,branch,birthdate"
    for i in $(seq 100000); do
        if [ $((i % 1000)) = 0 ]; then echo "row$i,06132012,123,4567,01,1940-05-01"; else echo "row$i,06132013,123,4567,01,1940-05-01"; fi
    done
} > "$work/batch.csv"
up=$(curl -sS --cacert "$work/pki/ca.pem" --cert "$work/pki/facility-$A.pem" --key "$work/pki/facility-$A.key" -H 'Content-Type: text/csv' \
    --data-binary @"$work/batch.csv" "$U/api/v1/batch/reinquiry?query_date=2024-07-01&file_identifier=big")
rn=$(echo "$up" | sed 's/.*"reception_number":"\([0-9]*\)".*/\1/')
check "the batch is accepted" bash -c "[[ '$up' == *'\"total\":100000'* ]]"
# Waits for the job's first answered rows (bounded: a minute without them is a failure of its own).
for _ in $(seq 600); do
    done_rows=$(call A GET "/api/v1/batch/reinquiry/$rn" | sed 's/.*"done":\([0-9]*\).*/\1/')
    [ "${done_rows:-0}" -gt 0 ] && break
    sleep 0.1
done
check "the worker starts answering the batch" test "${done_rows:-0}" -gt 0
kill -9 "$pid"; wait "$pid" 2>/dev/null; pid=""
echo "batch rows answered before SIGKILL: $done_rows"
start
U=https://127.0.0.1:$port
# Waits until the job is finished, as long as it makes progress: the bound is a minute without a new answered row,
# not a total time (a loaded CI machine answers 100,000 rows on PostgreSQL slower than an idle one).
last=-1 idle=0
while [ $idle -lt 600 ]; do
    st=$(call A GET "/api/v1/batch/reinquiry/$rn")
    [[ "$st" == *正常終了* ]] && break
    now=$(echo "$st" | sed -n 's/.*"done":\([0-9]*\).*/\1/p')
    if [ "${now:-0}" -gt "$last" ]; then last=${now:-0}; idle=0; else idle=$((idle + 1)); fi
    sleep 0.1
done
call A GET "/api/v1/batch/reinquiry/$rn/result" | head -c -4 > "$work/batch.out"
check "every row is answered exactly once, in order" bash -c "[ \$(grep -c '\"row\":' '$work/batch.out') = 100000 ] && [ \$(grep -o '\"row\":[0-9]*' '$work/batch.out' | sort -u | wc -l) = 100000 ]"
check "the bad rows have their own error" bash -c "[ \$(grep -c '\"processing_result_status\":2' '$work/batch.out') = 100 ]"
check "the good rows are answered" bash -c "[ \$(grep -c '\"allowed\":true' '$work/batch.out') = 99900 ]"
# Each answered row has one 一括再照会 line in 資格確認履歴 (the 100 bad rows, answered with an error, none), none lost and
# none twice: written in its chunk's transaction, so a chunk lost with the kill is answered and logged again, and a chunk
# written is never written again.
if [ -n "${KYOTAKU_TEST_PG:-}" ]; then
    logged=$(psql -qtA "$db" -c "SELECT COUNT(*) || ' ' || COUNT(DISTINCT CAST(detail_json AS jsonb)->>'row')
                                 FROM inquiry_log WHERE reception_number = '$rn'")
else
    logged=$(sqlite3 "$db" "SELECT COUNT(*) || ' ' || COUNT(DISTINCT json_extract(detail_json, '\$.row'))
                            FROM inquiry_log WHERE reception_number = '$rn'")
fi
echo "資格確認履歴 lines of the batch (lines, distinct rows): $logged"
check "every answered row of the batch has one 資格確認履歴 line, none twice" test "$logged" = "99900 99900"

# A consent-registration load, SIGKILLed in the middle: every acknowledged (201) consent is there exactly once.
consent_body="{\"facility_code\":\"$A\",\"person_key\":\"$person\",\"visit_kind\":\"訪問診療\",\"first_visit\":\"2024-04-15\",\"identity_method\":\"暗証番号\",\"items\":[\"薬剤情報\"]}"
for w in 1 2 3 4; do
    (for _ in $(seq 300); do
        r=$(call admin POST /api/v1/admin/consents "$consent_body" 2>/dev/null)
        [[ $r == *' 201' ]] && echo "$r" | sed 's/.*"id":"\([0-9a-f]*\)".*/\1/' >> "$work/acked.$w"
    done) &
done
# SIGKILL once at least 20 consents were acknowledged (bounded: 60 s), while the writers are still writing.
for _ in $(seq 600); do
    [ "$(cat "$work"/acked.* 2>/dev/null | wc -l)" -ge 20 ] && break
    sleep 0.1
done
kill -9 "$pid"; wait "$pid" 2>/dev/null; pid=""
wait
cat "$work"/acked.* | sort > "$work/acked"
start
U=https://127.0.0.1:$port
call admin GET "/api/v1/admin/consents?facility_code=$A" | grep -o '"id":"[0-9a-f]*"' | sed 's/"id":"\(.*\)"/\1/' | sort > "$work/stored"
echo "acknowledged before SIGKILL: $(wc -l < "$work/acked")"
check "some consents were acknowledged under load" test "$(wc -l < "$work/acked")" -ge 20
check "every acknowledged consent survived SIGKILL" bash -c "comm -23 '$work/acked' '$work/stored' | wc -l | grep -qx 0"
check "no consent is stored twice" bash -c "uniq -d '$work/stored' | wc -l | grep -qx 0"

kill "$pid"; wait "$pid" 2>/dev/null; pid=""

# The main job's demo data loads into a fresh database, twice without harm, and answers a re-inquiry.
reset_db
"$src/scripts/make-test-pki" "$work/pki" 1340100021 1360100018 > /dev/null
start
U=https://127.0.0.1:$port
check "demo data loads" "$src/scripts/demo-data" "$U" "$work/pki" 2024-07-31
check "demo data loads again (idempotent)" "$src/scripts/demo-data" "$U" "$work/pki" 2024-07-31
check "the demo patient can be re-inquired (continuity from claims, after the window)" bash -c "[[ '$(call A POST /api/v1/reinquiry "$req")' == *'\"allowed\":true'* && '$(call A POST /api/v1/reinquiry "$req")' == *'毎月審査済みレセプト'* ]]"
kill "$pid"; wait "$pid" 2>/dev/null; pid=""

"$kyotaku" serve --host 0.0.0.0 --port 0 --db "$work/db2.sqlite" --tls-dir "$work/pki" > /dev/null 2>&1
check "a non-loopback bind is refused" test $? -eq 2
"$kyotaku" serve --port 0 --db "$work/db3.sqlite" --tls-dir "$work/nowhere" > /dev/null 2>&1
check "missing TLS files are refused" test $? -eq 2

finish
