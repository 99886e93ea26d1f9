#!/usr/bin/env bash
# Connections, stopping and TLS of `kyotaku serve` (issue 22 items 2, 3, 5 and 7), one case per argument:
#   slots     5,000 requests through HAProxy from a client that closes without TLS close_notify: none fails, and
#             kyotaku_http_connections_open is back to its baseline within 2 s (prints how long it took)
#   flood     1,000 raw TCP connections that send nothing, then 150 TLS connections trickling their ClientHello, each
#             opened again as soon as it is closed: a facility's requests meanwhile succeed at least 95 % of the time
#             (prints the figures)
#   patients_budgets  the patients' listener's own handshake budgets: 300 silent connections there are evicted there
#             while a facility works on the main listener; its open-connections gauge is back to 0 afterwards
#   drain     SIGTERM: /readyz 503 at once, a request in flight (an upload sent slowly) is answered, new connections are
#             refused once the listener closes, the server exits within the bound (prints the drain's time); with
#             drain_seconds = 1 a request slower than that is cut and the server exits all the same
#   drain_audit  SIGTERM while a re-inquiry's audit line cannot be committed (another process holds SQLite's write
#             lock): the re-inquiry is answered at once (its line in the audit journal); held past drain_seconds = 1,
#             the line stays in the journal, logged, the server exits 0 (nothing resumes a request on the freed event
#             loop), and the next start applies it; released within the bound, the line is applied and nothing logged
#             as given up or left
#   rolling   three servers over one PostgreSQL behind HAProxy under load: each restarted in turn (SIGTERM, drain,
#             start again on its port) while a batch is answered; no request fails, every row answered once
#   uploads   the upload budget (issue 22 item 4): large uploads held open take the memory and spool budgets and a
#             facility's places; beyond them 503 / 429 with Retry-After in the one error shape, before the body is read,
#             while another facility is still served; everything given back afterwards. Then 30 uploads of 60 MiB at
#             once from two facilities, on a server with the defaults: prints its peak RSS (the issue measured 2,014 MB)
#   framing   anonymous chunked requests whose framing is large: a trailer field of 65,534 bytes (it ended the process),
#             64 MiB of one chunk's extension, 64 MiB of trailer fields: each refused, the server alive, its peak RSS
#             grown by less than 32 MB (prints it); bodies refused before they are read but sent whole all the same
#             (no Expect): each client gets its 413, not a reset
#   tls       the cipher profile (Mozilla intermediate) seen with openssl s_client; SIGHUP takes new certificate files
#             for new connections, refuses a bad one (logged, the old ones kept), and /metrics gives each expiry
# Usage: connections_test.sh CASE KYOTAKU SOURCE_DIR   (rolling needs KYOTAKU_TEST_PG: tests/server/with_postgres.sh)
set -uo pipefail
case=$1 kyotaku=$2 src=$3
here=$(cd "$(dirname "$0")" && pwd)
source "$here/testlib.sh"
py=/usr/bin/python3
load=$here/net_load.py
"$src/scripts/make-test-pki" "$work/pki" $A > /dev/null
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# metric NAME PORT: a sample of the server on PORT, read directly (not through a balancer) with the operator's certificate.
metric() {
    curl -sS --cacert "$work/pki/ca.pem" --cert "$work/pki/admin.pem" --key "$work/pki/admin.key" "https://127.0.0.1:$2/metrics" |
        awk -v name="$1" 'index($0, name " ") == 1 { print $NF }'
}
# balancer PORT…: HAProxy in TCP passthrough in front of the servers on PORT…, as docs/operations.md 11. sets it up
# (timeouts, retries with redispatch, GET /readyz checks every second over verified TLS); sets lb and haproxy_pid.
balancer() {
    lb=$(free_port)
    {
        printf 'global\n    maxconn 4000\ndefaults\n    mode tcp\n    timeout connect 2s\n    timeout client 120s\n'
        printf '    timeout server 120s\n    timeout check 2s\n    retries 3\n    option redispatch 1\n'
        printf 'frontend kyotaku\n    bind 127.0.0.1:%s\n    default_backend servers\n' "$lb"
        printf 'backend servers\n    balance leastconn\n    option httpchk GET /readyz\n    http-check expect status 200\n'
        printf '    default-server check check-ssl verify required ca-file %s inter 1s fall 3 rise 2\n' "$work/pki/ca.pem"
        local i=0
        for p in "$@"; do printf '    server k%s 127.0.0.1:%s\n' "$i" "$p"; i=$((i + 1)); done
    } > "$work/haproxy.cfg"
    haproxy -db -f "$work/haproxy.cfg" > "$work/haproxy.log" 2>&1 &
    haproxy_pid=$!
    started_pids+=("$haproxy_pid")
    for _ in $(seq 300); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$work/pki/ca.pem" "https://127.0.0.1:$lb/healthz")" = 200 ] && return 0
        sleep 0.1
    done
    echo "haproxy did not start"
    cat "$work/haproxy.log"
    exit 1
}
facility() {
    api admin "${json[@]}" -X POST "$U/api/v1/admin/facilities" -d "{\"code\":\"$A\",\"name\":\"A\",\"kind\":\"医科\"}" > /dev/null
}
# flood_patients MAIN_CAP PATIENTS_CAP: a server with both listeners and those connection caps; 300 silent connections
# held on the patients' listener for 6 s while a facility's terminal works on the main one, whose requests must
# succeed at least 95 % of the time (sets pport).
flood_patients() {
    start_server "$work/serve.log" "$kyotaku" serve --port 0 --patient-listen 127.0.0.1:0 --max-connections "$1" \
        --patient-max-connections "$2" --db "$work/db.sqlite" --rules "$src/rules" --tls-dir "$work/pki"
    facility
    pport=$(sed -n 's/^patients on https:\/\/127\.0\.0\.1:\([0-9][0-9]*\) (.*/\1/p' "$work/serve.log")
    local raw rate
    raw=$("$py" "$load" flood raw "$port" "$work/pki" "$A" 300 6 "$pport")
    echo "$raw"
    rate=$(sed -n 's/.*(\([0-9.]*\) %).*/\1/p' <<< "$raw")
    check "during 300 silent connections on the patients' listener the facility's requests on the main one succeed" \
        awk -v r="$rate" 'BEGIN { exit !(r != "" && r >= 95) }'
    check "the facility made requests" bash -c "! grep -q 'facility 0 of 0' <<< '$raw'"
}

