// The card transports in a real browser: Debian's Chromium (headless) driven by playwright-core.
//  - WebUSB: a fake navigator.usb RC-S380 whose device side and card are the simulated reader compiled to
//    WebAssembly (RSA for the virtual card by node-forge in the page); the page runs the production JS and the
//    production WebAssembly card module.
//  - kyotaku-bridge: the real daemon (virtual card backend) reached over a loopback WebSocket from the page, with
//    the browser's own Origin header (an origin not on the allow-list is refused).
//  - The transport choice order and the Web NFC explanation.
// Usage: node browser_test.mjs WASM_DIR PKI_DIR KYOTAKU_BRIDGE_BINARY SOURCE_DIR
import { chromium } from 'playwright-core';
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join, extname } from 'node:path';
import { tmpdir } from 'node:os';
import crypto from 'node:crypto';
import assert from 'node:assert/strict';

const [wasmDir, pki, bridgeBinary, src] = process.argv.slice(2);
const origin = 'http://127.0.0.1:9';
const types = { '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.html': 'text/html' };
const files = {
  '/js/': join(src, 'hardware-bridge/js/'),
  '/wasm/': wasmDir + '/',
  '/vendor/forge.min.js': join(src, 'node_modules/node-forge/dist/forge.min.js'),
};
const page_html = `<!doctype html><meta charset="utf-8"><title>card transports</title>
<script src="/vendor/forge.min.js"></script><script src="/wasm/kyotaku-card.js"></script>
<script src="/wasm/kyotaku-virtual-card.js"></script><body>test</body>`;

const cardCert = new crypto.X509Certificate(readFileSync(join(pki, 'card-1.pem')));
const caCert = new crypto.X509Certificate(readFileSync(join(pki, 'card-ca.pem')));
const cardKeyPem = readFileSync(join(pki, 'card-1.key'), 'utf8');

const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox', '--headless'] });
let bridge = null;
let bridgeLogText = () => '';
const work = mkdtempSync(join(tmpdir(), 'kyotaku-browser-'));
let passed = 0;

async function newPage(pageOrigin = origin) {
  const context = await browser.newContext();
  // Chromium asks the user before a page may reach a loopback address (Local Network Access); the staff allows
  // it once for the consent page's origin (docs/bridge.md).
  await context.grantPermissions(['local-network-access'], { origin: pageOrigin });
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error('page error:', e.message));
  await page.route(`${pageOrigin}/**`, async (route) => {
    const path = new URL(route.request().url()).pathname;
    if (path === '/test.html') return route.fulfill({ body: page_html, contentType: 'text/html' });
    for (const [prefix, dir] of Object.entries(files)) {
      if (path === prefix || (prefix.endsWith('/') && path.startsWith(prefix))) {
        const file = prefix.endsWith('/') ? join(dir, path.slice(prefix.length)) : dir;
        try {
          return route.fulfill({ body: readFileSync(file), contentType: types[extname(file)] || 'application/octet-stream' });
        } catch {
          return route.fulfill({ status: 404, body: 'not found' });
        }
      }
    }
    return route.fulfill({ status: 404, body: 'not found' });
  });
  await page.goto(`${pageOrigin}/test.html`);
  return page;
}

