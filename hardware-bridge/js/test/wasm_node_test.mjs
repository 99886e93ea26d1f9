// The WebUSB transport's JS and the WebAssembly card module, end to end in Node against the fake RC-S380 whose
// device side and card are the simulated reader compiled to WebAssembly. RSA for the virtual card: Node's crypto.
// Usage: node wasm_node_test.mjs WASM_DIR PKI_DIR
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import crypto from 'node:crypto';
import assert from 'node:assert/strict';
import { WebUsbRcs380Transport } from '../webusb-rcs380.js';
import { createFakeRcs380 } from './fake-rcs380.js';

const [wasmDir, pki] = process.argv.slice(2);
const require = createRequire(import.meta.url);
const KyotakuCard = require(join(wasmDir, 'kyotaku-card.js'));
const KyotakuVirtualCard = require(join(wasmDir, 'kyotaku-virtual-card.js'));

const der = (pem) => new Uint8Array(new crypto.X509Certificate(readFileSync(pem)).raw);
const cardKey = crypto.createPrivateKey(readFileSync(join(pki, 'card-2.key')));
const cardCert = new crypto.X509Certificate(readFileSync(join(pki, 'card-2.pem')));
const caCert = new crypto.X509Certificate(readFileSync(join(pki, 'card-ca.pem')));

async function freshReader() {
  const sim = await KyotakuVirtualCard({ wasmBinary: readFileSync(join(wasmDir, 'kyotaku-virtual-card.wasm')) });
  sim.kyotakuRsaSign = (digestInfo) => new Uint8Array(crypto.privateEncrypt({ key: cardKey, padding: crypto.constants.RSA_PKCS1_PADDING }, digestInfo));
  const put = (bytes) => { const p = sim._malloc(bytes.length); sim.HEAPU8.set(bytes, p); return p; };
  const pin = put(new TextEncoder().encode('1234\0'));
  assert.equal(sim._vc_create(put(der(join(pki, 'card-2.pem'))), der(join(pki, 'card-2.pem')).length,
    put(der(join(pki, 'card-ca.pem'))), der(join(pki, 'card-ca.pem')).length, pin), 0);
  const fake = createFakeRcs380(sim);
  globalThis.navigator = { usb: fake.usb };
  const transport = new WebUsbRcs380Transport(() => KyotakuCard({ wasmBinary: readFileSync(join(wasmDir, 'kyotaku-card.wasm')) }));
  return { sim, fake, transport };
}

process.setMaxListeners(100);  // every Emscripten module instance listens on process
let passed = 0;
async function test(name, fn) {
  await fn();
  passed += 1;
  console.log(`ok - ${name}`);
}

await test('reads the certificate and the tries left, signs, and the signature verifies', async () => {
  const { transport } = await freshReader();
  await transport.open();
  const cert = await transport.readCertificate();
  assert.deepEqual(cert, new Uint8Array(cardCert.raw));
  assert.equal(await transport.pinTries(), 3);
  const challenge = crypto.randomBytes(32);
  const { certificate, signature } = await transport.sign('1234', challenge);
  assert.ok(new crypto.X509Certificate(Buffer.from(certificate)).verify(caCert.publicKey), 'chains to the test card CA');
  assert.ok(crypto.verify('sha256', challenge, cardCert.publicKey, Buffer.from(signature)), 'signature over the challenge');
  await transport.close();
});

await test('wrong PIN counts down, then locks after three', async () => {
  const { transport, sim } = await freshReader();
  await transport.open();
  for (const left of [2, 1]) {
    await assert.rejects(transport.sign('0000', new Uint8Array([1])), (e) => e.kind === 'wrong_pin' && e.triesLeft === left
      && e.messageJa.includes(`暗証番号が違います（残り${left}回）`) && e.messageEn.includes(`wrong PIN, ${left} tries left`));
  }
  await assert.rejects(transport.sign('0000', new Uint8Array([1])), (e) => e.kind === 'locked');
  await assert.rejects(transport.sign('1234', new Uint8Array([1])), (e) => e.kind === 'locked');
  assert.equal(sim._vc_pin_tries(), 0);
});

await test('the consent flow in WebAssembly never selects a 署名用 file (0001, 0002, 001A, 001B)', async () => {
  const { transport, sim } = await freshReader();
  await transport.open();
  await transport.readCertificate();
  await transport.pinTries();
  await assert.rejects(transport.sign('0000', new Uint8Array([1])), (e) => e.kind === 'wrong_pin');
  await transport.sign('1234', new Uint8Array([1, 2, 3]));
  await transport.close();
  assert.equal(sim._vc_signature_files_selected(), 0);
});

await test('a malformed PIN never reaches the card', async () => {
  const { transport, sim } = await freshReader();
  await transport.open();
  await assert.rejects(transport.sign('12a4', new Uint8Array([1])), (e) => e.kind === 'malformed' && !e.message.includes('12a4'));
  assert.equal(sim._vc_pin_tries(), 3);
});

await test('waiting-time extensions during signing', async () => {
  const { transport, sim } = await freshReader();
  await transport.open();
  sim._vc_request_wtx(2);
  const challenge = new Uint8Array([7, 7, 7]);
  const { signature } = await transport.sign('1234', challenge);
  assert.ok(crypto.verify('sha256', challenge, cardCert.publicKey, Buffer.from(signature)));
});

await test('no card, card removed mid-command, card back', async () => {
  const { transport, sim } = await freshReader();
  await transport.open();
  sim._vc_take_away();
  await assert.rejects(transport.readCertificate({ waitMs: 100 }), (e) => e.kind === 'no_card');
  sim._vc_put_back();
  sim._vc_remove_at_command(3);
  await assert.rejects(transport.readCertificate(), (e) => e.kind === 'card_removed');
  sim._vc_put_back();
  assert.deepEqual(await transport.readCertificate(), new Uint8Array(cardCert.raw));
});

await test('reader unplugged mid-session is a transport error', async () => {
  const { transport, fake } = await freshReader();
  await transport.open();
  fake.unplug();
  await assert.rejects(transport.readCertificate(), (e) => e.kind === 'transport' && /unplugged|外され/.test(e.message));
  await transport.close();
});

console.log(`${passed} tests passed`);