case $case in
slots)
    command -v haproxy > /dev/null || { echo "haproxy is not installed (scripts/setup installs it)"; exit 1; }
    start_server "$work/serve.log" "$kyotaku" serve --port 0 --db "$work/db.sqlite" --rules "$src/rules" --tls-dir "$work/pki"
    facility
    sport=$port
    balancer "$sport"
    baseline=$(metric 'kyotaku_http_connections_open{listener="main"}' "$sport")
    out=$("$py" "$load" noclose "$lb" "$work/pki" "$A" 5000 8)
    echo "$out"
    t0=$(now_ms)
    back=""
    while [ $(($(now_ms) - t0)) -lt 2000 ]; do
        [ "$(metric 'kyotaku_http_connections_open{listener="main"}' "$sport")" = "$baseline" ] && back=$(($(now_ms) - t0)) && break
        sleep 0.1
    done
    echo "connections open: baseline $baseline, after the load $(metric 'kyotaku_http_connections_open{listener="main"}' "$sport"), back within ${back:-more than 2000} ms"
    check "5,000 requests closed without close_notify through HAProxy: none failed" grep -q "^noclose: 5000 requests, 0 failed$" <<< "$out"
    check "the open-connections gauge is back to its baseline within 2 s" test -n "$back"
    check "no connection was refused at the cap" test "$(metric 'kyotaku_http_connections_refused_total{listener="main"}' "$sport")" = 0
    ;;
flood)
    start_server "$work/serve.log" "$kyotaku" serve --port 0 --db "$work/db.sqlite" --rules "$src/rules" --tls-dir "$work/pki"
    facility
    raw=$("$py" "$load" flood raw "$port" "$work/pki" "$A" 1000 10)
    echo "$raw"
    trickle=$("$py" "$load" flood trickle "$port" "$work/pki" "$A" 150 10)
    echo "$trickle"
    rate() { sed -n 's/.*(\([0-9.]*\) %).*/\1/p' <<< "$1"; }
    at_least() { awk -v r="$1" -v min="$2" 'BEGIN { exit !(r != "" && r >= min) }'; }
    check "during 1,000 silent TCP connections a facility's requests succeed at least 95 % of the time" at_least "$(rate "$raw")" 95
    check "during 150 trickling TLS connections too" at_least "$(rate "$trickle")" 95
    check "the facility made requests during each attack" bash -c "! grep -q 'facility 0 of 0' <<< '$raw $trickle'"
    check "the attackers were evicted in their handshake, not served" awk -v n="$(metric 'kyotaku_http_handshakes_evicted_total{listener="main",stage="hello"}' "$port")" 'BEGIN { exit !(n > 1000) }'
    check "the server answers as before" test "$(status staff "$U/api/v1/whoami")" = 200
    ;;
