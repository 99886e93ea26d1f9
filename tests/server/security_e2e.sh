#!/usr/bin/env bash
# Issue 10 over a real socket and real files (SQLite): the session's limits (connection cap, descriptor exhaustion,
# handshake and header deadlines, bodies refused before they are read), spooled uploads that leave nothing behind,
# and the files at rest (database 0600, the key file, sealed URL keys). Each check names the finding it covers.
# Usage: security_e2e.sh KYOTAKU SOURCE_DIR
set -uo pipefail
kyotaku=$1 src=$2
here=$(cd "$(dirname "$0")" && pwd)
# The work folder, check and finish (testlib.sh; it sources scripts/lib/serve.sh for listening_port).
source "$here/testlib.sh"
pid=""
on_exit='[ -z "$pid" ] || kill "$pid" 2> /dev/null'
probe() { node "$here/security_probe.mjs" "$@"; }
A=0110113719
"$src/scripts/make-test-pki" "$work/pki" $A > /dev/null
db="$work/db.sqlite"
umask 022  # what a careless service account has: the server must not rely on it

start() {  # start [NOFILE]: the server, with at most NOFILE descriptors when given
    (
        [ -n "${1:-}" ] && ulimit -n "$1"
        exec "$kyotaku" serve --port 0 --db "$db" --rules "$src/rules" --tls-dir "$work/pki" --test-clock 2024-07-31
    ) > "$work/serve.log" 2>&1 &
    pid=$!
    port=$(listening_port "$work/serve.log" "$pid") || exit 1
}
stop() { kill "$pid" 2> /dev/null; wait "$pid" 2> /dev/null; pid=""; }
as() {  # as WHO curl-args…: admin, A (管理者 of A) or none
    local who=$1
    shift
    local cert=()
    case $who in
        admin) cert=(--cert "$work/pki/admin.pem" --key "$work/pki/admin.key") ;;
        A) cert=(--cert "$work/pki/facility-$A-manager.pem" --key "$work/pki/facility-$A-manager.key") ;;
    esac
    curl -sS --max-time 20 --cacert "$work/pki/ca.pem" "${cert[@]}" "$@"
}
status_of() { as "$@" -o /dev/null -w '%{http_code}'; }
spool="$db.spool"

# 5. A killed server's spool files are removed at start (the directory is made private if missing).
mkdir -m 700 "$spool" && touch "$spool/upload-left-by-a-crash"
start
U=https://127.0.0.1:$port
check "5: the spool directory is private and emptied at start" bash -c "[ \"\$(stat -c %a '$spool')\" = 700 ] && [ -z \"\$(ls -A '$spool')\" ]"
# 8. The key file is created 0600, with a clear message; the database files are 0600 whatever the umask.
check "8: the key file is created 0600" test "$(stat -c %a "$db.key")" = 600
check "8: its creation is announced" grep -q "created the key file" "$work/serve.log"
check "admin creates facility A" test "$(status_of admin -H 'Content-Type: application/json' --data-binary "{\"code\":\"$A\",\"name\":\"A\",\"kind\":\"医科\"}" "$U/api/v1/admin/facilities")" = 201
check "A gets its URL" test "$(status_of A "$U/api/v1/url")" = 200
for f in "$db" "$db-wal" "$db-shm"; do
    check "8: $(basename "$f") is 0600" test "$(stat -c %a "$f")" = 600
done
# 8. No URL key is stored in plain text (so far the only 256-bit value of this database would be the URL key).
keys=$(strings "$db" "$db-wal" 2> /dev/null | grep -Eo '[0-9a-f]{64}' | sort -u | wc -l)
sealed=$(strings "$db" "$db-wal" 2> /dev/null | grep -c 'v1:[0-9A-F]\{100,\}')
check "8: the stored URL key is sealed (v1:…), no 256-bit hex key is stored" bash -c "[ '$sealed' -ge 1 ] && [ '$keys' = 0 ]"

