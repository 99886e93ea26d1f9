#!/usr/bin/python3
# A peer that accepts and then says nothing, for the relay's deadline tests (issue 22 item 1).
#   tcp: accepts the TCP connection and never reads or writes (the relay waits in its TLS handshake);
#   tls: completes the TLS handshake with the server's certificate, then never answers (the relay waits for the answer).
# Each accepted connection (tcp) or finished handshake (tls) appends a line to PORT_FILE.log; connections are held
# open until the peer is killed.
# Usage: silent_peer.py MODE PKI_DIR PORT_FILE
import os
import socket
import ssl
import sys
import threading

mode, pki, port_file = sys.argv[1:]
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(64)
with open(port_file + ".tmp", "w") as f:
    f.write(str(listener.getsockname()[1]))
os.rename(port_file + ".tmp", port_file)
held = []


def note(what):
    with open(port_file + ".log", "a") as log:
        log.write(what + "\n")


def handshake(conn):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(f"{pki}/server.pem", f"{pki}/server.key")
    try:
        held.append(context.wrap_socket(conn, server_side=True))
        note("handshake")
    except (ssl.SSLError, OSError):
        pass


while True:
    conn, _ = listener.accept()
    held.append(conn)
    if mode == "tls":
        threading.Thread(target=handshake, args=(conn,), daemon=True).start()
    else:
        note("accepted")
