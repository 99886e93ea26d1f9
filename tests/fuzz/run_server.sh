#!/usr/bin/env bash
# Runs the server's request-path fuzz target (tests/fuzz/http_request_fuzz.cpp; clang's libFuzzer + AddressSanitizer,
# UBSan, built by the build with the engine's and the server's own targets: tests/fuzz/CMakeLists.txt) for a fixed
# number of seconds, seeded with requests of every kind of route. Usage: run_server.sh BIN SRC OUT SECONDS
set -euo pipefail
bin=$1 src=$2 out=$3 seconds=$4
mkdir -p "$out/corpus"

# Seeds: the first byte picks the caller (0 nobody, 1 operator, 2 職員 電子カルテ端末, 3 管理者, 4 and 5 facility B).
seed() {  # seed NAME CALLER "REQUEST-LINE\r\nHEADERS" [BODY]: Content-Length is added
    local body=${4:-}
    { printf '%b' "\\x$1"; printf '%b' "$3"; printf 'Content-Length: %s\r\n\r\n' "$(printf '%s' "$body" | wc -c)"; printf '%s' "$body"; } > "$out/corpus/$2"
}
card='"insurer_number":"06132013","symbol":"123","number":"4567","branch":"01","birthdate":"1940-05-01"'
json='Content-Type: application/json\r\n'
seed 00 health 'GET /healthz HTTP/1.1\r\nHost: x\r\n'
seed 03 reinquiry "POST /api/v1/reinquiry HTTP/1.1\r\n$json" "{\"category\":\"訪問診療等\",$card}"
seed 03 by_reference "POST /api/v1/reinquiry HTTP/1.1\r\n$json" '{"category":"訪問診療等","reference_number":"R-1","query_date":"2024-07-01"}'
seed 02 viewing "POST /api/v1/medical-info HTTP/1.1\r\n$json" "{\"category\":\"訪問診療等\",\"item\":\"薬剤情報\",$card}"
seed 00 mobile "POST /api/v1/medical-info HTTP/1.1\r\nX-Kyotaku-Url-Token: @TOKEN@\r\n$json" "{\"category\":\"訪問診療等\",\"item\":\"薬剤情報\",$card}"
seed 00 challenge "POST /api/v1/consent/challenge HTTP/1.1\r\n$json" '{"token":"@TOKEN@"}'
seed 00 register "POST /api/v1/consent/register HTTP/1.1\r\n$json" \
    '{"token":"@TOKEN@","challenge_id":"0","certificate":"AAAA","identity_method":"目視確認","visit_kind":"訪問診療","items":["薬剤情報"],"visual_passcode":"1"}'
seed 00 page 'GET /c/@TOKEN@ HTTP/1.1\r\n'
seed 00 page_info 'GET /api/v1/consent/page?token=@TOKEN@ HTTP/1.1\r\n'
seed 00 web 'GET /web/rules.bundle HTTP/1.1\r\n'
seed 03 settings "PUT /api/v1/settings HTTP/1.1\r\n$json" '{"viewing_items":{"特定健診情報":false},"online_enabled":true}'
seed 01 admin "POST /api/v1/admin/facilities HTTP/1.1\r\n$json" '{"code":"1310000007","name":"C","kind":"歯科"}'
seed 01 clock "POST /api/v1/admin/clock HTTP/1.1\r\n$json" '{"today":"R6.8.1"}'
seed 03 devices "POST /api/v1/devices HTTP/1.1\r\n$json" '{"name":"t","kind":"タブレット","ownership":"施設所有","permitted_staff":["a"]}'
seed 03 fallback "POST /api/v1/fallback-verifications HTTP/1.1\r\n$json" \
    "{\"method\":\"マイナポータル\",\"reason\":\"停電\",\"verified_on\":\"2024-07-30\",\"burden_ratio\":\"010\",$card}"
seed 03 withdrawal "POST /api/v1/withdrawal/lookup HTTP/1.1\r\n$json" "{$card}"
seed 03 reference "POST /api/v1/reference-numbers HTTP/1.1\r\n$json" "{\"reference_number\":\"R-1\",$card}"
seed 03 reference_csv 'POST /api/v1/reference-numbers HTTP/1.1\r\nContent-Type: text/csv\r\n' $'R-2,06132013,123,4567,01,1940-05-01\n'
seed 03 claims 'POST /api/v1/claim-reviews HTTP/1.1\r\nContent-Type: text/csv\r\n' $'0110113719,06132013,123,4567,01,1940-05-01,2024-06,2024-07-20\n'
seed 03 batch 'POST /api/v1/batch/reinquiry?category=%E8%A8%AA%E5%95%8F%E8%A8%BA%E7%99%82%E7%AD%89&file_identifier=f HTTP/1.1\r\nContent-Type: text/csv\r\n' \
    $'arbitrary_identifier,insurer_number,symbol,number,branch,birthdate\nr1,06132013,123,4567,01,1940-05-01\n'
seed 03 xml 'POST /api/v1/oqs/OQSmuquc01req HTTP/1.1\r\nContent-Type: application/xml\r\n' \
    '<?xml version="1.0" encoding="UTF-8"?><XmlMsg><MessageHeader><QualificationConfirmationDate>20240731</QualificationConfirmationDate><MedicalInstitutionCode>0110113719</MedicalInstitutionCode><ArbitraryFileIdentifier>f</ArbitraryFileIdentifier></MessageHeader><MessageBody><QualificationConfirmSearchInfo><InsurerNumber>06132013</InsurerNumber><InsuredIdentificationNumber>4567</InsuredIdentificationNumber><Birthdate>19400501</Birthdate><ArbitraryIdentifier>患者</ArbitraryIdentifier></QualificationConfirmSearchInfo></MessageBody></XmlMsg>'
seed 03 imm 'POST /api/v1/oqs/OQSsiimm01req HTTP/1.1\r\nContent-Type: application/xml\r\n' \
    '<XmlMsg><MessageHeader><MedicalInstitutionCode>0110113719</MedicalInstitutionCode></MessageHeader><MessageBody><ReferenceNumberRegistrationInfo><ReferenceNumber>&#x41;</ReferenceNumber><InsurerNumber>06132013</InsurerNumber><InsuredIdentificationNumber>4567</InsuredIdentificationNumber></ReferenceNumberRegistrationInfo></MessageBody></XmlMsg>'
seed 03 hvq 'POST /api/v1/oqs/OQSmuhvq01req HTTP/1.1\r\nContent-Type: application/xml\r\n' \
    '<XmlMsg><MessageHeader><QualificationConfirmationDate>20240731</QualificationConfirmationDate><MedicalInstitutionCode>0110113719</MedicalInstitutionCode></MessageHeader><MessageBody><MedicalTreatmentFlag>2</MedicalTreatmentFlag><ConsentDateFrom>20240101</ConsentDateFrom><ConsentDateTo>20240731</ConsentDateTo></MessageBody></XmlMsg>'
seed 03 history 'GET /api/v1/history/inquiries?from=2024-01-01&to=%FF HTTP/1.1\r\n'
seed 04 other_facility "POST /api/v1/reinquiry HTTP/1.1\r\n$json" "{\"category\":\"訪問診療等\",$card}"

cd "$out"
# -timeout: an input that takes longer than 10 s is reported as a hang. The World (rules, database) is built once.
source "$src/tests/fuzz/report.sh"
fuzz_run http_request_fuzz http_request_fuzz.log 15 \
    "$bin/http_request_fuzz" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=16384 -print_final_stats=1 corpus
