#!/usr/bin/env bash
# The folder relay against a hostile folder and against crashes (issue 10, finding 7), one case per finding:
#   tmp_symlink         res/.NAME.tmp (and res/NAME) planted as symlinks to files outside: never written through
#   req_not_regular     a symlink, a FIFO and a folder in req/ are skipped (and reported), never sent
#   symlink_loop        a symlink loop in req/ is reported and the relay goes on
#   full_disk           a full disk when recording or when writing the answer: reported, the relay goes on, and
#                       once there is room the answer is written — one batch job, never two
#   restart_after_send  the relay killed after the server answered and before it wrote the answer: restarted, it
#                       gets the same answer (Idempotency-Key), and the server made one batch job
# and the relay's faults of issue 22 (item 1):
#   silent_peer         a server that accepts and says nothing (before TLS, and after it): every step has a deadline,
#                       --once ends with an error result and its status
#   sigterm             SIGTERM while the relay waits on a silent server ends it within 2 s (watch mode: status 0;
#                       --once: status 4, the request left for the next run)
#   answer_mode         answers are owner-only (0600) under umask 022, and --once says 0 when all were answered
#   unwritable_res      res/ read-only: the POST is retried with a doubling backoff, --once gives up after --attempts
#                       (status 3, the request still in req/); writable again, the next run answers it from the same job
#   long_name           a 251-byte request name is answered; one whose answer's name would not fit is moved to
#                       rejected/ and reported, and --once ends (status 1)
# Usage: relay_security.sh CASE KYOTAKU SOURCE_DIR   (KYOTAKU_RELAY_BIN: another kyotaku for the relay, e.g. an older one)
set -uo pipefail
case=$1 kyotaku=$2 src=$3
relay_bin=${KYOTAKU_RELAY_BIN:-$kyotaku}
py=/usr/bin/python3
here=$(cd "$(dirname "$0")" && pwd)

if { [ "$case" = full_disk ] || [ "$case" = unwritable_res ]; } && [ -z "${KYOTAKU_IN_NAMESPACE:-}" ]; then
    # A small tmpfs for the exchange folder (or a read-only one for res/), mounted in a mount namespace of our own
    # (gone when we are).
    export KYOTAKU_IN_NAMESPACE=1
    if [ "$(id -u)" = 0 ]; then exec unshare -m --propagation private bash "$0" "$@"; fi
    exec unshare -rm --propagation private bash "$0" "$@"
fi

source "$here/testlib.sh"
wait_for() { for _ in $(seq 200); do [ -e "$1" ] && return 0; sleep 0.05; done; return 1; }
wait_for_line() { for _ in $(seq 400); do [ "$(grep -c "$2" "$1" 2> /dev/null)" -ge "${3:-1}" ] && return 0; sleep 0.05; done; return 1; }
wait_log() { for _ in $(seq 200); do grep -q "$1" "$work/relay.log" && return 0; sleep 0.05; done; return 1; }
alive() { kill -0 "$rpid" 2>/dev/null; }

