#!/usr/bin/env bash
# Issue 22 item 6: a stranger holding the facility URL (it is on paper in patients' homes) cannot stop a patient's
# registration. Against a real server, over real connections: a stranger at 127.0.0.2 spends its budgets — wrong
# 目視確認 passcodes until it is held back, then challenges until it is held back — and keeps asking in the background
# while a patient at 127.0.0.3 gets a challenge and registers with the right passcode. Before, 5 wrong passcodes from
# anyone made the facility's passcodes unusable and 30 challenges a minute from anyone refused everyone's.
# With KYOTAKU_TEST_PG (tests/server/with_postgres.sh): two servers over one PostgreSQL database, the stranger's
# requests alternating between them, and the budgets still exact.
# Usage: consent_limits_test.sh KYOTAKU SOURCE_DIR
set -uo pipefail
kyotaku=$1 src=$2
here=$(cd "$(dirname "$0")" && pwd)
source "$here/testlib.sh"
"$src/scripts/make-test-pki" "$work/pki" $A > /dev/null
servers=()
if [ -n "${KYOTAKU_TEST_PG:-}" ]; then
    psql -q "$KYOTAKU_TEST_PG" -c 'DROP SCHEMA public CASCADE; CREATE SCHEMA public;' > /dev/null
    for i in 0 1; do
        start_server "$work/serve$i.log" "$kyotaku" serve --port 0 --db "$KYOTAKU_TEST_PG" --key-file "$work/kyotaku.key" \
            --rules "$src/rules" --tls-dir "$work/pki" --test-clock 2024-10-02
        servers+=("$U")
    done
else
    start_server "$work/serve.log" "$kyotaku" serve --port 0 --db "$work/k.sqlite" --rules "$src/rules" --tls-dir "$work/pki" \
        --test-clock 2024-10-02
    servers+=("$U")
fi
echo "servers: ${servers[*]}"
setup_facility
certificate=$(openssl x509 -in "$work/pki/card-1.pem" -outform DER | base64 -w0)
api admin "${json[@]}" -X POST "$U/api/v1/admin/cards" -d "{\"person_key\":\"$person\",\"certificate\":\"$certificate\"}" > /dev/null
token=$(api staff "$U/api/v1/url" | sed 's/.*\/c\/\([A-Za-z0-9_-]*\)".*/\1/')
right=$(api staff -X POST "$U/api/v1/visual-passcode" | sed 's/.*"passcode":"\([0-9]*\)".*/\1/')
check "the test has a token and a passcode" test -n "$token" -a ${#right} = 8
wrong=$(printf '%08d' $(((10#$right + 1) % 100000000)))

# server I: the servers in turn.
server() { echo "${servers[$(($1 % ${#servers[@]}))]}"; }
# as FROM URL PATH BODY: a request of the consent page from address FROM; prints the status (the answer in
# $work/answer.FROM, its headers in $work/headers.FROM).
as() {
    curl -sS --interface "$1" --cacert "$work/pki/ca.pem" -D "$work/headers.$1" -o "$work/answer.$1" -w '%{http_code}' \
        "${json[@]}" -X POST "$2$3" -d "$4"
}
challenge() { as "$1" "$2" /api/v1/consent/challenge "{\"token\":\"$token\"}"; }
challenge_id() { sed -n 's/.*"challenge_id":"\([0-9a-f]*\)".*/\1/p' "$work/answer.$1"; }
# register FROM URL CHALLENGE_ID PASSCODE: a 目視確認 registration; prints its status.
register() {
    as "$1" "$2" /api/v1/consent/register "{\"token\":\"$token\",\"challenge_id\":\"$3\",\"certificate\":\"$certificate\",\"identity_method\":\"目視確認\",\"visit_kind\":\"訪問診療\",\"items\":[\"薬剤情報\"],\"visual_passcode\":\"$4\"}"
}

# The stranger's challenges: 30 this minute (kept for its guesses), then 429 with Retry-After.
ids=() statuses=""
for i in $(seq 31); do
    statuses+="$(challenge 127.0.0.2 "$(server "$i")") "
    [ "$i" -le 30 ] && ids+=("$(challenge_id 127.0.0.2)")
done
check "the stranger gets 30 challenges a minute, then 429" [ "$statuses" = "$(printf '201 %.0s' $(seq 30))429 " ]
check "with Retry-After" grep -qi '^Retry-After: [0-9]' "$work/headers.127.0.0.2"
# Its wrong passcodes: 5 are compared and refused, the 6th is held back (429, Retry-After) and not compared.
guesses=""
for i in $(seq 0 5); do guesses+="$(register 127.0.0.2 "$(server "$i")" "${ids[i]}" "$wrong") "; done
echo "the stranger's wrong passcodes: $guesses"
check "the stranger's 5 wrong passcodes are refused, the 6th held back" [ "$guesses" = "400 400 400 400 400 429 " ]
check "naming visual_passcode" grep -q '"field":"visual_passcode"' "$work/answer.127.0.0.2"
# Until the first wrong one is 15 minutes old (the server's clock runs: a little less than 900 s by now).
retry=$(tr -d '\r' < "$work/headers.127.0.0.2" | sed -n 's/^[Rr]etry-[Aa]fter: //p')
check "with Retry-After, at most 15 minutes ($retry s)" test "${retry:-0}" -ge 1 -a "${retry:-0}" -le 900

# Side by side: the stranger keeps asking — a challenge and a wrong passcode, 20 times — while the patient at another
# address gets a challenge and registers with the right passcode.
(
    for i in $(seq 6 25); do
        challenge 127.0.0.2 "$(server "$i")" >> "$work/flood"
        echo >> "$work/flood"
        register 127.0.0.2 "$(server "$((i + 1))")" "${ids[i]}" "$wrong" >> "$work/flood"
        echo >> "$work/flood"
    done
) &
flood=$!
c=$(challenge 127.0.0.3 "$(server 1)")
patient="$c:$(register 127.0.0.3 "$(server 0)" "$(challenge_id 127.0.0.3)" "$right")"
wait "$flood"
echo "the patient, meanwhile: $patient; the stranger meanwhile (count, status):$(sort "$work/flood" | uniq -c | tr -s ' \n' ' ')"
check "the patient registers with the right passcode while the stranger is held back" [ "$patient" = "201:201" ]
check "every request of the stranger meanwhile was held back (429)" [ "$(grep -c '^429$' "$work/flood")" = 40 ]
check "the facility's office terminal still gets challenges" [ "$(api staff -o /dev/null -w '%{http_code}' "${json[@]}" -X POST "$U/api/v1/consent/challenge" -d "{\"token\":\"$token\"}")" = 201 ]
finish
