#!/usr/bin/env bash
# The folder relay against a real server over mutual TLS (a failed send is retried after 100 ms here, then 200 ms …: the
# backoff itself is relay_security.sh's unwritable_res). Usage: relay_e2e.sh KYOTAKU SOURCE_DIR
set -uo pipefail
kyotaku=$1 src=$2
# The work folder, check and finish (testlib.sh).
source "$src/tests/server/testlib.sh"
spid="" rpid="" opid=""
on_exit='for p in "$spid" "$rpid" "$opid"; do [ -z "$p" ] || kill "$p" 2> /dev/null; done'
A=0110113719
"$src/scripts/make-test-pki" "$work/pki" $A > /dev/null
"$kyotaku" serve --port 0 --db "$work/db.sqlite" --rules "$src/rules" --tls-dir "$work/pki" --test-clock 2024-07-31 > "$work/serve.log" 2>&1 &
spid=$!
source "$src/scripts/lib/serve.sh"
port=$(listening_port "$work/serve.log" "$spid") || exit 1
U=https://127.0.0.1:$port
admin=(--cacert "$work/pki/ca.pem" --cert "$work/pki/admin.pem" --key "$work/pki/admin.key" -sS -H 'Content-Type: application/json')
fac=(--cacert "$work/pki/ca.pem" --cert "$work/pki/facility-$A.pem" --key "$work/pki/facility-$A.key" -sS -H 'Content-Type: application/json')
curl "${admin[@]}" -X POST "$U/api/v1/admin/facilities" -d "{\"code\":\"$A\",\"name\":\"A\",\"kind\":\"医科\"}" > /dev/null
curl --cacert "$work/pki/ca.pem" --cert "$work/pki/facility-$A-manager.pem" --key "$work/pki/facility-$A-manager.key" -sS -H 'Content-Type: application/json' \
    -X PUT "$U/api/v1/settings" -d '{"terms_agreed":true,"home_visit_enabled":true}' > /dev/null
person=$(curl "${admin[@]}" -X POST "$U/api/v1/admin/insured-persons" -d '{"insurer_number":"06132013","symbol":"123","number":"4567","branch":"01","birthdate":"1940-05-01","name":"在宅 花子","burden_ratio":"010","valid_from":"2020-04-01"}' | sed 's/.*"person_key":"\([0-9a-f]*\)".*/\1/')
curl "${admin[@]}" -X POST "$U/api/v1/admin/consents" -d "{\"facility_code\":\"$A\",\"person_key\":\"$person\",\"visit_kind\":\"訪問診療\",\"first_visit\":\"2024-04-15\",\"identity_method\":\"暗証番号\",\"items\":[\"薬剤情報\"]}" > /dev/null

dir=$work/exchange
start_relay() {
    "$kyotaku" relay --dir "$dir" --server "$U" --ca "$work/pki/ca.pem" --cert "$work/pki/facility-$A.pem" --key "$work/pki/facility-$A.key" \
        --settle-ms 300 --retry-ms 100 >> "$work/relay.log" 2>&1 &
    rpid=$!
    for _ in $(seq 50); do [ -d "$dir/req" ] && break; sleep 0.1; done
}
wait_for() { for _ in $(seq 150); do [ -f "$1" ] && return 0; sleep 0.1; done; return 1; }
start_relay

# A request written in two halves, with a pause longer than the settle time: never read half-written.
req='<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<XmlMsg><MessageHeader><QualificationConfirmationDate>20240701</QualificationConfirmationDate><MedicalInstitutionCode>0110113719</MedicalInstitutionCode><ArbitraryFileIdentifier>relay</ArbitraryFileIdentifier></MessageHeader>
<MessageBody><QualificationConfirmSearchInfo><InsurerNumber>06132013</InsurerNumber><InsuredCardSymbol>123</InsuredCardSymbol><InsuredIdentificationNumber>4567</InsuredIdentificationNumber><InsuredBranchNumber>01</InsuredBranchNumber><Birthdate>19400501</Birthdate><ArbitraryIdentifier>x1</ArbitraryIdentifier></QualificationConfirmSearchInfo>
</MessageBody></XmlMsg>'
f1=$dir/req/OQSmuquc01req202407010001.xml
printf '%s' "${req:0:200}" | iconv -f UTF-8 -t UTF-8 > "$f1"
sleep 1.5
check "a half-written file is not answered" test ! -e "$dir/res/OQSmuquc01res202407010001.xml"
printf '%s' "${req:200}" >> "$f1"
check "the completed file is answered under the matching name" wait_for "$dir/res/OQSmuquc01res202407010001.xml"
rn=$(grep -o '<ReceptionNumber>[0-9]*' "$dir/res/OQSmuquc01res202407010001.xml" | sed 's/<ReceptionNumber>//')
check "the upload result carries a reception number" test -n "$rn"
check "the answered request is moved to done" test -f "$dir/done/OQSmuquc01req202407010001.xml"
sleep 1.5  # the server's worker answers the batch
printf '<?xml version="1.0" encoding="UTF-8"?><XmlMsg><MessageHeader><MedicalInstitutionCode>%s</MedicalInstitutionCode></MessageHeader><MessageBody><ReceptionNumber>%s</ReceptionNumber></MessageBody></XmlMsg>\n' "$A" "$rn" > "$dir/req/.tmp"
mv "$dir/req/.tmp" "$dir/req/OQSmuquc02req202407010001.xml"
check "the download is answered" wait_for "$dir/res/OQSmuquc02res202407010001.xml"
check "the download carries the eligibility" grep -q "<QualificationValidity>1</QualificationValidity>" "$dir/res/OQSmuquc02res202407010001.xml"