patients_flood)
    # The patients' listener has its own connection cap and handshake budgets: 300 silent connections held against
    # its cap of 20 there (its budget of 64 waiting for a ClientHello is larger, so they stay) while a facility's
    # terminal works on the main listener, whose own cap is also 20. With one shared cap, the terminal was refused.
    flood_patients 20 20
    refused() { metric "kyotaku_http_connections_refused_total{listener=\"$1\"}" "$port"; }
    echo "refused at the cap: patients $(refused patients), main $(refused main)"
    check "the attackers met the patients' cap" awk -v n="$(refused patients)" 'BEGIN { exit !(n > 0) }'
    check "and the main listener refused nobody" test "$(refused main)" = 0
    check "the patients' listener still serves the consent page's files afterwards" \
        test "$(curl -sS -o /dev/null -w '%{http_code}' --cacert "$work/pki/ca.pem" "https://127.0.0.1:$pport/healthz")" = 200
    ;;
patients_budgets)
    # The patients' listener has its own handshake budgets too: 300 silent connections there, under its cap of 400,
    # exceed its budget of 64 waiting for a ClientHello and churn among themselves (evicted there), while a facility's
    # terminal works on the main listener, whose budget nobody touched. Afterwards the listener's open-connections
    # gauge comes back to 0.
    flood_patients 200 400
    evicted() { metric "kyotaku_http_handshakes_evicted_total{listener=\"$1\",stage=\"hello\"}" "$port"; }
    echo "evicted waiting for a ClientHello: patients $(evicted patients), main $(evicted main)"
    check "the attackers churned in the patients' own budget" awk -v n="$(evicted patients)" 'BEGIN { exit !(n > 0) }'
    check "and nobody was evicted from the main listener's" test "$(evicted main)" = 0
    check "no connection was refused at either cap" test "$(metric 'kyotaku_http_connections_refused_total{listener="patients"}' "$port")$(metric 'kyotaku_http_connections_refused_total{listener="main"}' "$port")" = 00
    open_patients() { metric 'kyotaku_http_connections_open{listener="patients"}' "$port"; }
    t0=$(now_ms)
    while [ "$(open_patients)" != 0 ] && [ $(($(now_ms) - t0)) -lt 10000 ]; do sleep 0.1; done
    echo "patients' connections open after the flood: $(open_patients) ($(($(now_ms) - t0)) ms after it ended)"
    check "the patients' open-connections gauge is back to 0" test "$(open_patients)" = 0
    ;;
drain)
    start_server "$work/serve.log" "$kyotaku" serve --port 0 --db "$work/db.sqlite" --rules "$src/rules" --tls-dir "$work/pki" --drain-seconds 20
    facility
    api manager "${json[@]}" -X PUT "$U/api/v1/settings" -d '{"terms_agreed":true,"home_visit_enabled":true}' > /dev/null
    # A batch upload of 2,000 rows sent over about 4 s: in flight when SIGTERM comes.
    { echo "arbitrary_identifier,insurer_number,symbol,number,branch,birthdate"
      for i in $(seq 2000); do echo "row$i,06132013,123,4567,01,1940-05-01"; done; } > "$work/batch.csv"
    "$py" - "$port" "$work/pki" "$A" "$work/batch.csv" "$work/upload" <<'EOF' &
