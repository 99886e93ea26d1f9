// What the consent page's browser tests and its benchmark share: a real `kyotaku serve` (SQLite, TLS) with test
// facilities, a patient and cards; Debian's Chromium (headless, playwright-core); pages opened as a phone, a
// tablet, an Android phone or an iPhone, with the virtual card in WebAssembly behind a fake navigator.usb
// RC-S380 or with kyotaku-bridge; and the checks every screen gets (axe-core, Japanese only, accessible names).
// Usage from a test: const h = await startHarness({ kyotaku, bridge, wasmDir, src, out });
import { chromium } from 'playwright-core';
import { spawn, execFileSync } from 'node:child_process';
import { readFileSync, mkdirSync, rmSync, existsSync, readdirSync } from 'node:fs';
import { join, basename } from 'node:path';
import https from 'node:https';
import crypto from 'node:crypto';
import assert from 'node:assert/strict';

export const MEDICAL = '0110113719';   // 医科, both features on
export const NURSE = '1360100018';     // 訪問看護ステーション
export const CLOSED = '1340100021';    // 薬局 with both features off
export const DENTAL = '0130100027';    // 歯科, both features on
export const PHONE = { width: 360, height: 740 };
export const TABLET = { width: 820, height: 1180 };
export const ANDROID_UA = 'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36';
export const IPHONE_UA = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1';

// DevTools' network presets (front_end/core/sdk/NetworkManager.ts): bytes per second and milliseconds.
export const NETWORKS = {
  'Fast 3G': { download: (1.6 * 1000 * 1000) / 8 * 0.9, upload: (750 * 1000) / 8 * 0.9, latency: 150 * 3.75, target: 2500 },
  'Slow 3G': { download: (500 * 1000) / 8 * 0.8, upload: (500 * 1000) / 8 * 0.8, latency: 400 * 5, target: 8000 },
};

// Words a patient may see in Latin letters (USB, IC, NFC as Japanese writes them); reader models and program
// names are not among them.
export const LATIN_ALLOWED = new Set(['USB', 'IC', 'NFC', 'QR', 'Web']);
// Words a patient should not have to know: 端末 (say スマートフォン, パソコン, タブレット), 二次元コード (QRコード).
// The staff-only screens (the claim of a hand-off) are checked with { staff: true }.
const PATIENT_FORBIDDEN = /端末|二次元コード|RC-S380|kyotaku|bridge/;