"$src/scripts/make-test-pki" "$work/pki" $A > /dev/null
start_server "$work/serve.log" "$kyotaku" serve --port 0 --db "$work/db.sqlite" --rules "$src/rules" --tls-dir "$work/pki"
api admin "${json[@]}" -X POST "$U/api/v1/admin/facilities" -d "{\"code\":\"$A\",\"name\":\"A\",\"kind\":\"医科\"}" > /dev/null
api manager "${json[@]}" -X PUT "$U/api/v1/settings" -d '{"terms_agreed":true,"home_visit_enabled":true}' > /dev/null
jobs() { sqlite3 -cmd ".timeout 5000" "$work/db.sqlite" "SELECT COUNT(*) FROM batch_jobs" 2>> "$work/sqlite3.err"; }
reception() { sqlite3 -cmd ".timeout 5000" "$work/db.sqlite" "SELECT reception_number FROM batch_jobs"; }

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
# once ARGS…: `kyotaku relay --once` in the foreground (bounded by `timeout`), its status in $once_status.
once() {
    timeout 120 "$relay_bin" relay --dir "$dir" --server "$server_url" --ca "$work/pki/ca.pem" --cert "$work/pki/facility-$A.pem" \
        --key "$work/pki/facility-$A.key" --settle-ms 200 --once "$@" >> "$work/relay.log" 2>&1
    once_status=$?
}
# spawn_relay ARGS…: the relay in the background with the default deadlines; its pid in $rpid.
spawn_relay() {
    "$relay_bin" relay --dir "$dir" --server "$server_url" --ca "$work/pki/ca.pem" --cert "$work/pki/facility-$A.pem" \
        --key "$work/pki/facility-$A.key" --settle-ms 200 "$@" >> "$work/relay.log" 2>&1 &
    rpid=$!
    started_pids+=("$rpid")
}
# silent MODE: a peer that accepts and says nothing (silent_peer.py); the relay is pointed at it.
silent() {
    rm -f "$work/silent.port" "$work/silent.port.log"
    "$py" "$here/silent_peer.py" "$1" "$work/pki" "$work/silent.port" 2> "$work/silent.err" &
    started_pids+=("$!")
    wait_for "$work/silent.port" || { echo "silent peer did not start"; cat "$work/silent.err"; exit 1; }
    server_url=https://127.0.0.1:$(cat "$work/silent.port")
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# terminate: SIGTERM to the relay $rpid, then its exit status in $status and how long it took to end in $took (ms).
terminate() {
    local t0
    t0=$(now_ms)
    kill -TERM "$rpid"
    wait "$rpid"
    status=$? took=$(($(now_ms) - t0))
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
silent_peer)
    request 01 > "$dir/req/$(name 01)"
    silent tcp  # the TCP connection is accepted; the TLS handshake never comes
    once --connect-timeout-ms 300 --answer-timeout-ms 300 --attempts 2 --retry-ms 100
    check "--once ends against a peer that never starts TLS (status 1: an error result)" test "$once_status" = 1
    check "the request got an error result" grep -q "EKY0901" "$dir/res/$(res_name 01)"
    check "which names the step that ran out of time" grep -q "TLS handshake 127.0.0.1:[0-9]*: no progress within 300 ms (timed out)" "$dir/res/$(res_name 01)"
    check "both attempts reached the peer" test "$(grep -c accepted "$work/silent.port.log")" = 2
    request 02 > "$dir/req/$(name 02)"
    silent tls  # the handshake completes; the answer never comes
    once --connect-timeout-ms 300 --answer-timeout-ms 300 --attempts 1
    check "--once ends against a peer that never answers (status 1)" test "$once_status" = 1
    check "the error result names the answer's deadline" grep -q "answer 127.0.0.1:[0-9]*: no progress within 300 ms (timed out)" "$dir/res/$(res_name 02)"
    check "the last line counts what happened" grep -q "relay: done: 0 answered, 1 with an error result, 0 moved to rejected/, 0 left in req/" "$work/relay.log"
    ;;
sigterm)
    request 01 > "$dir/req/$(name 01)"
    silent tcp
    spawn_relay  # watch mode, the default deadlines (10 s for the handshake)
    check "the relay waits in the handshake" wait_for_line "$work/silent.port.log" accepted
    terminate
    echo "SIGTERM during the TLS handshake: the relay ended in $took ms (status $status)"
    check "SIGTERM during the handshake ends the relay within 2 s" test "$took" -lt 2000
    check "watch mode ends with status 0" test "$status" = 0
    check "the request waits for the next run" test -f "$dir/req/$(name 01)" -a ! -e "$dir/res/$(res_name 01)"
    silent tls
    spawn_relay --once  # the default deadlines (120 s for the answer)
    check "the relay waits for the answer" wait_for_line "$work/silent.port.log" handshake
    terminate
    echo "SIGTERM while waiting for the answer: --once ended in $took ms (status $status)"
    check "SIGTERM while waiting for the answer ends --once within 2 s" test "$took" -lt 2000
    check "--once stopped by SIGTERM exits with status 4" test "$status" = 4
    check "and its last line says it stopped" bash -c "tail -n1 '$work/relay.log' | grep -q 'relay: stopped: 0 answered'"
    check "the request keeps its record for the next run" test -f "$dir/sent/$(name 01)" -a -f "$dir/req/$(name 01)"
    server_url=$U
    once
    check "the next run answers it (status 0)" test "$once_status" = 0
    check "with the server's answer" grep -q "<ReceptionNumber>" "$dir/res/$(res_name 01)"
    ;;