import socket, ssl, sys, time
port, pki, code, path, out = sys.argv[1:]
ctx = ssl.create_default_context(cafile=f"{pki}/ca.pem")
ctx.load_cert_chain(f"{pki}/facility-{code}.pem", f"{pki}/facility-{code}.key")
ctx.check_hostname = False
body = open(path, "rb").read()
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(port))), server_hostname="localhost")
s.sendall(f"POST /api/v1/batch/reinquiry HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: {len(body)}\r\n\r\n".encode())
open(out + ".started", "w").close()
for i in range(0, len(body), len(body) // 40):  # 40 parts, 0.1 s apart
    s.sendall(body[i:i + len(body) // 40])
    time.sleep(0.1)
answer = b""
while b"\r\n\r\n" not in answer:
    chunk = s.recv(65536)
    if not chunk:
        break
    answer += chunk
open(out, "w").write(answer.decode("latin-1"))
EOF
    uploader=$!
    for _ in $(seq 100); do [ -e "$work/upload.started" ] && break; sleep 0.05; done
    t0=$(now_ms)
    kill -TERM "$server_pid"
    check "/readyz answers 503 at once" test "$(status none "$U/readyz")" = 503
    # A second after the last request began, the listener closes while the upload goes on.
    refused_meanwhile=""
    while kill -0 "$uploader" 2> /dev/null; do
        if ! curl -s --max-time 2 -o /dev/null --cacert "$work/pki/ca.pem" "$U/healthz"; then
            kill -0 "$uploader" 2> /dev/null && refused_meanwhile=yes
            break
        fi
        sleep 0.1
    done
    check "new connections are refused while the request in flight goes on" test -n "$refused_meanwhile"
    wait "$uploader"
    check "the upload in flight at SIGTERM is answered (202)" grep -q "^HTTP/1.1 202" "$work/upload"
    check "and told to close its connection" grep -qi "^Connection: close" "$work/upload"
    wait "$server_pid"
    status=$? took=$(($(now_ms) - t0))
    echo "SIGTERM with an upload in flight: the server drained and exited in $took ms (status $status)"
    check "the server exits 0 after the drain" test "$status" = 0
    check "within the bound (20 s)" test "$took" -lt 20000
    check "the drain is logged, beginning and end" bash -c "grep -q '\"event\":\"draining\"' '$work/serve.log' && grep -q '\"event\":\"drained\".*\"in_flight_left\":0' '$work/serve.log'"
    # A bound shorter than the request: the server exits all the same, saying what it left.
    start_server "$work/serve2.log" "$kyotaku" serve --port 0 --db "$work/db.sqlite" --rules "$src/rules" --tls-dir "$work/pki" --drain-seconds 1
    "$py" - "$port" "$work/pki" "$A" "$work/slow" <<'EOF' &
import socket, ssl, sys, time
port, pki, code, out = sys.argv[1:]
ctx = ssl.create_default_context(cafile=f"{pki}/ca.pem")
ctx.load_cert_chain(f"{pki}/facility-{code}.pem", f"{pki}/facility-{code}.key")
ctx.check_hostname = False
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(port))), server_hostname="localhost")
s.sendall(b"POST /api/v1/batch/reinquiry HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: 100000\r\n\r\narbitrary")
open(out + ".started", "w").close()
time.sleep(30)
EOF
    slow=$!
    started_pids+=("$slow")
    for _ in $(seq 100); do [ -e "$work/slow.started" ] && break; sleep 0.05; done
    # In flight once the server has read its header (the client's bytes may still be on their way): its body, beyond
    # 64 KiB, then holds a place of the upload budget. Under load SIGTERM came before that once (in_flight_left 0).
    for _ in $(seq 200); do [ "$(metric kyotaku_http_uploads_open "$port")" = 1 ] && break; sleep 0.05; done
    check "the slow request is in flight before SIGTERM" test "$(metric kyotaku_http_uploads_open "$port")" = 1
    t0=$(now_ms)
    kill -TERM "$server_pid"
    wait "$server_pid"
    took=$(($(now_ms) - t0))
    echo "SIGTERM with a request slower than drain_seconds = 1: the server exited in $took ms"
    check "a request slower than the bound does not hold the server (exits within 5 s)" test "$took" -lt 5000
    check "the drain's end says a request was left" grep -q '"event":"drained".*"in_flight_left":1' "$work/serve2.log"
    kill "$slow" 2> /dev/null
    ;;
