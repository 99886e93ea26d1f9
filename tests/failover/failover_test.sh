#!/usr/bin/env bash
# The database survives losing its primary (issue 21 item 2; docs/operations.md "12. High availability"), deployed
# as the shipped examples say: etcd (one member here, three in the example), two PostgreSQL nodes under Patroni
# (docs/examples/ha/patroni.yml: a primary and a synchronous standby), the servers' database connections through
# HAProxy to whichever node Patroni's REST API calls the primary (docs/examples/ha/haproxy-postgresql.cfg), three
# kyotaku servers behind their own balancer (docs/examples/haproxy.cfg).
#
# Round 1: a 100,000-row batch, re-inquiries and consent registrations through the servers' balancer; the primary's
# postmaster is SIGKILLed mid-batch. The standby is promoted, the servers reconnect without a restart, every row is
# answered exactly once with its real answer, every acknowledged (201) consent is on the new primary, interactive
# requests fail only inside a window that is measured and printed, /readyz is 503 inside it and 200 after.
# The old primary rejoins as the synchronous standby (Patroni: pg_rewind when its history diverged).
# Round 2: the same with a 20,000-row batch, failing over back to the first node.
# Usage: failover_test.sh KYOTAKU SOURCE_DIR
set -uo pipefail
kyotaku=$1 src=$2
for tool in patroni etcd haproxy psql; do
    command -v $tool > /dev/null || { echo "$tool is not installed (scripts/setup installs it)"; exit 1; }
