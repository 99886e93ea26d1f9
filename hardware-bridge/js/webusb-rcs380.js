// WebUSB transport for the Sony RC-S380 (PaSoRi): moves bytes between navigator.usb and the WebAssembly card
// module (kyotaku-card.js), where the reader protocol, ISO 14443-B, ISO-DEP and the JPKI flow run.
// Browsers refuse WebUSB access to CCID (smart-card class) readers; the RC-S380 speaks its own protocol, so it
// can be used from an ordinary page (docs/bridge.md).

export const RCS380_FILTERS = [
  { vendorId: 0x054c, productId: 0x06c1 }, // RC-S380/S
  { vendorId: 0x054c, productId: 0x06c3 }, // RC-S380/P
];

const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
const unhex = (s) => new Uint8Array(s.match(/../g).map((h) => parseInt(h, 16)));

// Bulk transfers with a timeout that never loses a packet: a transferIn still pending when the timeout fires is
// kept and awaited by the next read, so answers stay in order.
export class UsbPipe {
  constructor(device, inEndpoint, outEndpoint) {
    this.device = device;
    this.inEndpoint = inEndpoint;
    this.outEndpoint = outEndpoint;
    this.pending = null;
  }
  async write(bytes) {
    const r = await this.device.transferOut(this.outEndpoint, bytes);
    if (r.status !== 'ok') throw new Error(`transferOut: ${r.status}`);
  }
  async read(max, timeoutMs) {
    if (!this.pending) this.pending = this.device.transferIn(this.inEndpoint, Math.max(max, 64));
    let timer;
    const timeout = new Promise((resolve) => { timer = setTimeout(() => resolve(null), timeoutMs); });
    const r = await Promise.race([this.pending, timeout]);
    clearTimeout(timer);
    if (r === null) return null;
    this.pending = null;
    if (r.status !== 'ok') throw new Error(`transferIn: ${r.status}`);
    return new Uint8Array(r.data.buffer, r.data.byteOffset, r.data.byteLength);
  }
}

export class WebUsbRcs380Transport {
  /** @param loadModule () => Promise<KyotakuCard module>  @param chooserTimeoutMs see open() */
  constructor(loadModule, { chooserTimeoutMs = 6000 } = {}) {
    this.name = 'webusb-rcs380';
    this.loadModule = loadModule;
    this.chooserTimeoutMs = chooserTimeoutMs;
    this.device = null;
    this.module = null;
  }

  static supported() {
    return typeof navigator !== 'undefined' && !!navigator.usb;
  }

  // Whether an RC-S380 is already granted to this origin (no chooser opens): a phone offers reading with it first
  // only then.
  static async granted() {
    if (!WebUsbRcs380Transport.supported()) return false;
    return (await navigator.usb.getDevices()).some((d) => RCS380_FILTERS.some((f) => f.vendorId === d.vendorId && f.productId === d.productId));
  }