// A page with the fake RC-S380 installed as navigator.usb.
async function usbPage() {
  const page = await newPage();
  await page.evaluate(async ({ certB64, caB64, keyPem }) => {
    const { createFakeRcs380 } = await import('/js/test/fake-rcs380.js');
    const sim = await KyotakuVirtualCard();
    const key = forge.pki.privateKeyFromPem(keyPem);
    sim.kyotakuRsaSign = (digestInfo) => {
      const out = forge.pki.rsa.encrypt(String.fromCharCode(...digestInfo), key, 0x01);
      return Uint8Array.from(out, (c) => c.charCodeAt(0));
    };
    const put = (bytes) => { const p = sim._malloc(bytes.length); sim.HEAPU8.set(bytes, p); return p; };
    const cert = Uint8Array.from(atob(certB64), (c) => c.charCodeAt(0));
    const ca = Uint8Array.from(atob(caB64), (c) => c.charCodeAt(0));
    if (sim._vc_create(put(cert), cert.length, put(ca), ca.length, put(new TextEncoder().encode('1234\0'))) !== 0) throw new Error('vc_create');
    const fake = createFakeRcs380(sim);
    Object.defineProperty(navigator, 'usb', { value: fake.usb, configurable: true });
    window.sim = sim;
    window.fake = fake;
    const { WebUsbRcs380Transport } = await import('/js/webusb-rcs380.js');
    window.transport = new WebUsbRcs380Transport(() => KyotakuCard());
    window.toB64 = (u8) => btoa(String.fromCharCode(...u8));
    window.attempt = async (f) => { try { return { ok: true, value: await f() }; } catch (e) { return { ok: false, kind: e.kind, triesLeft: e.triesLeft, message: e.message }; } };
  }, { certB64: cardCert.raw.toString('base64'), caB64: caCert.raw.toString('base64'), keyPem: cardKeyPem });
  return page;
}

async function test(name, fn) {
  await fn();
  passed += 1;
  console.log(`ok - ${name}`);
}

