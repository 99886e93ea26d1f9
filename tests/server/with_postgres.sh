#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster on loopback (initdb/pg_ctl from Debian's postgresql, as the postgres
# user, since initdb refuses root), runs the given command with KYOTAKU_TEST_PG set to its URL, and stops the
# cluster by its pid. Usage: with_postgres.sh COMMAND [ARGS…]
# KYOTAKU_TEST_PG_SETTINGS: more server settings, as `-c name=value …` (scripts/bench-server: docs/operations.md's).
set -uo pipefail
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
dir=$(mktemp -d /tmp/kyotaku-pg.XXXXXX)
chmod 755 "$dir"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$dir"
as_pg "$bin/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --locale=C.UTF-8 > "$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log"; exit 1; }
port=""
for _ in $(seq 20); do
    candidate=$(shuf -i 20000-60000 -n 1)
    if as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
        -o "-c listen_addresses=127.0.0.1 -p $candidate -k $dir -c fsync=on ${KYOTAKU_TEST_PG_SETTINGS:-}" start > /dev/null 2>&1; then
        port=$candidate
        break
    fi
done
[ -n "$port" ] || { echo "PostgreSQL did not start"; cat "$dir/server.log"; exit 1; }
pid=$(head -1 "$dir/data/postmaster.pid")
stop() { kill -INT "$pid" 2>/dev/null; for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done; rm -rf "$dir"; }
trap stop EXIT
export KYOTAKU_TEST_PG="postgresql://postgres@127.0.0.1:$port/postgres"
"$@"
