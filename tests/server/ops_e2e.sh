#!/usr/bin/env bash
# Operating kyotaku serve (issue 12), over real TLS: the configuration file, variables and flags and
# --check-config; --listen beyond loopback; one JSON log line per request that never holds a token, a passcode, a
# PIN or a body; /healthz, /readyz and /metrics (parsed by Prometheus' own Python parser); rules reloaded on SIGHUP
# (a broken rule set refused, the old one kept); /readyz failing when the database cannot be written or its
# schema is newer than the binary, and the server refusing to start on such a database.
# Usage: ops_e2e.sh KYOTAKU SOURCE_DIR   (with KYOTAKU_TEST_PG set: on that PostgreSQL)
set -uo pipefail
kyotaku=$1 src=$2
py=/usr/bin/python3  # Debian's, with python3-prometheus-client
source "$(dirname "$0")/testlib.sh"
db="$work/db.sqlite"
sql() { sqlite3 "$db" "$1"; }
if [ -n "${KYOTAKU_TEST_PG:-}" ]; then
    db=$KYOTAKU_TEST_PG
    sql() { psql -qAt "$KYOTAKU_TEST_PG" -c "$1"; }
    psql -q "$KYOTAKU_TEST_PG" -c 'DROP SCHEMA public CASCADE; CREATE SCHEMA public;' > /dev/null
fi
"$src/scripts/make-test-pki" "$work/pki" $A > /dev/null
cp -r "$src/rules" "$work/rules"

# ---- configuration ---------------------------------------------------------------------------------------
cat > "$work/kyotaku.toml" <<EOF
# test configuration
[serve]
listen = "127.0.0.1:0"
db = "$db"
rules = "$work/rules"
tls_dir = "$work/pki"
threads = 2
test_clock = "2024-07-31"
key_file = "$work/kyotaku.key"
EOF
out=$("$kyotaku" serve --config "$work/kyotaku.toml" --check-config 2>&1); rc=$?
check "--check-config accepts a good file" test $rc -eq 0
check "--check-config says where each value came from" grep -q "tls_dir = $work/pki  ($work/kyotaku.toml:6:11)" <<< "$out"
check "--check-config reports the rules' hash" grep -q "rules: .* files, source hash [0-9a-f]\{16\}" <<< "$out"
out=$(KYOTAKU_THREADS=3 "$kyotaku" serve --config "$work/kyotaku.toml" --check-config 2>&1)
check "a variable overrides the file" grep -q "threads = 3  (KYOTAKU_THREADS)" <<< "$out"
out=$(KYOTAKU_THREADS=3 KYOTAKU_CONFIG="$work/kyotaku.toml" "$kyotaku" serve --threads 5 --check-config 2>&1)
check "a flag overrides the variable (and KYOTAKU_CONFIG names the file)" grep -q "threads = 5  (--threads)" <<< "$out"
printf '[serve]\nport = "8443"\nlisten = "127.0.0.1:80800"\n' > "$work/bad.toml"
out=$("$kyotaku" serve --config "$work/bad.toml" --check-config 2>&1); rc=$?
check "--check-config refuses a bad file" test $rc -eq 1
check "naming the line and column of a wrong type" grep -q "bad.toml:2:8: serve.port: " <<< "$out"
check "and of a bad port" grep -q "bad.toml:3:10: listen: " <<< "$out"
"$kyotaku" serve --config "$work/bad.toml" > /dev/null 2>&1
check "serve refuses to start with a bad file" test $? -eq 2
out=$(KYOTAKU_DB="postgresql://kyotaku:hunter2secret@127.0.0.1:1/none" "$kyotaku" serve --config "$work/kyotaku.toml" --check-config 2>&1); rc=$?
check "an unreachable database fails the check" test $rc -eq 1
not_in() { ! grep -q "$2" <<< "$1"; }
check "without printing its password" not_in "$out" hunter2secret
"$kyotaku" serve --host 0.0.0.0 --port 0 --db "$work/x.sqlite" --rules "$work/rules" --tls-dir "$work/pki" > /dev/null 2>&1
check "--host stays loopback-only" test $? -eq 2

