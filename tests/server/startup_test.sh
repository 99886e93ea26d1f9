#!/usr/bin/env bash
# What `kyotaku serve` decides before it starts (issue 22 items 8 and 9), one case per argument:
#   agree    --check-config and serve judge every configuration alike, by one code path (ops/preflight.hpp): a
#            configuration --check-config refuses, serve refuses with the same errors (status 2, never an abort),
#            each naming the file; one it accepts, serve starts on. Paths that cannot be read (symlink loops) too.
#   secrets  a database password — in the URL's user information, as ?password=, as sslpassword= — is never
#            printed: not by --check-config, not in serve's refusal, not in the "listening on" line, not in the
#            log (with KYOTAKU_TEST_PG: on a real PostgreSQL, which accepts the password and ignores it).
#   one_key  one key file per deployment (issue 21 item 3; with KYOTAKU_TEST_PG): two servers started at once with
#            different key files on an empty database — one runs, the other refuses naming both fingerprints; then
#            --check-config and serve refuse that key alike, and the first key is accepted.
# Usage: startup_test.sh CASE KYOTAKU SOURCE_DIR
set -uo pipefail
case=$1 kyotaku=$2 src=$3
source "$(cd "$(dirname "$0")" && pwd)/testlib.sh"
"$src/scripts/make-test-pki" "$work/pki" $A > /dev/null
cd "$work"

# judge NAME ARGS…: --check-config and serve on the same arguments; sets check_rc, serve_rc, and the error lines of
# each (without their prefixes) in $work/NAME.check and $work/NAME.serve.
judge() {
    local name=$1
    shift
    "$kyotaku" serve "$@" --check-config > "$work/$name.check.out" 2> "$work/$name.check.err"
    check_rc=$?
    timeout 60 "$kyotaku" serve "$@" > "$work/$name.serve.out" 2> "$work/$name.serve.err" &
    local pid=$!
    started_pids+=("$pid")
    # listening_port (scripts/lib/serve.sh, through testlib.sh) fails at once when the server ends without listening.
    if listening_port "$work/$name.serve.out" "$pid" > /dev/null 2>&1; then
        serve_rc=started
        kill "$pid"
        wait "$pid"
    else
        wait "$pid"
        serve_rc=$?
    fi
    sed -n 's/^error: //p' "$work/$name.check.err" > "$work/$name.check"
    sed -n 's/^kyotaku serve: error: //p' "$work/$name.serve.err" > "$work/$name.serve"
}
# refused NAME WHAT ARGS…: both refuse, with the same errors, one of which contains WHAT.
refused() {
    local name=$1 what=$2
    shift 2
    judge "$name" "$@"
    check "$name: --check-config refuses (1)" test "$check_rc" = 1
    check "$name: serve refuses (2, not an abort)" test "$serve_rc" = 2
    check "$name: with the same errors" diff "$work/$name.check" "$work/$name.serve"
    check "$name: naming $what" grep -qF -- "$what" "$work/$name.serve"
    check "$name: nothing thrown past the checks" bash -c "! grep -q 'terminate called' '$work/$name.serve.err' '$work/$name.check.err'"
}
lacks() { ! grep -qi -- "$1" <<< "$2"; }
base=(--port 0 --rules "$src/rules" --tls-dir "$work/pki")

case $case in
agree)
    judge good "${base[@]}" --db "$work/good.sqlite"
    check "good: --check-config says it would start" test "$check_rc" = 0
    check "good: serve starts" test "$serve_rc" = started

    ln -s loop "$work/loop"  # a symlink to itself: every path through it fails with ELOOP, not ENOENT
    refused tls_loop "$work/loop/ca.pem" --port 0 --rules "$src/rules" --tls-dir "$work/loop" --db "$work/a.sqlite"
    mkdir "$work/pki2" && cp "$work/pki/ca.pem" "$work/pki/server.pem" "$work/pki2/"
    refused tls_missing_key "$work/pki2/server.key" --port 0 --rules "$src/rules" --tls-dir "$work/pki2" --db "$work/a.sqlite"
    cp "$work/pki/facility-$A.key" "$work/pki2/server.key"
    refused tls_wrong_key "$work/pki2/server.key" --port 0 --rules "$src/rules" --tls-dir "$work/pki2" --db "$work/a.sqlite"
    refused db_loop "$work/loop/k.sqlite" "${base[@]}" --db "$work/loop/k.sqlite"
    refused rules_loop "$work/loop/rules" --port 0 --rules "$work/loop/rules" --tls-dir "$work/pki" --db "$work/a.sqlite"
    # Rules that compile but lack what the server asks (medical_info_viewable): --check-config said "would start".
    cp -r "$src/rules" "$work/rules" && rm "$work/rules/40_viewing.rules" "$work/rules/tests/viewing_test.rules" "$work/rules/60_invariants.rules"
    check "(the trimmed rules still compile)" bash -c "'$kyotaku' check '$work/rules' > /dev/null 2>&1"
    refused rules_contract "the rules do not fulfil the server's contract" --port 0 --rules "$work/rules" --tls-dir "$work/pki" --db "$work/a.sqlite"
    touch "$work/spool-file"
    refused spool_not_a_folder "$work/spool-file" "${base[@]}" --db "$work/a.sqlite" --spool-dir "$work/spool-file"
    (umask 022; openssl rand -hex 32 > "$work/open.key")
    refused key_open_to_others "chmod 600" "${base[@]}" --db "$work/a.sqlite" --key-file "$work/open.key"
    refused key_loop "$work/loop/x.key" "${base[@]}" --db "$work/a.sqlite" --key-file "$work/loop/x.key"
    refused bad_host "0.0.0.0" --host 0.0.0.0 --port 0 --rules "$src/rules" --tls-dir "$work/pki" --db "$work/a.sqlite"
    printf '[serve]\nport = "x"\n' > "$work/bad.toml"
    refused bad_file "bad.toml:2:8" --config "$work/bad.toml"
    refused config_loop "$work/loop/k.toml" --config "$work/loop/k.toml"
    check "no database was made by a refused start" test ! -e "$work/a.sqlite"
    ;;