# A file the relay cannot send and a broken file both get an error result, never silence.
printf '<XmlMsg><MessageHeader/></XmlMsg>\n' > "$dir/req/OQSxxxxx01req202407010002.xml"
check "an unsupported file gets an error result" wait_for "$dir/res/OQSxxxxx01res202407010002.xml"
check "the error result says so" grep -q "EKY0901" "$dir/res/OQSxxxxx01res202407010002.xml"
printf '<XmlMsg><oops></XmlMsg>\n' > "$dir/req/OQSmuquc01req202407010003.xml"
check "a broken file gets an error result" wait_for "$dir/res/OQSmuquc01res202407010003.xml"
# A file larger than the server takes (16 MiB): the relay asks first (Expect: 100-continue), so the server's 413 is
# its answer — reported in the error result — instead of a connection reset while the megabytes were being sent.
{ printf '%s' "${req:0:200}"; printf '<!--'; head -c $((17 << 20)) /dev/zero | tr '\0' x; printf -- '-->%s' "${req:200}"; } > "$dir/req/.big"
mv "$dir/req/.big" "$dir/req/OQSmuquc01req202407010006.xml"
check "a file too large for the server gets an error result" wait_for "$dir/res/OQSmuquc01res202407010006.xml"
check "which gives the server's answer (413, too large), not a broken connection" \
    bash -c "grep -q '413' '$dir/res/OQSmuquc01res202407010006.xml' && ! grep -qi 'broken pipe\|reset' '$dir/res/OQSmuquc01res202407010006.xml'"
check "every result is well-formed XML (xmllint)" xmllint --noout --nonet "$dir"/res/*.xml

# Restarting never answers twice: a request whose result exists (the relay died before moving it) is only moved.
kill "$rpid"; wait "$rpid" 2>/dev/null
before=$(md5sum "$dir/res/OQSmuquc01res202407010001.xml")
cp "$dir/done/OQSmuquc01req202407010001.xml" "$dir/req/"
start_relay
for _ in $(seq 50); do [ -f "$dir/req/OQSmuquc01req202407010001.xml" ] || break; sleep 0.1; done
check "after a restart the request is not sent again" test "$(md5sum "$dir/res/OQSmuquc01res202407010001.xml")" = "$before"
check "one answer per upload in the relay log" test "$(grep -c 'OQSmuquc01req202407010001.xml →' "$work/relay.log")" = 1

# A server whose certificate does not name the address the relay was given (here a server on 127.0.0.2 with the
# test certificate for 127.0.0.1 and localhost, from the same CA) is not the server: nothing is sent to it.
"$kyotaku" serve --listen 127.0.0.2:0 --db "$work/other.sqlite" --rules "$src/rules" --tls-dir "$work/pki" --test-clock 2024-07-31 > "$work/other.log" 2>&1 &
opid=$!
oport=$(listening_port "$work/other.log" "$opid") || exit 1
other=$work/other-exchange
"$kyotaku" relay --dir "$other" --server "https://127.0.0.2:$oport" --ca "$work/pki/ca.pem" --cert "$work/pki/facility-$A.pem" \
    --key "$work/pki/facility-$A.key" --settle-ms 300 --retry-ms 100 >> "$work/other-relay.log" 2>&1 &
orpid=$!
for _ in $(seq 50); do [ -d "$other/req" ] && break; sleep 0.1; done
cp "$dir/done/OQSmuquc01req202407010001.xml" "$other/req/OQSmuquc01req202407010005.xml"
check "a server not named by its certificate gets nothing: an error result" wait_for "$other/res/OQSmuquc01res202407010005.xml"
check "saying it could not reach the server" grep -q "could not reach the server" "$other/res/OQSmuquc01res202407010005.xml"
check "the relay log names the certificate check" grep -qi "certificate verify failed" "$work/other-relay.log"
check "the other server received no request" bash -c "! grep -q '/api/v1/oqs/' '$work/other.log'"
kill "$orpid" "$opid"; wait "$orpid" "$opid" 2>/dev/null

# The server is down: after a few attempts the file gets an error result.
kill "$spid"; wait "$spid" 2>/dev/null; spid=""
cp "$dir/done/OQSmuquc01req202407010001.xml" "$dir/req/OQSmuquc01req202407010004.xml"
check "an unreachable server gives an error result" wait_for "$dir/res/OQSmuquc01res202407010004.xml"
check "saying it could not reach the server" grep -q "could not reach the server" "$dir/res/OQSmuquc01res202407010004.xml"

finish
