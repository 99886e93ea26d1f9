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
#   flood raw|trickle PORT PKI CODE ATTACKERS SECONDS [ATTACK_PORT]
#       ATTACKERS connections that never finish a handshake — raw: TCP connections that send nothing; trickle: a real
#       ClientHello sent one byte every 100 ms — each opened again as soon as the server closes it, for SECONDS, while a
#       facility client makes requests (a fresh TLS connection each, 5 s allowed); prints
#       "flood MODE: facility A of B answered (P %), attacker connections opened C". The attackers connect to
#       ATTACK_PORT when it is given (the patients' listener), the facility always to PORT.
#   budget PORT PKI A B
#       the upload budget (issue 22 item 4) on a server started with upload_memory_mb = 160, upload_spool_mb = 100 and
#       uploads_per_facility = 3: uploads held open after their header (the server has taken their budget when the
#       open-uploads gauge says so), the ones refused answered at once; prints one line per step (the test checks them).
#   attack PORT PKI CODES COUNT MIB
#       COUNT uploads of MIB MiB each (JSON to POST /api/v1/reinquiry), all begun at once, from the facilities CODES
#       (comma-separated) in turn; each reads an answer the server gives before its body is whole; prints
#       "attack: N uploads of M MiB at once: answered A, 429 T, 503 U, cut C" (cut: the connection closed before
#       the client read an answer — a refused upload's answer is lost when the server's close meets its body still
#       coming; the server's count of refusals says what it did).
import json
import os
import resource
import select
import selectors
import socket
import ssl
import sys
import threading
import time

HOST = "127.0.0.1"


def context(pki, code, name=None):
    name = name or f"facility-{code}"
    ctx = ssl.create_default_context(cafile=f"{pki}/ca.pem")
    ctx.load_cert_chain(f"{pki}/{name}.pem", f"{pki}/{name}.key")
    ctx.check_hostname = False
    return ctx


def read_response(tls):
    """Reads one HTTP/1.1 response with a Content-Length; returns its status."""
    return read_answer(tls)[0]


def read_answer(tls, data=b""):
    """Reads one HTTP/1.1 response with a Content-Length (its first bytes may have been read: `data`): (status,
    headers by lower-case name, body)."""
    while b"\r\n\r\n" not in data:
        chunk = tls.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the header")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = tls.recv(65536)
        if not chunk:
            raise ConnectionError("closed in the body")
        body += chunk
    return status, headers, body


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


def flood(mode, port, pki, code, attackers, seconds, attack_port=None):
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
                s.connect((HOST, attack_port or port))
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


MIB = 1 << 20
OPEN, MEMORY, SPOOL = "kyotaku_http_uploads_open", 'kyotaku_http_upload_bytes{store="memory"}', 'kyotaku_http_upload_bytes{store="spool"}'
REFUSED = 'kyotaku_http_uploads_refused_total{reason="%s"}'
MEMORY_ROUTE, SPOOL_ROUTE = "/api/v1/reinquiry", "/api/v1/batch/reinquiry"


def connect(ctx, port, timeout=60.0):
    return ctx.wrap_socket(socket.create_connection((HOST, port), timeout=timeout), server_hostname="localhost")


def upload_header(path, length):
    kind = "text/csv" if path == SPOOL_ROUTE else "application/json"
    return f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {kind}\r\nContent-Length: {length}\r\n\r\n".encode()


def describe(answer):
    """"STATUS retry-after R fields F": what a refusal must carry (the one error shape, Retry-After)."""
    status, headers, body = answer
    try:
        fields = ",".join(sorted(json.loads(body)))
    except ValueError:
        fields = "(not JSON)"
    return f"{status} retry-after {headers.get('retry-after', '-')} fields {fields}"


def send_rest(tls, sent, length):
    """Sends the body's remaining bytes and reads the answer. A body is "x" and spaces: a JSON or CSV route refuses it
    at its first byte (nlohmann's parser would keep a copy of a run of spaces as it skipped them)."""
    chunk = b" " * MIB
    while sent < length:
        n = min(len(chunk), length - sent)
        tls.sendall(chunk[:n])
        sent += n
    return read_answer(tls)


