#!/usr/bin/env bash
# scripts/run with its port taken (issue 25, item 9): it says at once which program holds the port and how to
# choose another, and exits before building or starting anything (it used to end after a minute in curl's "SSL
# certificate problem"). The port is one the system gives a listener of this test (no fixed port).
# Usage: run_port_test.sh SOURCE_DIR SCRATCH_DIR
set -euo pipefail
src=$1
scratch=$2
rm -rf "$scratch"
mkdir -p "$scratch"
fail() { echo "FAIL: $*" >&2; exit 1; }

# A listener on an ephemeral loopback port: it prints its port, then holds it until its input closes (at exit).
coproc python3 -c 'import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
print(s.getsockname()[1], flush=True)
sys.stdin.read()'
holder=$COPROC_PID
trap 'kill $holder 2> /dev/null || true' EXIT
read -r -t 60 port <&"${COPROC[0]}" || fail "no port from the listener"

for setting in PORT PATIENT_PORT BRIDGE_PORT; do
  status=0
  env "$setting=$port" DATA="$scratch/run" timeout 60 "$src/scripts/run" > "$scratch/out" 2> "$scratch/err" || status=$?
  [ "$status" -eq 2 ] || fail "$setting taken: exit status $status, expected 2; stderr: $(cat "$scratch/err")"
  grep -q "port $port is already in use by \"python3\" (pid $holder)" "$scratch/err" || fail "$setting: the holder is not named: $(cat "$scratch/err")"
  grep -q "$setting=$((port + 1)) scripts/run" "$scratch/err" || fail "$setting: no way out offered: $(cat "$scratch/err")"
  [ ! -e "$scratch/run" ] || fail "$setting: scripts/run went on after the check (it made $scratch/run)"
  grep -q "setup\|ninja\|cmake" "$scratch/out" && fail "$setting: scripts/run started building: $(cat "$scratch/out")"
done
echo "ok - scripts/run names the program that holds its port (PORT, PATIENT_PORT and BRIDGE_PORT) and exits before building"