  // Asks the user to pick the reader (a click must have started this), opens it and claims its interface.
  // A chooser that has not answered within chooserTimeoutMs (no RC-S380 to pick, nobody closing it) gives up
  // with no_reader and `chooser: 'timeout'`; a reader picked later is found by the next open().
  async open() {
    if (!WebUsbRcs380Transport.supported()) throw cardErrorOf('no_reader', 'このブラウザは WebUSB に対応していません', 'WebUSB is not available');
    const known = (await navigator.usb.getDevices()).filter((d) => RCS380_FILTERS.some((f) => f.vendorId === d.vendorId && f.productId === d.productId));
    let device = known[0];
    if (!device) {
      let timer;
      const timeout = new Promise((resolve) => { timer = setTimeout(() => resolve(null), this.chooserTimeoutMs); });
      try {
        device = await Promise.race([navigator.usb.requestDevice({ filters: RCS380_FILTERS }), timeout]);
      } catch (e) {
        throw cardErrorOf('no_reader', 'カードリーダー (RC-S380) が選ばれませんでした', 'no RC-S380 reader was chosen');
      } finally {
        clearTimeout(timer);
      }
      if (!device) throw Object.assign(cardErrorOf('no_reader', 'カードリーダーを選ぶ画面から答えがありません', 'the USB device chooser did not answer'), { chooser: 'timeout' });
    }
    this.module = this.module || (await this.loadModule());
    await device.open();
    if (!device.configuration) await device.selectConfiguration(1);
    await device.claimInterface(0);
    const endpoints = device.configuration.interfaces[0].alternate.endpoints;
    const inEp = endpoints.find((e) => e.direction === 'in' && e.type === 'bulk');
    const outEp = endpoints.find((e) => e.direction === 'out' && e.type === 'bulk');
    if (!inEp || !outEp) throw cardErrorOf('transport', 'RC-S380 のエンドポイントが見つかりません', 'bulk endpoints not found');
    this.device = device;
    this.module.kyotakuUsb = new UsbPipe(device, inEp.endpointNumber, outEp.endpointNumber);
  }

  async call(fn, argTypes, args) {
    if (!this.device) throw cardErrorOf('no_card', '先にリーダーを開いてください', 'open the reader first');
    const json = await this.module.ccall(fn, 'string', argTypes, args, { async: true });
    const r = JSON.parse(json);
    if (!r.ok) throw cardError(r.error.kind, r.error.message, r.error.tries_left, r.error);
    return r;
  }

  async readCertificate({ waitMs = 10000 } = {}) {
    const r = await this.call('kc_read_certificate', ['number'], [waitMs]);
    return unhex(r.certificate_hex);
  }

  async pinTries({ waitMs = 10000 } = {}) {
    return (await this.call('kc_pin_tries', ['number'], [waitMs])).tries_left;
  }

  // The PIN goes into WebAssembly memory, to the card, and is wiped there; it is never sent anywhere else.
  async sign(pin, challenge, { waitMs = 10000 } = {}) {
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', challenge));
    const m = this.module;
    const pinBytes = new TextEncoder().encode(pin);
    const pinPtr = m._malloc(Math.max(pinBytes.length, 1));
    const digestPtr = m._malloc(32);
    m.HEAPU8.set(pinBytes, pinPtr);
    pinBytes.fill(0);
    m.HEAPU8.set(digest, digestPtr);
    try {
      const r = await this.call('kc_sign', ['number', 'number', 'number', 'number', 'number'], [pinPtr, pinBytes.length, digestPtr, 32, waitMs]);
      return { certificate: unhex(r.certificate_hex), signature: unhex(r.signature_hex) };
    } finally {
      m.HEAPU8.fill(0, pinPtr, pinPtr + pinBytes.length);
      m._free(pinPtr);
      m._free(digestPtr);
    }
  }

  async close() {
    if (!this.device) return;
    try {
      await this.device.releaseInterface(0);
      await this.device.close();
    } catch (e) {
      // unplugged: nothing left to release
    }
    this.device = null;
  }
}

// An error of the card layer: its kind, its one-line message and, from an answer that carries them
// ({message_ja, message_en}: docs/bridge.md), the Japanese and the English apart (messageJa, messageEn).
export function cardError(kind, message, triesLeft, answer = {}) {
  const e = new Error(message);
  e.kind = kind;
  if (triesLeft !== undefined) e.triesLeft = triesLeft;
  if (typeof answer.message_ja === 'string') e.messageJa = answer.message_ja;
  if (typeof answer.message_en === 'string') e.messageEn = answer.message_en;
  return e;
}

// An error of the card layer's own, its Japanese and English apart (`message` is the two in one line).
export function cardErrorOf(kind, ja, en, triesLeft) {
  return cardError(kind, `${ja} / ${en}`, triesLeft, { message_ja: ja, message_en: en });
}

export { hex, unhex };
