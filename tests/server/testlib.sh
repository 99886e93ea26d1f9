# Shared by the operations tests (source it): a work folder removed at exit, with the processes started by
# start_server stopped; check NAME COMMAND… counting passes and failures; finish prints the count line.
# KEEP=1 keeps the work folder for a look after a failure. free_port prints a port no one listens on now
# (scripts/lib/ports.sh).
work=$(mktemp -d)
started_pids=()
on_exit=""  # a command the test adds to the clean-up (run before the folder is removed)
cleanup() {
    for p in "${started_pids[@]}"; do kill "$p" 2> /dev/null && wait "$p" 2> /dev/null; done
    [ -n "$on_exit" ] && eval "$on_exit"
    if [ -n "${KEEP:-}" ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
# check NAME COMMAND… and finish (tests/lib/check.sh).
source "$(dirname "${BASH_SOURCE[0]}")/../lib/check.sh"
# start_server LOG COMMAND…: runs a `kyotaku serve` command in the background (standard output to LOG, the
# JSON log; standard error to LOG.err) and waits for its "listening on" line (scripts/lib/serve.sh); sets
# server_pid, port and U. Ends the test when the server does not start.
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib/serve.sh"
# free_port: a port no one listens on now (scripts/lib/ports.sh).
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib/ports.sh"
start_server() {
    local log=$1
    shift
    "$@" > "$log" 2> "$log.err" &
    server_pid=$!
    started_pids+=("$server_pid")
    port=$(listening_port "$log" "$server_pid") || exit 1
    U=https://127.0.0.1:$port
}
stop_server() {
    kill "$server_pid" 2> /dev/null
    wait "$server_pid" 2> /dev/null
}
# api WHO CURL_ARGS…: curl over mutual TLS to $U as WHO — admin, monitor, staff (facility $A's 職員), manager
# (its 管理者) or none — with the test PKI in $work/pki. "${json[@]}" adds the JSON content type.
api() {
    local who=$1
    shift
    local cert=()
    case $who in
        admin | monitor) cert=(--cert "$work/pki/$who.pem" --key "$work/pki/$who.key") ;;
        staff) cert=(--cert "$work/pki/facility-$A.pem" --key "$work/pki/facility-$A.key") ;;
        manager) cert=(--cert "$work/pki/facility-$A-manager.pem" --key "$work/pki/facility-$A-manager.key") ;;
    esac
    curl -sS --cacert "$work/pki/ca.pem" "${cert[@]}" "$@"
}
json=(-H 'Content-Type: application/json')
status() { local who=$1; shift; api "$who" -o /dev/null -w '%{http_code}' "$@"; }
# setup_facility: facility $A (医科) with 訪問診療等機能 on, one insured person ($person) and A's consent for them
# (訪問診療, first visit 2024-04-15, 薬剤情報).
setup_facility() {
    api admin "${json[@]}" -X POST "$U/api/v1/admin/facilities" -d "{\"code\":\"$A\",\"name\":\"A\",\"kind\":\"医科\"}" > /dev/null
    api manager "${json[@]}" -X PUT "$U/api/v1/settings" -d '{"terms_agreed":true,"home_visit_enabled":true}' > /dev/null
    person=$(api admin "${json[@]}" -X POST "$U/api/v1/admin/insured-persons" -d '{"insurer_number":"06132013","symbol":"123","number":"4567","branch":"01","birthdate":"1940-05-01","name":"在宅 花子","burden_ratio":"010","valid_from":"2020-04-01"}' | sed 's/.*"person_key":"\([0-9a-f]*\)".*/\1/')
    consent_body="{\"facility_code\":\"$A\",\"person_key\":\"$person\",\"visit_kind\":\"訪問診療\",\"first_visit\":\"2024-04-15\",\"identity_method\":\"暗証番号\",\"items\":[\"薬剤情報\"]}"
    api admin "${json[@]}" -X POST "$U/api/v1/admin/consents" -d "$consent_body" > /dev/null
}
A=0110113719
reinquiry='{"category":"訪問診療等","insurer_number":"06132013","symbol":"123","number":"4567","branch":"01","birthdate":"1940-05-01"}'