drain_audit)
    # hold_lock NAME: another process takes SQLite's write lock on the database (BEGIN IMMEDIATE) and holds it until a
    # line comes on the pipe $work/NAME (release_lock NAME); $work/NAME.locked appears once it holds the lock.
    hold_lock() {
        mkfifo "$work/$1"
        exec {release_fd}<> "$work/$1"
        "$py" -c 'import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
db.execute("BEGIN IMMEDIATE")
open(sys.argv[2], "w").close()
sys.stdin.readline()
db.execute("ROLLBACK")' "$work/db.sqlite" "$work/$1.locked" < "$work/$1" &
        holder=$!
        started_pids+=("$holder")
        for _ in $(seq 200); do [ -e "$work/$1.locked" ] && break; sleep 0.05; done
        check "another process holds the database's write lock ($1)" test -e "$work/$1.locked"
    }
    release_lock() { echo >&"$release_fd"; wait "$holder"; }
    lines() { "$py" -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT COUNT(*) FROM inquiry_log").fetchone()[0])' "$work/db.sqlite"; }
    # reinquire NAME: a re-inquiry, answered at once although the database cannot take its audit line: the line is in
    # SQLite's audit journal beside the file (storage/audit_journal.hpp), pending until it is applied.
    reinquire() {
        api staff "${json[@]}" -X POST "$U/api/v1/reinquiry" -d "$reinquiry" --max-time 60 -o "$work/$1.body" \
            -w '%{http_code}' > "$work/$1.status" 2> /dev/null
        check "the re-inquiry is answered while the lock is held ($1)" test "$(cat "$work/$1.status")" = 200
        check "its audit line is pending, in the journal ($1)" test "$(metric kyotaku_db_audit_lines_pending "$port")" = 1
        check "the journal holds it ($1)" test -s "$work/db.sqlite-audit"
    }
    # Held past the bound.
    start_server "$work/serve.log" "$kyotaku" serve --port 0 --db "$work/db.sqlite" --rules "$src/rules" --tls-dir "$work/pki" --drain-seconds 1
    setup_facility
    before=$(lines)
    hold_lock held
    reinquire held
    t0=$(now_ms)
    kill -TERM "$server_pid"
    wait "$server_pid"
    status=$? took=$(($(now_ms) - t0))
    release_lock
    echo "SIGTERM with an audit line held past drain_seconds = 1: the server exited in $took ms (status $status)"
    check "the server exits 0" test "$status" = 0
    # (Not bounded here: the readiness probe and the batch worker's writes wait out their own busy timeouts, 10 s each.)
    check "nothing crashed at exit" bash -c "! grep -Eq 'Sanitizer|runtime error|terminate called|Segmentation' '$work/serve.log.err'"
    check "the line left in the journal is logged" grep -q '"event":"audit_lines_left_in_journal".*"lines":1' "$work/serve.log"
    check "no line is given up" bash -c "! grep -q audit_lines_not_committed '$work/serve.log'"
    check "the line is not in the database yet" test "$(lines)" = "$before"
    check "the journal still holds it" test -s "$work/db.sqlite-audit"
    check "the journal is the owner's only" test "$(stat -c %a "$work/db.sqlite-audit")" = 600
    # The next start applies it, and empties the journal.
    start_server "$work/serve2.log" "$kyotaku" serve --port 0 --db "$work/db.sqlite" --rules "$src/rules" --tls-dir "$work/pki" --drain-seconds 20
    check "the next start applies the line left in the journal" grep -q '"event":"audit_journal_applied".*"lines":1' "$work/serve2.log"
    check "the line is in the database" test "$(lines)" = "$((before + 1))"
    check "the journal is empty" test ! -s "$work/db.sqlite-audit"
    # Released within the bound.
    hold_lock released
    reinquire released
    kill -TERM "$server_pid"
    for _ in $(seq 200); do grep -q '"event":"draining"' "$work/serve2.log" && break; sleep 0.05; done
    release_lock
    wait "$server_pid"
    status=$?
    check "released during the drain: the server exits 0" test "$status" = 0
    check "its line is applied" test "$(lines)" = "$((before + 2))"
    check "nothing is logged as given up or left" bash -c "! grep -Eq 'audit_lines_not_committed|audit_lines_left_in_journal' '$work/serve2.log'"
    check "the journal is empty at the end" test ! -s "$work/db.sqlite-audit"
    check "the drain ended with nothing left" grep -q '"event":"drained".*"in_flight_left":0' "$work/serve2.log"
    ;;
rolling)
    [ -n "${KYOTAKU_TEST_PG:-}" ] || { echo "needs KYOTAKU_TEST_PG (tests/server/with_postgres.sh)"; exit 1; }
    command -v haproxy > /dev/null || { echo "haproxy is not installed (scripts/setup installs it)"; exit 1; }
    psql -q "$KYOTAKU_TEST_PG" -c 'DROP SCHEMA public CASCADE; CREATE SCHEMA public;' > /dev/null
    (umask 077; openssl rand -hex 32 > "$work/kyotaku.key")
    ports=() pids=()
    # serve_at I: server I on its port (a new one the first time), over the one database.
    serve_at() {
        local i=$1
        [ -n "${ports[i]:-}" ] || ports[i]=$(free_port)
        # The earlier run's log aside first: its "listening on" line would be taken for this run's (listening_port).
        if [ -s "$work/serve$i.log" ]; then cat "$work/serve$i.log" >> "$work/serve$i.log.earlier"; : > "$work/serve$i.log"; fi
        "$kyotaku" serve --port "${ports[i]}" --db "$KYOTAKU_TEST_PG" --key-file "$work/kyotaku.key" --rules "$src/rules" \
            --tls-dir "$work/pki" --test-clock 2024-07-31 >> "$work/serve$i.log" 2>> "$work/serve$i.log.err" &
        pids[i]=$!
        started_pids+=("${pids[i]}")
        listening_port "$work/serve$i.log" "${pids[i]}" > /dev/null || exit 1
    }
    for i in 0 1 2; do serve_at "$i"; done
    U=https://127.0.0.1:${ports[0]}
    facility
    api manager "${json[@]}" -X PUT "$U/api/v1/settings" -d '{"terms_agreed":true,"home_visit_enabled":true}' > /dev/null
    balancer "${ports[@]}"
    { echo "arbitrary_identifier,insurer_number,symbol,number,branch,birthdate"
      for i in $(seq 20000); do echo "row$i,06132013,123,4567,01,1940-05-01"; done; } > "$work/batch.csv"
    rn=$(api staff -H 'Content-Type: text/csv' --data-binary "@$work/batch.csv" "https://127.0.0.1:$lb/api/v1/batch/reinquiry" |
         sed -n 's/.*"reception_number":"\([0-9]*\)".*/\1/p')
    check "a 20,000-row batch is accepted through the balancer" test -n "$rn"
    "$py" "$load" load "$lb" "$work/pki" "$A" "$work/stop" 4 > "$work/load.out" 2>&1 &
    loader=$!
    started_pids+=("$loader")
    drains=""
    for i in 0 1 2; do
        sleep 1  # load on every server
        t0=$(now_ms)
        kill -TERM "${pids[i]}"
        wait "${pids[i]}"
        drains="$drains $(($(now_ms) - t0))"
        serve_at "$i"
        # Back in the balancer (two good checks, a second apart) before the next one goes.
        for _ in $(seq 100); do
            [ "$(api none -o /dev/null -w '%{http_code}' "https://127.0.0.1:${ports[i]}/readyz" 2> /dev/null)" = 200 ] && break
            sleep 0.1
        done
        sleep 3
    done
    touch "$work/stop"
    wait "$loader"
    cat "$work/load.out" | tail -5
    echo "rolling restart of 3 servers under load: drain times (ms):$drains"
    check "no request failed during the rolling restart" grep -q "^load: [0-9]* requests, 0 failed$" "$work/load.out"
    check "requests were made throughout" awk '/^load:/ { exit !($2 > 100) }' "$work/load.out"
    check "each server drained within its bound" bash -c "for d in $drains; do [ \$d -lt 20000 ] || exit 1; done"
    for _ in $(seq 600); do
        [ "$(psql -qAt "$KYOTAKU_TEST_PG" -c "SELECT finished_at IS NOT NULL FROM batch_jobs WHERE reception_number = '$rn'")" = t ] && break
        sleep 0.2
    done
    check "the batch finished across the restarts" test "$(psql -qAt "$KYOTAKU_TEST_PG" -c "SELECT finished_at IS NOT NULL FROM batch_jobs WHERE reception_number = '$rn'")" = t
    check "every row answered exactly once" test "$(psql -qAt "$KYOTAKU_TEST_PG" -c "SELECT COUNT(*), COUNT(DISTINCT row_no) FROM batch_results WHERE reception_number = '$rn'")" = "20000|20000"
    ;;
uploads)
    B=2714206386
    "$src/scripts/make-test-pki" "$work/pki" $B > /dev/null
    start_server "$work/serve.log" "$kyotaku" serve --port 0 --db "$work/db.sqlite" --rules "$src/rules" --tls-dir "$work/pki" \
        --upload-memory-mb 160 --upload-spool-mb 100 --uploads-per-facility 3
    facility
    api admin "${json[@]}" -X POST "$U/api/v1/admin/facilities" -d "{\"code\":\"$B\",\"name\":\"B\",\"kind\":\"医科\"}" > /dev/null
    out=$("$py" "$load" budget "$port" "$work/pki" "$A" "$B" 2>&1)
    echo "$out"
    says() { grep -qxF "budget: $1" <<< "$out"; }
    refusal="retry-after 10 fields error,message_en,message_ja"
    check "three uploads of 50 MiB take 150 MiB of the memory budget" says "memory taken 150 MiB"
    check "a facility's fourth upload at once is a 429 with Retry-After, in the one error shape" \
        says "A's 4th upload (1 MiB, the budget has room): 429 $refusal"
    check "another facility's upload beyond the memory budget is a 503 with Retry-After" says "B's upload of 50 MiB (10 MiB left): 503 $refusal"
    check "the other facility's requests are answered meanwhile" says "B's request without a large body: 200"
    check "a spooled upload takes its size from the spool budget" says "spool taken 60 MiB"
    check "a spooled upload beyond the spool budget is a 503 with Retry-After" says "B's second spooled upload of 60 MiB (40 MiB left): 503 $refusal"
    check "an upload within what is left goes to its route (400: its body is not JSON)" says "B's upload of 5 MiB (10 MiB left) answered by its route: 400"
    check "the uploads held are answered by their routes once sent whole" grep -qE "^budget: the uploads held, sent whole, answered by their routes: 4[0-9]{2} 4[0-9]{2} 4[0-9]{2} 4[0-9]{2}$" <<< "$out"
    check "every byte and place is given back" says "afterwards: uploads open 0, memory taken 0, spool taken 0"
    check "and a large upload is taken again" says "B's upload of 50 MiB now answered by its route: 400"
    check "the refusals are counted" says "refused: budget 2, facility 1"
    check "the server answers as before" test "$(status staff "$U/api/v1/whoami")" = 200
    stop_server
    # Memory under attack: 30 uploads of 60 MiB begun at once from two facilities, on a server with the defaults
    # (upload_memory_mb = 256, uploads_per_facility = 2).
    start_server "$work/serve2.log" "$kyotaku" serve --port 0 --db "$work/db.sqlite" --rules "$src/rules" --tls-dir "$work/pki"
    rss() { awk -v f="$1" '$1 == f ":" { print int($2 / 1024) }' "/proc/$server_pid/status"; }
    before=$(rss VmRSS)
    out=$("$py" "$load" attack "$port" "$work/pki" "$A,$B" 30 60 2>&1)
    echo "$out"
    peak=$(rss VmHWM)
    echo "memory under attack: 30 uploads of 60 MiB at once (defaults: upload_memory_mb 256, uploads_per_facility 2): the server's RSS was $before MB before, peak $peak MB (+$((peak - before)) MB; before the budget the issue measured 223 -> 2,014 MB)"
    check "the attack's uploads were all answered or refused (none hung)" grep -qE "^attack: 30 uploads of 60 MiB at once: answered [0-9]+, 429 [0-9]+, 503 [0-9]+, cut [0-9]+$" <<< "$out"
    answered=$(sed -n 's/^attack: .*: answered \([0-9]*\),.*/\1/p' <<< "$out")
    refused=$(($(metric 'kyotaku_http_uploads_refused_total{reason="budget"}' "$port") + $(metric 'kyotaku_http_uploads_refused_total{reason="facility"}' "$port")))
    echo "the server refused $refused of the 30 before their body was read; $answered were answered by their route"
    check "some uploads were taken, and every other one refused by the budget" test "$answered" -ge 1 -a $((answered + refused)) -eq 30
    # The budget counts the bodies' bytes (256 MiB at once); a body held costs about twice its size at its peak (measured:
    # one upload of 60 MiB, +127 MB), so the bound is three times the budget — against 1,800 MB without it.
    check "the peak RSS grew less than three times the memory budget (768 MB)" test $((peak - before)) -lt 768
    check "the server answers after the attack" test "$(status staff "$U/api/v1/whoami")" = 200
    ;;
