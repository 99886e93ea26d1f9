// The consent page in a real browser: Debian's Chromium (headless, playwright-core) against a real `kyotaku serve`
// (SQLite, TLS) and the virtual card — in WebAssembly behind a fake navigator.usb RC-S380, and through the real
// kyotaku-bridge. Both flows to completion (the consent then exists in the server's registry), every error
// screen, a rotated URL, a phone-sized and a tablet-sized viewport, axe-core on every screen. Screenshots of
// each screen are written to OUT/screenshots. Reports (does not assert) the first-screen time and asset sizes.
// Usage: node page_test.mjs KYOTAKU KYOTAKU_BRIDGE WASM_DIR SOURCE_DIR OUT
import { chromium } from 'playwright-core';
import { spawn, execFileSync } from 'node:child_process';
import { readFileSync, mkdirSync, rmSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import https from 'node:https';
import crypto from 'node:crypto';
import assert from 'node:assert/strict';

const [kyotaku, bridgeBinary, wasmDir, src, out] = process.argv.slice(2).map((a) => resolve(a));
const work = join(out, 'work');
const shots = join(out, 'screenshots');
rmSync(out, { recursive: true, force: true });
mkdirSync(shots, { recursive: true });
const pki = join(work, 'pki');
const MEDICAL = '0110113719';   // 医科, both features on
const NURSE = '1360100018';     // 訪問看護ステーション
const CLOSED = '1340100021';    // 薬局 with both features off
execFileSync(join(src, 'scripts/make-test-pki'), [pki, MEDICAL, NURSE, CLOSED], { env: { ...process.env, CARDS: '3' } });

// ---- the server --------------------------------------------------------------------------------------------
const server = spawn(kyotaku, ['serve', '--tls-dir', pki, '--db', join(work, 'kyotaku.sqlite'), '--rules', join(src, 'rules'), '--port', '0'],
  { stdio: ['ignore', 'pipe', 'pipe'] });
let serverLog = '';
server.stderr.on('data', (d) => { serverLog += d; });
const base = await new Promise((ok, fail) => {
  let text = '';
  server.stdout.on('data', (d) => { text += d; const m = text.match(/listening on (https:\/\/127\.0\.0\.1:\d+)/); if (m) ok(m[1]); });
  server.on('exit', (c) => fail(new Error(`kyotaku serve exited (${c}): ${serverLog}`)));
});
const tls = (who) => ({ ca: readFileSync(join(pki, 'ca.pem')), cert: readFileSync(join(pki, `${who}.pem`)), key: readFileSync(join(pki, `${who}.key`)) });
function call(who, method, path, body) {
  return new Promise((ok, fail) => {
    const req = https.request(base + path, { method, ...tls(who), headers: { 'Content-Type': 'application/json' } }, (res) => {
      let data = '';
      res.on('data', (d) => { data += d; });
      res.on('end', () => ok({ status: res.statusCode, body: data ? JSON.parse(data) : null }));
    });
    req.on('error', fail);
    if (body) req.write(JSON.stringify(body));
    req.end();
  });
}
for (const [code, name, kind] of [[MEDICAL, '札幌在宅クリニック', '医科'], [NURSE, 'ひまわり訪問看護ステーション', '訪問看護ステーション'], [CLOSED, 'みなと薬局', '薬局']])
  assert.equal((await call('admin', 'POST', '/api/v1/admin/facilities', { code, name, kind })).status, 201);
for (const code of [MEDICAL, NURSE])
  assert.equal((await call(`facility-${code}-manager`, 'PUT', '/api/v1/settings', { terms_agreed: true, home_visit_enabled: true, online_enabled: true })).status, 200);
const person = (await call('admin', 'POST', '/api/v1/admin/insured-persons', { insurer_number: '06132013', symbol: '１２３', number: '４５６７', branch: '01',
  birthdate: '1940-05-01', name: '在宅 花子', burden_ratio: '010', valid_from: '2020-04-01' })).body.person_key;
for (const n of [1, 2]) // card 3 stays unknown to the server: its registration is refused
  assert.equal((await call('admin', 'POST', '/api/v1/admin/cards', { person_key: person, certificate: readFileSync(join(pki, `card-${n}.pem`), 'utf8') })).status, 201);
const urlOf = async (code) => (await call(`facility-${code}`, 'GET', '/api/v1/url')).body.url;
const consents = async (code) => (await call('admin', 'GET', `/api/v1/admin/consents?facility_code=${code}`)).body;

// ---- the browser -------------------------------------------------------------------------------------------
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox', '--headless'] });
const PHONE = { width: 360, height: 740 };
const TABLET = { width: 820, height: 1180 };
const testFiles = {
  'fake-rcs380.js': join(src, 'hardware-bridge/js/test/fake-rcs380.js'),
  'kyotaku-virtual-card.js': join(wasmDir, 'kyotaku-virtual-card.js'),
  'kyotaku-virtual-card.wasm': join(wasmDir, 'kyotaku-virtual-card.wasm'),
  'forge.min.js': join(src, 'node_modules/node-forge/dist/forge.min.js'),
};
const axeSource = readFileSync(join(src, 'node_modules/axe-core/axe.min.js'), 'utf8');
const der64 = (n) => new crypto.X509Certificate(readFileSync(join(pki, `card-${n}.pem`))).raw.toString('base64');

// A page with the virtual card `card` in a fake RC-S380 on navigator.usb (null: no USB at all).
async function open(url, { viewport = PHONE, card = 1, usb = true, webNfc = false } = {}) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport, locale: 'ja-JP' });
  await context.route(`${base}/test/**`, (route) => {
    const name = new URL(route.request().url()).pathname.slice('/test/'.length);
    if (!testFiles[name]) return route.fulfill({ status: 404, body: '' });
    return route.fulfill({ body: readFileSync(testFiles[name]), contentType: name.endsWith('.wasm') ? 'application/wasm' : 'text/javascript' });
  });
  const setup = { usb, webNfc, cert: der64(card), ca: new crypto.X509Certificate(readFileSync(join(pki, 'card-ca.pem'))).raw.toString('base64'),
    key: readFileSync(join(pki, `card-${card}.key`), 'utf8') };
  await context.addInitScript((s) => {
    if (s.webNfc) window.NDEFReader = class NDEFReader {};
    if (!s.usb) { Object.defineProperty(Navigator.prototype, 'usb', { configurable: true, get: () => undefined }); return; }
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
      return window.fake;
    })());
    Object.defineProperty(Navigator.prototype, 'usb', { configurable: true, get: () => ({
      getDevices: async () => (await window.kyotakuFake()).usb.getDevices(),
      requestDevice: async (o) => (await window.kyotakuFake()).usb.requestDevice(o),
    }) });
  }, setup);
  const page = await context.newPage();
  current = page;
  page.on('pageerror', (e) => console.error('page error:', e.message));
  page.on('requestfailed', (r) => { if (!r.url().includes('/test/') && !/ERR_INTERNET_DISCONNECTED|ERR_ABORTED/.test(r.failure()?.errorText || '')) console.error('request failed:', r.url(), r.failure()?.errorText); });
  page.on('console', (m) => { if (m.type() === 'error') console.error('console:', m.text()); });
  const t0 = Date.now();
  await page.goto(url);
  return { page, context, t0 };
}