def budget(port, pki, code_a, code_b):
    a, b, admin = context(pki, code_a), context(pki, code_b), context(pki, None, "admin")

    def metric(name):
        tls = connect(admin, port)
        try:
            tls.sendall(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            for line in read_answer(tls)[2].decode().splitlines():
                if line.startswith(name + " "):
                    return int(float(line.split()[-1]))
        finally:
            tls.close()
        return None

    def until(name, value):
        """Polls /metrics until NAME is VALUE (at most 30 s); returns what it read last."""
        deadline = time.monotonic() + 30
        while True:
            seen = metric(name)
            if seen == value or time.monotonic() > deadline:
                return seen
            time.sleep(0.05)

    def hold(ctx, path, length):
        """An upload that has sent its header and a first KiB: the server decides from the header alone."""
        tls = connect(ctx, port)
        tls.sendall(upload_header(path, length) + b"x" + b" " * 1023)
        return tls, length

    def refused(ctx, path, length):
        tls = connect(ctx, port)
        try:
            tls.sendall(upload_header(path, length))
            return describe(read_answer(tls))
        finally:
            tls.close()

    def say(text):
        print(f"budget: {text}", flush=True)

    held = []
    for i in range(3):
        held.append(hold(a, MEMORY_ROUTE, 50 * MIB))
        say(f"A's upload {i + 1} of 50 MiB under way: uploads open {until(OPEN, i + 1)}")
    say(f"memory taken {until(MEMORY, 150 * MIB) // MIB} MiB")
    say(f"A's 4th upload (1 MiB, the budget has room): {refused(a, MEMORY_ROUTE, MIB)}")
    say(f"B's upload of 50 MiB (10 MiB left): {refused(b, MEMORY_ROUTE, 50 * MIB)}")
    small = connect(b, port)
    small.sendall(b"GET /api/v1/whoami HTTP/1.1\r\nHost: localhost\r\n\r\n")
    say(f"B's request without a large body: {read_answer(small)[0]}")
    small.close()
    held.append(hold(b, SPOOL_ROUTE, 60 * MIB))
    say(f"B's spooled upload of 60 MiB under way: uploads open {until(OPEN, 4)}")
    say(f"spool taken {until(SPOOL, 60 * MIB) // MIB} MiB")
    say(f"B's second spooled upload of 60 MiB (40 MiB left): {refused(b, SPOOL_ROUTE, 60 * MIB)}")
    tls, length = hold(b, MEMORY_ROUTE, 5 * MIB)
    say(f"B's upload of 5 MiB (10 MiB left) answered by its route: {send_rest(tls, 1024, length)[0]}")
    tls.close()
    statuses = []
    for tls, length in held:
        statuses.append(str(send_rest(tls, 1024, length)[0]))
        tls.close()
    say(f"the uploads held, sent whole, answered by their routes: {' '.join(statuses)}")
    say(f"afterwards: uploads open {until(OPEN, 0)}, memory taken {until(MEMORY, 0)}, "
        f"spool taken {until(SPOOL, 0)}")
    tls, length = hold(b, MEMORY_ROUTE, 50 * MIB)
    say(f"B's upload of 50 MiB now answered by its route: {send_rest(tls, 1024, length)[0]}")
    tls.close()
    say(f"refused: budget {metric(REFUSED % 'budget')}, "
        f"facility {metric(REFUSED % 'facility')}")


def answer_waiting(tls, timeout):
    """The answer, when one has arrived; None when none has (a TLS 1.3 session ticket alone makes the socket readable)."""
    if not (tls.pending() or select.select([tls], [], [], 0)[0]):
        return None
    tls.settimeout(0)
    try:
        first = tls.recv(65536)
    except (ssl.SSLWantReadError, BlockingIOError):
        return None
    finally:
        tls.settimeout(timeout)
    if not first:
        raise ConnectionError("closed before the header")
    return read_answer(tls, first)


def attack(port, pki, codes, count, mib):
    contexts = [context(pki, code) for code in codes.split(",")]
    length = mib * MIB
    chunk = b" " * (64 * 1024)
    ready = threading.Barrier(count)
    lock = threading.Lock()
    tally = {}

    def work(i):
        outcome = "cut"
        try:
            tls = connect(contexts[i % len(contexts)], port)
        except (OSError, ssl.SSLError):
            ready.abort()
            raise
        try:
            ready.wait()
            tls.sendall(upload_header(MEMORY_ROUTE, length) + b"x")
            sent = 1
            answer = None
            while sent < length and answer is None:
                n = min(len(chunk), length - sent)
                tls.sendall(chunk[:n])
                sent += n
                answer = answer_waiting(tls, 60.0)  # refused before the body is whole
            answer = answer or read_answer(tls)
            outcome = str(answer[0]) if answer[0] in (429, 503) else "answered"
        except (OSError, ssl.SSLError, ConnectionError, ValueError, threading.BrokenBarrierError) as e:
            if os.environ.get("NET_LOAD_DEBUG"):
                print(f"attack: upload {i}: {e!r}", flush=True)
        finally:
            tls.close()
        with lock:
            tally[outcome] = tally.get(outcome, 0) + 1

    run_threads(count, work)
    print(f"attack: {count} uploads of {mib} MiB at once: answered {tally.get('answered', 0)}, 429 {tally.get('429', 0)}, "
          f"503 {tally.get('503', 0)}, cut {tally.get('cut', 0)}", flush=True)


def framing(port, pki, mib):
    """Anonymous chunked requests whose framing, not their body, is large (no client certificate): a trailer field of
    65,534 bytes (Beast 1.74 threw inside the read and ended the process), MIB MiB of one chunk's extension and MIB
    MiB of trailer fields of 60,000 bytes (held whole before: +263 MB for 128 MiB). Prints one line per request: what
    the client got (the status, or how the connection ended)."""
    ctx = ssl.create_default_context(cafile=f"{pki}/ca.pem")
    ctx.check_hostname = False
    head = b"POST /healthz HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
    cases = [
        ("a trailer field of 65534 bytes", [head + b"0\r\nX-T: " + b"a" * 65534 + b"\r\n\r\n"]),
        (f"{mib} MiB of chunk extension", [head + b"1;"] + [b"e" * 60000] * ((mib << 20) // 60000) + [b"\r\na\r\n0\r\n\r\n"]),
        (f"{mib} MiB of trailer fields", [head + b"1\r\na\r\n0\r\n"] + [b"X-T: " + b"a" * 60000 + b"\r\n"] * ((mib << 20) // 60000) + [b"\r\n"]),
    ]
    for name, parts in cases:
        try:
            tls = ctx.wrap_socket(socket.create_connection((HOST, port), timeout=20.0), server_hostname="localhost")
        except OSError as e:
            print(f"framing: {name}: no connection ({type(e).__name__})", flush=True)
            continue
        outcome = None
        try:
            for part in parts:
                tls.sendall(part)
        except (ssl.SSLError, OSError):
            pass  # the server answered and closed while this client still sent: its answer may be read all the same
        try:
            outcome = read_response(tls)
        except (ssl.SSLError, OSError, ConnectionError) as e:
            outcome = f"closed ({type(e).__name__})"
        finally:
            tls.close()
        print(f"framing: {name}: {outcome}", flush=True)


def refused_body(port, pki, count, mib):
    """COUNT anonymous POSTs of MIB MiB with a Content-Length and no Expect, each sent whole before its answer is read
    (as the relay and most clients do). The server refuses them before reading the body (413); prints how many of
    the answers reached the client, and how the others ended."""
    ctx = ssl.create_default_context(cafile=f"{pki}/ca.pem")
    ctx.check_hostname = False
    body = b"x" * (mib << 20)
    outcomes = {}
    for _ in range(count):
        outcome = None
        try:
            tls = ctx.wrap_socket(socket.create_connection((HOST, port), timeout=20.0), server_hostname="localhost")
        except OSError as e:
            outcome = f"no connection ({type(e).__name__})"
        else:
            try:
                tls.sendall(f"POST /healthz HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                            f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            except (ssl.SSLError, OSError) as e:
                outcome = f"cut while sending ({type(e).__name__})"
            try:
                outcome = str(read_response(tls))
            except (ssl.SSLError, OSError, ConnectionError) as e:
                outcome = outcome or f"cut before the answer ({type(e).__name__})"
            finally:
                tls.close()
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    print("refused: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())), flush=True)


def main():
    cmd = sys.argv[1]
    if cmd == "noclose":
        port, pki, code, count, threads = sys.argv[2:]
        noclose(int(port), pki, code, int(count), int(threads))
    elif cmd == "load":
        port, pki, code, stop_file, threads = sys.argv[2:]
        load(int(port), pki, code, stop_file, int(threads))
    elif cmd == "flood":
        mode, port, pki, code, attackers, seconds, *attack_port = sys.argv[2:]
        flood(mode, int(port), pki, code, int(attackers), float(seconds), int(attack_port[0]) if attack_port else None)
    elif cmd == "budget":
        port, pki, code_a, code_b = sys.argv[2:]
        budget(int(port), pki, code_a, code_b)
    elif cmd == "attack":
        port, pki, codes, count, mib = sys.argv[2:]
        attack(int(port), pki, codes, int(count), int(mib))
    elif cmd == "refused":
        port, pki, count, mib = sys.argv[2:]
        refused_body(int(port), pki, int(count), int(mib))
    elif cmd == "framing":
        port, pki, mib = sys.argv[2:]
        framing(int(port), pki, int(mib))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