framing)
    start_server "$work/serve.log" "$kyotaku" serve --port 0 --db "$work/db.sqlite" --rules "$src/rules" --tls-dir "$work/pki"
    rss() { awk -v f="$1" '$1 == f ":" { print int($2 / 1024) }' "/proc/$server_pid/status"; }
    before=$(rss VmHWM)
    out=$("$py" "$load" framing "$port" "$work/pki" 64 2>&1)
    echo "$out"
    peak=$(rss VmHWM)
    echo "framing: the server's peak RSS was $before MB before, $peak MB after (+$((peak - before)) MB)"
    check "the server is alive after a trailer field of 65,534 bytes" kill -0 "$server_pid"
    check "and answers" test "$(status none "$U/healthz")" = 200
    for what in "a trailer field of 65534 bytes" "64 MiB of chunk extension" "64 MiB of trailer fields"; do
        check "$what: refused (400) or cut, never answered as a request" grep -qE "^framing: $what: (400|closed .*)$" <<< "$out"
    done
    check "the framing did not grow the server's memory by 32 MB" test $((peak - before)) -lt 32
    check "no exception escaped a handler" bash -c "! grep -q 'escaped a handler' '$work/serve.log'"
    # A body refused before it is read, sent whole all the same (no Expect): the client gets the answer, not a reset.
    out=$("$py" "$load" refused "$port" "$work/pki" 10 2 2>&1)
    echo "$out"
    check "each of 10 refused bodies of 2 MiB got its 413 (a lingering close, not a reset)" grep -qx "refused: 413 10" <<< "$out"
    ;;