secrets)
    secret=hunter2Secret
    if [ -n "${KYOTAKU_TEST_PG:-}" ]; then
        (umask 077; openssl rand -hex 32 > "$work/pg.key")
        for url in "${KYOTAKU_TEST_PG}?password=$secret" "${KYOTAKU_TEST_PG}?sslmode=disable&sslpassword=$secret" \
                   "$(sed "s|postgresql://postgres@|postgresql://postgres:$secret@|" <<< "$KYOTAKU_TEST_PG")"; do
            out=$("$kyotaku" serve "${base[@]}" --db "$url" --key-file "$work/pg.key" --check-config 2>&1); rc=$?
            check "--check-config accepts $(sed "s/$secret/…/" <<< "$url")" test $rc = 0
            check "and prints no password" lacks "$secret" "$out"
            check "but shows where it was (***)" grep -q "^db = .*\*\*\*" <<< "$out"
            start_server "$work/pg.log" "$kyotaku" serve "${base[@]}" --db "$url" --key-file "$work/pg.key"
            check "the listening line names the database without its password" grep -q "^listening on https://.*(postgresql .*\*\*\*" "$work/pg.log"
            check "nothing the server printed holds the password" bash -c "! grep -q '$secret' '$work/pg.log' '$work/pg.log.err'"
            stop_server
        done
    fi
    # Unreachable: the refusal names the database without the password, however it was given.
    for url in "postgresql://kyotaku:$secret@127.0.0.1:1/none" "postgresql://kyotaku@127.0.0.1:1/none?password=$secret" \
               "postgres://kyotaku@127.0.0.1:1/none?connect_timeout=2&sslpassword=$secret" "postgresql://kyotaku:$secret%40x@127.0.0.1:1/none"; do
        (umask 077; openssl rand -hex 32 > "$work/k.key")
        out=$("$kyotaku" serve "${base[@]}" --db "$url" --key-file "$work/k.key" --check-config 2>&1); rc=$?
        check "--check-config refuses an unreachable database" test $rc = 1
        check "without printing its password ($(sed "s/$secret/…/" <<< "$url"))" lacks "$secret" "$out"
        out=$(KYOTAKU_DB=$url "$kyotaku" serve "${base[@]}" --key-file "$work/k.key" 2>&1); rc=$?
        check "serve refuses it too (2)" test $rc = 2
        check "without printing its password either" lacks "$secret" "$out"
        check "but naming it" grep -q "127.0.0.1:1/none" <<< "$out"
    done
    ;;
one_key)
    [ -n "${KYOTAKU_TEST_PG:-}" ] || { echo "one_key needs KYOTAKU_TEST_PG (tests/server/with_postgres.sh)"; exit 2; }
    declare -A racer
    for k in 1 2; do
        (umask 077; openssl rand -hex 32 > "$work/key$k")
        timeout 120 "$kyotaku" serve "${base[@]}" --db "$KYOTAKU_TEST_PG" --key-file "$work/key$k" > "$work/race$k.out" 2> "$work/race$k.err" &
        racer[$k]=$!
        started_pids+=("${racer[$k]}")
    done
    # Until each has started or ended.
    for _ in $(seq 1200); do
        settled=0
        for k in 1 2; do
            if grep -q "^listening on" "$work/race$k.out" || ! kill -0 "${racer[$k]}" 2> /dev/null; then settled=$((settled + 1)); fi
        done
        [ $settled = 2 ] && break
        sleep 0.05
    done
    winner="" loser=""
    for k in 1 2; do if grep -q "^listening on" "$work/race$k.out"; then winner+=$k; else loser+=$k; fi; done
    check "of two servers started at once with different key files, one runs" test "${#winner}" = 1 -a "${#loser}" = 1
    [ "${#winner}" = 1 ] && [ "${#loser}" = 1 ] || { cat "$work"/race?.err; finish; exit 1; }
    wait "${racer[$loser]}"; rc=$?
    check "the other refuses to start (2)" test $rc = 2
    fingerprint=$("$kyotaku" serve "${base[@]}" --db "$KYOTAKU_TEST_PG" --key-file "$work/key$winner" --check-config 2> /dev/null |
                  sed -n 's/^key_file: .*: fingerprint \([0-9A-F]\{16\}\)$/\1/p')
    check "--check-config accepts the first key and prints its fingerprint" test -n "$fingerprint"
    check "the refusal names the database's fingerprint" grep -qF "fingerprint $fingerprint, this key's " "$work/race$loser.err"
    other=$(sed -n "s/.*fingerprint $fingerprint, this key's \([0-9A-F]\{16\}\).*/\1/p" "$work/race$loser.err" | head -1)
    check "and its own, another" test -n "$other" -a "$other" != "$fingerprint"
    key=$(cat "$work/key$loser")
    check "the key itself is printed nowhere" bash -c "! grep -qiF '$key' '$work/race$loser.err' '$work/race$loser.out'"
    # Started again later, alone, the same key is refused the same way by serve and by --check-config.
    refused another_key "$other" "${base[@]}" --db "$KYOTAKU_TEST_PG" --key-file "$work/key$loser"
    judge same_key "${base[@]}" --db "$KYOTAKU_TEST_PG" --key-file "$work/key$winner"
    check "a second server with the first key starts" test "$serve_rc" = started
    ;;
*) echo "unknown case $case"; exit 2 ;;
esac
finish
