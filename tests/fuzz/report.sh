# Sourced by the fuzz scripts. fuzz_run NAME LOG TAIL COMMAND…: runs a libFuzzer target with its whole output in LOG
# and prints its last TAIL lines; when it fails, prints instead everything after its last progress line (what the
# input did: the server's log line, "500 for …", the sanitizer's report with the whole stack) and the input that
# failed as base64, so that a failure in CI can be reproduced from CI's output alone:
#   base64 -d > crash && BIN crash
fuzz_run() {
    local name=$1 log=$2 lines=$3
    shift 3
    if "$@" > "$log" 2>&1; then
        tail -n "$lines" "$log"
        return 0
    fi
    echo "FAIL: $name: the fuzzer found an input that fails (whole log: $log)"
    local last
    last=$(grep -nE '^#[0-9]+[[:space:]]' "$log" | tail -n 1 | cut -d: -f1)
    tail -n +"$((${last:-0} + 1))" "$log" | head -n 150
    local unit
    unit=$(sed -n "s/.*Test unit written to \(.*\)$/\1/p" "$log" | tail -n 1)
    if [ -n "$unit" ] && [ -f "$unit" ]; then
        echo "the failing input ($unit), base64:"
        base64 -w 0 "$unit"
        echo
    fi
    return 1
}
