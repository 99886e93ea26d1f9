#!/usr/bin/env bash
# The workbench's proof child and the server's end (issue 23's outsider findings, fixed in 6dabc82):
# 1. SIGTERM kills a running proof at once and its client gets 503, long before the drain's bound;
# 2. a server killed with SIGKILL takes its proof child with it (PR_SET_PDEATHSIG), no orphan proving on alone.
# The child is a stand-in for `kyotaku prove` (prove_executable): a script that becomes `sleep 3600`, found as the
# server's child process. Usage: proof_signals_test.sh KYOTAKU SOURCE_DIR
set -uo pipefail
kyotaku=$1 src=$2
source "$src/tests/server/testlib.sh"
"$src/scripts/make-test-pki" "$work/pki" > /dev/null
# The proof's folder is written by the server; the child may write nothing (RLIMIT_FSIZE 0), so it only sleeps.
printf '#!/bin/sh\nexec /bin/sleep 3600\n' > "$work/slow-prove"
chmod +x "$work/slow-prove"
body='{"files":[{"path":"a.rules","text":"fact q : date\n"}]}'

serve() {
    start_server "$work/serve.log" "$kyotaku" serve --port 0 --db "$work/db.sqlite" --rules "$src/rules" \
        --tls-dir "$work/pki" --prove-executable "$work/slow-prove" --prove-seconds 600 --drain-seconds 120
}
# prove_in_background: posts the proof as the operator; its status goes to $work/prove.status when it ends.
prove_in_background() {
    rm -f "$work/prove.status"
    (api admin "${json[@]}" -o /dev/null -w '%{http_code}' -X POST "$U/api/v1/admin/rules/prove" -d "$body" \
        > "$work/prove.status.part" 2> /dev/null
     mv "$work/prove.status.part" "$work/prove.status") &
    curl_pid=$!
}
# the_child: the pid of the server's `sleep` child, waiting for it up to 60 s (it appears once the request is read).
the_child() {
    local child=""
    for _ in $(seq 600); do
        child=$(pgrep -P "$server_pid" -x sleep | head -1)
        [ -n "$child" ] && break
        sleep 0.1
    done
    echo "$child"
}
# gone PID SECONDS: true once PID has ended, waiting at most SECONDS.
gone() {
    for _ in $(seq $(($2 * 10))); do
        kill -0 "$1" 2> /dev/null || return 0
        sleep 0.1
    done
    ! kill -0 "$1" 2> /dev/null
}

# 1. SIGTERM while a proof runs: the proof is killed and answered 503 now, not after the 120 s drain.
serve
prove_in_background
child=$(the_child)
check "the proof's child runs" test -n "$child"
started=$SECONDS
kill -TERM "$server_pid"
wait "$curl_pid"
check "its client is answered 503 (stopped)" test "$(cat "$work/prove.status" 2> /dev/null)" = 503
check "within 60 s of SIGTERM, far from the 120 s drain" test $((SECONDS - started)) -lt 60
check "the child is killed" gone "$child" 10
wait "$server_pid" 2> /dev/null
check "the server exits" gone "$server_pid" 60

# 2. SIGKILL while a proof runs: the child dies with the server (its process group is not signalled by anyone).
serve
prove_in_background
child=$(the_child)
check "the second proof's child runs" test -n "$child"
kill -KILL "$server_pid"
check "the child dies with the server (PR_SET_PDEATHSIG)" gone "$child" 30
kill "$child" 2> /dev/null  # a failed check above leaves no sleeper behind
wait "$curl_pid" 2> /dev/null
finish
