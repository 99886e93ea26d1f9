#!/usr/bin/env bash
# The folder relay against a hostile folder and against crashes (issue 10, finding 7), one case per finding:
#   tmp_symlink         res/.NAME.tmp (and res/NAME) planted as symlinks to files outside: never written through
#   req_not_regular     a symlink, a FIFO and a folder in req/ are skipped (and reported), never sent
#   symlink_loop        a symlink loop in req/ is reported and the relay goes on
#   full_disk           a full disk when recording or when writing the answer: reported, the relay goes on, and
#                       once there is room the answer is written — one batch job, never two
#   restart_after_send  the relay killed after the server answered and before it wrote the answer: restarted, it
#                       gets the same answer (Idempotency-Key), and the server made one batch job
# Usage: relay_security.sh CASE KYOTAKU SOURCE_DIR   (KYOTAKU_RELAY_BIN: another kyotaku for the relay, e.g. an older one)
set -uo pipefail
case=$1 kyotaku=$2 src=$3
relay_bin=${KYOTAKU_RELAY_BIN:-$kyotaku}
py=/usr/bin/python3
here=$(cd "$(dirname "$0")" && pwd)

if [ "$case" = full_disk ] && [ -z "${KYOTAKU_IN_NAMESPACE:-}" ]; then
    # A small tmpfs for the exchange folder, mounted in a mount namespace of our own (gone when we are).
    export KYOTAKU_IN_NAMESPACE=1
    if [ "$(id -u)" = 0 ]; then exec unshare -m --propagation private bash "$0" "$@"; fi
    exec unshare -rm --propagation private bash "$0" "$@"
fi

source "$here/testlib.sh"
wait_for() { for _ in $(seq 200); do [ -e "$1" ] && return 0; sleep 0.05; done; return 1; }
wait_log() { for _ in $(seq 200); do grep -q "$1" "$work/relay.log" && return 0; sleep 0.05; done; return 1; }
alive() { kill -0 "$rpid" 2>/dev/null; }

"$src/scripts/make-test-pki" "$work/pki" $A > /dev/null
start_server "$work/serve.log" "$kyotaku" serve --port 0 --db "$work/db.sqlite" --rules "$src/rules" --tls-dir "$work/pki"
api admin "${json[@]}" -X POST "$U/api/v1/admin/facilities" -d "{\"code\":\"$A\",\"name\":\"A\",\"kind\":\"医科\"}" > /dev/null
api manager "${json[@]}" -X PUT "$U/api/v1/settings" -d '{"terms_agreed":true,"home_visit_enabled":true}' > /dev/null
jobs() { sqlite3 "$work/db.sqlite" "SELECT COUNT(*) FROM batch_jobs" 2>> "$work/sqlite3.err"; }
reception() { sqlite3 "$work/db.sqlite" "SELECT reception_number FROM batch_jobs"; }

dir=$work/exchange
mkdir -p "$dir"
if [ "$case" = full_disk ]; then
    mount -t tmpfs -o size=256k tmpfs "$dir" || { echo "cannot mount a tmpfs"; exit 1; }
    on_exit="umount '$dir'"
fi
mkdir -p "$dir/req" "$dir/res"
request() {  # request N: a complete OQSmuquc01req
    printf '<?xml version="1.0" encoding="UTF-8"?>\n<XmlMsg><MessageHeader><QualificationConfirmationDate>20240701</QualificationConfirmationDate><MedicalInstitutionCode>%s</MedicalInstitutionCode><ArbitraryFileIdentifier>f%s</ArbitraryFileIdentifier></MessageHeader><MessageBody><QualificationConfirmSearchInfo><InsurerNumber>06132013</InsurerNumber><InsuredCardSymbol>123</InsuredCardSymbol><InsuredIdentificationNumber>4567</InsuredIdentificationNumber><InsuredBranchNumber>01</InsuredBranchNumber><Birthdate>19400501</Birthdate><ArbitraryIdentifier>x%s</ArbitraryIdentifier></QualificationConfirmSearchInfo></MessageBody></XmlMsg>\n' "$A" "$1" "$1"
}
name() { echo "OQSmuquc01req2024070100$1.xml"; }
res_name() { echo "OQSmuquc01res2024070100$1.xml"; }
server_url=$U
start_relay() {
    "$relay_bin" relay --dir "$dir" --server "$server_url" --ca "$work/pki/ca.pem" --cert "$work/pki/facility-$A.pem" --key "$work/pki/facility-$A.key" \
        --settle-ms 200 >> "$work/relay.log" 2>&1 &
    rpid=$!
    started_pids+=("$rpid")
    echo "$rpid" > "$work/relay.pid"
}
start_proxy() {  # start_proxy COMMAND: the relay talks to the server through relay_proxy.py, which runs COMMAND once
    "$py" "$here/relay_proxy.py" "$work/pki" "$A" "$port" "$work/proxy.port" "$1" 2> "$work/proxy.err" &
    started_pids+=("$!")
    wait_for "$work/proxy.port" || { echo "proxy did not start"; cat "$work/proxy.err"; exit 1; }
    server_url=https://127.0.0.1:$(cat "$work/proxy.port")
}

