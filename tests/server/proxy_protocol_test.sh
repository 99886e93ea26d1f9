#!/usr/bin/env bash
# The hand-off's per-client budget behind a real HAProxy (issue 25, outsider finding 1): in TCP passthrough every
# client reaches the server from the balancer's address; with `send-proxy` and the server's proxy_protocol_from,
# the server reads each client's own address from the PROXY protocol header. Clients at 127.0.0.2 and 127.0.0.3
# (curl --interface) through the balancer have a budget each; a connection from the balancer's address without the
# header is closed; a peer that is not the balancer keeps its own address.
# Usage: proxy_protocol_test.sh KYOTAKU SOURCE_DIR
set -uo pipefail
kyotaku=$1 src=$2
here=$(cd "$(dirname "$0")" && pwd)
source "$here/testlib.sh"
"$src/scripts/make-test-pki" "$work/pki" $A > /dev/null
start_server "$work/serve.log" "$kyotaku" serve --tls-dir "$work/pki" --db "$work/k.sqlite" --rules "$src/rules" --port 0 \
    --proxy-protocol-from 127.0.0.1
direct=$U

lb=$(free_port)
printf 'global\n    maxconn 100\ndefaults\n    mode tcp\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n' > "$work/haproxy.cfg"
printf 'frontend f\n    bind 127.0.0.1:%s\n    default_backend b\nbackend b\n    server k0 127.0.0.1:%s send-proxy\n' "$lb" "$port" >> "$work/haproxy.cfg"
haproxy -db -f "$work/haproxy.cfg" > "$work/haproxy.log" 2>&1 &
started_pids+=("$!")
for _ in $(seq 300); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$work/pki/ca.pem" "https://127.0.0.1:$lb/healthz")" = 200 ] && break
    sleep 0.1
done
U=https://127.0.0.1:$lb
setup_facility
url=$(api staff "$U/api/v1/url")
token=${url##*/c/}
token=${token%%\"*}
body="{\"token\":\"$token\",\"visit_kind\":\"訪問診療\",\"identity_method\":\"暗証番号\",\"items\":[\"薬剤情報\"]}"
# start FROM BASE: a hand-off started by a client at address FROM; prints the status (headers in $work/headers).
start() {
    curl -sS --interface "$1" --cacert "$work/pki/ca.pem" -D "$work/headers" -o "$work/answer" -w '%{http_code}' \
        -H 'Content-Type: application/json' -X POST "$2/api/v1/consent/handoff" -d "$body"
}

statuses=""
for _ in 1 2 3 4 5 6; do statuses+="$(start 127.0.0.2 "$U") "; done
echo "client 127.0.0.2 through the balancer: $statuses"
check "a client's 6th open hand-off through the balancer is refused" [ "$statuses" = "201 201 201 201 201 429 " ]
check "with Retry-After" grep -qi '^Retry-After: [0-9]' "$work/headers"
other=$(start 127.0.0.3 "$U")
echo "client 127.0.0.3 through the balancer: $other"
check "another client through the same balancer has its own budget" [ "$other" = 201 ]
check "the balancer's address without the PROXY header is closed" [ "$(start 127.0.0.1 "$direct" 2> /dev/null)" = 000 ]
peer=$(start 127.0.0.4 "$direct")
echo "client 127.0.0.4 directly: $peer"
check "a peer that is not the balancer keeps its own address" [ "$peer" = 201 ]

# A server on an IPv6 socket sees the balancer at ::ffff:127.0.0.1: still the listed 127.0.0.1 (outsider's F4: the
# header was refused from it, so every request through the balancer failed).
start_server "$work/serve6.log" "$kyotaku" serve --tls-dir "$work/pki" --db "$work/k6.sqlite" --rules "$src/rules" \
    --listen '[::ffff:127.0.0.1]:0' --proxy-protocol-from 127.0.0.1
health() { curl -s -o /dev/null -w '%{http_code}' --cacert "$work/pki/ca.pem" "$@" "https://127.0.0.1:$port/healthz"; }
check "on an IPv6 socket the balancer's PROXY header is taken" [ "$(health --haproxy-protocol)" = 200 ]
check "and its connection without the header is closed" [ "$(health 2> /dev/null)" = 000 ]
finish
