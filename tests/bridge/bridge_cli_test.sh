#!/usr/bin/env bash
# kyotaku-bridge's command line: help, refusals at start (non-loopback address, no allowed origin, short token),
# the token file (created 0600, reused), the virtual-card daemon answering over the WebSocket it serves, and the
# virtual card's options (both sides of the JPKI application, their secrets).
# Usage: bridge_cli_test.sh KYOTAKU_BRIDGE PKI_DIR
set -uo pipefail
bin=$1 pki=$2
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null; rm -rf "$work"' EXIT
fail=0 count=0
check() {  # check NAME CONDITION...
    count=$((count + 1))
    if eval "${@:2}"; then echo "ok - $1"; else echo "FAIL - $1"; fail=1; fi
}

out=$("$bin" --help 2>&1); check "help names the subcommands" '[[ $out == *serve* && $out == *virtual-card* && $out == *read-certificate* ]]'
for address in 0.0.0.0 192.168.1.10 example.org '[::]'; do
    out=$("$bin" serve --listen "$address:39300" --allow-origin https://a.example --token-file "$work/t" 2>&1); rc=$?
    check "refuses to listen on $address" '[ $rc -ne 0 ] && [[ $out == *"only 127.0.0.0/8 or ::1"* ]]'
done
out=$("$bin" serve --listen 127.0.0.1:0 --token-file "$work/t" 2>&1); rc=$?
check "an allowed origin is required" '[ $rc -ne 0 ] && [[ $out == *allow-origin* ]]'
printf 'short\n' > "$work/short"
out=$("$bin" serve --listen 127.0.0.1:0 --allow-origin https://a.example --token-file "$work/short" 2>&1); rc=$?
check "a short token file is refused" '[ $rc -ne 0 ] && [[ $out == *"shorter than 16"* ]]'

"$bin" serve --listen 127.0.0.1:0 --allow-origin https://a.example --token-file "$work/token" --virtual-card "$pki" > "$work/out" 2> "$work/err" &
pid=$!
for _ in $(seq 1 50); do grep -q "pairing token" "$work/out" 2>/dev/null && break; sleep 0.1; done
check "prints where it listens" 'grep -q "ws://127.0.0.1:[0-9]*/" "$work/out"'
check "token file created with mode 600" '[ "$(stat -c %a "$work/token")" = 600 ]'
token=$(cat "$work/token")
check "the printed token is the file's" 'grep -q "$token" "$work/out"'
kill $pid; wait $pid 2>/dev/null
"$bin" serve --listen 127.0.0.1:0 --allow-origin https://a.example --token-file "$work/token" --virtual-card "$pki" > "$work/out2" 2>&1 &
pid=$!
for _ in $(seq 1 50); do grep -q "pairing token" "$work/out2" 2>/dev/null && break; sleep 0.1; done
check "the token is kept across restarts" 'grep -q "$token" "$work/out2"'
kill $pid; wait $pid 2>/dev/null

out=$("$bin" virtual-card --pki "$pki" --pin 12345 2>&1); rc=$?
check "virtual card refuses a PIN that is not 4 digits" '[ $rc -ne 0 ] && [[ $out == *"4 digits"* ]]'
out=$("$bin" virtual-card --pki "$pki" --sign-password kyotaku1 2>&1); rc=$?
check "virtual card refuses a signature password that is not 6-16 of A-Z 0-9" '[ $rc -ne 0 ] && [[ $out == *"6-16 upper-case letters and digits"* ]]'
out=$("$bin" virtual-card --cert "$work/none.pem" --key "$pki/card-1.key" --ca "$pki/card-ca.pem" 2>&1); rc=$?
check "virtual card names a missing file" '[ $rc -ne 0 ] && [[ $out == *none.pem* ]]'
out=$("$bin" virtual-card --cert "$pki/card-1.pem" --key "$pki/card-1.key" --ca "$pki/card-ca.pem" 2>&1); rc=$?
check "virtual card needs the 署名用 side too, and names what is missing" '[ $rc -ne 0 ] && [[ $out == *"--sign-cert is missing"* ]]'
out=$("$bin" virtual-card --cert "$pki/card-1.pem" --key "$pki/card-1.key" --ca "$pki/card-ca.pem" \
    --sign-cert "$pki/card-1-sign.pem" --sign-key "$pki/card-2-sign.key" --sign-ca "$pki/card-sign-ca.pem" 2>&1); rc=$?
check "virtual card refuses a key that is not its certificate's" '[ $rc -ne 0 ] && [[ $out == *"card-2-sign.key does not belong to"* ]]'
out=$("$bin" virtual-card --pki "$pki" --card 7 2>&1); rc=$?
check "virtual card names the missing test card file" '[ $rc -ne 0 ] && [[ $out == *card-7.pem* ]]'
out=$("$bin" virtual-card --pki "$pki" --cert "$pki/card-1.pem" 2>&1); rc=$?
check "--pki and the file options exclude each other" '[ $rc -ne 0 ] && [[ $out == *excludes* ]]'

echo "$count checks, $([ $fail = 0 ] && echo all passed || echo FAILED)"
exit $fail