case $case in
tmp_symlink)
    echo precious > "$work/outside.txt"
    echo precious > "$work/outside2.txt"
    ln -s "$work/outside.txt" "$dir/res/.$(res_name 01).tmp"   # the temporary file of the answer to 01
    ln -s "$work/outside2.txt" "$dir/res/$(res_name 02)"       # the answer to 02 itself
    request 01 > "$dir/req/$(name 01)"
    request 02 > "$dir/req/$(name 02)"
    start_relay
    for _ in $(seq 200); do [ -f "$dir/done/$(name 01)" ] && [ -f "$dir/done/$(name 02)" ] && break; sleep 0.05; done
    check "the file behind the planted temporary link is untouched" test "$(cat "$work/outside.txt")" = precious
    check "the request is answered all the same" grep -q "<ReceptionNumber>" "$dir/res/$(res_name 01)"
    check "the file behind the planted result link is untouched" test "$(cat "$work/outside2.txt")" = precious
    check "a planted result link is not taken for an answer" grep -q "<ReceptionNumber>" "$dir/res/$(res_name 02)"
    check "the answers are regular files" bash -c "[ ! -L '$dir/res/$(res_name 01)' ] && [ ! -L '$dir/res/$(res_name 02)' ]"
    check "no temporary file is left" bash -c "! ls -a '$dir/res' | grep -q '\.tmp$'"
    ;;
req_not_regular)
    request 01 > "$work/secret.xml"
    ln -s "$work/secret.xml" "$dir/req/$(name 01)"
    mkfifo "$dir/req/$(name 02)"
    mkdir "$dir/req/$(name 03)"
    start_relay
    # Every pass visits the names in order, so by the time 04 is answered 01 to 03 have been looked at.
    request 04 > "$dir/req/$(name 04)"
    check "a regular request next to them is answered" wait_for "$dir/res/$(res_name 04)"
    check "the symlink is not sent" test ! -e "$dir/res/$(res_name 01)"
    check "the FIFO is not read (nor waited on)" test ! -e "$dir/res/$(res_name 02)"
    check "the folder is not sent" test ! -e "$dir/res/$(res_name 03)"
    check "the server got one upload only" test "$(jobs)" = 1
    check "the skipped symlink is reported" grep -q "$(name 01): .*not a regular file" "$work/relay.log"
    check "once" test "$(grep -c "$(name 01): " "$work/relay.log")" = 1
    check "the relay is still running" alive
    ;;
symlink_loop)
    ln -s "$dir/req/$(name 02)" "$dir/req/$(name 01)"
    ln -s "$dir/req/$(name 01)" "$dir/req/$(name 02)"
    start_relay
    check "the loop is reported" wait_log "$(name 01): .*not a regular file"
    request 03 > "$dir/req/$(name 03)"
    check "the relay goes on and answers the next request" wait_for "$dir/res/$(res_name 03)"
    check "the relay is still running" alive
    check "one upload" test "$(jobs)" = 1
    ;;
full_disk)
    request 01 > "$dir/req/$(name 01)"
    fill() { dd if=/dev/zero of="$dir/filler" bs=4k 2> /dev/null; sync; true; }
    fill
    start_proxy "dd if=/dev/zero of='$dir/filler2' bs=4k 2> /dev/null; sync; true"
    start_relay
    check "a full disk when recording the request is reported" wait_log "No space left on device"
    check "nothing was sent without a record" test "$(jobs)" = 0
    check "the relay is still running" alive
    rm -f "$dir/filler"  # room again: the request is recorded and sent; the proxy then fills the disk before the answer arrives
    for _ in $(seq 200); do [ "$(jobs)" = 1 ] && break; sleep 0.05; done
    check "the request is sent once there is room" test "$(jobs)" = 1
    check "a full disk when writing the answer is reported" wait_log "res/.*No space left on device"
    check "no half answer is left" test ! -e "$dir/res/$(res_name 01)"
    check "the relay is still running after it" alive
    rm -f "$dir/filler2"
    check "once there is room the answer is written" wait_for "$dir/res/$(res_name 01)"
    check "it is the answer of the one batch job" grep -q "<ReceptionNumber>$(reception)</ReceptionNumber>" "$dir/res/$(res_name 01)"
    check "the server made one batch job, never two" test "$(jobs)" = 1
    check "the repeats were answered from the first answer" grep -q " 200 true$" "$work/proxy.port.log"
    ;;
restart_after_send)
    request 01 > "$dir/req/$(name 01)"
    start_proxy "kill -9 \$(cat '$work/relay.pid')"
    start_relay
    first=$rpid
    for _ in $(seq 200); do kill -0 "$first" 2>/dev/null || break; sleep 0.05; done
    check "the relay was killed after the server answered" bash -c "! kill -0 $first 2>/dev/null"
    check "the server made the batch job" test "$(jobs)" = 1
    check "no answer was written" test ! -e "$dir/res/$(res_name 01)"
    check "what was sent is on record" test -f "$dir/sent/$(name 01)"
    start_relay
    check "after a restart the answer is written" wait_for "$dir/res/$(res_name 01)"
    check "it is the answer of the first upload" grep -q "<ReceptionNumber>$(reception)</ReceptionNumber>" "$dir/res/$(res_name 01)"
    check "the server made one batch job, not two" test "$(jobs)" = 1
    check "the second send carried the same key and was replayed" bash -c "[ \$(cut -d' ' -f2 '$work/proxy.port.log' | sort -u | wc -l) = 1 ] && grep -q ' 200 true$' '$work/proxy.port.log'"
    for _ in $(seq 100); do [ -f "$dir/done/$(name 01)" ] && break; sleep 0.05; done
    check "the request is moved to done and its record removed" bash -c "[ -f '$dir/done/$(name 01)' ] && [ ! -e '$dir/sent/$(name 01)' ]"
    ;;
*) echo "unknown case $case"; exit 2 ;;
esac

finish
