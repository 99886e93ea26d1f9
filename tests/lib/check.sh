# Sourced by the shell tests: `check NAME COMMAND…` runs the command and counts it as passed (status 0) or failed
# (printing "FAIL: NAME"); `finish` prints the count line ("N passed, M failed") and fails when any check failed —
# the last command of a test, so that its status is the test's.
fails=0 passes=0
check() {
    local name=$1
    shift
    if "$@"; then passes=$((passes + 1)); else echo "FAIL: $name"; fails=$((fails + 1)); fi
}
finish() {
    echo "$passes passed, $fails failed"
    [ "$fails" -eq 0 ]
}
