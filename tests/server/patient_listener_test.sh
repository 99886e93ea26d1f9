#!/usr/bin/env bash
# The patients' listener (patient_listen) over real TLS: its handshake carries no CertificateRequest — Chrome on
# Android asks the operating system whenever a server sends one, and the patient sees a certificate prompt — while
# the main listener's still does; it serves the consent page, its files and its token routes, and refuses every
# route that needs a certificate, even to a client that has a valid one (it cannot present it there); facility URLs
# point to it; SIGHUP renews both; --check-config shows it and warns when a server beyond loopback has none.
# Usage: patient_listener_test.sh KYOTAKU SOURCE_DIR
set -uo pipefail
kyotaku=$1 src=$2
here=$(cd "$(dirname "$0")" && pwd)
source "$here/testlib.sh"
"$src/scripts/make-test-pki" "$work/pki" $A > /dev/null
db="$work/db.sqlite"
start_server "$work/serve.log" "$kyotaku" serve --port 0 --patient-listen 127.0.0.1:0 --db "$db" --rules "$src/rules" \
    --tls-dir "$work/pki" --test-clock 2024-07-31
ppath=$(sed -n 's/^patients on https:\/\/127\.0\.0\.1:\([0-9][0-9]*\) (.*/\1/p' "$work/serve.log")
check "the patients' listener is announced before the line scripts wait for" test -n "$ppath"
P=https://127.0.0.1:$ppath
check "the patients' listener has a port of its own" test "$ppath" != "$port"

# The handshake as OpenSSL's client sees it (-msg: every handshake message), with and without a client certificate
# offered, in TLS 1.3 and 1.2.
handshake() {  # handshake PORT TLS_VERSION_FLAG [CERT_ARGS…]
    local p=$1 v=$2
    shift 2
    openssl s_client -connect "127.0.0.1:$p" "$v" -CAfile "$work/pki/ca.pem" -verify_return_error -msg "$@" \
        < /dev/null 2>&1
}
admin_cert=(-cert "$work/pki/admin.pem" -key "$work/pki/admin.key")
for v in -tls1_3 -tls1_2; do
    main_out=$(handshake "$port" $v)
    check "main listener $v: the handshake completes" grep -q 'Verify return code: 0 (ok)' <<< "$main_out"
    check "main listener $v: a CertificateRequest, as before" grep -q 'CertificateRequest' <<< "$main_out"
    patient_out=$(handshake "$ppath" $v)
    check "patients' listener $v: the handshake completes" grep -q 'Verify return code: 0 (ok)' <<< "$patient_out"
    check "patients' listener $v: no CertificateRequest" bash -c '! grep -q CertificateRequest <<< "$1"' _ "$patient_out"
    check "patients' listener $v: no client certificate types, no CA names" \
        bash -c '! grep -Eq "Acceptable client certificate CA names|Client Certificate Types" <<< "$1"' _ "$patient_out"
    # A client holding the operator's certificate: never asked, it sends none.
    offered=$(handshake "$ppath" $v "${admin_cert[@]}")
    check "patients' listener $v: a client with a certificate is not asked for it" \
        bash -c '! grep -q CertificateRequest <<< "$1"' _ "$offered"
    check "patients' listener $v: and sends none" bash -c '! grep -Eq ">>> .*Handshake.*, Certificate$" <<< "$1"' _ \
        "$offered"
    sent=$(handshake "$port" $v "${admin_cert[@]}")
    check "main listener $v: the same client sends its certificate (the check above can see one)" \
        grep -Eq '>>> .*Handshake.*, Certificate$' <<< "$sent"
done