const visible = (page, id) => page.waitForSelector(`#screen-${id}:not([hidden])`, { timeout: 15000 });
let shot = 0;
const axeResults = [];
async function screen(page, id, name) {
  await visible(page, id);
  await page.screenshot({ path: join(shots, `${String(++shot).padStart(2, '0')}-${name}.png`), fullPage: true });
  await page.evaluate(axeSource);
  const r = await page.evaluate(async () => (await axe.run(document, { resultTypes: ['violations'] })).violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length })));
  const bad = r.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  axeResults.push({ screen: name, violations: r.length, serious: bad.length });
  assert.deepEqual(bad, [], `axe-core: serious or critical violations on ${name}`);
}
const tickAndNext = async (page, form, values) => {
  for (const v of values) await page.check(`#${form} input[value="${v}"]`);
  await page.click(`#${form} button[type=submit]`);
};

// Through the choices to the card step (暗証番号), then (after `beforeRead`) 読み取る.
async function readWithPin(page, kind = '訪問診療', items = ['手術情報'], beforeRead = async () => {}) {
  await tickAndNext(page, 'form-visit-kind', [kind]);
  await tickAndNext(page, 'form-items', items);
  await tickAndNext(page, 'form-identity', ['暗証番号']);
  await beforeRead();
  await page.click('#card-read');
}
async function enterPin(page, pin) {
  await page.fill('#pin', pin);
  await page.click('#form-pin button[type=submit]');
}