tls)
    start_server "$work/serve.log" "$kyotaku" serve --port 0 --db "$work/db.sqlite" --rules "$src/rules" --tls-dir "$work/pki"
    # handshake ARGS…: whether openssl s_client completes a handshake with these options.
    handshake() { openssl s_client -connect "127.0.0.1:$port" -CAfile "$work/pki/ca.pem" "$@" < /dev/null > "$work/s_client.out" 2>&1 &&
                  grep -q "Verify return code: 0 (ok)" "$work/s_client.out"; }
    check "TLS 1.3 is offered" handshake -tls1_3
    check "TLS 1.2 with ECDHE and AES-GCM is offered" handshake -tls1_2 -cipher ECDHE-RSA-AES128-GCM-SHA256
    check "TLS 1.2 with ECDHE and ChaCha20-Poly1305 is offered" handshake -tls1_2 -cipher ECDHE-RSA-CHACHA20-POLY1305
    check "TLS 1.1 is refused" bash -c "! openssl s_client -connect 127.0.0.1:$port -tls1_1 -cipher 'ALL:@SECLEVEL=0' < /dev/null > /dev/null 2>&1"
    # Every TLS 1.2 suite this OpenSSL knows, one at a time: only the profile's are taken.
    taken=""
    for c in $(openssl ciphers 'ALL:COMPLEMENTOFALL:@SECLEVEL=0' | tr ':' ' '); do
        openssl s_client -connect "127.0.0.1:$port" -tls1_2 -cipher "$c:@SECLEVEL=0" < /dev/null > /dev/null 2>&1 && taken="$taken $c"
    done
    echo "TLS 1.2 suites the server takes:$taken"
    check "TLS 1.2: only ECDHE with AEAD (no RSA key exchange, no CBC, no SHA-1)" \
        test "$(tr ' ' '\n' <<< "$taken" | sed '/^$/d' | sort | tr '\n' ' ')" = "ECDHE-RSA-AES128-GCM-SHA256 ECDHE-RSA-AES256-GCM-SHA384 ECDHE-RSA-CHACHA20-POLY1305 "
    check "the RSA key exchange suite AES128-SHA is refused" bash -c "! grep -qw AES128-SHA <<< '$taken'"
    # SIGHUP: a new certificate (from the same CA, a new serial) serves new connections.
    serial() { openssl s_client -connect "127.0.0.1:$port" -CAfile "$work/pki/ca.pem" < /dev/null 2> /dev/null | openssl x509 -noout -serial; }
    before=$(serial)
    expiry_before=$(metric 'kyotaku_tls_certificate_expiry_seconds{file="server.pem",subject="/O=kyotaku test/CN=localhost"}' "$port")
    check "each certificate's expiry is a metric" test -n "$expiry_before"
    openssl req -newkey rsa:2048 -nodes -keyout "$work/new.key" -out "$work/new.csr" -subj "/O=kyotaku test/CN=localhost" 2> /dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > "$work/ext.cnf"
    openssl x509 -req -in "$work/new.csr" -CA "$work/pki/ca.pem" -CAkey "$work/pki/ca.key" -CAcreateserial -days 90 \
        -extfile "$work/ext.cnf" -out "$work/new.pem" 2> /dev/null
    cp "$work/new.pem" "$work/pki/server.pem"
    cp "$work/new.key" "$work/pki/server.key"
    kill -HUP "$server_pid"
    for _ in $(seq 100); do grep -q '"event":"tls_reloaded"' "$work/serve.log" && break; sleep 0.05; done
    check "SIGHUP takes the new certificate for new connections" bash -c "[ '$(serial)' != '$before' ]"
    check "its expiry is the metric now" bash -c "[ '$(metric 'kyotaku_tls_certificate_expiry_seconds{file="server.pem",subject="/O=kyotaku test/CN=localhost"}' "$port")' != '$expiry_before' ]"
    after=$(serial)
    # A bad file: refused, logged, the old one kept.
    echo "not a certificate" > "$work/pki/server.pem"
    kill -HUP "$server_pid"
    for _ in $(seq 100); do grep -q '"event":"tls_reload_failed"' "$work/serve.log" && break; sleep 0.05; done
    check "a bad certificate file is refused and logged, naming it" grep -q '"event":"tls_reload_failed".*server.pem' "$work/serve.log"
    check "the certificate in force stays" test "$(serial)" = "$after"
    check "and requests are served" test "$(status none "$U/healthz")" = 200
    check "the refusal is counted" test "$(metric 'kyotaku_tls_reloads_total{result="failed"}' "$port")" = 1
    ;;
*) echo "unknown case $case"; exit 2 ;;
esac
finish
