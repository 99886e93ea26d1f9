#!/usr/bin/python3
# Clients for the connection tests (issue 22 items 2, 3 and 5), all to 127.0.0.1, bounded in count and time.
#
#   noclose PORT PKI CODE COUNT THREADS
#       COUNT requests (GET /api/v1/whoami with facility CODE's certificate), each on a connection of its own that the
#       client closes without TLS close_notify (as Python's ssl does unless unwrap() is called); prints
#       "noclose: N requests, F failed".
#   load PORT PKI CODE STOP_FILE THREADS
#       requests on fresh connections (each closed politely) until STOP_FILE exists; prints
#       "load: N requests, F failed" and each failure.
#   flood raw|trickle PORT PKI CODE ATTACKERS SECONDS
#       ATTACKERS connections that never finish a handshake — raw: TCP connections that send nothing; trickle: a real
#       ClientHello sent one byte every 100 ms — each opened again as soon as the server closes it, for SECONDS, while a
#       facility client makes requests (a fresh TLS connection each, 5 s allowed); prints
#       "flood MODE: facility A of B answered (P %), attacker connections opened C".
import os
import resource
import selectors
import socket
import ssl
import sys
import threading
import time

HOST = "127.0.0.1"


def context(pki, code):
    ctx = ssl.create_default_context(cafile=f"{pki}/ca.pem")
    ctx.load_cert_chain(f"{pki}/facility-{code}.pem", f"{pki}/facility-{code}.key")
    ctx.check_hostname = False
    return ctx


def read_response(tls):
    """Reads one HTTP/1.1 response with a Content-Length; returns its status."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = tls.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the header")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = tls.recv(65536)
        if not chunk:
            raise ConnectionError("closed in the body")
        body += chunk
    return status


def request(ctx, port, polite, timeout=10.0, path="/api/v1/whoami"):
    raw = socket.create_connection((HOST, port), timeout=timeout)
    tls = ctx.wrap_socket(raw, server_hostname="localhost")
    try:
        tls.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        status = read_response(tls)
        if polite:
            try:
                tls.unwrap()
            except (ssl.SSLError, OSError):
                pass
        return status
    finally:
        tls.close()  # without unwrap(): no close_notify, only the TCP close


def run_threads(n, work):
    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def noclose(port, pki, code, count, threads):
    ctx = context(pki, code)
    lock = threading.Lock()
    tally = {"n": 0, "failed": 0}

    def work(i):
        for _ in range(count // threads + (1 if i < count % threads else 0)):
            try:
                ok = request(ctx, port, polite=False) == 200
            except (OSError, ssl.SSLError, ConnectionError, ValueError):
                ok = False
            with lock:
                tally["n"] += 1
                tally["failed"] += 0 if ok else 1

    run_threads(threads, work)
    print(f"noclose: {tally['n']} requests, {tally['failed']} failed", flush=True)


def load(port, pki, code, stop_file, threads):
    ctx = context(pki, code)
    lock = threading.Lock()
    tally = {"n": 0, "failed": 0}

    def work(i):
        while not os.path.exists(stop_file):
            try:
                status = request(ctx, port, polite=True)
                error = None if status == 200 else f"status {status}"
            except (OSError, ssl.SSLError, ConnectionError, ValueError) as e:
                error = repr(e)
            with lock:
                tally["n"] += 1
                if error:
                    tally["failed"] += 1
                    print(f"load: failed at {time.time():.3f}: {error}", flush=True)

    run_threads(threads, work)
    print(f"load: {tally['n']} requests, {tally['failed']} failed", flush=True)


def client_hello():
    """The bytes of a real ClientHello (what a browser sends first), made with a memory BIO."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def flood(mode, port, pki, code, attackers, seconds):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    hello = client_hello()
    stop = time.monotonic() + seconds
    opened = [0]
    started = threading.Event()

    def attack():
        sel = selectors.DefaultSelector()
        conns = {}  # socket -> bytes sent

        def open_one():
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect((HOST, port))
            except BlockingIOError:
                pass
            except OSError:
                s.close()
                return
            conns[s] = 0
            sel.register(s, selectors.EVENT_READ)
            opened[0] += 1

        for _ in range(attackers):
            open_one()
        started.set()
        next_byte = time.monotonic()
        while time.monotonic() < stop:
            for key, _ in sel.select(timeout=0.05):
                s = key.fileobj
                try:
                    gone = s.recv(4096) == b""
                except (BlockingIOError, InterruptedError):
                    gone = False
                except OSError:
                    gone = True
                if gone:  # the server closed it: open another in its place
                    sel.unregister(s)
                    s.close()
                    del conns[s]
                    open_one()
            if mode == "trickle" and time.monotonic() >= next_byte:
                next_byte = time.monotonic() + 0.1
                for s, sent in list(conns.items()):
                    if sent < len(hello):
                        try:
                            s.send(hello[sent:sent + 1])
                            conns[s] = sent + 1
                        except (BlockingIOError, InterruptedError):
                            pass
                        except OSError:
                            pass
        for s in conns:
            s.close()

    attacker = threading.Thread(target=attack)
    attacker.start()
    started.wait()
    time.sleep(1.0)  # the attack in full swing before the facility starts
    ctx = context(pki, code)
    answered = tried = 0
    while time.monotonic() < stop - 0.5:
        tried += 1
        try:
            if request(ctx, port, polite=True, timeout=5.0) == 200:
                answered += 1
        except (OSError, ssl.SSLError, ConnectionError, ValueError):
            pass
    attacker.join()
    rate = 100.0 * answered / tried if tried else 0.0
    print(f"flood {mode}: facility {answered} of {tried} answered ({rate:.1f} %), attacker connections opened {opened[0]}", flush=True)


def main():
    cmd = sys.argv[1]
    if cmd == "noclose":
        port, pki, code, count, threads = sys.argv[2:]
        noclose(int(port), pki, code, int(count), int(threads))
    elif cmd == "load":
        port, pki, code, stop_file, threads = sys.argv[2:]
        load(int(port), pki, code, stop_file, int(threads))
    elif cmd == "flood":
        mode, port, pki, code, attackers, seconds = sys.argv[2:]
        flood(mode, int(port), pki, code, int(attackers), float(seconds))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