# The facility, a patient and the URL, through the main listener with certificates.
setup_facility
url=$(api staff "$U/api/v1/url" | sed 's/.*"url":"\([^"]*\)".*/\1/')
check "the facility URL points to the patients' listener" test "${url%%/c/*}" = "$P"
token=${url##*/c/}
qr=$(api staff -o "$work/qr.png" -w '%{http_code}' "$U/api/v1/url/qr.png")
check "the QR code is still made on the main listener" test "$qr" = 200
check "so does an image of the URL (both built from public_url)" test -s "$work/qr.png"

# The patients' side on the patients' listener, without a certificate.
pget() { curl -sS --max-time 20 --cacert "$work/pki/ca.pem" "$@"; }
pstatus() { pget -o /dev/null -w '%{http_code}' "$@"; }
main_page=$(api none -o /dev/null -w '%{http_code}' "$U/c/$token")
check "the consent page on the patients' listener answers as on the main one ($main_page)" \
    test "$(pstatus "$P/c/$token")" = "$main_page"
check "the consent page is served (200)" test "$main_page" = 200
check "the page's data" bash -c 'grep -q "\"facility_name\":\"A\"" <<< "$1"' _ "$(pget "$P/api/v1/consent/page?token=$token")"
check "the rule bundle the page decides with" test "$(pstatus "$P/web/rules.bundle")" = 200
check "the trusted keys" test "$(pstatus "$P/web/trust.json")" = 200
check "the server's address alone" test "$(pstatus "$P/")" = 200
check "/healthz, for a balancer's check of this listener" test "$(pstatus "$P/healthz")" = 200
challenge=$(pget "${json[@]}" -X POST -d "{\"token\":\"$token\"}" -w ' %{http_code}' "$P/api/v1/consent/challenge")
check "a challenge for the card (201)" test "${challenge##* }" = 201
handoff=$(pget "${json[@]}" -X POST -w ' %{http_code}' "$P/api/v1/consent/handoff" \
    -d "{\"token\":\"$token\",\"visit_kind\":\"訪問診療\",\"identity_method\":\"暗証番号\",\"items\":[\"薬剤情報\"],\"choices\":[]}")
check "a hand-off from the phone (201)" test "${handoff##* }" = 201
code=$(sed -n 's/.*"code":"\([0-9]*\)".*/\1/p' <<< "$handoff")
claim=$(pget "${json[@]}" -X POST -w ' %{http_code}' -d "{\"token\":\"$token\",\"code\":\"$code\"}" \
    "$P/api/v1/consent/handoff/claim")
check "claimed by the staff's device on the same listener (200)" test "${claim##* }" = 200

# Every route that needs a certificate, on the patients' listener: refused, whatever the client holds.
as_p() {  # as_p WHO curl-args…: the patients' listener, offering WHO's certificate (it is never asked for)
    api "$@" --max-time 20 -o /dev/null -w '%{http_code}'
}
check "a facility's re-inquiry: 403" test "$(as_p staff "${json[@]}" -X POST -d "$reinquiry" "$P/api/v1/reinquiry")" = 403
check "the same on the main listener: 200 (the certificate is valid)" \
    test "$(status staff "${json[@]}" -X POST -d "$reinquiry" "$U/api/v1/reinquiry")" = 200
check "the facility URL: 403" test "$(as_p staff "$P/api/v1/url")" = 403
check "環境設定: 403" test "$(as_p manager "$P/api/v1/settings")" = 403
check "the operator's routes: 403" test "$(as_p admin "$P/api/v1/admin/consents?facility_code=$A")" = 403
check "the workbench: 403" test "$(as_p admin "$P/admin/workbench/")" = 403
check "/metrics, with the monitoring certificate: 403" test "$(as_p monitor "$P/metrics")" = 403
check "a history: 403" test "$(as_p staff "$P/api/v1/history/inquiries")" = 403
check "a モバイル端末 session from the URL token: none there (403)" test "$(as_p none "${json[@]}" \
    -H "X-Kyotaku-Url-Token: $token" -X POST -d '{"category":"訪問診療等","item":"薬剤情報"}' \
    "$P/api/v1/medical-info")" = 403
check "the refusal is the one a caller without a certificate gets on the main listener" \
    test "$(as_p staff "$P/api/v1/settings")" = "$(status none "$U/api/v1/settings")"

# The log says which routes the patients' listener answered, by pattern, never the token.
check "no token in the log" bash -c '! grep -qF "$1" "$2"' _ "$token" "$work/serve.log"
check "the log names the listener that answered /c/{token}" \
    grep -q '"route":"/c/{token}".*"listener":"patients"' "$work/serve.log"
check "and the main listener's requests as main" grep -q '"route":"/api/v1/settings".*"listener":"main"' "$work/serve.log"
check "/metrics counts the patients' listener's requests apart" \
    grep -q '^kyotaku_http_requests_total{listener="patients",method="GET",route="/c/{token}",status="200"} ' \
    <<< "$(api monitor "$U/metrics")"

# SIGHUP renews the TLS files of both listeners; the patients' still asks for nothing, the main one still does.
kill -HUP "$server_pid"
for _ in $(seq 100); do grep -q '"tls_reloaded"' "$work/serve.log" && break; sleep 0.1; done
check "SIGHUP reloaded the TLS files" grep -q '"tls_reloaded"' "$work/serve.log"
after=$(handshake "$ppath" -tls1_3)
check "after SIGHUP: the patients' listener completes its handshake" grep -q 'Verify return code: 0 (ok)' <<< "$after"
check "after SIGHUP: still no CertificateRequest" bash -c '! grep -q CertificateRequest <<< "$1"' _ "$after"
check "after SIGHUP: the main listener still asks" grep -q CertificateRequest <<< "$(handshake "$port" -tls1_3)"

# SIGTERM: both listeners close and the server exits 0.
kill -TERM "$server_pid"
wait "$server_pid"
rc=$?
check "SIGTERM: exit 0 ($rc)" test "$rc" = 0
check "SIGTERM: the patients' listener is closed" bash -c '! curl -sS --max-time 5 --cacert "$1" "$2/healthz" 2> /dev/null' _ \
    "$work/pki/ca.pem" "$P"

# --check-config: the setting, where it came from, and the warning for a server beyond loopback without it.
cc() { "$kyotaku" serve --db "$db" --rules "$src/rules" --tls-dir "$work/pki" --check-config "$@" 2>&1; }
out=$(cc --patient-listen 127.0.0.1:0)
check "--check-config prints patient_listen and its origin" grep -q '^patient_listen = 127.0.0.1:0  (--patient-listen)$' <<< "$out"
check "--check-config says what the patients' listener serves" grep -q '^patient_listen: 127.0.0.1:0 serves the consent page' <<< "$out"
out=$(KYOTAKU_PATIENT_LISTEN=127.0.0.1:9 cc)
check "…from the variable" grep -q '^patient_listen = 127.0.0.1:9  (KYOTAKU_PATIENT_LISTEN)$' <<< "$out"
out=$(cc --listen 0.0.0.0:0)
check "beyond loopback without patient_listen: the warning" grep -q '^warning: patient_listen が設定されていません.*set patient_listen for a real deployment' <<< "$out"
check "…which does not stop the server" grep -q '^ok: kyotaku serve would start' <<< "$out"
out=$(cc)
check "on loopback (the demo): no warning" bash -c '! grep -q "patient_listen is not set" <<< "$1"' _ "$out"
check "…and patient_listen = (none…)" grep -q '^patient_listen = (none' <<< "$out"
out=$(cc --listen 127.0.0.1:9443 --patient-listen 127.0.0.1:9443)
check "the same address and port as listen: refused" grep -q '^error: patient_listen 127.0.0.1:9443: ' <<< "$out"
out=$(cc --patient-listen localhost:443)
check "a name, not an address: refused naming the flag" grep -q -- '--patient-listen: patient_listen: ' <<< "$out"
finish
