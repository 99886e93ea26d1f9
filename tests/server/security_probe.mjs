// Socket probes for tests/server/security_e2e.sh: what a hostile client does that curl cannot. Each prints one line.
//   hold PORT N              opens N TCP connections, then after 2 s prints "closed=C" (those the server closed)
//   silent PORT              a TCP connection that never starts TLS: prints "closed_after_ms=T"
//   send PORT CA TEXT [MS]   TLS without a certificate, writes TEXT (\r\n escapes), prints "status=S ms=T" (the
//                            answer's status and how long it took), or "status=none ms=T" when the server closes first
//                            or MS (default 20000) passes
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';

const [command, port, ...rest] = process.argv.slice(2);
const started = Date.now();

if (command === 'hold') {
  const n = Number(rest[0]);
  let closed = 0;
  const sockets = [];
  for (let i = 0; i < n; ++i) {
    const s = net.connect(Number(port), '127.0.0.1');
    s.on('error', () => {});
    s.on('close', () => { closed += 1; });
    sockets.push(s);
  }
  setTimeout(() => {
    console.log(`closed=${closed}`);
    for (const s of sockets) s.destroy();
  }, 2000);
} else if (command === 'silent') {
  const s = net.connect(Number(port), '127.0.0.1');
  s.on('error', () => {});
  s.on('close', () => console.log(`closed_after_ms=${Date.now() - started}`));
  setTimeout(() => { console.log('closed_after_ms=never'); process.exit(0); }, 40000).unref();
} else if (command === 'send') {
  const [ca, text, ms] = rest;
  let answered = false;
  let received = '';
  const finish = (status) => {
    if (answered) return;
    answered = true;
    console.log(`status=${status} ms=${Date.now() - started}`);
    process.exit(0);
  };
  const s = tls.connect({ port: Number(port), host: '127.0.0.1', ca: readFileSync(ca), servername: 'localhost' }, () => {
    s.write(text.replace(/\\r\\n/g, '\r\n'));
  });
  s.on('data', (d) => {
    received += d.toString('latin1');
    const m = received.match(/^HTTP\/1\.1 (\d{3})/);
    if (m) finish(m[1]);
  });
  s.on('error', () => {});
  s.on('close', () => finish('none'));
  setTimeout(() => finish('none'), Number(ms || 20000));
} else {
  console.error(`unknown probe ${command}`);
  process.exit(2);
}