try {
  await test('WebUSB RC-S380: certificate, tries, signature verified against the card CA', async () => {
    const page = await usbPage();
    const challenge = crypto.randomBytes(32);
    const r = await page.evaluate(async (challengeB64) => {
      await transport.open();
      const cert = await transport.readCertificate();
      const tries = await transport.pinTries();
      const s = await transport.sign('1234', Uint8Array.from(atob(challengeB64), (c) => c.charCodeAt(0)));
      await transport.close();
      return { cert: toB64(cert), tries, signCert: toB64(s.certificate), signature: toB64(s.signature) };
    }, challenge.toString('base64'));
    assert.equal(r.cert, cardCert.raw.toString('base64'));
    assert.equal(r.tries, 3);
    const signedBy = new crypto.X509Certificate(Buffer.from(r.signCert, 'base64'));
    assert.ok(signedBy.verify(caCert.publicKey));
    assert.ok(crypto.verify('sha256', challenge, signedBy.publicKey, Buffer.from(r.signature, 'base64')));
    await page.context().close();
  });

  await test('WebUSB RC-S380: wrong PIN counts down, lock after three, tries come from the card', async () => {
    const page = await usbPage();
    const r = await page.evaluate(async () => {
      await transport.open();
      const out = [];
      for (let i = 0; i < 4; i++) out.push(await attempt(() => transport.sign('9999', new Uint8Array([1]))));
      out.push(await attempt(() => transport.pinTries()));
      return { out, cardTries: sim._vc_pin_tries() };
    });
    assert.deepEqual(r.out.slice(0, 3).map((x) => [x.kind, x.triesLeft]), [['wrong_pin', 2], ['wrong_pin', 1], ['locked', 0]]);
    assert.equal(r.out[3].kind, 'locked');
    assert.equal(r.out[4].value, 0);
    assert.equal(r.cardTries, 0);
    await page.context().close();
  });

  await test('WebUSB RC-S380: no card, card removed mid-command, reader unplugged', async () => {
    const page = await usbPage();
    const r = await page.evaluate(async () => {
      await transport.open();
      sim._vc_take_away();
      const none = await attempt(() => transport.readCertificate({ waitMs: 100 }));
      sim._vc_put_back();
      sim._vc_remove_at_command(4);
      const removed = await attempt(() => transport.readCertificate());
      sim._vc_put_back();
      const again = await attempt(() => transport.readCertificate());
      fake.unplug();
      const unplugged = await attempt(() => transport.readCertificate());
      return { none: none.kind, removed: removed.kind, again: again.ok, unplugged: unplugged.kind, message: unplugged.message };
    });
    assert.deepEqual([r.none, r.removed, r.again, r.unplugged], ['no_card', 'card_removed', true, 'transport']);
    assert.match(r.message, /外された|unplugged/);
    await page.context().close();
  });

  // kyotaku-bridge, the real daemon, serving the virtual card in process.
  const tokenFile = join(work, 'token');
  bridge = spawn(bridgeBinary, ['serve', '--listen', '127.0.0.1:0', '--allow-origin', origin, '--token-file', tokenFile,
    '--virtual-card', pki, '--card', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let bridgeLog = '';
  bridge.stderr.on('data', (d) => { bridgeLog += d; });
  bridgeLogText = () => bridgeLog;
  const announced = await new Promise((resolve, reject) => {
    let out = '';
    bridge.stdout.on('data', (d) => { out += d; const m = out.match(/ws:\/\/127\.0\.0\.1:(\d+)\/[\s\S]*token: (\w+)/); if (m) resolve(m); });
    bridge.on('exit', (code) => reject(new Error(`kyotaku-bridge exited with ${code}: ${bridgeLog}`)));
  });
  const bridgeUrl = `ws://127.0.0.1:${announced[1]}/`;
  const token = announced[2];
  assert.equal(readFileSync(tokenFile, 'utf8').trim(), token);

  await test('kyotaku-bridge from the page: pairing, signature, wrong PIN; the PIN is not in its log', async () => {
    const page = await newPage();
    const challenge = crypto.randomBytes(32);
    const r = await page.evaluate(async ({ url, token, challengeB64 }) => {
      const { BridgeTransport } = await import('/js/bridge-client.js');
      const attempt = async (f) => { try { return { ok: true, value: await f() }; } catch (e) { return { ok: false, kind: e.kind, triesLeft: e.triesLeft, retryAfterMs: e.retryAfterMs }; } };
      const wrongToken = await attempt(() => new BridgeTransport(url, 'x'.repeat(32)).connect());
      // A wrong token slows every next attempt down (docs/bridge.md): the right one waits the announced time.
      await new Promise((ok) => setTimeout(ok, wrongToken.retryAfterMs));
      const t = new BridgeTransport(url, token);
      await t.open();
      const readers = await t.readers();
      const wrong = await attempt(() => t.sign('7351', new Uint8Array([5])));
      const s = await t.sign('1234', Uint8Array.from(atob(challengeB64), (c) => c.charCodeAt(0)));
      await t.close();
      const b64 = (u8) => btoa(String.fromCharCode(...u8));
      return { wrongToken: wrongToken.kind, wait: wrongToken.retryAfterMs, readers, wrong: [wrong.kind, wrong.triesLeft], cert: b64(s.certificate), signature: b64(s.signature) };
    }, { url: bridgeUrl, token, challengeB64: challenge.toString('base64') });
    assert.equal(r.wrongToken, 'unauthorized');
    assert.ok(r.wait > 0, 'a wrong token is slowed down');
    assert.deepEqual(r.readers, ['kyotaku virtual card reader']);
    assert.deepEqual(r.wrong, ['wrong_pin', 2]);
    assert.ok(crypto.verify('sha256', challenge, cardCert.publicKey, Buffer.from(r.signature, 'base64')));
    assert.ok(!bridgeLog.includes('7351') && !bridgeLog.includes('1234'), 'a PIN reached the bridge log');
    await page.context().close();
  });

  await test('kyotaku-bridge refuses a page from an origin not on its allow-list', async () => {
    const page = await newPage('http://localhost:9');
    const kind = await page.evaluate(async (url) => {
      const { BridgeTransport } = await import('/js/bridge-client.js');
      try { await new BridgeTransport(url, 'x').connect(); return 'connected'; } catch (e) { return e.kind; }
    }, bridgeUrl);
    assert.equal(kind, 'transport');
    assert.match(bridgeLog, /refused a WebSocket from Origin "http:\/\/localhost:9"/);
    await page.context().close();
  });

  await test('a bridge that stops answering: the request ends with transport/noAnswer at its deadline, and the next one connects again', async () => {
    const page = await newPage();
    // A stand-in bridge inside the browser (playwright's WebSocket routing): it pairs, then never answers.
    let connections = 0;
    await page.routeWebSocket('ws://127.0.0.1:1/', (ws) => {
      connections += 1;
      ws.onMessage((text) => {
        const m = JSON.parse(text);
        if (m.op === 'hello') ws.send(JSON.stringify({ id: m.id, ok: true, bridge: 'stand-in', version: 1 }));
      });
    });
    const r = await page.evaluate(async () => {
      const { BridgeTransport } = await import('/js/bridge-client.js');
      const t = new BridgeTransport('ws://127.0.0.1:1/', 'token', null, { requestTimeoutMs: 300 });
      const outcome = async (p) => { try { await p; return 'answered'; } catch (e) { return { kind: e.kind, noAnswer: !!e.noAnswer, message: e.message, ja: e.messageJa, en: e.messageEn }; } };
      await t.connect();
      const first = await outcome(t.pinTries());
      const connectedAfter = t.ws !== null;
      const second = await outcome(t.open({ waitMs: 100 }));
      return { first, connectedAfter, second };
    });
    assert.deepEqual({ kind: r.first.kind, noAnswer: r.first.noAnswer }, { kind: 'transport', noAnswer: true });
    assert.match(r.first.message, /pin_tries within 300 ms/);
    assert.deepEqual([r.first.ja, r.first.en], ['カード読み取りアプリから答えがありません', 'kyotaku-bridge did not answer pin_tries within 300 ms'],
      'the Japanese and the English apart');
    assert.equal(r.connectedAfter, false, 'the connection is dropped: its state is unknown');
    assert.equal(r.second.kind, 'transport');
    assert.match(r.second.message, /open within 400 ms/, 'open waits its wait_ms and the deadline');
    assert.equal(connections, 2, 'the next request connected again');
    await page.context().close();
  });

  await test('transport order: bridge first, then WebUSB, else Web NFC explained with the fallback', async () => {
    const page = await usbPage();
    const r = await page.evaluate(async ({ url, token }) => {
      const { chooseTransport, webNfcStatus } = await import('/js/transports.js');
      const load = () => KyotakuCard();
      const withBridge = await chooseTransport({ bridge: { url, token }, loadCardModule: load });
      await withBridge.transport.close();
      const noBridge = await chooseTransport({ bridge: { url: 'ws://127.0.0.1:1/', token }, loadCardModule: load });
      const nfcBefore = webNfcStatus();
      Object.defineProperty(navigator, 'usb', { value: undefined, configurable: true });
      window.NDEFReader = class {};
      let none;
      try { await chooseTransport({ bridge: null, loadCardModule: load }); } catch (e) { none = { kind: e.kind, message: e.message, tried: e.tried.map((t) => t.name), nfc: e.webNfc }; }
      return { first: withBridge.transport.name, second: noBridge.transport.name, secondTried: noBridge.tried.map((t) => t.name), nfcBefore, none };
    }, { url: bridgeUrl, token });
    assert.equal(r.first, 'bridge');
    assert.equal(r.second, 'webusb-rcs380');
    assert.deepEqual(r.secondTried, ['bridge']);
    assert.equal(r.nfcBefore.present, false);
    assert.equal(r.none.kind, 'no_reader');
    assert.deepEqual(r.none.tried, ['bridge', 'webusb-rcs380']);
    assert.equal(r.none.nfc.present, true);
    assert.equal(r.none.nfc.usable, false);
    assert.match(r.none.message, /NDEF/);
    assert.match(r.none.message, /マイナポータル/);
    await page.context().close();
  });
} catch (e) {
  console.error(e);
  if (bridge) console.error('kyotaku-bridge log:\n' + bridgeLogText());
  process.exitCode = 1;
} finally {
  if (bridge) bridge.kill('SIGTERM');
  await browser.close();
  rmSync(work, { recursive: true, force: true });
}
console.log(`${passed} tests passed`);
if (process.exitCode) console.log('FAILED');