# --listen beyond loopback, asked explicitly (the test talks to it over 127.0.0.1 only).
start_server "$work/any.log" "$kyotaku" serve --listen 0.0.0.0:0 --db "$work/any.sqlite" --rules "$work/rules" --tls-dir "$work/pki"
check "--listen 0.0.0.0:PORT is accepted" grep -q "^listening on https://0.0.0.0:" "$work/any.log"
check "and answers on loopback" test "$(status none "$U/healthz")" = 200
check "without public_url it warns that facility URLs would name 0.0.0.0" \
    grep -q '"event":"facility_urls_unreachable"' "$work/any.log"
stop_server
any=(--listen 0.0.0.0:0 --db "$work/any.sqlite" --rules "$work/rules" --tls-dir "$work/pki")
out=$("$kyotaku" serve "${any[@]}" --check-config 2>&1); rc=$?
check "--check-config still passes there" test $rc -eq 0
check "and warns about it too" grep -q "public_url is not set and listen is on 0.0.0.0" <<< "$out"
out=$("$kyotaku" serve "${any[@]}" --public-url https://kyotaku.example.jp --check-config 2>&1)
check "and not once public_url names the address patients reach" not_in "$out" "public_url is not set"

# ---- the server, configured by its file ----------------------------------------------------------------------
start_server "$work/serve.log" env KYOTAKU_CONFIG="$work/kyotaku.toml" "$kyotaku" serve
check "healthz" test "$(status none "$U/healthz")" = 200
check "readyz when ready" test "$(status none "$U/readyz")" = 200
setup_facility
token=$(api staff "$U/api/v1/url" | sed 's/.*\/c\/\([A-Za-z0-9_-]*\)".*/\1/')
passcode=$(api staff -X POST "$U/api/v1/visual-passcode" | sed 's/.*"passcode":"\([0-9]*\)".*/\1/')
check "the test has a token and a passcode to look for" test -n "$token" -a -n "$passcode" -a ${#passcode} -ge 6
api none -o /dev/null "$U/c/$token"
api none -o /dev/null "$U/api/v1/consent/page?token=$token"
api none -o /dev/null "${json[@]}" -X POST "$U/api/v1/consent/register" -d "{\"token\":\"$token\",\"identity_method\":\"目視確認\",\"visual_passcode\":\"$passcode\"}"
check "a re-inquiry, allowed by the rules on the configured test clock's day" grep -q '"allowed":true' <<< "$(api staff "${json[@]}" -X POST "$U/api/v1/reinquiry" -d "$reinquiry")"
check "a body with a PIN is refused" test "$(status staff "${json[@]}" -X POST "$U/api/v1/reinquiry" -d '{"pin":"73917391"}')" = 400
check "an unknown route" test "$(status none "$U/no/such/SECRETPATH")" = 404
rid=$(api staff -D - -o /dev/null "$U/api/v1/settings" | tr -d '\r' | sed -n 's/^[Xx]-[Rr]equest-[Ii]d: //p')
check "every answer names its request id" test -n "$rid"
printf 'arbitrary_identifier,insurer_number,symbol,number,branch,birthdate\nr1,06132013,123,4567,01,1940-05-01\nr2,06132013,123,4567,01,1940-05-01\n' > "$work/batch.csv"
rn=$(api staff -H 'Content-Type: text/csv' --data-binary @"$work/batch.csv" "$U/api/v1/batch/reinquiry?query_date=2024-07-01&file_identifier=ops" | sed 's/.*"reception_number":"\([0-9]*\)".*/\1/')
for _ in $(seq 100); do grep -q '"state":"finished"' "$work/serve.log" && break; sleep 0.1; done

# The log: one JSON object per line (after the "listening on" line for scripts), each request's fields, nothing secret.
cat > "$work/logcheck.py" <<'EOF'
import json, sys
path, rid, rn, *secrets = sys.argv[1:]
lines = [l for l in open(path, encoding="utf-8") if not l.startswith("listening on ")]
records = [json.loads(l) for l in lines]            # every line is JSON
assert all("time" in r and "level" in r for r in records), "time and level on every line"
requests = [r for r in records if r.get("event") == "request"]
keys = {"time", "level", "event", "request_id", "facility", "role", "method", "route", "status", "duration_ms", "bytes_in", "bytes_out", "listener"}
assert all(set(r) == keys for r in requests), [set(r) ^ keys for r in requests if set(r) != keys]
assert len(requests) >= 14, len(requests)
assert all(r["listener"] == "main" for r in requests), "no patient_listen here: every request on the main listener"
assert any(r["request_id"] == rid and r["route"] == "/api/v1/settings" and r["role"] == "staff" and r["facility"] == "0110113719" for r in requests)
assert any(r["route"] == "/c/{token}" and r["role"] == "anonymous" and r["facility"] is None for r in requests)
assert any(r["route"] == "/api/v1/settings" and r["method"] == "PUT" and r["role"] == "manager" for r in requests)
assert any(r["route"] == "/api/v1/admin/facilities" and r["role"] == "operator" for r in requests)
assert any(r["route"] is None and r["status"] == 404 for r in requests)
assert any(r["route"] == "/api/v1/reinquiry" and r["status"] == 400 for r in requests)
assert any(r["route"] == "/api/v1/batch/reinquiry" and r["status"] == 202 and r["bytes_in"] > 100 for r in requests)
assert any(r.get("event") == "batch_job" and r["state"] == "accepted" and r["reception_number"] == rn and r["rows"] == 2 for r in records)
assert any(r.get("event") == "batch_job" and r["state"] == "finished" and r["reception_number"] == rn for r in records)
assert any(r.get("event") == "rules_loaded" and len(r["hash"]) == 16 for r in records)
text = open(path, encoding="utf-8").read()
for s in secrets:
    assert s not in text, "the log holds a secret: " + s
print("log ok:", len(requests), "request lines")
EOF
check "the request log is complete and holds no secret" "$py" "$work/logcheck.py" "$work/serve.log" "$rid" "$rn" "$token" "$passcode" 73917391 SECRETPATH 在宅 06132013

# ---- metrics ------------------------------------------------------------------------------------------------
check "metrics refused without a certificate" test "$(status none "$U/metrics")" = 403
check "metrics refused to a facility" test "$(status staff "$U/metrics")" = 403
check "metrics for the monitoring certificate" test "$(status monitor "$U/metrics")" = 200
cat > "$work/metrics.py" <<'EOF'
import sys
from prometheus_client.parser import text_string_to_metric_families
families = {f.name: f for f in text_string_to_metric_families(sys.stdin.read())}
def samples(name, **labels):
    return [s for s in families[name].samples if all(s.labels.get(k) == v for k, v in labels.items())]
want = sys.argv[1]
if want == "shape":
    assert families["kyotaku_http_requests"].type == "counter"
    assert samples("kyotaku_http_requests", route="/api/v1/reinquiry", method="POST", status="200")[0].value >= 1
    assert samples("kyotaku_http_requests", route="unmatched", status="404")[0].value >= 1
    h = families["kyotaku_http_request_duration_seconds"]
    assert h.type == "histogram"
    assert [s for s in h.samples if s.name.endswith("_count") and s.labels["route"] == "/api/v1/reinquiry"][0].value >= 2
    assert samples("kyotaku_rules_info")[0].labels["compiler"].startswith("kyotaku-rules")
    for name in ("kyotaku_batch_rows", "kyotaku_batch_jobs", "kyotaku_db_pool_connections", "kyotaku_db_pool_waiting",
                 "kyotaku_consents", "kyotaku_consent_registrations", "kyotaku_schema_migrations", "kyotaku_http_connections_open",
                 "kyotaku_http_connections_refused", "kyotaku_http_accept_errors"):
        assert name in families, name
    print("metrics ok:", len(families), "families")
elif want == "hash":
    print(samples("kyotaku_rules_info")[0].labels["hash"])
elif want == "failed-reloads":
    print(int(samples("kyotaku_rules_reloads", result="failed")[0].value))
elif want == "answered":
    print(int(samples("kyotaku_batch_rows", state="answered")[0].value))
EOF
metrics() { api admin "$U/metrics" | "$py" "$work/metrics.py" "$1"; }
check "the metrics parse as Prometheus text with every family" metrics shape
for _ in $(seq 100); do [ "$(metrics answered)" = 2 ] && break; sleep 0.1; done
check "answered batch rows are counted" test "$(metrics answered)" = 2

# ---- rules reloaded on SIGHUP -------------------------------------------------------------------------------
old=$(metrics hash)
printf '\n# 改定 (reload test)\n' >> "$work/rules/10_service.rules"
kill -HUP "$server_pid"
for _ in $(seq 100); do [ "$(metrics hash)" != "$old" ] && break; sleep 0.1; done
new=$(metrics hash)
check "SIGHUP loads the changed rules" test "$new" != "$old"
check "and logs their hash" grep -q "\"event\":\"rules_loaded\".*\"hash\":\"$new\"" "$work/serve.log"
check "requests are answered by the new rules" test "$(status staff "${json[@]}" -X POST "$U/api/v1/reinquiry" -d "$reinquiry")" = 200
cp "$work/rules/10_service.rules" "$work/10_service.good"
printf '\nこれは ルール では ない\n' >> "$work/rules/10_service.rules"
kill -HUP "$server_pid"
for _ in $(seq 100); do grep -q rules_reload_failed "$work/serve.log" && break; sleep 0.1; done
check "a broken rule set is refused and logged, naming the file" grep -q '"event":"rules_reload_failed".*10_service.rules:' "$work/serve.log"
check "the old rules stay in service" test "$(metrics hash)" = "$new"
check "the refusal is counted" test "$(metrics failed-reloads)" = 1
check "requests still succeed" test "$(status staff "${json[@]}" -X POST "$U/api/v1/reinquiry" -d "$reinquiry")" = 200
cp "$work/10_service.good" "$work/rules/10_service.rules"

# ---- readiness ------------------------------------------------------------------------------------------------
readyz_within() {  # readyz_within STATUS: polls /readyz (an answer is kept a second) until it answers STATUS
    for _ in $(seq 40); do [ "$(status none "$U/readyz")" = "$1" ] && return 0; sleep 0.25; done
    return 1
}
if [ -z "${KYOTAKU_TEST_PG:-}" ]; then
    # Another process holds SQLite's write lock: the server cannot write (its busy timeout is 5 s).
    "$py" -c "
import sqlite3, time, os, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
c.execute('BEGIN IMMEDIATE')
open(sys.argv[2], 'w').close()
while not os.path.exists(sys.argv[3]): time.sleep(0.05)
c.execute('ROLLBACK')" "$db" "$work/locked" "$work/release" &
    holder=$!
    started_pids+=("$holder")
    for _ in $(seq 100); do [ -f "$work/locked" ] && break; sleep 0.05; done
    check "readyz fails while the database cannot be written" readyz_within 503
    check "its answer says which check failed" bash -c "curl -sS --cacert '$work/pki/ca.pem' '$U/readyz' | grep -q '\"database\":\"書き込めません'"
    check "healthz (liveness) still answers" test "$(status none "$U/healthz")" = 200
    touch "$work/release"; wait "$holder"
    check "ready again once it can" readyz_within 200
    check "the failed write is logged as an error with a time" grep -q '"time":"[0-9T:.-]*Z","level":"error","event":"readiness_database"' "$work/serve.log"
fi
# A key file other than the one the database's URL keys were sealed with: --check-config says so, as serve would.
(umask 077; openssl rand -hex 32 > "$work/other.key")
out=$(KYOTAKU_KEY_FILE="$work/other.key" KYOTAKU_CONFIG="$work/kyotaku.toml" "$kyotaku" serve --check-config 2>&1); rc=$?
check "--check-config refuses a key file the database was not sealed with" test $rc -eq 1
check "naming it" grep -q "not the key file this database was sealed with" <<< "$out"
out=$(KYOTAKU_CONFIG="$work/kyotaku.toml" "$kyotaku" serve --check-config 2>&1); rc=$?
check "--check-config accepts the database's own key file" test $rc -eq 0
sql "INSERT INTO schema_migrations (name, applied_at) VALUES ('999_from_a_newer_kyotaku.sql', 'x')"
check "readyz fails when the schema is newer than the binary" readyz_within 503
stop_server
out=$(KYOTAKU_CONFIG="$work/kyotaku.toml" "$kyotaku" serve 2>&1); rc=$?
check "the server refuses to start on a newer schema" test $rc -eq 2
check "saying so" grep -q "999_from_a_newer_kyotaku.sql" <<< "$out"
out=$(KYOTAKU_CONFIG="$work/kyotaku.toml" "$kyotaku" serve --check-config 2>&1)
check "--check-config says so too" grep -q "schema is newer" <<< "$out"

finish
