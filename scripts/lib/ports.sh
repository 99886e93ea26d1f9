# Sourced by the tests that need a port of their own before a program can take port 0 (HAProxy, etcd, PostgreSQL,
# a second listener): defines free_port and nothing else — no work folder, no trap, no output.
#
# free_port: prints a port no one listens on now, below the ephemeral range (outgoing connections never take it
# meanwhile). A caller that binds it later retries on another when someone took it in between.
free_port() {
    /usr/bin/python3 -c '
import random, socket
for _ in range(500):
    p = random.randint(20000, 32000)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); s.close(); print(p); break
    except OSError:
        s.close()'
}