// Starts `kyotaku serve ARGS` (its standard output piped) and waits for its "listening on" line: the one way the
// Node tests wait until a server listens (scripts/lib/serve.sh is the shell's). → { server, ready, patients(),
// log() }: ready the server's https URL, patients() the patients' listener's (patient_listen; printed before
// "listening on", so known once ready resolves; null without one) and log() what it wrote to standard error;
// `ready` rejects when the server ends first.
export function startServer(kyotaku, args) {
  const server = spawn(kyotaku, ['serve', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  let text = '';
  server.stderr.on('data', (d) => { log += d; });
  const ready = new Promise((ok, fail) => {
    server.stdout.on('data', (d) => {
      text += d;
      const m = text.match(/^listening on (https:\/\/127\.0\.0\.1:\d+)/m);
      if (m) ok(m[1]);
    });
    server.on('exit', (c) => fail(new Error(`kyotaku serve exited (${c}): ${log}`)));
  });
  const patients = () => (text.match(/^patients on (https:\/\/127\.0\.0\.1:\d+)/m) || [])[1] || null;
  return { server, ready, patients, log: () => log };
}

// Debian's Chromium (headless, playwright-core) that trusts the test server's certificate (PKI folder `pki`, from
// scripts/make-test-pki) as a phone trusts a real server's: the certificate verifies, no certificate error is
// raised. Not Playwright's ignoreHTTPSErrors: with it every new connection fails verification and the request
// is restarted to ignore the error, and Chromium gives a request at most 32 restarts. A page that opens several
// connections at once on a slow network collected them on one request and saw it fail with
// net::ERR_TOO_MANY_RETRIES (web.page_bench, Slow 3G, at load 15). --ignore-certificate-errors-spki-list accepts
// a chain that carries the named key (the server's), and only that.
// With `out`, Chromium keeps its log in OUT/chromium.log (--enable-logging --v=0) and a crashed process's dump in
// OUT/crash-dumps (crashpad's BREAKPAD_DUMP_LOCATION; else they pile up in ~/.config/chromium): what
// crashReport() shows when a renderer dies.
export function launchTrusting(pki, out) {
  const key = new crypto.X509Certificate(readFileSync(join(pki, 'server.pem'))).publicKey;
  const hash = crypto.createHash('sha256').update(key.export({ type: 'spki', format: 'der' })).digest('base64');
  const logging = out ? ['--enable-logging', `--log-file=${join(out, 'chromium.log')}`, '--v=0'] : [];
  return chromium.launch({ executablePath: '/usr/bin/chromium', headless: true,
    args: ['--no-sandbox', '--headless', `--ignore-certificate-errors-spki-list=${hash}`, ...logging],
    ...(out ? { env: { ...process.env, BREAKPAD_DUMP_LOCATION: join(out, 'crash-dumps') } } : {}) });
}

// What is known of a crashed Chromium process, from OUT (launchTrusting): the dumps not reported before (each
// with the signal, the faulting address and the instruction's place in the binary, read from the minidump's
// exception and module streams) and the last lines of Chromium's log (without D-Bus's complaints: no bus here).
// `dumps` receives each new dump's minidumpInfo (h.test decides from them whether a case may run once more).
const reported = new Set();
export function crashReport(out, dumps = []) {
  const lines = [];
  const pending = join(out, 'crash-dumps', 'pending');
  const files = (existsSync(pending) ? readdirSync(pending) : []).map((f) => join(pending, f))
    .filter((f) => f.endsWith('.dmp') && !reported.has(f));
  for (const f of files) {
    reported.add(f);
    try {
      const info = minidumpInfo(readFileSync(f));
      dumps.push(info);
      lines.push(`crash dump ${f}: ${info.summary}`);
    } catch (e) {
      lines.push(`crash dump ${f}: unreadable (${e.message})`);
    }
  }
  if (!files.length) lines.push(`no new crash dump in ${pending}`);
  const log = existsSync(join(out, 'chromium.log')) ? readFileSync(join(out, 'chromium.log'), 'utf8').split('\n') : [];
  lines.push(`chromium.log (last lines without D-Bus):`, ...log.filter((l) => l && !/dbus|D-Bus/.test(l)).slice(-15));
  return lines.join('\n');
}

// A crash of Chromium's own, which a case may be run once more after (h.test): a renderer's memory access fault
// (SIGSEGV or SIGBUS) whose faulting instruction lies in the `chromium` binary itself — not in the WebAssembly's or
// JavaScript's generated code (no module), not a deliberate crash (a CHECK's or an out-of-memory's
// IMMEDIATE_CRASH: SIGTRAP or SIGILL) and not a dump that names an out-of-memory condition (Chromium's OOM crash
// keys, V8's "out of memory"). Our WebAssembly exhausting memory fails the case.
export const chromiumOwnCrash = (i) => i.type === 'renderer' && (i.signal === 11 || i.signal === 7)
  && i.module === 'chromium' && !i.oom;

// A minidump's exception (stream 6: on Linux the signal and si_code, the faulting address), the crashing thread's
// instruction pointer (its x86-64 context's RIP) as module+offset (stream 4), the process type and origin
// crashpad noted ("renderer", loaded-origin-0), and whether it names an out-of-memory condition.
export function minidumpInfo(d) {
  const streams = new Map();
  const count = d.readUInt32LE(8), dir = d.readUInt32LE(12);
  for (let i = 0; i < count; i++) streams.set(d.readUInt32LE(dir + 12 * i), d.readUInt32LE(dir + 12 * i + 8));
  const name = (rva) => d.toString('utf16le', rva + 4, rva + 4 + d.readUInt32LE(rva));
  const modules = [];
  if (streams.has(4)) {
    const r = streams.get(4);
    for (let i = 0, n = d.readUInt32LE(r); i < n; i++) {
      const o = r + 4 + 108 * i;
      const base = d.readBigUInt64LE(o);
      modules.push({ base, end: base + BigInt(d.readUInt32LE(o + 8)), name: name(d.readUInt32LE(o + 20)) });
    }
  }
  const e = streams.get(6);
  const signal = d.readUInt32LE(e + 8), code = d.readUInt32LE(e + 12), address = d.readBigUInt64LE(e + 24);
  const rip = d.readBigUInt64LE(d.readUInt32LE(e + 8 + 152 + 4) + 0xF8);
  const m = modules.find((x) => rip >= x.base && rip < x.end);
  const where = m ? `${m.name}+0x${(rip - m.base).toString(16)}` : `0x${rip.toString(16)}`;
  const text = d.toString('latin1');
  const type = /\b(renderer|gpu-process|utility|browser)\b/.exec(text.slice(text.indexOf('osarch')))?.[1] || '?';
  const at = text.indexOf('loaded-origin-0');
  const origin = at < 0 ? '?' : (/https?:\/\/[\w.:[\]-]+/.exec(text.slice(at, at + 200)) || ['?'])[0];
  const oom = /(?:^|[^a-z])oom[-_ ]|v8[-_]oom|out of memory|outofmemory/i.test(text);
  return { type, origin, signal, code, address, module: m ? basename(m.name) : null, oom,
    summary: `${type} (${origin}): signal ${signal} (si_code ${code}) at 0x${address.toString(16)}, `
      + `instruction ${where}${oom ? ', out of memory' : ''}` };
}

export async function startHarness({ kyotaku, bridgeBinary, wasmDir, src, out }) {
  const work = join(out, 'work');
  const shots = join(out, 'screenshots');
  rmSync(out, { recursive: true, force: true });
  mkdirSync(shots, { recursive: true });
  const pki = join(work, 'pki');
  execFileSync(join(src, 'scripts/make-test-pki'), [pki, MEDICAL, NURSE, CLOSED, DENTAL], { env: { ...process.env, CARDS: '3' } });

  // ---- the server ------------------------------------------------------------------------------------------
  // As deployed (docs/operations.md 2.): the patients' side on a listener of its own whose TLS asks for no client
  // certificate (patient_listen). `base` is its origin — the facility URLs, the page's files and API calls, the
  // bridge's allowed origin — and `api` the main listener's, where office terminals call with certificates.
  const started = startServer(kyotaku, ['--tls-dir', pki, '--db', join(work, 'kyotaku.sqlite'), '--rules', join(src, 'rules'),
    '--port', '0', '--patient-listen', '127.0.0.1:0']);
  const { server } = started;
  const api = await started.ready;
  const base = started.patients();
  assert.ok(base && base !== api, `the patients' listener: ${base}, the main one: ${api}`);
  const tls = (who) => ({ ca: readFileSync(join(pki, 'ca.pem')), cert: readFileSync(join(pki, `${who}.pem`)), key: readFileSync(join(pki, `${who}.key`)) });
  // A call with a client certificate (`who`: admin, facility-CODE, facility-CODE-manager), or none (`who` null).
  function call(who, method, path, body) {
    return new Promise((ok, fail) => {
      const req = https.request((who ? api : base) + path, { method, ...(who ? tls(who) : { ca: readFileSync(join(pki, 'ca.pem')) }), headers: { 'Content-Type': 'application/json' } }, (res) => {
        let data = '';
        res.on('data', (d) => { data += d; });
        res.on('end', () => ok({ status: res.statusCode, body: data ? JSON.parse(data) : null, bytes: Buffer.byteLength(data) }));
      });
      req.on('error', fail);
      if (body) req.write(JSON.stringify(body));
      req.end();
    });
  }
  for (const [code, name, kind] of [[MEDICAL, '札幌在宅クリニック', '医科'], [NURSE, 'ひまわり訪問看護ステーション', '訪問看護ステーション'],
    [CLOSED, 'みなと薬局', '薬局'], [DENTAL, 'さくら歯科', '歯科']])
    assert.equal((await call('admin', 'POST', '/api/v1/admin/facilities', { code, name, kind })).status, 201);
  // Each switch the kind can use: a 訪問看護ステーション has no オンライン診療等機能 (the rules' 施設の診療区分).
  for (const code of [MEDICAL, NURSE, DENTAL])
    assert.equal((await call(`facility-${code}-manager`, 'PUT', '/api/v1/settings', { terms_agreed: true, home_visit_enabled: true, online_enabled: code !== NURSE })).status, 200);
  const person = (await call('admin', 'POST', '/api/v1/admin/insured-persons', { insurer_number: '06132013', symbol: '１２３', number: '４５６７', branch: '01',
    birthdate: '1940-05-01', name: '在宅 花子', burden_ratio: '010', valid_from: '2020-04-01' })).body.person_key;
  for (const n of [1, 2]) // card 3 stays unknown to the server: its registration is refused
    assert.equal((await call('admin', 'POST', '/api/v1/admin/cards', { person_key: person, certificate: readFileSync(join(pki, `card-${n}.pem`), 'utf8') })).status, 201);
  // The facility URL: on the patients' listener (public_url's default with patient_listen).
  const urlOf = async (code) => {
    const url = (await call(`facility-${code}`, 'GET', '/api/v1/url')).body.url;
    assert.equal(new URL(url).origin, base, 'the facility URL points to the patients\' listener');
    return url;
  };
  const consents = async (code) => { const b = (await call('admin', 'GET', `/api/v1/admin/consents?facility_code=${code}`)).body; return b.consents || b; };

  // A GET with the test CA (no client certificate): status, headers and the bytes of the answer on the wire.
  function httpGet(url, headers = {}) {
    return new Promise((ok, fail) => {
      const req = https.request(url, { ca: readFileSync(join(pki, 'ca.pem')), headers }, (res) => {
        let bytes = 0;
        res.on('data', (d) => { bytes += d.length; });
        res.on('end', () => ok({ status: res.statusCode, headers: res.headers, bytes: bytes + JSON.stringify(res.rawHeaders).length }));
      });
      req.on('error', fail);
      req.end();
    });
  }

  // kyotaku-bridge with the virtual card `card`; resolves with the process and what the page is given to pair.
  async function startBridge(card) {
    const bridge = spawn(bridgeBinary, ['serve', '--listen', '127.0.0.1:0', '--allow-origin', base, '--token-file', join(work, `bridge-${card}.token`),
      '--virtual-card', pki, '--card', String(card)], { stdio: ['ignore', 'pipe', 'pipe'] });
    const code = await new Promise((ok, fail) => {
      let t = '';
      bridge.stdout.on('data', (d) => { t += d; const m = t.match(/code for the consent page: (\d+:\d{6})/); if (m) ok(m[1]); });
      bridge.on('exit', (c) => fail(new Error(`kyotaku-bridge exited (${c})`)));
    });
    return { bridge, code };
  }

  // ---- the browser -----------------------------------------------------------------------------------------
  const browser = await launchTrusting(pki, out);
  const testFiles = {
    'fake-rcs380.js': join(src, 'hardware-bridge/js/test/fake-rcs380.js'),
    'kyotaku-virtual-card.js': join(wasmDir, 'kyotaku-virtual-card.js'),
    'kyotaku-virtual-card.wasm': join(wasmDir, 'kyotaku-virtual-card.wasm'),
    'forge.min.js': join(src, 'node_modules/node-forge/dist/forge.min.js'),
  };
  const axeSource = readFileSync(join(src, 'node_modules/axe-core/axe.min.js'), 'utf8');
  const der64 = (n) => new crypto.X509Certificate(readFileSync(join(pki, `card-${n}.pem`))).raw.toString('base64');
  const h = { base, api, pki, work, shots, serverLog: started.log, call, urlOf, consents, httpGet, startBridge, browser, current: null };

  // A page with the virtual card `card` in a fake RC-S380 on navigator.usb ('granted': already granted to the
  // page, as after an earlier visit). usb false: no WebUSB at all (an iPhone); 'silent': a WebUSB whose device chooser never answers; 'empty': a WebUSB with no device (Android with
  // nothing plugged in: no reader granted, and the chooser, closed, picks none). `device`: a phone (touch, a
  // coarse pointer, the phone's user agent); `network` emulates a DevTools preset, `cpu` slows the CPU down by
  // that factor; `record` collects every request with its bytes on the wire (CDP); `share` gives the page a Web
  // Share API that keeps what it shared (window.shared); `beforeGoto(page)` runs before the first navigation.
  // Test-only files are routed only when the fake RC-S380 needs them (routing turns Chromium's HTTP cache off).
  h.open = async function open(url, { viewport = PHONE, card = 1, usb = true, webNfc = false, device, userAgent, network, cpu, record = false,
    share = false, beforeGoto } = {}) {
    const mobile = device === 'android' || device === 'iphone';
    const context = await browser.newContext({ viewport, locale: 'ja-JP', hasTouch: mobile, isMobile: mobile,
      ...(userAgent || mobile ? { userAgent: userAgent || (device === 'android' ? ANDROID_UA : IPHONE_UA) } : {}) });
    // A renderer that dies is noted for h.test (which retries the case once); its pages' contexts closed then.
    attempt.contexts.push(context);
    context.on('page', (p) => p.on('crash', () => attempt.crashed.push(p.url())));
    if (usb === true || usb === 'granted') {
      await context.route(`${base}/test/**`, (route) => {
        const name = new URL(route.request().url()).pathname.slice('/test/'.length);
        if (!testFiles[name]) return route.fulfill({ status: 404, body: '' });
        return route.fulfill({ body: readFileSync(testFiles[name]), contentType: name.endsWith('.wasm') ? 'application/wasm' : 'text/javascript' });
      });
    }
    const setup = { usb, webNfc, share, cert: der64(card), ca: new crypto.X509Certificate(readFileSync(join(pki, 'card-ca.pem'))).raw.toString('base64'),
      key: readFileSync(join(pki, `card-${card}.key`), 'utf8') };
    await context.addInitScript((s) => {
      if (s.webNfc) window.NDEFReader = class NDEFReader {};
      // The Web Share API of phones: what the page shared is kept for the test.
      if (s.share) Object.defineProperty(Navigator.prototype, 'share', { configurable: true, value: async (data) => { window.shared = data; } });
      if (s.usb === false) { Object.defineProperty(Navigator.prototype, 'usb', { configurable: true, get: () => undefined }); return; }
      if (s.usb === 'silent' || s.usb === 'empty') {
        const requestDevice = s.usb === 'silent' ? () => new Promise(() => {})
          : async () => { window.chooserOpened = (window.chooserOpened || 0) + 1; throw new DOMException('No device selected.', 'NotFoundError'); };
        Object.defineProperty(Navigator.prototype, 'usb', { configurable: true, get: () => ({ getDevices: async () => [], requestDevice }) });
        return;
      }
      const load = (src) => new Promise((ok, fail) => { const e = document.createElement('script'); e.src = src; e.onload = ok; e.onerror = fail; document.head.append(e); });
      const unb64 = (b) => Uint8Array.from(atob(b), (c) => c.charCodeAt(0));
      window.kyotakuFake = () => window.kyotakuFakePromise || (window.kyotakuFakePromise = (async () => {
        await load('/test/forge.min.js');
        await load('/test/kyotaku-virtual-card.js');
        const { createFakeRcs380 } = await import('/test/fake-rcs380.js');
        const sim = await KyotakuVirtualCard({ locateFile: (f) => `/test/${f}` });
        const key = forge.pki.privateKeyFromPem(s.key);
        sim.kyotakuRsaSign = (di) => Uint8Array.from(forge.pki.rsa.encrypt(String.fromCharCode(...di), key, 0x01), (c) => c.charCodeAt(0));
        const put = (bytes) => { const p = sim._malloc(bytes.length); sim.HEAPU8.set(bytes, p); return p; };
        const cert = unb64(s.cert), ca = unb64(s.ca);
        sim._vc_create(put(cert), cert.length, put(ca), ca.length, put(new TextEncoder().encode('1234\0')));
        window.sim = sim;
        window.fake = createFakeRcs380(sim);
        if (s.usb === 'granted') window.fake.device.granted = true;
        return window.fake;
      })());
      Object.defineProperty(Navigator.prototype, 'usb', { configurable: true, get: () => ({
        getDevices: async () => (await window.kyotakuFake()).usb.getDevices(),
        requestDevice: async (o) => (await window.kyotakuFake()).usb.requestDevice(o),
      }) });
    }, setup);
    const page = await context.newPage();
    h.current = page;
    page.on('pageerror', (e) => console.error('page error:', e.message));
    page.on('requestfailed', (r) => { if (!r.url().includes('/test/') && !/ERR_INTERNET_DISCONNECTED|ERR_ABORTED|ERR_FAILED/.test(r.failure()?.errorText || '')) console.error('request failed:', r.url(), r.failure()?.errorText); });
    page.on('console', (m) => { if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) console.error('console:', m.text()); });
    let requests = null;
    if (network || record || cpu) {
      const cdp = await context.newCDPSession(page);
      await cdp.send('Network.enable');
      requests = new Map();
      cdp.on('Network.requestWillBeSent', (e) => { if (!requests.has(e.requestId)) requests.set(e.requestId, { url: e.request.url, bytes: 0 }); });
      cdp.on('Network.responseReceived', (e) => {
        const r = requests.get(e.requestId);
        const headers = Object.fromEntries(Object.entries(e.response.headers).map(([k, v]) => [k.toLowerCase(), v]));
        if (r) Object.assign(r, { status: e.response.status, headers, cached: !!(e.response.fromDiskCache || e.response.fromMemoryCache) });
      });
      cdp.on('Network.loadingFinished', (e) => { const r = requests.get(e.requestId); if (r) Object.assign(r, { bytes: e.encodedDataLength, done: true }); });
      cdp.on('Network.loadingFailed', (e) => { const r = requests.get(e.requestId); if (r) r.done = true; });
      cdp.on('Network.requestServedFromCache', (e) => { const r = requests.get(e.requestId); if (r) Object.assign(r, { cached: true }); });
      if (network) {
        const n = NETWORKS[network];
        await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: n.latency, downloadThroughput: n.download, uploadThroughput: n.upload });
      }
      if (cpu) await cdp.send('Emulation.setCPUThrottlingRate', { rate: cpu });
    }
    if (beforeGoto) await beforeGoto(page);
    await page.goto(url, { waitUntil: 'commit' });
    return { page, context, requests };
  };

  const visible = (page, id, timeout = 15000) => page.waitForSelector(`#screen-${id}:not([hidden])`, { timeout });
  h.visible = visible;
  let shot = 0;
  h.shotPath = (name) => join(shots, `${String(++shot).padStart(2, '0')}-${name}.png`);
  h.axeResults = [];
  // Every screen a test reaches: a screenshot, axe-core (0 serious/critical), Japanese only (no reader model, no
  // program name, no 端末 or 二次元コード for patients), no ISO dates, and every control with an accessible name.
  h.screen = async function screen(page, id, name, { staff = false } = {}) {
    await visible(page, id);
    await page.screenshot({ path: h.shotPath(name), fullPage: true });
    await page.evaluate(axeSource);
    const r = await page.evaluate(async () => (await axe.run(document, { resultTypes: ['violations'] })).violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length })));
    const bad = r.filter((v) => v.impact === 'serious' || v.impact === 'critical');
    h.axeResults.push({ screen: name, violations: r.length, serious: bad.length });
    assert.deepEqual(bad, [], `axe-core: serious or critical violations on ${name}`);
    const text = await page.evaluate(() => `${document.querySelector('.bar').innerText}\n${document.querySelector('.screen:not([hidden])').innerText}`);
    const latin = (text.match(/[A-Za-z][A-Za-z0-9]*/g) || []).filter((w) => !LATIN_ALLOWED.has(w));
    assert.deepEqual(latin, [], `English on ${name}: ${text}`);
    if (!staff) assert.doesNotMatch(text, PATIENT_FORBIDDEN, `words a patient does not know on ${name}`);
    assert.doesNotMatch(text, /\d{4}-\d{2}-\d{2}/, `an ISO date on ${name}`);
    await namesAreGiven(page, name);
  };

  // Every control a screen reader reaches has a name it can say, in Japanese: read from Chromium's own
  // accessibility tree (CDP Accessibility.getFullAXTree), as assistive technology gets it.
  const NAMED_ROLES = new Set(['button', 'radio', 'checkbox', 'textbox', 'spinbutton', 'combobox', 'link', 'image', 'img']);
  async function namesAreGiven(page, name) {
    const cdp = await page.context().newCDPSession(page);
    try {
      const { nodes } = await cdp.send('Accessibility.getFullAXTree');
      // The page's own elements (not the parts the browser draws inside a date field, which it names in its own
      // language): the light DOM's nodes.
      const { root } = await cdp.send('DOM.getDocument', { depth: -1, pierce: false });
      const ours = new Set();
      const walk = (n) => { ours.add(n.backendNodeId); for (const c of n.children || []) walk(c); };
      walk(root);
      const controls = nodes.filter((n) => !n.ignored && NAMED_ROLES.has(n.role && n.role.value) && ours.has(n.backendDOMNodeId));
      const unnamed = controls.filter((n) => !((n.name && n.name.value) || '').trim()).map((n) => n.role.value);
      assert.deepEqual(unnamed, [], `controls without an accessible name on ${name}`);
      const english = controls.map((n) => n.name.value).filter((v) => (v.match(/[A-Za-z][A-Za-z0-9]*/g) || []).some((w) => !LATIN_ALLOWED.has(w)));
      assert.deepEqual(english, [], `accessible names in English on ${name}`);
    } finally {
      await cdp.detach().catch(() => {});
    }
  }

  h.tickAndNext = async (page, form, values) => {
    for (const v of values) await page.check(`#${form} input[value="${v}"]`);
    await page.click(`#${form} button[type=submit]`);
  };
  // Through the choices to the card step (暗証番号 unless told), then (after `beforeRead`) 読み取る.
  h.toCard = async (page, kind = '訪問診療', items = ['手術情報'], method = '暗証番号') => {
    await h.tickAndNext(page, 'form-visit-kind', [kind]);
    await h.tickAndNext(page, 'form-items', items);
    await h.tickAndNext(page, 'form-identity', [method]);
    await visible(page, 'card');
  };
  h.readWithPin = async (page, kind = '訪問診療', items = ['手術情報'], beforeRead = async () => {}) => {
    await h.toCard(page, kind, items);
    await beforeRead();
    await page.click('#card-read');
  };
  h.enterPin = async (page, pin) => {
    await page.fill('#pin', pin);
    await page.click('#form-pin button[type=submit]');
  };

  let passed = 0, failed = 0, retried = 0;
  let attempt = { contexts: [], crashed: [] };
  // A case; a failure prints the visible screen and keeps a screenshot. A Chromium renderer that crashed during
  // the case (Playwright's 'crash' event; "Target crashed") may not be the page's fault: Chromium 156 died once
  // under load in the renderer's main thread on a null pointer inside Chromium itself (SIGSEGV at 0x0, the
  // web.phone failure of the ninth session; docs/consent-page.md). Such a case is reported — the crash, its dump
  // and Chromium's log — and run once more in fresh contexts only when no assertion failed and every new dump is
  // such a crash of Chromium's own (chromiumOwnCrash: a memory fault inside the `chromium` binary, not out of
  // memory); the retry is printed and counted on the suite's last line. A failed assertion, a timeout without a
  // crash, a crash without a dump, one in generated code (our WebAssembly) or out of memory, or a second crash
  // fails the case.
  h.test = async function test(name, fn) {
    for (let run = 1; run <= 2; run++) {  // at most one retry: the catch below throws on the second run
      attempt = { contexts: [], crashed: [] };
      try {
        await fn();
        break;
      } catch (e) {
        const crashed = attempt.crashed.length > 0 && !(e instanceof assert.AssertionError);
        const dumps = [];
        const report = crashed ? crashReport(out, dumps) : '';
        const retry = crashed && run === 1 && dumps.length > 0 && dumps.every(chromiumOwnCrash);
        console.error(`not ok - ${name}${crashed ? ' (a Chromium renderer crashed)' : ''}`);
        if (crashed) {
          console.error(`renderer crashed on ${attempt.crashed.join(', ')}: ${e.message.split('\n')[0]}`);
          console.error(report);
          if (!retry) console.error('not run again: not a memory fault inside the chromium binary alone (or out of memory)');
        }
        if (h.current && !crashed) {
          await h.current.screenshot({ path: join(shots, 'failure.png'), fullPage: true }).catch(() => {});
          console.error('visible screen: ' + (await h.current.evaluate(() => { const s = document.querySelector('.screen:not([hidden])'); return s ? s.id + ': ' + s.innerText : document.body.innerText; }).catch(() => '?')));
        }
        if (!retry) {
          failed += 1;
          throw e;
        }
        retried += 1;
        for (const c of attempt.contexts) await c.close().catch(() => {});
        console.error(`retry - ${name}: once more in fresh contexts, after a crash inside Chromium`);
      }
    }
    passed += 1;
    console.log(`ok - ${name}`);
  };
  h.passed = () => passed;

  // The protocol's events arrive on their own channel: wait (bounded) until every request seen so far has ended.
  h.settled = async (requests) => {
    for (let i = 0; i < 100 && [...requests.values()].some((r) => !r.done && !r.cached); i++) await new Promise((ok) => setTimeout(ok, 50));
    return [...requests.values()];
  };

  h.close = async () => {
    await browser.close();
    server.kill('SIGTERM');
  };
  // Runs `body` with the harness; prints the failure and the server's log, and the count of tests passed.
  h.run = async (body) => {
    try {
      await body();
    } catch (e) {
      console.error(e);
      console.error('server log:\n' + started.log());
      process.exitCode = 1;
    } finally {
      await h.close();
    }
    // Always printed: a passing run shows the cases that needed a second run.
    console.log(`${passed} passed, ${failed} failed, ${retried} retried after a Chromium crash; screenshots in ${shots}`);
    if (process.exitCode) console.log('FAILED');
  };
  return h;
}
