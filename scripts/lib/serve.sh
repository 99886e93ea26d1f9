# Sourced by every script and test that starts `kyotaku serve` (scripts/run, scripts/bench-server, tests/…/*.sh): the
# one way to wait until a server listens.
#
# listening_port LOG PID [TENTHS]: waits until LOG, the standard output of the `kyotaku serve` whose process is PID,
# has the line "listening on https://HOST:PORT (…)", then prints PORT. Gives up with status 1 — printing LOG (and
# LOG.err when there is one) to standard error — when PID ends first, or after TENTHS tenths of a second (default
# 600: a loaded machine may take a minute to migrate and start). LOG must be opened with `>` (emptied) by PID's shell,
# or emptied before PID starts: a line left by an earlier server would be taken for PID's.
listening_port() {
    local log=$1 pid=$2 tenths=${3:-600} port="" _ target
    target=$(readlink -f "$log")
    for _ in $(seq "$tenths"); do
        # Only once the process's standard output is LOG: until its shell has opened (and emptied) the file, LOG may
        # still hold an earlier server's line with an earlier port (a restart writing to the same log did, under load).
        if [ -e "/proc/$pid/fd/1" ] && [ "$(readlink -f "/proc/$pid/fd/1" 2> /dev/null)" != "$target" ]; then
            kill -0 "$pid" 2> /dev/null || break
            sleep 0.1
            continue
        fi
        port=$(sed -n 's/^listening on https:\/\/.*:\([0-9][0-9]*\) (.*/\1/p' "$log" 2> /dev/null)
        [ -n "$port" ] && break
        kill -0 "$pid" 2> /dev/null || break
        sleep 0.1
    done
    # A server that wrote the line and then ended has not started either.
    [ -z "$port" ] && port=$(sed -n 's/^listening on https:\/\/.*:\([0-9][0-9]*\) (.*/\1/p' "$log" 2> /dev/null)
    if [ -n "$port" ] && kill -0 "$pid" 2> /dev/null; then
        echo "$port"
        return 0
    fi
    echo "kyotaku serve (pid $pid) did not start; its output ($log):" >&2
    cat "$log" >&2 2> /dev/null
    [ -f "$log.err" ] && cat "$log.err" >&2
    return 1
}
