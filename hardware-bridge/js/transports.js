// One way in for the consent page: which card transport to use, in this order (docs/bridge.md):
//   1. kyotaku-bridge on loopback (PC/SC readers, incl. CCID readers the browser may not touch), when paired;
//   2. WebUSB with a Sony RC-S380 (its vendor protocol runs in WebAssembly);
//   3. otherwise no transport: the page shows the fallback guidance.
// Web NFC is detected only to explain it: it exchanges NDEF messages and cannot send card commands.
import { BridgeTransport } from './bridge-client.js';
import { WebUsbRcs380Transport, cardError } from './webusb-rcs380.js';

export const TRANSPORT_ORDER = ['bridge', 'webusb-rcs380'];

// For patients (the page shows this part) …
export const WEB_NFC_EXPLANATION_JA =
  'スマートフォンにかざして読み取る機能 (NFC) は、この画面では、マイナンバーカードの読み取りに使えません。' +
  'カードリーダーを使うか、ほかの方法を選んでください。';
// … and with the English for developers and logs.
export const WEB_NFC_EXPLANATION = `${WEB_NFC_EXPLANATION_JA} / Web NFC only reads and writes NDEF tags and cannot send commands to a My Number card.`;

export const FALLBACK_GUIDANCE =
  'カードを読み取れない場合は、マイナポータルの「資格情報」画面、または「資格情報のお知らせ」とマイナンバーカードで資格を確認できます。 / ' +
  'Without a reader: the マイナポータル 資格情報 screen, or the 資格情報のお知らせ together with the card.';

export function webNfcStatus() {
  const present = typeof globalThis.NDEFReader === 'function';
  return { present, usable: false, explanation: present ? WEB_NFC_EXPLANATION : null };
}

/**
 * @param bridge {url, token} when the staff paired the page with kyotaku-bridge, else null
 * @param loadCardModule () => Promise<KyotakuCard module> for WebUSB
 * @param chooserTimeoutMs how long WebUSB's device chooser may stay unanswered before open() gives up
 *        (kind no_reader, chooser 'timeout'): a chooser with no RC-S380 in it otherwise spins forever
 * @returns {transport, tried: [{name, error, kind?}]}
 */
export async function chooseTransport({ bridge = null, loadCardModule = null, bridgeTimeoutMs = 1500, chooserTimeoutMs = 6000 } = {}) {
  const tried = [];
  if (bridge && bridge.url && bridge.token) {
    const t = new BridgeTransport(bridge.url, bridge.token);
    try {
      await t.connect({ timeoutMs: bridgeTimeoutMs });
      return { transport: t, tried };
    } catch (e) {
      tried.push({ name: 'bridge', error: e.message, kind: e.kind });  // kind unauthorized: it no longer knows this token
    }
  } else {
    tried.push({ name: 'bridge', error: 'ペアリングされていません / not paired' });
  }
  if (loadCardModule && WebUsbRcs380Transport.supported()) return { transport: new WebUsbRcs380Transport(loadCardModule, { chooserTimeoutMs }), tried };
  tried.push({ name: 'webusb-rcs380', error: 'WebUSB がありません / WebUSB is not available' });
  const nfc = webNfcStatus();
  const e = cardError('no_reader', (nfc.present ? nfc.explanation + ' ' : '') + FALLBACK_GUIDANCE);
  e.tried = tried;
  e.webNfc = nfc;
  throw e;
}