# 5. Bodies are refused before they are read: a caller without a certificate announcing 1 GiB for the batch upload
# is answered 403 at once, and nothing is spooled; a route anyone may call takes 64 KiB.
big=$(probe send "$port" "$work/pki/ca.pem" 'POST /api/v1/batch/reinquiry HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/csv\r\nContent-Length: 1073741824\r\n\r\n' 10000)
check "5: 1 GiB without a certificate is refused (403) before it is read ($big)" bash -c "[[ '$big' == 'status=403 '* ]]"
check "5: nothing was spooled" test -z "$(ls -A "$spool")"
# Over every route's limit (more than 1 GiB) the caller is still refused as a caller (403, not a 413 "at most 0
# bytes"), and the log names the route.
huge=$(probe send "$port" "$work/pki/ca.pem" 'POST /api/v1/batch/reinquiry HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/csv\r\nContent-Length: 2147483648\r\n\r\n' 10000)
check "5: 2 GiB without a certificate is refused (403) too ($huge)" bash -c "[[ '$huge' == 'status=403 '* ]]"
check "5: the early refusals are logged with their route" bash -c "[ \$(grep '\"status\":403' '$work/serve.log' | grep -c '\"route\":\"/api/v1/batch/reinquiry\"') -ge 2 ]"
anon=$(probe send "$port" "$work/pki/ca.pem" 'POST /api/v1/consent/challenge HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 10485760\r\n\r\n' 10000)
check "5: 10 MB to a route anyone may call is a 413 at once ($anon)" bash -c "[[ '$anon' == 'status=413 '* ]]"
# 5. An XML file is bounded (16 MiB) before it is read.
head -c $((17 * 1024 * 1024)) /dev/zero | tr '\0' ' ' > "$work/big.xml"
check "5: a 17 MiB XML file is a 413" test "$(status_of A -H 'Content-Type: application/xml' --data-binary @"$work/big.xml" "$U/api/v1/oqs/OQSmuquc01req")" = 413
# Issue 22: the spool budget is disk. A budget beyond the disk's free space is a warning of --check-config and at start.
"$kyotaku" serve --check-config --port 0 --db "$db" --rules "$src/rules" --tls-dir "$work/pki" --upload-spool-mb 16777216 > "$work/check.out" 2>&1
check "22: --check-config warns of a spool budget beyond the disk's free space" grep -q 'warning: spool_dir: .*less free space than upload_spool_mb' "$work/check.out"
"$kyotaku" serve --port 0 --db "$work/other.sqlite" --rules "$src/rules" --tls-dir "$work/pki" --upload-spool-mb 16777216 > "$work/other.log" 2>&1 &
other=$!
listening_port "$work/other.log" "$other" > /dev/null
kill "$other" 2> /dev/null
wait "$other" 2> /dev/null
check "22: and so does serve at start (a warning line in its log)" grep -q '"level":"warning".*"event":"spool_disk_low"' "$work/other.log"
# Issue 22: Expect: 100-continue. A body the server would refuse is refused before the client sends a byte of it; one
# it takes gets "100 Continue" at once (without it the client waits — here up to 20 s — and sends anyway).
expect=(-H 'Expect: 100-continue' --expect100-timeout 20)
check "22: a refused body announced with Expect is never sent (413, 0 bytes uploaded)" \
    test "$(as A "${expect[@]}" -H 'Content-Type: application/xml' --data-binary @"$work/big.xml" -o /dev/null -w '%{http_code} %{size_upload}' "$U/api/v1/oqs/OQSmuquc01req")" = "413 0"
head -c $((100 * 1024)) /dev/zero | tr '\0' 'x' > "$work/taken.xml"
as A -v "${expect[@]}" -H 'Content-Type: application/xml' --data-binary @"$work/taken.xml" -o /dev/null "$U/api/v1/oqs/OQSmuquc01req" 2> "$work/expect.log"
check "22: a body the server takes gets 100 Continue" grep -q '^< HTTP/1.1 100 Continue' "$work/expect.log"
check "22: and is then read and answered (not a 413)" bash -c "grep '^< HTTP/1.1 [2-5]' '$work/expect.log' | grep -qv ' 413'"

# 2. Deadlines: a connection that never starts TLS, and a header that never ends, are closed within seconds (10 s
# each), not held for a minute. (Both probes run side by side.)
probe silent "$port" > "$work/silent.out" &
silent_probe=$!
header=$(probe send "$port" "$work/pki/ca.pem" 'GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ' 40000)
wait "$silent_probe"
silent=$(cat "$work/silent.out")
check "2: a connection without a TLS handshake is closed within 15 s ($silent)" bash -c "[[ '$silent' =~ ^closed_after_ms=([0-9]+)$ ]] && [ \${BASH_REMATCH[1]} -lt 15000 ]"
check "2: a header that never ends is closed within 15 s ($header)" bash -c "[[ '$header' =~ ^status=none\ ms=([0-9]+)$ ]] && [ \${BASH_REMATCH[1]} -lt 15000 ]"