done
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
work=$(mktemp -d /tmp/kyotaku-failover.XXXXXX)
chmod 755 "$work"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$work"
etcd_pid="" patroni_pids=() db_haproxy_pid="" pollers=()
cleanup() {
    touch "$work/stop.r1" "$work/stop.r2" "$work/stop.readyz"
    for p in "${pids[@]}" $haproxy_pid $db_haproxy_pid "${pollers[@]}"; do kill "$p" 2>/dev/null; done
    # Patroni stops its PostgreSQL on SIGTERM; whatever is left after 30 s is killed by its pid.
    for p in "${patroni_pids[@]}"; do kill "$p" 2>/dev/null; done
    for _ in $(seq 300); do
        alive=0
        for p in "${patroni_pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && break
        sleep 0.1
    done
    for n in 1 2; do
        [ -f "$work/db$n/data/postmaster.pid" ] && kill -9 "$(head -1 "$work/db$n/data/postmaster.pid")" 2>/dev/null
    done
    for p in "${patroni_pids[@]}"; do kill -9 "$p" 2>/dev/null; done
    [ -n "$etcd_pid" ] && kill "$etcd_pid" 2>/dev/null
    wait 2>/dev/null
    if [ "${KEEP_WORK:-}" = 1 ]; then echo "work kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
. "$src/tests/scale/cluster.sh"
A=0110113719
secret() { openssl rand -hex 12; }
su_pw=$(secret) rep_pw=$(secret) rewind_pw=$(secret) app_pw=$(secret)

# ---- etcd: one member on loopback (the example's three members are for three machines) --------------------------
etcd_client=$(free_port) etcd_peer=$(free_port)
as_pg bash -c "echo \$\$ > '$work/etcd.pid'; exec etcd --name e1 --data-dir '$work/etcd' \
    --listen-client-urls http://127.0.0.1:$etcd_client --advertise-client-urls http://127.0.0.1:$etcd_client \
    --listen-peer-urls http://127.0.0.1:$etcd_peer --initial-advertise-peer-urls http://127.0.0.1:$etcd_peer \
    --initial-cluster e1=http://127.0.0.1:$etcd_peer" > "$work/etcd.log" 2>&1 &
for _ in $(seq 100); do [ -s "$work/etcd.pid" ] && break; sleep 0.1; done
etcd_pid=$(cat "$work/etcd.pid")

# ---- two PostgreSQL nodes under Patroni, with the shipped patroni.yml; what differs per node as PATRONI_* ---------
declare -A pg api
for n in 1 2; do
    pg[$n]=$(free_port) api[$n]=$(free_port)
    as_pg env PATRONI_NAME=db$n PATRONI_ETCD3_HOSTS=127.0.0.1:$etcd_client \
        PATRONI_RESTAPI_LISTEN=127.0.0.1:${api[$n]} PATRONI_RESTAPI_CONNECT_ADDRESS=127.0.0.1:${api[$n]} \
        PATRONI_POSTGRESQL_LISTEN=127.0.0.1:${pg[$n]} PATRONI_POSTGRESQL_CONNECT_ADDRESS=127.0.0.1:${pg[$n]} \
        PATRONI_POSTGRESQL_DATA_DIR=$work/db$n/data PATRONI_POSTGRESQL_PGPASS=$work/db$n/pgpass PATRONI_POSTGRESQL_BIN_DIR=$bin \
        PATRONI_SUPERUSER_PASSWORD=$su_pw PATRONI_REPLICATION_PASSWORD=$rep_pw PATRONI_REWIND_PASSWORD=$rewind_pw \
        bash -c "umask 077; mkdir -p '$work/db$n'; echo \$\$ > '$work/patroni$n.pid'; exec patroni '$src/docs/examples/ha/patroni.yml'" \
        > "$work/patroni$n.log" 2>&1 &
done
for n in 1 2; do
    for _ in $(seq 100); do [ -s "$work/patroni$n.pid" ] && break; sleep 0.1; done
    patroni_pids+=("$(cat "$work/patroni$n.pid")")
done
cluster() { curl -s --max-time 2 "http://127.0.0.1:${api[1]}/cluster" 2> /dev/null || curl -s --max-time 2 "http://127.0.0.1:${api[2]}/cluster"; }
# role NAME: the member's role and state in Patroni's view ("leader running", "sync_standby running" …).
role() { cluster | python3 -c "import json,sys; m=[x for x in json.load(sys.stdin)['members'] if x['name']=='$1']; print(m[0]['role'], m[0]['state']) if m else print('absent')" 2> /dev/null; }
# until_cluster LEADER STANDBY SECONDS: until LEADER leads and STANDBY is its synchronous standby. Bounded by the
# clock, not by a count of tries: under load each try (two curls, two python3) takes seconds, not 0.2 s.
until_cluster() {
    local deadline=$((SECONDS + $3))
    while :; do  # at least one try
        [ "$(role "$1")" = "leader running" ] && [ "$(role "$2")" = "sync_standby running" ] && return 0
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.2
    done
}
# until_formed SECONDS: until either node leads with the other as its synchronous standby (either may win the
# race: waiting for db1 alone, as the test did, sat out the whole bound whenever db2 won).
until_formed() {
    local deadline=$((SECONDS + $1))
    while :; do
        if until_cluster db1 db2 0 || until_cluster db2 db1 0; then return 0; fi
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.2
    done
}
started=$(date +%s)
if ! until_formed 300; then
    echo "the Patroni cluster did not form:"; cluster; tail -n 30 "$work"/patroni*.log; exit 1
fi
leader=db1; [ "$(role db1)" = "leader running" ] || leader=db2
echo "Patroni cluster formed in $(($(date +%s) - started)) s: $leader leads, a synchronous standby follows"

# ---- the database layer's HAProxy, with the shipped haproxy-postgresql.cfg ---------------------------------------
for _ in $(seq 20); do
    dbp=$(free_port)
    sed -e "s|bind 127.0.0.1:5000|bind 127.0.0.1:$dbp|" \
        -e "s|10.0.0.21:5432 check port 8008|127.0.0.1:${pg[1]} check port ${api[1]}|" \
        -e "s|10.0.0.22:5432 check port 8008|127.0.0.1:${pg[2]} check port ${api[2]}|" \
        "$src/docs/examples/ha/haproxy-postgresql.cfg" > "$work/haproxy-postgresql.cfg"
    if sed 's/#.*//' "$work/haproxy-postgresql.cfg" | grep -Eq '10\.0\.0\.|:5000([^0-9]|$)|port 8008([^0-9]|$)'; then echo "haproxy-postgresql.cfg: an address the test does not replace"; exit 1; fi
    haproxy -db -f "$work/haproxy-postgresql.cfg" > "$work/haproxy-postgresql.log" 2>&1 &
    db_haproxy_pid=$!
    admin_db="postgresql://postgres:$su_pw@127.0.0.1:$dbp/postgres"
    for _ in $(seq 100); do psql -qtA "$admin_db" -c 'SELECT 1' > /dev/null 2>&1 && break; sleep 0.1; done
    psql -qtA "$admin_db" -c 'SELECT 1' > /dev/null 2>&1 && break
    kill "$db_haproxy_pid" 2>/dev/null; wait "$db_haproxy_pid" 2>/dev/null; db_haproxy_pid=""
done
[ -n "$db_haproxy_pid" ] || { echo "the database's HAProxy did not start"; cat "$work/haproxy-postgresql.log"; exit 1; }
check "HAProxy takes haproxy-postgresql.cfg without a warning" bash -c "! haproxy -c -f '$work/haproxy-postgresql.cfg' 2>&1 | grep -qi 'warn'"
# The servers' role and database, as docs/operations.md §12 creates them (on the primary, through HAProxy).
psql -q "$admin_db" -c "CREATE ROLE kyotaku LOGIN PASSWORD '$app_pw'" -c "CREATE DATABASE kyotaku OWNER kyotaku" > /dev/null
admin_db="postgresql://postgres:$su_pw@127.0.0.1:$dbp/kyotaku"
(umask 077; echo "127.0.0.1:$dbp:kyotaku:kyotaku:$app_pw" > "$work/pgpass")

# ---- the kyotaku servers, reaching the database only through that HAProxy -----------------------------------------
"$src/scripts/make-test-pki" "$work/pki" $A 1340100021 1360100018 > /dev/null
(umask 077; openssl rand -hex 32 > "$work/kyotaku.key")
start_servers 3 "postgresql://kyotaku@127.0.0.1:$dbp/kyotaku" PGPASSFILE="$work/pgpass"
start_balancer
check "demo data loads through the balancer" "$src/scripts/demo-data" "$U" "$work/pki" 2024-07-31

# Each server's /readyz, asked directly every 0.2 s: "STATUS TIME".
for i in 0 1 2; do
    ( while [ ! -f "$work/stop.readyz" ]; do
          echo "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 --cacert "$work/pki/ca.pem" "https://127.0.0.1:${ports[i]}/readyz") $(date +%s.%N)"
          sleep 0.2
      done > "$work/readyz.$i" ) &
    pollers+=($!)
done

# failover TAG ROWS KILL_AFTER: a batch of ROWS rows and the interactive load; the primary's postmaster SIGKILLed
# once KILL_AFTER rows are answered; then the checks, and the window printed.
failover() {
    local tag=$1 rows=$2 kill_after=$3 old new
    old=$leader; new=db1; [ "$old" = db1 ] && new=db2
    batch_csv "$rows" "$work/batch.$tag.csv"
    local rn; rn=$(upload "$work/batch.$tag.csv" "$tag")
    check "the batch is accepted ($tag)" test -n "$rn"
    start_load "$tag"
    for _ in $(seq 1800); do [ "$(job_column "$rn" done)" -ge "$kill_after" ] 2>/dev/null && break; sleep 0.1; done
    local before; before=$(job_column "$rn" done)
    local postmaster; postmaster=$(head -1 "$work/$old/data/postmaster.pid")
    # (the time taken just before the signal: taken after it, by a fork of date on a loaded machine, a request that
    # failed in the milliseconds between was counted as failed before the kill)
    local killed_at; killed_at=$(date +%s.%N)
    kill -9 "$postmaster"
    echo "$tag: SIGKILL of $old's postmaster (pid $postmaster) after $before of $rows rows"
    local promoted=""
    for _ in $(seq 600); do
        if [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:${api[${new#db}]}/primary")" = 200 ]; then promoted=$(date +%s.%N); break; fi
        sleep 0.1
    done
    check "the standby $new is promoted ($tag)" test -n "$promoted"
    check "the job finishes after the failover ($tag)" wait_for_job "$rn"
    sleep 3  # the load goes on a little after the job: requests after the window must all succeed
    stop_load "$tag"
    leader=$new
    check_batch "$rn" "$rows"
    # Every acknowledged consent is on the new primary (asked directly, not through HAProxy).
    check_consents "$tag" "postgresql://postgres:$su_pw@127.0.0.1:${pg[${new#db}]}/kyotaku"
    check "the new primary is $new" test "$(psql -qtA "postgresql://postgres:$su_pw@127.0.0.1:${pg[${new#db}]}/kyotaku" -c 'SELECT pg_is_in_recovery()')" = f
    for i in 0 1 2; do check "server $i kept running, without a restart ($tag)" kill -0 "${pids[i]}"; done

    # The window: from the SIGKILL to the end of the last failed interactive request (re-inquiry or consent) or the
    # last 503 of any server's /readyz, whichever is later: after it, every request succeeds and every server is ready.
    cat "$work"/interactive.$tag.* > "$work/requests.$tag"
    local total failed before_kill last_fail last_503 window
    total=$(wc -l < "$work/requests.$tag")
    failed=$(grep -c '^fail' "$work/requests.$tag" "$work/consent-fails.$tag" | awk -F: '{n += $2} END {print n}')
    before_kill=$(cat "$work/requests.$tag" "$work/consent-fails.$tag" | awk -v t="$killed_at" '$1 == "fail" && $3 < t {n++} END {print n + 0}')
    last_fail=$(cat "$work/requests.$tag" "$work/consent-fails.$tag" | awk -v t="$killed_at" 'BEGIN {m = t} $1 == "fail" && $3 > m {m = $3} END {printf "%.3f", m}')
    last_503=$(cat "$work"/readyz.? | awk -v t="$killed_at" 'BEGIN {m = t} $1 != 200 && $2 > t && $2 > m {m = $2} END {printf "%.3f", m}')
    local fail_window; fail_window=$(echo "$last_fail $killed_at" | awk '{printf "%.1f", $1 - $2}')
    local readyz_window; readyz_window=$(echo "$last_503 $killed_at" | awk '{printf "%.1f", $1 - $2}')
    window=$(echo "$fail_window $readyz_window" | awk '{printf "%.1f", ($1 > $2 ? $1 : $2)}')
    local promotion; promotion=$(echo "${promoted:-$killed_at} $killed_at" | awk '{printf "%.1f", $1 - $2}')
    local consents; consents=$(wc -l < "$work/acked.$tag")
    echo "$tag: failover window ${window} s (goal ≤ 15 s): standby promoted after ${promotion} s, last failed request ended at" \
         "${fail_window} s, last /readyz 503 at ${readyz_window} s; rows $rows answered once; re-inquiries $total; consents acknowledged" \
         "$consents; failed interactive requests $failed"
    cat "$work/requests.$tag" "$work/consent-fails.$tag" |
        awk -v t="$killed_at" '$1 == "fail" {printf "  a request failed: from %+.1f s to %+.1f s, %s %s\n", $2 - t, $3 - t, $4, $5}'
    check "no interactive request failed before the kill ($tag)" test "$before_kill" = 0
    check "interactive requests fail only inside a window of at most 15 s ($tag)" awk -v w="$window" 'BEGIN {exit !(w <= 15)}'
    for i in 0 1 2; do
        check "server $i's /readyz was 503 inside the window ($tag)" awk -v t="$killed_at" '$1 == 503 && $2 > t {f = 1} END {exit !f}' "$work/readyz.$i"
        check "server $i's /readyz is 200 after it ($tag)" test "$(tail -n 1 "$work/readyz.$i" | cut -d' ' -f1)" = 200
    done
}

failover r1 100000 20000
# The old primary rejoins as the synchronous standby, by pg_rewind when its history diverged.
old=db1; [ "$leader" = db1 ] && old=db2
check "the old primary $old rejoins as the synchronous standby" until_cluster "$leader" "$old" 180
if grep -q 'running pg_rewind' "$work/patroni${old#db}.log"; then echo "$old rejoined by pg_rewind"; else echo "$old rejoined without a rewind (its history had not diverged)"; fi
check "and it has every acknowledged consent" bash -c "[ \$(psql -qtA 'postgresql://postgres:$su_pw@127.0.0.1:${pg[${old#db}]}/kyotaku' -c \"SELECT COUNT(*) FROM consents WHERE id IN ($(sed "s/.*/'&'/" "$work/acked.r1" | paste -sd,))\") = $(sort -u "$work/acked.r1" | wc -l) ]"
failover r2 20000 5000

finish
