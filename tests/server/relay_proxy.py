#!/usr/bin/python3
# A TLS proxy between `kyotaku relay` and `kyotaku serve` for the crash tests: it takes the relay's request,
# forwards it to the server with the facility's certificate, reads the server's whole answer, and only then runs
# a command (kill the relay, fill its disk) before passing the answer on. So "the server answered, the relay did
# not get (or could not keep) the answer" happens at exactly that point, every time.
# Usage: relay_proxy.py PKI_DIR FACILITY_CODE SERVER_PORT PORT_FILE COMMAND
import http.client
import http.server
import os
import ssl
import subprocess
import sys

pki, code, server_port, port_file, command = sys.argv[1:]
upstream = ssl.create_default_context(cafile=f"{pki}/ca.pem")
upstream.load_cert_chain(f"{pki}/facility-{code}.pem", f"{pki}/facility-{code}.key")
fired = False


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        global fired
        body = self.rfile.read(int(self.headers["Content-Length"]))
        conn = http.client.HTTPSConnection("127.0.0.1", int(server_port), context=upstream)
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "idempotency-key")}
        conn.request("POST", self.path, body=body, headers=headers)
        answer = conn.getresponse()
        data = answer.read()
        with open(port_file + ".log", "a") as log:
            log.write(f"{self.path} {self.headers.get('Idempotency-Key')} {answer.status} {answer.getheader('Idempotent-Replayed')}\n")
        if not fired:
            fired = True
            subprocess.run(command, shell=True, check=False)
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.getheader("Content-Type"))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
front = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
front.load_cert_chain(f"{pki}/server.pem", f"{pki}/server.key")
server.socket = front.wrap_socket(server.socket, server_side=True)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(port_file + ".tmp", port_file)
server.serve_forever()