let passed = 0;
let current = null;
async function test(name, fn) {
  try {
    await fn();
  } catch (e) {
    console.error(`not ok - ${name}`);
    if (current) {
      await current.screenshot({ path: join(shots, 'failure.png'), fullPage: true }).catch(() => {});
      console.error('visible screen: ' + (await current.evaluate(() => { const s = document.querySelector('.screen:not([hidden])'); return s ? s.id + ': ' + s.innerText : document.body.innerText; }).catch(() => '?')));
    }
    throw e;
  }
  passed += 1;
  console.log(`ok - ${name}`);
}

try {
  const medicalUrl = await urlOf(MEDICAL);

  await test('訪問診療 on a phone: 診療区分 → 項目 → 暗証番号 → カード → 完了, and the consent is in the registry', async () => {
    const { page, context, t0 } = await open(medicalUrl);
    await visible(page, 'visit-kind');
    const firstScreenMs = Date.now() - t0;
    console.log(`first screen interactive: ${firstScreenMs} ms (target 1000 ms, loopback)`);
    await screen(page, 'visit-kind', 'visit-kind-phone');
    const kinds = await page.$$eval('#visit-kinds input', (e) => e.map((i) => i.value));
    assert.equal(kinds.length, 10);
    await page.click('#form-visit-kind button[type=submit]');
    assert.match(await page.textContent('#msg-visit-kind'), /選んでください/);
    await tickAndNext(page, 'form-visit-kind', ['訪問診療']);
    await screen(page, 'items', 'items-medical');
    assert.deepEqual(await page.$$eval('#items input', (e) => e.map((i) => i.value)), ['手術情報', '診療・薬剤情報', '特定健診情報']);
    await tickAndNext(page, 'form-items', ['診療・薬剤情報', '特定健診情報']);
    await screen(page, 'identity', 'identity');
    assert.deepEqual(await page.$$eval('#identity-methods input', (e) => e.map((i) => i.value)), ['暗証番号', '目視確認']);
    await tickAndNext(page, 'form-identity', ['暗証番号']);
    await screen(page, 'card', 'card');
    await page.click('#card-read');
    await screen(page, 'pin', 'pin');
    assert.match(await page.textContent('#pin-tries'), /残り 3 回/);
    assert.equal(await page.getAttribute('#pin', 'type'), 'password');
    assert.equal(await page.getAttribute('#pin', 'inputmode'), 'numeric');
    await page.fill('#pin', '1234');
    const sent = [];
    page.on('request', (r) => { if (r.postData()) sent.push(r.postData()); });
    await page.click('#form-pin button[type=submit]');
    await screen(page, 'done', 'done');
    assert.ok(sent.every((b) => !b.includes('1234') && !b.includes('"pin"')), 'the PIN must not reach the server');
    const list = await consents(MEDICAL);
    const c = list.consents ? list.consents.at(-1) : list.at(-1);
    assert.equal(c.visit_kind, '訪問診療');
    assert.equal(c.identity_method, '暗証番号');
    assert.deepEqual([...(Array.isArray(c.items) ? c.items : c.items.split(','))].sort(), ['特定健診情報', '薬剤情報', '診療情報'].sort());
    await context.close();
  });

  await test('オンライン診療 on a tablet: 診療予約日 first (a past day refused), then 完了 with the appointment registered', async () => {
    const { page, context } = await open(medicalUrl, { viewport: TABLET, card: 2 });
    await visible(page, 'visit-kind');
    await screen(page, 'visit-kind', 'visit-kind-tablet');
    await tickAndNext(page, 'form-visit-kind', ['オンライン診療']);
    await screen(page, 'appointment', 'appointment');
    const today = await page.getAttribute('#appointment-date', 'min');
    const day = (k) => new Date(Date.parse(today) + k * 86400000).toISOString().slice(0, 10);
    await page.fill('#appointment-date', day(-1));
    await page.click('#form-appointment button[type=submit]');
    assert.match(await page.textContent('#msg-appointment'), /以降/);
    await page.fill('#appointment-date', day(3));
    await page.click('#form-appointment button[type=submit]');
    await tickAndNext(page, 'form-items', ['手術情報']);
    await tickAndNext(page, 'form-identity', ['暗証番号']);
    await page.click('#card-read');
    await visible(page, 'pin');
    await enterPin(page, '1234');
    await screen(page, 'done', 'done-online');
    assert.match(await page.textContent('#done-summary'), new RegExp(day(3)));
    const list = await consents(MEDICAL);
    const c = (list.consents || list).find((x) => x.visit_kind === 'オンライン診療');
    assert.ok(c, 'the online consent is registered');
    assert.equal(c.appointment_date, day(3));
    await context.close();
  });

  await test('目視確認 with the office terminal\'s passcode; 訪問看護ステーション also offers 限度額情報等', async () => {
    const { page, context } = await open(await urlOf(NURSE));
    await tickAndNext(page, 'form-visit-kind', ['訪問看護']);
    await visible(page, 'items');
    assert.deepEqual(await page.$$eval('#items input', (e) => e.map((i) => i.value)), ['手術情報', '診療・薬剤情報', '特定健診情報', '限度額情報等']);
    await tickAndNext(page, 'form-items', ['限度額情報等']);
    await page.check('#form-identity input[value="目視確認"]');
    await page.click('#form-identity button[type=submit]');
    assert.match(await page.textContent('#msg-identity'), /パスコード/);
    const passcode = (await call(`facility-${NURSE}`, 'POST', '/api/v1/visual-passcode')).body.passcode;
    await page.fill('#visual-passcode', passcode);
    await screen(page, 'identity', 'identity-visual-check');
    await page.click('#form-identity button[type=submit]');
    await page.click('#card-read');
    await screen(page, 'done', 'done-visual-check');
    const c = (await consents(NURSE)).consents?.at(-1) || (await consents(NURSE)).at(-1);
    assert.equal(c.identity_method, '目視確認');
    await context.close();
  });

  await test('keyboard only: Tab, Space and Enter take the patient from the first screen to 完了', async () => {
    const { page, context } = await open(await urlOf(MEDICAL), { card: 2 });
    await visible(page, 'visit-kind');
    const focused = () => page.evaluate(() => { const e = document.activeElement; return `${e.tagName}${e.type ? ':' + e.type : ''}${e.id ? '#' + e.id : ''}${e.className ? '.' + e.className : ''}`; });
    const tabTo = async (pattern) => {
      for (let i = 0; i < 12; i++) {
        await page.keyboard.press('Tab');
        if (pattern.test(await focused())) return;
      }
      throw new Error(`Tab never reached ${pattern}; at ${await focused()}`);
    };
    await tabTo(/INPUT:radio/);
    await page.keyboard.press('Space');
    await tabTo(/BUTTON:submit.*primary/);
    await page.keyboard.press('Enter');
    await visible(page, 'items');
    await tabTo(/INPUT:checkbox/);
    await page.keyboard.press('Space');
    await tabTo(/BUTTON:submit.*primary/);
    await page.keyboard.press('Enter');
    await visible(page, 'identity');
    await tabTo(/INPUT:radio/);
    await page.keyboard.press('Space');
    await tabTo(/BUTTON:submit.*primary/);
    await page.keyboard.press('Enter');
    await visible(page, 'card');
    await tabTo(/#card-read/);
    await page.keyboard.press('Enter');
    await visible(page, 'pin');
    assert.match(await focused(), /#pin/, 'the PIN field has the focus');
    await page.keyboard.type('1234');
    await page.keyboard.press('Enter');
    await visible(page, 'done');
    assert.match(await focused(), /H1/, 'each new screen puts the focus on its heading');
    await context.close();
  });

  await test('wrong PIN (tries left from the card), then the right one; three wrong lock the card', async () => {
    let { page, context } = await open(medicalUrl);
    const toCard = async () => {
      await readWithPin(page);
      await visible(page, 'pin');
    };
    await toCard();
    await enterPin(page, '12');
    assert.match(await page.textContent('#msg-pin'), /数字4桁/);
    await enterPin(page, '9999');
    await screen(page, 'error-wrong-pin', 'error-wrong-pin');
    assert.match(await page.textContent('#wrong-pin-tries'), /残り 2 回/);
    await page.click('#screen-error-wrong-pin .retry');
    await visible(page, 'pin');
    assert.match(await page.textContent('#pin-tries'), /残り 2 回/);
    await enterPin(page, '1234');
    await visible(page, 'done');
    await context.close();
    ({ page, context } = await open(medicalUrl));
    await toCard();
    for (const left of [2, 1]) {
      await enterPin(page, '0000');
      await visible(page, 'error-wrong-pin');
      await page.click('#screen-error-wrong-pin .retry');
      await visible(page, 'pin');
      assert.match(await page.textContent('#pin-tries'), new RegExp(`残り ${left} 回`));
    }
    await enterPin(page, '0000');
    await screen(page, 'error-locked', 'error-locked');
    await page.click('#screen-error-locked .to-fallback');
    await screen(page, 'fallback', 'fallback');
    assert.match(await page.textContent('#screen-fallback'), /資格情報のお知らせ/);
    await context.close();
  });

  await test('card removed mid-command, reader unplugged: their screens, and the session starts again', async () => {
    const { page, context } = await open(medicalUrl);
    await page.evaluate(async () => { await window.kyotakuFake(); window.sim._vc_remove_at_command(3); });
    await readWithPin(page, '往診');
    await screen(page, 'error-card', 'error-card-removed');
    await page.evaluate(() => window.sim._vc_put_back());
    await page.click('#screen-error-card .retry');
    await visible(page, 'pin');
    await page.click('#pin-cancel');
    await visible(page, 'card');
    await page.evaluate(() => window.fake.unplug());
    await page.click('#card-read');
    await screen(page, 'error-reader', 'error-reader-unplugged');
    await context.close();
  });

  await test('no reader at all (no WebUSB, no bridge): guidance, and Web NFC explained when the browser has it', async () => {
    const { page, context } = await open(medicalUrl, { usb: false, webNfc: true });
    await readWithPin(page);
    await screen(page, 'error-no-reader', 'error-no-reader');
    assert.match(await page.textContent('#web-nfc-explanation'), /NDEF/);
    assert.equal(await page.isVisible('#web-nfc-explanation'), true);
    await context.close();
  });

  await test('network lost before reading: its screen, and retrying keeps every choice', async () => {
    const { page, context } = await open(medicalUrl, { card: 2 });
    await readWithPin(page, '訪問診療', ['特定健診情報'], () => context.setOffline(true));
    await screen(page, 'error-network', 'error-network');
    await context.setOffline(false);
    await page.click('#screen-error-network .retry');
    await visible(page, 'pin');
    await enterPin(page, '1234');
    await visible(page, 'done');
    assert.match(await page.textContent('#done-summary'), /特定健診情報/);
    await context.close();
  });

  await test('the server refuses a card it has no eligibility for: its own screen with the reason', async () => {
    const { page, context } = await open(medicalUrl, { card: 3 });
    await readWithPin(page);
    await visible(page, 'pin');
    await enterPin(page, '1234');
    await screen(page, 'error-server', 'error-server');
    assert.match(await page.textContent('#error-server-message'), /資格情報がありません/);
    await context.close();
  });

  await test('a facility with both features off: the rule\'s reason, nothing to choose', async () => {
    const { page, context } = await open(await urlOf(CLOSED));
    await screen(page, 'unavailable', 'unavailable');
    assert.match(await page.textContent('#unavailable-reason'), /利用しない/);
    await context.close();
  });

  await test('a rotated URL shows a clear page and nothing else; the new one works', async () => {
    const old = medicalUrl;
    const fresh = (await call(`facility-${MEDICAL}-manager`, 'POST', '/api/v1/url/change')).body.url;
    const { page, context } = await open(old);
    assert.match(await page.textContent('h1'), /この URL は使えません/);
    assert.match(await page.textContent('body'), /変更されました/);
    assert.equal(await page.$('#screen-visit-kind'), null);
    await page.screenshot({ path: join(shots, `${String(++shot).padStart(2, '0')}-rotated-url.png`), fullPage: true });
    await page.goto(fresh);
    await visible(page, 'visit-kind');
    await context.close();
  });

  await test('no reader, then paired with the real kyotaku-bridge on the no-reader screen (PORT:CODE), to 完了', async () => {
    const bridge = spawn(bridgeBinary, ['serve', '--listen', '127.0.0.1:0', '--allow-origin', base, '--token-file', join(work, 'bridge.token'),
      '--virtual-card', pki, '--card', '2'], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const [, code] = await new Promise((ok) => { let t = ''; bridge.stdout.on('data', (d) => { t += d; const m = t.match(/code for the consent page: (\d+:\w+)/); if (m) ok(m); }); });
      const { page, context } = await open(await urlOf(MEDICAL), { usb: false });
      await context.grantPermissions(['local-network-access'], { origin: base });
      await readWithPin(page);
      await visible(page, 'error-no-reader');
      await page.fill('#pairing-code', code);
      await page.click('#form-pairing button[type=submit]');
      await visible(page, 'pin');
      await enterPin(page, '1234');
      await visible(page, 'done');
      assert.equal(await page.inputValue('#pairing-code'), '', 'the code field is cleared once saved');
      await context.close();
    } finally {
      bridge.kill('SIGTERM');
    }
  });

  // Sizes (reported): what the page downloads, gzipped.
  const webDir = resolve(join(kyotaku, '../../share/kyotaku/web'));
  const gz = (f) => gzipSync(readFileSync(join(webDir, f)), { level: 9 }).length;
  const pageFiles = readdirSync(webDir).filter((f) => /\.(js|wasm|html|css)$/.test(f));
  const total = pageFiles.reduce((s, f) => s + gz(f), 0);
  const engine = gz('kyotaku-engine.wasm') + gz('kyotaku-engine.js');
  console.log(`sizes gzipped: engine .wasm+.js ${(engine / 1024).toFixed(1)} KB (target 400 KB); everything the page may load ${(total / 1024).toFixed(1)} KB`);
  console.log(`axe-core: ${axeResults.length} screens checked, ${axeResults.reduce((s, r) => s + r.violations, 0)} minor/moderate findings, 0 serious or critical`);
} catch (e) {
  console.error(e);
  console.error('server log:\n' + serverLog);
  process.exitCode = 1;
} finally {
  await browser.close();
  server.kill('SIGTERM');
}
console.log(`${passed} tests passed; screenshots in ${shots}`);
if (process.exitCode) console.log('FAILED');
