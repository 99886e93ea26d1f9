// Client of kyotaku-bridge (docs/bridge.md): the consent page reaches a PC/SC (CCID) card reader through the
// loopback WebSocket daemon. Same interface as the WebUSB transport: open, pinTries, readCertificate, sign, close.
// Every request has a deadline: a bridge that stops answering (hung, or its machine asleep) gives a `transport`
// error with `noAnswer` instead of a page that waits for ever, and the connection is dropped (its state is
// unknown); the next request connects again.
import { cardError, cardErrorOf } from './webusb-rcs380.js';

export const b64 = (bytes) => btoa(String.fromCharCode(...bytes));
export const unb64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));

export class BridgeTransport {
  /**
   * @param url e.g. ws://127.0.0.1:39211/
   * @param token the pairing token (kept by the page once paired), or null with …
   * @param code … the 6-digit pairing code kyotaku-bridge shows: the bridge answers with the token (this.token)
   */
  constructor(url, token, code = null, { requestTimeoutMs = 15000, signTimeoutMs = 30000 } = {}) {
    this.name = 'bridge';
    this.requestTimeoutMs = requestTimeoutMs;  // every request but open (its wait_ms and this) and sign …
    this.signTimeoutMs = signTimeoutMs;        // … which waits for the card's RSA signature
    this.url = url;
    this.token = token;
    this.code = code;
    this.ws = null;
    this.nextId = 1;
    this.waiting = new Map();
  }

  // Connects and pairs; rejects with kind "transport" when no bridge answers within `timeoutMs`.
  async connect({ timeoutMs = 1500 } = {}) {
    if (this.ws) return;
    const ws = new WebSocket(this.url);
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => { ws.close(); reject(cardErrorOf('transport', 'カード読み取りアプリ (kyotaku-bridge) が見つかりません', 'kyotaku-bridge did not answer')); }, timeoutMs);
      ws.onopen = () => { clearTimeout(timer); resolve(); };
      ws.onerror = () => { clearTimeout(timer); reject(cardErrorOf('transport', 'カード読み取りアプリ (kyotaku-bridge) に接続できません', 'cannot connect to kyotaku-bridge')); };
    });
    ws.onmessage = (event) => {
      let msg;
      try { msg = JSON.parse(event.data); } catch { return; }
      const w = this.waiting.get(msg.id);
      if (!w) return;
      this.waiting.delete(msg.id);
      clearTimeout(w.timer);
      if (msg.ok) w.resolve(msg);
      else w.reject(Object.assign(cardError(msg.error.kind, msg.error.message, msg.error.tries_left, msg.error), { reason: msg.error.reason, retryAfterMs: msg.error.retry_after_ms }));
    };
    ws.onclose = () => {
      for (const w of this.waiting.values()) {
        clearTimeout(w.timer);
        w.reject(cardErrorOf('transport', 'カード読み取りアプリとの接続が切れました', 'the connection to kyotaku-bridge closed'));
      }
      this.waiting.clear();
      if (this.ws === ws) this.ws = null;
    };
    this.ws = ws;
    const hello = await this.request({ op: 'hello', ...(this.token ? { token: this.token } : { code: this.code }), version: 1 });
    if (hello.token) this.token = hello.token;  // paired by code: the token is kept from now on
  }

  request(body, timeoutMs = this.requestTimeoutMs) {
    if (!this.ws) return Promise.reject(cardErrorOf('transport', 'カード読み取りアプリに接続していません', 'not connected to kyotaku-bridge'));
    const id = this.nextId++;
    const ws = this.ws;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(Object.assign(cardErrorOf('transport', `カード読み取りアプリから答えがありません`, `kyotaku-bridge did not answer ${body.op} within ${timeoutMs} ms`), { noAnswer: true }));
        // What the bridge is doing now is unknown: this connection is dropped (with whatever else waits on it)
        // before its close event could reach a new connection's requests; the next request connects again.
        ws.onmessage = null;
        ws.onclose = null;
        ws.close();
        if (this.ws === ws) this.ws = null;
        for (const w of this.waiting.values()) {
          clearTimeout(w.timer);
          w.reject(cardErrorOf('transport', 'カード読み取りアプリとの接続が切れました', 'the connection to kyotaku-bridge closed'));
        }
        this.waiting.clear();
      }, timeoutMs);
      this.waiting.set(id, { resolve, reject, timer });
      ws.send(JSON.stringify({ ...body, id }));
    });
  }

  async readers() { await this.connect(); return (await this.request({ op: 'readers' })).readers; }
  async open({ reader, waitMs = 10000 } = {}) {
    await this.connect();
    await this.request({ op: 'open', wait_ms: waitMs, ...(reader ? { reader } : {}) }, waitMs + this.requestTimeoutMs);
  }
  async readCertificate() { return unb64((await this.request({ op: 'read_certificate' })).certificate); }
  async pinTries() { return (await this.request({ op: 'pin_tries' })).tries_left; }
  // The PIN goes to the loopback bridge and from there to the card only.
  async sign(pin, challenge) {
    const r = await this.request({ op: 'sign', pin, challenge: b64(challenge) }, this.signTimeoutMs);
    return { certificate: unb64(r.certificate), signature: unb64(r.signature) };
  }
  async close() {
    if (!this.ws) return;
    try { await this.request({ op: 'close' }); } catch { /* already gone */ }
    this.ws.close();
    this.ws = null;
  }
}
