#!/usr/bin/env bash
# `kyotaku audit-journal check|apply` on an audit journal a SQLite server set aside (docs/operations.md 8.): the exit
# statuses (0 all good, 1 damage named and skipped, 2 refused), the output (each damaged stretch by its byte offset,
# the counts), apply run twice (nothing doubled), a symlink refused, a file of garbage, --remove; and a server start
# on a journal damaged in the middle applies the records around the damage and sets the file aside.
# Usage: audit_journal_test.sh KYOTAKU SOURCE_DIR
set -uo pipefail
kyotaku=$1 src=$2
source "$src/tests/server/testlib.sh"
"$src/scripts/make-test-pki" "$work/pki" 0110113719 > /dev/null
db="$work/k.sqlite"
serve() {
    start_server "$work/serve$1.log" "$kyotaku" serve --port 0 --db "$db" --rules "$src/rules" --tls-dir "$work/pki" \
        --key-file "$work/k.key" --test-clock 2024-07-31
    stop_server
}
serve 1  # the database, migrated
# Journal files of the server's format (server/storage/audit_journal.hpp): NAME:good | NAME:crc (a flipped checksum
# byte) | garbage:N (N bytes of 0xff), in order.
journal() {
    python3 - "$@" << 'PY'
import struct, sys, zlib
out = open(sys.argv[1], 'wb')
def text(s):
    b = s.encode()
    return b'\x02' + struct.pack('<I', len(b)) + b
for part in sys.argv[2:]:
    name, kind = part.split(':')
    if name == 'garbage':
        out.write(b'\xff' * int(kind))
        continue
    body = (b'\x01' + text(name.encode().hex().ljust(32, '0')) + text('0110113719') +
            text('2026-12-07T12:00:00.000000Z') + text('再照会') + b'\x00' + b'\x01' + struct.pack('<q', 1) +
            text('{"allowed":true}') + text('staff') + b'\x00')
    head = bytearray(struct.pack('<II', len(body), zlib.crc32(body)))
    if kind == 'crc':
        head[5] ^= 1
    out.write(bytes(head) + body)
PY
}
lines() { sqlite3 "$db" 'SELECT COUNT(*) FROM inquiry_log'; }
run() { "$kyotaku" audit-journal "$@" > "$work/out" 2> "$work/err"; echo $? > "$work/status"; }
status() { cat "$work/status"; }
has() { grep -qF -- "$1" "$work/$2"; }

"$kyotaku" audit-journal --help > "$work/help"
check "help names check and apply" sh -c "grep -q check '$work/help' && grep -q apply '$work/help'"
journal "$work/aside" one:good two:crc three:good
record=$(( $(stat -c %s "$work/aside") / 3 ))
run check "$work/aside"
check "check: exit 1 on damage" test "$(status)" = 1
check "check: the damaged record by its offset" has "byte $record: damaged ($record bytes" out
check "check: why" has "checksum (CRC-32) does not match" out
check "check: the counts" has "2 good record(s), 1 damaged (at byte $record)" out
check "check: nothing applied" test "$(lines)" = 0
run apply "$work/aside" --db "$db"
check "apply: exit 1 (damage skipped)" test "$(status)" = 1
check "apply: the counts" has "applied 2, already present 0, skipped 1 damaged (at byte $record)" out
check "apply: two lines in the history" test "$(lines)" = 2
run apply "$work/aside" --db "$db"
check "apply again: nothing applied" has "applied 0, already present 2, skipped 1 damaged" out
check "apply again: nothing doubled" test "$(lines)" = 2
check "apply: the file kept" test -f "$work/aside"
ln -s "$work/aside" "$work/link"
run apply "$work/link" --db "$db"
check "a symlink: exit 2" test "$(status)" = 2
check "a symlink: said" has "is a symbolic link: refused" err
run apply "$work/aside" --db "$work/missing.sqlite"
check "a missing database: exit 2, none created" sh -c "test $(status) = 2 && ! test -e '$work/missing.sqlite'"
journal "$work/garbage" garbage:100000
run check "$work/garbage"
check "garbage: exit 1" test "$(status)" = 1
check "garbage: one damaged stretch, no good record" has "0 good record(s), 1 damaged (at byte 0)" out
journal "$work/clean" four:good one:good
run apply "$work/clean" --db "$db" --remove
check "a clean file: exit 0" test "$(status)" = 0
check "a clean file: the counts" has "applied 1, already present 1, skipped 0 damaged" out
check "a clean file: removed when asked" test ! -e "$work/clean"
run apply
check "no file: a usage error" test "$(status)" != 0

# The server's own start: the records around the damage applied, the file set aside whole.
journal "$db-audit" five:good six:crc seven:good
serve 2
check "the start logs the damage" grep -q '"event":"audit_journal_damaged".*"damaged_records":1.*"lines_applied":2' \
    "$work/serve2.log"
check "the file set aside" test -f "$db-audit.damaged-1"
check "five and seven in the history" test "$(lines)" = 5
run apply "$db-audit.damaged-1" --db "$db"
check "apply on it: both already present" has "applied 0, already present 2, skipped 1 damaged (at byte $record)" out
finish