answer_mode)
    request 01 > "$dir/req/$(name 01)"
    umask 022
    once
    check "--once exits 0 when every request got the server's answer" test "$once_status" = 0
    check "the answer is readable by its owner only (0600, under umask 022)" test "$(stat -c %a "$dir/res/$(res_name 01)")" = 600
    check "it is the server's answer" grep -q "<ReceptionNumber>" "$dir/res/$(res_name 01)"
    once
    check "--once with nothing to do exits 0" test "$once_status" = 0
    ;;
unwritable_res)
    mount -t tmpfs -o size=1m tmpfs "$dir/res" && mount -o remount,ro "$dir/res" || { echo "cannot mount a read-only res/"; exit 1; }
    on_exit="umount '$dir/res'"
    request 01 > "$dir/req/$(name 01)"
    t0=$(now_ms)
    once --attempts 4 --retry-ms 200
    took=$(($(now_ms) - t0))
    echo "res/ read-only: --once gave up after $took ms"
    check "--once gives up on an answer it cannot write (status 3)" test "$once_status" = 3
    check "the request stays in req/" test -f "$dir/req/$(name 01)"
    check "each failure is reported with the wait before the next" bash -c "grep -q 'attempt 1, next in 200 ms' '$work/relay.log' && grep -q 'attempt 2, next in 400 ms' '$work/relay.log' && grep -q 'attempt 3, next in 800 ms' '$work/relay.log'"
    check "the waits were kept (at least 200 + 400 + 800 ms)" test "$took" -ge 1400
    check "and the last says it is left for the next run" grep -q "4 attempts; left in req/ for the next run" "$work/relay.log"
    check "the server made one batch job for the four sends" test "$(jobs)" = 1
    check "the last line counts it" grep -q "relay: done: 0 answered, 0 with an error result, 0 moved to rejected/, 1 left in req/" "$work/relay.log"
    mount -o remount,rw "$dir/res"
    once
    check "writable again, the next run answers it (status 0)" test "$once_status" = 0
    check "from the same batch job" grep -q "<ReceptionNumber>$(reception)</ReceptionNumber>" "$dir/res/$(res_name 01)"
    check "still one job" test "$(jobs)" = 1
    ;;
long_name)
    pad() { printf '%*s' "$1" '' | tr ' ' x; }
    long="OQSmuquc01req2024070100$(pad 224).xml"            # 251 bytes
    odd="OQSmuquc03req2024070100$(pad 226).xml"             # 253 bytes: its answer's name would be 257
    request 01 > "$dir/req/$long"
    request 02 > "$dir/req/$odd"
    check "the names are 251 and 253 bytes" test "${#long} ${#odd}" = "251 253"
    once
    check "--once ends (status 1: one request moved aside)" test "$once_status" = 1
    check "the 251-byte request is answered under the matching name" grep -q "<ReceptionNumber>" "$dir/res/${long/01req/01res}"
    check "the other is moved to rejected/" test -f "$dir/rejected/$odd" -a ! -e "$dir/req/$odd"
    check "and reported" grep -q "$odd: .*more than the folder allows (255); moved to rejected/" "$work/relay.log"
    ;;
*) echo "unknown case $case"; exit 2 ;;
esac

finish