# 5. A spooled upload has no name on disk: SIGKILLed in the middle, it leaves nothing.
{
    echo "arbitrary_identifier,insurer_number,symbol,number,branch,birthdate"
    for i in $(seq 200000); do echo "row$i,06132013,123,4567,01,1940-05-01"; done
} > "$work/batch.csv"
ls /tmp > "$work/tmp.before"
as A --limit-rate 500k -H 'Content-Type: text/csv' --data-binary @"$work/batch.csv" "$U/api/v1/batch/reinquiry" -o /dev/null 2> /dev/null &
uploader=$!
for _ in $(seq 200); do
    ls -l /proc/"$pid"/fd 2> /dev/null | grep -q "spool/upload-.*(deleted)" && break
    sleep 0.05
done
check "5: the upload is spooled to an unlinked file in the private directory" bash -c "ls -l /proc/$pid/fd | grep -q 'spool/upload-.*(deleted)' && [ -z \"\$(ls -A '$spool')\" ]"
kill -9 "$pid"; wait "$pid" 2> /dev/null; pid=""
wait "$uploader" 2> /dev/null
ls /tmp > "$work/tmp.after"
check "5: after SIGKILL nothing of the upload is on disk" bash -c "[ -z \"\$(ls -A '$spool')\" ] && ! comm -13 '$work/tmp.before' '$work/tmp.after' | grep -q kyotaku-upload"

# 8. A key file others can read is refused; so is another key file than the one the database was sealed with.
chmod 644 "$db.key"
"$kyotaku" serve --port 0 --db "$db" --rules "$src/rules" --tls-dir "$work/pki" > "$work/refused.log" 2>&1
check "8: a key file readable by others is refused" bash -c "[ $? = 2 ] && grep -q 'chmod 600' '$work/refused.log'"
chmod 600 "$db.key"
"$kyotaku" serve --port 0 --db "$db" --key-file "$work/other.key" --rules "$src/rules" --tls-dir "$work/pki" > "$work/other.log" 2>&1
check "8: another key file is refused" bash -c "[ $? = 2 ] && grep -q 'does not open' '$work/other.log'"
"$kyotaku" serve --port 0 --db postgresql://127.0.0.1:1/none --rules "$src/rules" --tls-dir "$work/pki" > "$work/pg.log" 2>&1
check "8: PostgreSQL needs --key-file" bash -c "[ $? = 2 ] && grep -q -- '--key-file is required' '$work/pg.log'"

# 2. Descriptor exhaustion: with 64 descriptors the cap is lowered to fit; 300 connections at once are closed beyond
# it and the server keeps accepting afterwards (before: EMFILE ended the accept loop for good).
start 64
U=https://127.0.0.1:$port
check "2: the cap is lowered to the descriptor limit" grep -q "connection cap lowered" "$work/serve.log"
held=$(probe hold "$port" 300)
check "2: connections beyond the cap are closed at once ($held)" bash -c "[[ '$held' =~ ^closed=([0-9]+)$ ]] && [ \${BASH_REMATCH[1]} -ge 250 ]"
ok=""
for _ in $(seq 50); do
    [ "$(status_of none "$U/healthz" 2> /dev/null)" = 200 ] && ok=yes && break
    sleep 0.2
done
check "2: the server still answers after the flood" test "$ok" = yes
held=$(probe hold "$port" 300)
check "2: and still caps a second flood ($held)" bash -c "[[ '$held' =~ ^closed=([0-9]+)$ ]] && [ \${BASH_REMATCH[1]} -ge 250 ]"
check "2: and answers again" bash -c "for i in \$(seq 50); do [ \"\$(curl -sS --max-time 5 --cacert '$work/pki/ca.pem' -o /dev/null -w '%{http_code}' '$U/healthz' 2>/dev/null)\" = 200 ] && exit 0; sleep 0.2; done; exit 1"
stop

finish
