#!/usr/bin/env bash
# Runs the card bridge's libFuzzer targets (clang + AddressSanitizer, UBSan; built by the build:
# tests/fuzz/CMakeLists.txt) each for a fixed number of seconds: apdu_fuzz (APDUs, DER header, vpcd frames, the
# virtual card), reader_frame_fuzz (Port-100 frames, ATQB, ISO-DEP, the simulated reader) and bridge_message_fuzz
# (kyotaku-bridge's JSON requests). Usage: run_card.sh BIN SRC OUT SECONDS
set -euo pipefail
bin=$1 src=$2 out=$3 seconds=$4
mkdir -p "$out"
source "$src/tests/fuzz/report.sh"
status=0
run() {  # run NAME SEEDS... (a seed "hex:…" is written as bytes)
    local name=$1
    shift
    mkdir -p "$out/corpus-$name"
    local i=0
    for seed in "$@"; do
        if [[ $seed == hex:* ]]; then
            printf "$(echo "${seed#hex:}" | sed 's/../\\x&/g')" > "$out/corpus-$name/seed$i"
        else
            printf '%s' "$seed" > "$out/corpus-$name/seed$i"
        fi
        i=$((i + 1))
    done
    echo "== $name"
    (cd "$out" && fuzz_run "$name" "$name.log" 6 "$bin/$name" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -max_len=4096 -print_final_stats=1 "corpus-$name") || status=1
}
run apdu_fuzz hex:00A4040C0AD392F000260100000001 hex:00A4020C02000A hex:00B0000000 hex:00200080043132333400 \
    hex:802A00803330313000 hex:00B00000000100 hex:6110 hex:308203459000
run reader_frame_fuzz hex:0000FFFFFF0300FDD62A01FF00 hex:0000FF00FF00 hex:0200A4 hex:F205 hex:500102030400000000008170 \
    hex:060000FF00FF000E0000FFFFFF0300FDD72B00FE00
run bridge_message_fuzz '{"id":1,"op":"hello","token":"0123456789abcdef","version":1}' \
    '{"id":2,"op":"sign","pin":"1234","challenge":"AAECAw=="}' '{"id":3,"op":"open","reader":"x","wait_ms":100}'
exit $status
