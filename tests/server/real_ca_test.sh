#!/usr/bin/env bash
# Certificates as docs/operations.md sets them up for production: the server's certificate issued by an
# intermediate of a CA the clients already trust (as a public CA issues it), installed with its chain; the
# facilities' client certificates from the operator's own private CA. OpenSSL plays both CAs here.
# Usage: real_ca_test.sh KYOTAKU SOURCE_DIR
set -uo pipefail
kyotaku=$(realpath "$1") src=$(realpath "$2")
source "$(dirname "$0")/testlib.sh"
cd "$work"
ossl() { openssl "$@" 2> /dev/null; }
ext() { printf '%s\n' "$@" > ext.cnf; }
# The "public" CA: a root the clients trust and an intermediate that issues server certificates.
ossl req -x509 -newkey rsa:2048 -nodes -keyout root.key -out root.pem -days 3650 -subj "/O=Public Root/CN=Public Root CA"
ossl req -newkey rsa:2048 -nodes -keyout inter.key -out inter.csr -subj "/O=Public Root/CN=Public Issuing CA"
ext "basicConstraints=critical,CA:true,pathlen:0" "keyUsage=critical,keyCertSign,cRLSign"
ossl x509 -req -in inter.csr -CA root.pem -CAkey root.key -CAcreateserial -out inter.pem -days 1825 -extfile ext.cnf
# The operator's CSR for the server (the key never leaves the server), signed by the intermediate for 20 days.
mkdir tls
ossl req -newkey rsa:2048 -nodes -keyout tls/server.key -out server.csr -subj "/CN=kyotaku.test"
ext "subjectAltName=DNS:kyotaku.test" "extendedKeyUsage=serverAuth" "keyUsage=critical,digitalSignature,keyEncipherment"
ossl x509 -req -in server.csr -CA inter.pem -CAkey inter.key -CAcreateserial -out server.crt -days 20 -extfile ext.cnf
cat server.crt inter.pem > tls/server.pem  # the certificate, then its chain
# The operator's private CA for client certificates: facilities and the administrator.
ossl req -x509 -newkey rsa:2048 -nodes -keyout client-ca.key -out tls/ca.pem -days 3650 -subj "/O=kyotaku operator/CN=kyotaku client CA"
client() {  # client NAME CN CA CAKEY
    ossl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "/CN=$2"
    ext "extendedKeyUsage=clientAuth"
    ossl x509 -req -in "$1.csr" -CA "$3" -CAkey "$4" -CAcreateserial -out "$1.pem" -days 825 -extfile ext.cnf
}
client admin kyotaku-admin tls/ca.pem client-ca.key
client facility "$A" tls/ca.pem client-ca.key
client stranger "$A" inter.pem inter.key  # a certificate with the facility's code from the public CA: not ours

out=$("$kyotaku" serve --tls-dir tls --rules "$src/rules" --db kyotaku.sqlite --check-config 2>&1); rc=$?
check "--check-config accepts the chain" test $rc -eq 0
check "and names the server certificate" grep -q "tls: server certificate .*CN=kyotaku.test" <<< "$out"
check "and warns that it expires within 30 days" grep -q "expires within 30 days" <<< "$out"
check "and that card-ca.pem is missing" grep -q "card-ca.pem .*missing" <<< "$out"
cp tls/server.key other.key
ossl req -newkey rsa:2048 -nodes -keyout tls/server.key -out /dev/null -subj "/CN=x"
out=$("$kyotaku" serve --tls-dir tls --rules "$src/rules" --db kyotaku.sqlite --check-config 2>&1); rc=$?
check "a key that does not match the certificate is refused" test $rc -eq 1
check "saying so" grep -q "does not match" <<< "$out"
cp other.key tls/server.key

start_server serve.log "$kyotaku" serve --tls-dir tls --rules "$src/rules" --db kyotaku.sqlite --port 0
U=https://kyotaku.test:$port
to=(--resolve "kyotaku.test:$port:127.0.0.1" --cacert root.pem -sS)
check "a client trusting only the root reaches the server by its name" test "$(curl "${to[@]}" -o /dev/null -w '%{http_code}' "$U/healthz")" = 200
check "the server sends its chain" bash -c "openssl s_client -connect 127.0.0.1:$port -servername kyotaku.test -CAfile root.pem < /dev/null 2>/dev/null | grep -q 'Verify return code: 0'"
check "the administrator from the private CA" test "$(curl "${to[@]}" --cert admin.pem --key admin.key -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
    -X POST "$U/api/v1/admin/facilities" -d "{\"code\":\"$A\",\"name\":\"A\",\"kind\":\"医科\"}")" = 201
check "a facility from the private CA" test "$(curl "${to[@]}" --cert facility.pem --key facility.key -o /dev/null -w '%{http_code}' "$U/api/v1/settings")" = 200
s=$(curl "${to[@]}" --cert stranger.pem --key stranger.key -o /dev/null -w '%{http_code}' "$U/api/v1/settings" 2>/dev/null)
check "the same code from another CA is nobody" bash -c "[ '$s' = 000 ] || [ '$s' = 403 ]"

finish
