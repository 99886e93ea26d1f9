// マイナ在宅受付Web: the consent page. Everything it offers (the facility's 診療区分 with a sentence each, the
// consent choices, the identity methods, whether a 診療予約日 is acceptable, whether staff are present) comes
// from the rule engine in WebAssembly (page-engine.js), given the server's rules and the facility's data that
// the server wrote into the page. The card is read through hardware-bridge/js, loaded only at the card step;
// a phone that cannot read the card hands the card step to the staff's device, or, for online care, to the
// patient's own or a family member's computer with a reader (docs/consent-page.md). Which way comes first depends
// on the device: a phone offers a USB reader only once one is granted or the patient asks for it, and never the
// computer program (kyotaku-bridge).
// The PIN goes from the input straight to the card: it is never stored, logged or sent to the server, and in a
// hand-off it is typed on the staff's device, never on the phone.
import { openFlow, startEngine } from './page-engine.js';

const $ = (id) => document.getElementById(id);
const token = decodeURIComponent(location.pathname.replace(/^\/c\//, ''));
const info = JSON.parse($('page-data').textContent);
const STATE_KEY = `kyotaku-page:${token}`;  // sessionStorage: the choices, never a PIN or a passcode
const BRIDGE_KEY = 'kyotaku-bridge';
const BRIDGE_URL = 'ws://127.0.0.1:39211/';
const CHOOSER_TIMEOUT_MS = 6000;  // a USB device chooser that has not answered by then gets an explanation
const POLL_MS = 2000;             // how often the phone asks whether the staff's device (or the computer) has finished
const API_TIMEOUT_MS = 30000;     // a server answer that has not come by then is a lost connection
const MODULE_TIMEOUT_MS = 20000;  // the card step's code that has not arrived by then: the same
// How long the card reader program on this computer may take to accept the connection: a program that is not
// running refuses at once; the browser may first ask the person to allow the page to reach it.
const BRIDGE_CONNECT_MS = 10000;
const ORDER = ['visit_kind', 'appointment', 'items', 'identity', 'card', 'done'];
const STEP_SCREEN = { visit_kind: 'visit-kind', appointment: 'appointment', items: 'items', identity: 'identity', card: 'card', done: 'done' };
// The word for what the facility gives, from its kind (a pharmacy gives 服薬指導, not 診療): every 「診療」 the patient
// reads (.care in index.html) says it.
const CARE = { 薬局: '服薬指導', 訪問看護ステーション: '看護' }[info.facility_kind] || '診療';
for (const e of document.querySelectorAll('.care')) e.textContent = CARE;
const STEP_NAMES = { 'visit-kind': `${CARE}の種類`, appointment: '予約日', items: '見てよい情報', identity: '本人確認', card: 'カード', done: '完了' };
const ITEM_NOTES = {
  '診療・薬剤情報': '受診した記録と、処方されたお薬の記録',
  手術情報: '受けた手術の記録',
  特定健診情報: '特定健診 (メタボ健診) の結果',
  限度額情報等: '医療費の自己負担の上限 (限度額) の区分',
};
const METHOD_NOTES = {
  暗証番号: 'カードの暗証番号 (数字4けた) を入れます',
  目視確認: '職員が、カードの顔写真とご本人を見比べます (暗証番号は使いません)',
};
// A phone or a tablet held in the hand (its main pointer is a finger), as opposed to a computer with a mouse. It
// decides which card route comes first, and that a computer program (kyotaku-bridge) is never offered.
const handheld = () => matchMedia('(pointer: coarse)').matches;
// What to call this device in a sentence, in the words patients use (never 端末).
const thisDevice = () => (!handheld() ? 'このパソコン' : Math.min(screen.width, screen.height) >= 600 ? 'このタブレット' : 'このスマートフォン');

// route: how this device reads the card ('bridge', 'usb' or 'none', cardRoute()); useUsb: the user asked for the
// USB reader on a phone; done: the 完了 screen's rows, kept for a reload.
const app = { flow: null, transport: null, cards: null, cancelled: false, retry: null, busy: false, handoff: null, claim: null, prefill: {},
  route: 'none', useUsb: false, done: null };
const problem = (kind, message, extra = {}) => Object.assign(new Error(message), { kind, ...extra });
// `promise`, or a `kind` problem when it has not settled within `ms` (a download or an answer that stalled).
function within(ms, promise, kind = 'network') {
  let timer;
  const late = new Promise((_, reject) => { timer = setTimeout(() => reject(problem(kind, `no answer within ${ms} ms`)), ms); });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

// ---- screens and history ---------------------------------------------------------------------------------

function renderSteps(current) {
  const steps = ['visit-kind', ...(app.flow && app.flow.online() ? ['appointment'] : []), 'items', 'identity', 'card', 'done'];
  const mark = { pin: 'card', handoff: 'card', continue: 'card' }[current] || current;
  $('steps').replaceChildren(...steps.map((s) => {
    const li = document.createElement('li');
    li.textContent = STEP_NAMES[s];
    if (s === mark) li.setAttribute('aria-current', 'step');
    return li;
  }));
}

function show(id) {
  for (const s of document.querySelectorAll('.screen')) s.hidden = s.id !== `screen-${id}`;
  const h = document.querySelector(`#screen-${id} h1`);
  document.title = `${h.textContent} - マイナ在宅受付Web`;
  renderSteps(id);
  window.scrollTo(0, 0);
  h.focus();
}

// The choices survive a reload of the tab (sessionStorage); a PIN or a passcode never goes there.
function save() {
  if (!app.flow) return;
  const f = app.flow;
  const state = app.done ? { done: app.done } : { step: f.step(), visitKind: f.visitKind(), appointment: f.appointment(), chosen: f.chosen(),
    identity: f.identityMethod(), handoff: app.handoff, claim: app.claim, useUsb: app.useUsb };
  try { sessionStorage.setItem(STATE_KEY, JSON.stringify(state)); } catch { /* private mode: nothing kept */ }
}
function saved() {
  try { return JSON.parse(sessionStorage.getItem(STATE_KEY) || 'null'); } catch { return null; }
}
function forget() {
  try { sessionStorage.removeItem(STATE_KEY); } catch { /* nothing kept */ }
}

// Shows the flow's step; `push` makes it a new history entry, so that Back returns to the screen before.
async function showStep({ push = false } = {}) {
  const step = app.flow.step();
  const screen = STEP_SCREEN[step];
  if (screen === 'visit-kind' && !renderVisitKinds()) return;
  if (screen === 'appointment') renderAppointment();
  if (screen === 'items') renderItems();
  if (screen === 'identity') renderIdentity();
  if (screen === 'card') await refreshCard();
  if (!performance.getEntriesByName('kyotaku:first-usable').length) performance.mark('kyotaku:first-usable');  // for the page test
  const state = { step };
  if (push) history.pushState(state, '');
  else history.replaceState(state, '');
  save();
  show(screen);
}

// Back and Forward: the flow follows the history entry (its choices are kept).
window.addEventListener('popstate', (event) => {
  if (!app.flow || app.busy) return;
  const state = event.state || {};
  const target = state.step || 'visit_kind';
  if (app.done) {  // the consent is registered: 完了 stays
    history.pushState({ step: 'done' }, '');
    return show('done');
  }
  if (app.handoff && !state.handoff) cancelHandoff();
  if (state.handoff && app.handoff) return showHandoff();
  // Forward onto a hand-off that Back took back: that entry is spent; stay on the card screen it came from, so
  // that one 戻る goes one screen back.
  if (state.handoff) return history.back();
  if (app.claim && target !== 'card') {
    // The staff's device leaves a hand-off: the patient's choices are not its to change.
    app.claim = null;
    while (app.flow.back()) { /* to the first step */ }
  }
  if (state.claim) return showClaim();
  if (app.flow.step() === 'done') {
    history.pushState({ step: 'done' }, '');
    return show('done');
  }
  while (ORDER.indexOf(app.flow.step()) > ORDER.indexOf(target) && app.flow.back()) { /* one step at a time */ }
  while (ORDER.indexOf(app.flow.step()) < ORDER.indexOf(target) && replayStep()) { /* Forward: the same choices again */ }
  showStep();
});

// Takes the current step again with the choices already made (Forward, reload); false when it cannot.
function replayStep() {
  const f = app.flow;
  const p = app.prefill;
  switch (f.step()) {
    case 'visit_kind': return !!(f.visitKind() || p.visitKind) && !f.chooseVisitKind(f.visitKind() || p.visitKind);
    case 'appointment': return !!(f.appointment() || p.appointment) && !f.setAppointment(f.appointment() || p.appointment);
    case 'items': return !f.chooseItems(f.chosen().length ? f.chosen() : p.chosen || []);
    case 'identity': return !!(f.identityMethod() || p.identity) && !f.chooseIdentity(f.identityMethod() || p.identity);
    default: return false;
  }
}

function radios(container, name, values, checked, notes = (v) => '') {
  container.replaceChildren(...values.map((v, i) => {
    const label = document.createElement('label');
    const input = document.createElement('input');
    input.type = name === 'items' ? 'checkbox' : 'radio';
    input.name = name;
    input.value = v;
    input.id = `${name}-${i}`;
    input.checked = Array.isArray(checked) ? checked.includes(v) : v === checked;
    label.htmlFor = input.id;
    const text = document.createElement('span');
    text.textContent = v;
    const note = notes(v);
    if (note) {
      const n = document.createElement('span');
      n.className = 'note';
      n.textContent = note;
      text.append(n);
    }
    label.append(input, text);
    return label;
  }));
}

// False when nothing can be chosen today: the unavailable screen is shown instead.
function renderVisitKinds() {
  const kinds = app.flow.visitKinds();
  if (kinds.length === 0) {
    $('unavailable-reason').textContent = app.flow.unavailableReason();
    show('unavailable');
    return false;
  }
  const only = kinds.length === 1 ? kinds[0] : '';  // a single offered kind is chosen already
  radios($('visit-kinds'), 'visit_kind', kinds, app.flow.visitKind() || app.prefill.visitKind || only, (k) => app.flow.visitKindNote(k));
  return true;
}

function renderAppointment() {
  const input = $('appointment-date');
  input.min = app.flow.today();
  if (app.flow.lastAppointment()) input.max = app.flow.lastAppointment();
  if (!input.value) input.value = app.flow.appointment() || app.prefill.appointment || '';
  showWareki();
}
function showWareki() {
  const v = $('appointment-date').value;
  $('appointment-wareki').textContent = v ? app.flow.wareki(v) : '';
}

function renderItems() {
  const chosen = app.flow.chosen().length ? app.flow.chosen() : app.prefill.chosen || [];
  radios($('items'), 'items', app.flow.choices(), chosen, (c) => ITEM_NOTES[c]);
}
function renderIdentity() {
  const methods = app.flow.identityMethods();
  const only = methods.length === 1 ? methods[0] : '';
  radios($('identity-methods'), 'identity', methods, app.flow.identityMethod() || app.prefill.identity || only, (m) => METHOD_NOTES[m]);
}

function summaryRows(list, rows) {
  list.replaceChildren(...rows.flatMap(([k, v]) => {
    const dt = document.createElement('dt');
    dt.textContent = k;
    const dd = document.createElement('dd');
    dd.textContent = v;
    return [dt, dd];
  }));
}
function choiceRows(consentDate) {
  const f = app.flow;
  const rows = [['診療の種類', f.visitKind()]];
  if (f.appointment()) rows.push(['予約日', f.wareki(f.appointment())]);
  rows.push(['見てよい情報', f.chosen().join('、') || '選んでいません']);
  rows.push(['本人確認', f.identityMethod()]);
  if (consentDate) rows.push(['同意した日', f.wareki(consentDate)]);
  return rows;
}

// How this device can read the card, without opening any chooser: the paired bridge; WebUSB on a computer, or on
// a phone when a reader is already granted (getDevices) or the user asked for it; else none (the hand-off to the
// staff's device, or the continuation on a computer).
async function cardRoute() {
  if (savedBridge()) return 'bridge';
  if (!navigator.usb) return 'none';
  if (!handheld() || app.useUsb) return 'usb';
  try {
    const { WebUsbRcs380Transport } = await cardModules();
    return (await WebUsbRcs380Transport.granted()) ? 'usb' : 'none';
  } catch {
    return 'none';
  }
}
async function refreshCard() {
  app.route = await cardRoute();
  renderCard();
}

function renderCard() {
  const handed = !!app.claim;  // this device does the card step of a session started on a phone
  const route = app.route;
  const phone = handheld();
  const staff = app.flow.staffPresent() && !handed;
  const alone = !app.flow.staffPresent() && !handed;  // オンライン診療等: the patient, on their own device
  $('handoff-summary').hidden = !handed;
  if (handed) summaryRows($('handoff-choices'), choiceRows());
  // 目視確認's passcode is typed where the card is read: never on a phone that hands the card step on.
  $('passcode-field').hidden = app.flow.identityMethod() !== '目視確認' || route === 'none';
  // The staff say whether this is a preparatory visit (契約や計画策定のための事前の訪問), for the kinds the server
  // asks it for (its page data: the rules' 事前の訪問を尋ねる).
  $('preparatory-field').hidden = !(info.preparatory_kinds || []).includes(app.flow.visitKind()) || route === 'none';
  $('msg-card').textContent = '';
  const cannot = `${thisDevice()}では、マイナンバーカードを読み取れません。`;
  const texts = {
    bridge: 'カードをカードリーダーに置いてから、「カードを読み取る」を押してください。',
    usb: 'カードをカードリーダーに置いてから、「カードを読み取る」を押してください。初めてのときは、つないだカードリーダーを選ぶ画面が出ます。',
    none: staff ? `${cannot}カードリーダーのある職員のタブレットやパソコンで読み取ります。「職員の機器で読み取る」を押してください。`
      : alone && phone ? `${cannot}カードリーダーをつないだパソコンで、続きをします。選んだ内容は、そのまま引き継がれます。「パソコンで続きをする」を押してください。`
        : phone ? cannot
          : 'このブラウザでは、つないだカードリーダーを使えません。カード読み取りアプリがあるときは、「カード読み取りアプリとつなぐ」を押して、アプリの番号を入れてください。',
  };
  $('card-instruction').textContent = texts[route];
  $('card-devices').hidden = route !== 'none' || !alone;
  const primary = route !== 'none' ? 'card-read' : staff ? 'card-handoff' : alone && phone ? 'card-continue' : phone ? '' : 'card-pairing';
  $('card-read').hidden = route === 'none';
  $('card-back').hidden = handed;  // the patient's choices are changed on the phone, not here
  $('card-handoff').hidden = !staff;
  $('card-continue').hidden = !(alone && phone);
  // A phone with WebUSB and no reader granted: USB only when asked for. A computer program never on a phone.
  $('card-usb').hidden = !(phone && navigator.usb && route === 'none');
  $('card-pairing').hidden = phone || route === 'bridge';
  for (const id of ['card-read', 'card-handoff', 'card-continue', 'card-pairing']) $(id).classList.toggle('primary', id === primary);
  // The primary action first, in the step's bar at the bottom of a phone's screen; the others below.
  const bar = $('card-read').parentElement;
  const other = $('card-usb').parentElement;
  for (const id of ['card-handoff', 'card-continue', 'card-pairing']) {
    const b = $(id);
    if (id === primary) bar.insertBefore(b, $('card-cancel'));
    else other.insertBefore(b, other.querySelector('.to-fallback'));
  }
}

function progress(text) { $('card-progress').textContent = text; }

function setBusy(busy) {
  app.busy = busy;
  for (const id of ['card-read', 'card-back', 'card-handoff', 'card-continue', 'card-usb', 'card-pairing']) $(id).disabled = busy;
  $('card-cancel').hidden = !busy;
}

// ---- the server and the engine -------------------------------------------------------------------------

// A call of the API: a GET (no `body`), a POST of `body` as JSON, or a POST with no body at all (`body` NO_BODY: the
// routes that take none refuse one).
const NO_BODY = Symbol('no body');
async function api(path, body) {
  let r;
  try {
    const signal = AbortSignal.timeout(API_TIMEOUT_MS);
    r = await fetch(path, body === NO_BODY ? { method: 'POST', signal }
      : body ? { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body), signal } : { signal });
  } catch {
    throw problem('network', 'network');
  }
  const data = await r.json().catch(() => ({}));
  // Retry-After (429: a budget is spent): how long to wait, in seconds.
  const retryAfter = Number(r.headers.get('Retry-After')) || 0;
  if (!r.ok) throw problem('server', data.error || `HTTP ${r.status}`, { status: r.status, field: data.field || '', retryAfter });
  return data;
}

function loadScript(src, name) {
  if (window[name]) return Promise.resolve(window[name]);
  return new Promise((resolve, reject) => {
    const s = document.createElement('script');
    s.src = src;
    s.onload = () => resolve(window[name]);
    s.onerror = () => reject(problem('network', src));
    document.head.append(s);
  });
}

// The card step's code: the transports and (for WebUSB only, when the reader is opened) the card module.
function cardModules() {
  app.cards = app.cards || within(MODULE_TIMEOUT_MS, Promise.all([import('./transports.js'), import('./bridge-client.js'), import('./webusb-rcs380.js')]))
    .then(([t, b, u]) => ({ ...t, ...b, WebUsbRcs380Transport: u.WebUsbRcs380Transport }))
    .catch((e) => { app.cards = null; throw problem('network', e.message); });
  return app.cards;
}
const loadCardModule = async () => (await loadScript('/web/kyotaku-card.js', 'KyotakuCard'))({ locateFile: (f) => `/web/${f}` });

// When kyotaku serve runs with --trust, the bundle must carry a signature by one of the keys it lists
// (/web/trust.json): checked with WebCrypto's Ed25519 before the engine reads a byte of it (kyotaku/signing.hpp).
const b64 = (bytes) => btoa(String.fromCharCode(...bytes));
// `trust`: the answer of /web/trust.json, fetched beside the bundle (not after it: one round trip less on a phone's
// network). The server always answers it (`{"keys":[]}` without --trust): a page without it never reads the rules.
async function checkSignature(bundle, trust) {
  const keys = trust.keys || [];
  if (keys.length === 0) return;
  const n = bundle.length, at = n - 104;
  const signed = at > 8 && new TextDecoder().decode(bundle.subarray(at, at + 8)) === 'KYTKSIG1';
  const key = signed ? bundle.subarray(at + 8, at + 40) : null;
  let ok = false;
  if (signed && keys.includes(b64(key))) ok = await verifyEd25519(key, bundle.subarray(at + 40), bundle.subarray(0, at));
  if (!ok) throw problem('server', 'rules signature', { field: 'rules_signature' });
}
// Without Ed25519 in WebCrypto (Chrome < 137, Safari < 17) the rules cannot be checked: never used unchecked.
async function verifyEd25519(key, signature, data) {
  const unsupported = (e) => problem('unsupported', `Ed25519 in WebCrypto: ${e ? e.message : 'no crypto.subtle'}`);
  if (!globalThis.crypto || !crypto.subtle) throw unsupported(null);
  try {
    const k = await crypto.subtle.importKey('raw', key, { name: 'Ed25519' }, false, ['verify']);
    return await crypto.subtle.verify({ name: 'Ed25519' }, k, signature, data);
  } catch (e) {
    if (e && e.name === 'NotSupportedError') throw unsupported(e);
    return false;
  }
}

// A first-screen download that failed: transient only when the network failed it (fetch's TypeError, also for a
// body cut off), never for an HTTP error, a file that does not parse or rules the engine refuses.
const loadProblem = (e) => (e.kind === 'load' ? e : problem('load', e.message, { transient: e instanceof TypeError }));
// GET `url` and `read` its answer; a 'load' problem when that fails (an HTTP error: not transient).
const download = (url, read) => fetch(url)
  .then((r) => { if (!r.ok) throw problem('load', `${url}: HTTP ${r.status}`); return read(r); })
  .catch((e) => { throw loadProblem(e); });

// The first screen's downloads — the WebAssembly, the rules, trust.json: GETs safe to ask for again — are tried
// once more by the page itself when the network failed one (a phone between two cells), RETRY_PAUSE_MS later,
// before the patient is shown 画面の準備ができませんでした. Only what failed is asked for again (what arrived is
// kept); not after an HTTP error, nor for rules the engine refuses: asking again would not change them. `again`:
// false for that second try (it keeps the loading screen as it is); every other call asks for all of them anew.
const RETRY_PAUSE_MS = 1500;
let loads = {};  // name → the promise of a first-screen download; a failed one is forgotten
function load(name, start) {
  if (!loads[name]) {
    const p = start();
    loads[name] = p;
    p.catch(() => { if (loads[name] === p) delete loads[name]; });  // reported by init
  }
  return loads[name];
}
async function init(again = true) {
  app.retry = init;
  if (again) {
    loads = {};
    show('loading');
  }
  try {
    if (typeof globalThis.KyotakuPage !== 'function') throw problem('load', 'kyotaku-page.js');
    // The module compiles while its last bytes and the rules arrive (streaming), not after them.
    const engine = load('engine', startEngine);
    const trust = load('trust', () => download('/web/trust.json', (r) => r.json()));
    const bundle = await load('rules', () => download(info.rules, async (r) => new Uint8Array(await r.arrayBuffer())));
    await checkSignature(bundle, await trust);
    app.flow = await openFlow(engine, bundle, info).catch((e) => { throw loadProblem(e); });
  } catch (e) {
    if (!again || !e.transient) return fail(e);
    await new Promise((resolve) => { setTimeout(resolve, RETRY_PAUSE_MS); });
    return init(false);
  }
  restore();
}

// After a reload: the same step with the same choices; a hand-off in progress goes on.
function restore() {
  const s = saved() || {};
  if (s.done) return showDone(s.done);  // a reload on 完了: the consent is registered, say so again
  app.prefill = s;
  app.handoff = s.handoff || null;
  app.claim = s.claim || null;
  app.useUsb = !!s.useUsb;
  const target = s.step || 'visit_kind';
  while (ORDER.indexOf(app.flow.step()) < ORDER.indexOf(target) && target !== 'done' && replayStep()) { /* forward */ }
  const code = (location.hash.match(/^#handoff=(\d{6})$/) || [])[1];
  if (code && !app.claim) {
    history.replaceState(null, '', location.pathname);
    showStep();
    showClaim();
    $('handoff-code-input').value = code;
    return claimHandoff();
  }
  showStep().then(() => {
    if (!app.handoff) return;
    history.replaceState({ step: 'card', handoff: true }, '');  // Back still takes the hand-off back
    showHandoff();
  });
}

// ---- the card ------------------------------------------------------------------------------------------

function forgetBridge() {
  try { localStorage.removeItem(BRIDGE_KEY); } catch { /* nothing kept */ }
}
function savedBridge() {
  try {
    const s = JSON.parse(localStorage.getItem(BRIDGE_KEY) || 'null');
    return s && s.token ? s : null;
  } catch {
    return null;
  }
}

let pinWaiter = null;
function askPin(tries) {
  $('pin-tries').textContent = tries >= 0 ? `あと ${tries} 回入れられます。` : '';
  $('msg-pin').textContent = '';
  $('pin').value = '';
  show('pin');
  $('pin').focus();
  return new Promise((resolve, reject) => { pinWaiter = { resolve, reject }; });
}

function checkCancelled() {
  if (app.cancelled) throw problem('cancelled', 'cancelled');
}

// The fields of the registration that the flow decided (the server dates the consent itself).
function registration() {
  const f = app.flow;
  const body = { visit_kind: f.visitKind(), identity_method: f.identityMethod(), items: f.items() };
  if (f.appointment()) body.appointment_date = f.appointment();
  return { ...body, ...preparatory() };
}

// The staff's answer to "a preparatory visit?", when the card step asked it.
function preparatory() {
  return !$('preparatory-field').hidden && $('preparatory-visit').checked ? { preparatory_visit: true } : {};
}

async function readCard() {
  if (app.busy) return;
  app.retry = readCard;
  app.cancelled = false;
  const method = app.flow.identityMethod();
  const passcode = $('visual-passcode').value.normalize('NFKC').replace(/\s/g, '');
  await refreshCard();  // after pairing, or a reader chosen: the screen says what is happening now
  show('card');
  if (method === '目視確認' && !/^\d{4,16}$/.test(passcode)) {
    $('msg-card').textContent = '目視確認のパスコード (数字) を入れてください。';
    $('visual-passcode').focus();
    return;
  }
  $('msg-card').textContent = '';
  setBusy(true);
  progress('準備しています…');
  try {
    const { chooseTransport, b64, unb64 } = await cardModules();
    const challenge = await api(app.claim ? '/api/v1/consent/handoff/challenge' : '/api/v1/consent/challenge',
      app.claim ? { token, claim: app.claim.claim } : { token });
    checkCancelled();
    // A paired bridge that does not answer is not running: said so (fail), never a USB chooser instead.
    const bridge = savedBridge();
    if (!app.transport) {
      app.transport = (await chooseTransport({ bridge, loadCardModule: bridge ? null : loadCardModule, bridgeTimeoutMs: BRIDGE_CONNECT_MS,
        chooserTimeoutMs: CHOOSER_TIMEOUT_MS })).transport;
    }
    progress('カードリーダーにつないでいます…');
    await app.transport.open();
    checkCancelled();
    progress('カードを読み取っています…');
    let certificate;
    let signature = null;
    if (method === '暗証番号') {
      const tries = await app.transport.pinTries();
      checkCancelled();
      if (tries === 0) throw problem('locked', 'locked');
      const pin = await askPin(tries);
      show('card');
      progress('カードで確かめています…');
      ({ certificate, signature } = await app.transport.sign(pin, unb64(challenge.challenge)));
    } else {
      certificate = await app.transport.readCertificate();
    }
    checkCancelled();
    progress('登録しています…');
    const card = { token, challenge_id: challenge.challenge_id, certificate: b64(certificate) };
    if (signature) card.signature = b64(signature);
    if (method === '目視確認') card.visual_passcode = passcode;
    const done = app.claim ? await api('/api/v1/consent/handoff/register', { ...card, claim: app.claim.claim, ...preparatory() })
      : await api('/api/v1/consent/register', { ...card, ...registration() });
    $('visual-passcode').value = '';
    $('preparatory-visit').checked = false;  // asked again for the next patient
    await app.transport.close().catch(() => {});
    finish(done.first_visit, app.claim ? '登録が終わりました。スマートフォンの画面にも「終わりました」と出ます。カードをカードリーダーから外してください。' : null);
  } catch (e) {
    fail(e);
  } finally {
    setBusy(false);
    progress('');
  }
}

function finish(consentDate, text) {
  app.flow.finish();
  app.handoff = null;
  app.claim = null;
  // Kept for a reload of this tab (the choices and the day, never a PIN): 完了 again, not the first screen.
  app.done = { rows: choiceRows(consentDate), text: text || 'ありがとうございました。カードをカードリーダーから外してください。' };
  save();
  showDone(app.done);
}
function showDone(done) {
  app.done = done;
  summaryRows($('done-summary'), done.rows);
  $('done-text').textContent = done.text;
  history.replaceState({ step: 'done' }, '');
  show('done');
}

// Each error gets its own screen with the nearest sensible next step, in plain Japanese.
function fail(e) {
  const viaBridge = app.route === 'bridge';
  switch (e.kind) {
    case 'cancelled': return show('card');
    case 'load': return show('error-load');
    case 'unsupported': return show('error-browser');
    case 'network': return show('error-network');
    case 'server': return serverProblem(e);
    case 'no_reader':
      app.transport = null;
      if (viaBridge) {
        // The paired kyotaku-bridge refused this page's token (it was given a new one), or did not answer: the
        // program is not running (not a cable, not a chooser).
        if ((e.tried || []).some((t) => t.kind === 'unauthorized')) return fail(problem('unauthorized', 'the bridge refused the token'));
        return bridgeProblem('このパソコンで、カード読み取りアプリが動いていないようです。');
      }
      return noReader(e);
    case 'wrong_pin':
      $('wrong-pin-tries').textContent = `あと ${e.triesLeft} 回入れられます。`;
      return show('error-wrong-pin');
    case 'locked': return show('error-locked');
    case 'card_removed':
    case 'no_card':
    case 'timeout':
      return show('error-card');
    case 'unauthorized':
      app.transport = null;
      if (viaBridge) {
        forgetBridge();  // the bridge no longer knows this page's token: pair again by number
        return bridgeProblem('カード読み取りアプリが、このパソコンとのつながりを受け付けませんでした。「番号でつなぎ直す」を押して、アプリの画面に出ている番号を入れてください。');
      }
      return show('error-reader');
    default:
      app.transport = null;
      if (viaBridge) {
        return bridgeProblem(e.noAnswer ? 'カード読み取りアプリから答えがありません。アプリが止まっているかもしれません。'
          : 'カード読み取りアプリとのつながりが切れました。アプリが終わったかもしれません。');
      }
      return show('error-reader');
  }
}

function bridgeProblem(why) {
  $('error-bridge-why').textContent = why;
  return show('error-bridge');
}

// No reader: why, and what else this device can do (the staff's device, a computer, the bridge on a computer).
function noReader(e) {
  const phone = handheld();
  const pairing = e.reason === 'pairing';
  app.useUsb = false;  // the USB reader was not there: the card screen offers the other ways first again
  save();
  cardModules().then(({ webNfcStatus, WEB_NFC_EXPLANATION_JA }) => {
    const nfc = webNfcStatus();
    $('web-nfc-explanation').hidden = !nfc.present;
    $('web-nfc-explanation').textContent = nfc.present ? WEB_NFC_EXPLANATION_JA : '';
  }).catch(() => {});
  $('h-no-reader').textContent = pairing ? 'カード読み取りアプリとつなぎます' : 'カードリーダーが見つかりません';
  $('no-reader-why').textContent = pairing ? 'パソコンで動いているカード読み取りアプリの画面に、6けたの番号が出ています。その番号を入れてください。'
    : e.chooser === 'timeout'
      ? 'カードリーダーを選ぶ画面から、数秒たっても答えがありませんでした。カードリーダーがつながっていないときは、その画面を閉じて、ほかの方法を選んでください。カードリーダーを選んだときは「もう一度読み取る」を押してください。'
      : phone ? 'カードリーダーが選ばれませんでした。USBのカードリーダーがつながっていないときは、ほかの方法を選んでください。'
        : 'カードリーダーを使えませんでした。カードリーダーがつながっているか確かめてください。';
  const staff = app.flow.staffPresent() && !app.claim;
  $('no-reader-handoff').hidden = !staff;
  $('no-reader-continue').hidden = !(phone && !app.flow.staffPresent() && !app.claim);
  $('form-pairing').hidden = phone;  // a computer program: never offered on a phone
  $('screen-error-no-reader').querySelector('.retry').hidden = pairing;
  $('msg-pairing').textContent = '';
  show('error-no-reader');
  if (pairing) $('pairing-code').focus();
  return undefined;
}

// How long a 429 asks to wait, in plain words: 「N分ほど」 (at least 1).
const waitWords = (e) => `${Math.max(1, Math.ceil((e.retryAfter || 60) / 60))}分ほど`;
// The facility URL (its token) that the server no longer takes: changed by the facility, or stopped. Nothing on
// this page can succeed again; the next step is the new QR code.
const URL_CHANGED = 'この施設の受付用のアドレスが新しくなったか、使えなくなっています。職員に新しいQRコードを見せてもらい、読み取ってから、はじめからやり直してください。';
const urlRefused = (e) => e.field === 'token' && e.status !== 429;

// The server's refusal, by the field it names: the screen to fix it on, or the next step.
function serverProblem(e) {
  const fix = $('server-fix');
  fix.hidden = true;
  $('server-retry').hidden = false;
  $('screen-error-server').querySelector('.to-fallback').hidden = false;
  $('h-server').textContent = '登録できませんでした';
  let text = '登録できませんでした。時間をおいて、もう一度お試しください。続くときは、施設の職員にお知らせください。';
  const goTo = (step, label) => {
    fix.textContent = label;
    fix.hidden = false;
    $('server-retry').hidden = true;
    fix.onclick = () => {
      while (ORDER.indexOf(app.flow.step()) > ORDER.indexOf(step) && app.flow.back()) { /* back to the step */ }
      showStep();
    };
  };
  if (e.field === 'visual_passcode') {
    show('card');
    $('msg-card').textContent = e.status === 429
      // Wrong passcodes from this device: it waits; another device, or this one later, goes on.
      ? `パスコードの間違いが続いたため、この機器からは、しばらく登録できません。${waitWords(e)}待ってから、職員が事務所のパソコンで受け取った新しいパスコードを入れてください。`
      : 'パスコードが違うか、使えなくなっています。職員が事務所のパソコンで新しいパスコードを受け取り、入れ直してください。';
    $('visual-passcode').focus();
    return undefined;
  }
  if (e.status === 429) {
    // A budget is spent (too many at once): wait, then the same button works; the choices stay.
    $('h-server').textContent = '少し待ってから、もう一度お試しください';
    $('error-server-message').textContent = `申し込みが続いたため、今は受け付けられません。${waitWords(e)}待ってから「もう一度試す」を押してください。選んだ内容は、そのまま残っています。急ぐときは、職員にお知らせください。`;
    return show('error-server');
  }
  if (urlRefused(e)) {
    // Trying again cannot succeed, nor can the card's other ways on this page: only the new QR code helps.
    $('h-server').textContent = 'このページでは続けられません';
    $('server-retry').hidden = true;
    $('screen-error-server').querySelector('.to-fallback').hidden = true;
    $('error-server-message').textContent = URL_CHANGED;
    return show('error-server');
  }
  if (e.field === 'rules_signature') text = 'ルールの署名を確かめられません。安全のため、ここで止めました。施設の職員にお知らせください。';
  else if (e.field === 'certificate' && e.status === 400) text = 'このカードの保険の資格情報がありません。保険証の代わりになる方法で、職員が確かめます。';
  else if (e.field === 'challenge_id') text = '時間がたったため、登録できませんでした。もう一度カードを読み取ってください。';
  else if (e.field === 'appointment_date') {
    text = 'この予約日では登録できませんでした。予約日を選び直してください。';
    goTo('appointment', '予約日を選び直す');
  } else if (e.field === 'visit_kind') {
    text = 'この診療の種類は、今は受け付けていません。施設の職員にお知らせください。';
    goTo('visit_kind', '診療の種類を選び直す');
  } else if (e.field === 'identity_method') {
    text = 'この本人確認の方法は、今は使えません。ほかの方法を選んでください。';
    goTo('identity', '本人確認の方法を選び直す');
  } else if (e.field === 'claim') {
    // Trying again cannot succeed: the hand-off is over. A new number comes from the phone.
    text = '引き継ぎが終わっているか、取り消されたか、期限が切れました。スマートフォンで、もう一度「職員の機器で読み取る」か「パソコンで続きをする」を押して、新しい番号を出してください。';
    $('server-retry').hidden = true;
    fix.textContent = 'はじめの画面に戻る';
    fix.hidden = false;
    fix.onclick = restart;
  }
  $('error-server-message').textContent = text;
  return show('error-server');
}

// ---- the hand-off: the phone's side ----------------------------------------------------------------------
// `to`: 'staff' (the staff's device with a reader, 訪問診療等) or 'computer' (the patient's own or a family
// member's computer with a reader, オンライン診療等). The screen ids follow: handoff-… and continue-….

async function startHandoff(to) {
  if (app.busy) return;
  setBusy(true);
  try {
    const r = await api('/api/v1/consent/handoff', { token, ...registration(), choices: app.flow.chosen(), ...(to === 'computer' ? { to } : {}) });
    app.handoff = { id: r.handoff_id, code: r.code, qr: r.qr, expires_at: r.expires_at, to };
    save();
    history.pushState({ step: 'card', handoff: true }, '');
    showHandoff();
  } catch (e) {
    app.retry = () => startHandoff(to);
    fail(e);
  } finally {
    setBusy(false);
  }
}

const screenOf = (h) => (h.to === 'computer' ? 'continue' : 'handoff');
const WAITING = {
  handoff: { waiting: '職員の機器で番号が入るのを待っています…', claimed: '職員の機器で読み取っています。暗証番号は職員の機器で入れてください…' },
  continue: { waiting: 'パソコンで番号が入るのを待っています…', claimed: 'パソコンで続きをしています。暗証番号はパソコンで入れてください…' },
};

function showHandoff() {
  const h = app.handoff;
  const id = screenOf(h);
  $(`${id}-code`).textContent = `${h.code.slice(0, 3)} ${h.code.slice(3)}`;
  $(`${id}-code-spoken`).textContent = `番号 ${h.code.split('').join(' ')}`;  // read digit by digit
  $(`${id}-qr`).src = h.qr;
  const at = new Date(h.expires_at);
  const until = at.toLocaleTimeString('ja-JP', { timeZone: 'Asia/Tokyo', hour: 'numeric', minute: '2-digit' });
  const day = app.flow.wareki(at.toLocaleDateString('sv-SE', { timeZone: 'Asia/Tokyo' }));  // YYYY-MM-DD in Japan
  $(`${id}-expires`).textContent = id === 'continue' ? `この番号は ${day} ${until} まで使えます。` : `この番号は ${until} まで使えます。`;
  $(`${id}-status`).textContent = WAITING[id].waiting;
  if (id === 'continue') {
    $('continue-share').hidden = typeof navigator.share !== 'function';
    $('continue-share-help').hidden = typeof navigator.share !== 'function';
  }
  show(id);
  pollHandoff(h.id);
}

// The address that opens this facility's page with the number filled in (the QR code carries the same).
const continueUrl = (h) => `${location.origin}${location.pathname}#handoff=${h.code}`;

async function pollHandoff(id) {
  if (!app.handoff || app.handoff.id !== id) return;
  const screenId = screenOf(app.handoff);
  let r = null;
  try {
    r = await api(`/api/v1/consent/handoff/${id}`);
  } catch (e) {
    // The phone's connection comes and goes: say so, and ask again; the other device goes on without it.
    if (app.handoff && app.handoff.id === id && e.kind === 'network') {
      $(`${screenId}-status`).textContent = '通信が途切れています。つながると、自動で確かめ直します。選んだ内容と番号は、そのままです。';
    }
  }
  if (!app.handoff || app.handoff.id !== id) return;
  if (r && r.state === 'done') {
    return finish(r.consent.first_visit, screenId === 'continue' ? 'パソコンで、同意の登録が終わりました。ありがとうございました。'
      : '職員の機器で、同意の登録が終わりました。ありがとうございました。');
  }
  if (r && (r.state === 'expired' || r.state === 'cancelled')) {
    app.handoff = null;
    save();
    history.replaceState({ step: 'card' }, '');
    await showStep();
    const again = screenId === 'continue' ? '「パソコンで続きをする」' : '「職員の機器で読み取る」';
    $('msg-card').textContent = `${r.state === 'expired' ? '番号の期限が切れました。' : '引き継ぎが取り消されました。'}もう一度${again}を押すと、新しい番号が出ます。選んだ内容は、そのままです。`;
    return undefined;
  }
  if (r) $(`${screenId}-status`).textContent = WAITING[screenId][r.state === 'claimed' ? 'claimed' : 'waiting'];
  setTimeout(() => pollHandoff(id), POLL_MS);
  return undefined;
}

function cancelHandoff() {
  const h = app.handoff;
  app.handoff = null;
  save();
  if (h) api(`/api/v1/consent/handoff/${h.id}/cancel`, NO_BODY).catch(() => {});
}

async function shareContinuation() {
  const h = app.handoff;
  if (!h || typeof navigator.share !== 'function') return;
  try {
    await navigator.share({ title: 'マイナ在宅受付Web の続き', text: `続きの番号: ${h.code.slice(0, 3)} ${h.code.slice(3)}`, url: continueUrl(h) });
  } catch {
    /* the person closed the share sheet */
  }
}

// ---- the hand-off: the staff's side ----------------------------------------------------------------------

function showClaim() {
  $('msg-handoff-claim').textContent = '';
  show('handoff-claim');
}

async function claimHandoff() {
  const code = $('handoff-code-input').value.normalize('NFKC').replace(/[\s-]/g, '');
  const msg = $('msg-handoff-claim');
  if (!/^\d{6}$/.test(code)) {
    msg.textContent = '番号は数字6けたです。スマートフォンに出ている番号を入れてください。';
    return;
  }
  msg.textContent = '';
  let r;
  try {
    r = await api('/api/v1/consent/handoff/claim', { token, code });
  } catch (e) {
    const texts = {
      404: '番号が違うか、期限が切れています。スマートフォンに出ている6けたの番号を、もう一度入れてください。',
      409: 'この番号は、もうほかの機器で引き継がれています。スマートフォンで、新しい番号を出してください。',
      429: `番号の間違いが続いたため、この機器からは、しばらく番号を入れられません。${waitWords(e)}待ってから、スマートフォンに出ている6けたの番号を入れてください。`,
    };
    msg.textContent = e.kind === 'network' ? '通信できませんでした。つながっているか確かめて、もう一度お試しください。'
      : urlRefused(e) ? URL_CHANGED
        : texts[e.status] || '引き継げませんでした。スマートフォンで、新しい番号を出してください。';
    $('handoff-code-input').focus();
    return;
  }
  // The patient's choices, taken again by this device's own flow (the same rules): nothing is retyped.
  const c = r.choices;
  const f = app.flow;
  while (f.step() !== 'visit_kind' && f.back()) { /* start over */ }
  const refused = f.chooseVisitKind(c.visit_kind) || (f.online() && f.setAppointment(c.appointment_date || ''))
    || f.chooseItems(c.choices || []) || f.chooseIdentity(c.identity_method);
  if (refused || f.items().join() !== c.items.join()) {
    msg.textContent = `引き継いだ内容を、ここでは受け付けられません: ${refused ? refused.ja : '見てよい情報が一致しません。'}`;
    return;
  }
  app.claim = { claim: r.claim };
  $('handoff-code-input').value = '';
  await showStep({ push: true });
}

// ---- pairing with kyotaku-bridge ---------------------------------------------------------------------------

async function pair() {
  const msg = $('msg-pairing');
  const raw = $('pairing-code').value.normalize('NFKC').replace(/[\s-]/g, '');
  const m = raw.match(/^(?:(\d{1,5}):)?(\d{6}|[0-9a-fA-F]{16,256})$/);
  if (!m) {
    msg.textContent = '番号は数字6けたです。カード読み取りアプリの画面に出ている番号を入れてください。';
    return;
  }
  const url = m[1] ? `ws://127.0.0.1:${m[1]}/` : BRIDGE_URL;
  msg.textContent = '';
  let transport;
  try {
    const { BridgeTransport } = await cardModules();
    transport = m[2].length === 6 ? new BridgeTransport(url, null, m[2]) : new BridgeTransport(url, m[2]);
    await transport.connect({ timeoutMs: BRIDGE_CONNECT_MS });
  } catch (e) {
    const wait = Math.ceil((e.retryAfterMs || 0) / 1000);
    const texts = {
      wrong_code: '番号が違います。カード読み取りアプリの画面に出ている6けたの番号を入れてください。',
      wrong_token: '番号が違います。カード読み取りアプリの画面に出ている6けたの番号を入れてください。',
      throttled: `間違いが続いたため、${wait} 秒ほど待ってから入れてください。`,
      code_disabled: '番号の間違いが続いたため、番号でつなげなくなりました。カード読み取りアプリを起動し直して、新しい番号を入れてください。',
    };
    msg.textContent = texts[e.reason] || 'カード読み取りアプリが見つかりません。パソコンでアプリが動いているか確かめてください。';
    $('pairing-code').focus();
    return;
  }
  localStorage.setItem(BRIDGE_KEY, JSON.stringify({ url, token: transport.token }));
  $('pairing-code').value = '';
  app.transport = transport;
  readCard();  // which shows the card screen for the paired bridge, not the screen it had before pairing
}

// ---- wiring --------------------------------------------------------------------------------------------

function onSubmit(form, handler) {
  $(form).addEventListener('submit', (event) => {
    event.preventDefault();
    handler();
  });
}

// A step's answer: its message when refused, the next screen (a new history entry) when accepted.
function step(messageId, refused) {
  $(messageId).textContent = refused ? refused.ja : '';
  if (!refused) showStep({ push: true });
}

onSubmit('form-visit-kind', () => {
  const chosen = document.querySelector('input[name="visit_kind"]:checked');
  step('msg-visit-kind', chosen ? app.flow.chooseVisitKind(chosen.value) : { ja: '受ける診療を選んでください。' });
});
onSubmit('form-appointment', () => {
  const value = $('appointment-date').value;
  step('msg-appointment', value ? app.flow.setAppointment(value) : { ja: `予約した${CARE}の日を選んでください。` });
});
$('appointment-date').addEventListener('input', () => {
  showWareki();
  $('msg-appointment').textContent = '';  // a refusal was about the day before: a new day starts clean
});
onSubmit('form-items', () => {
  const chosen = [...document.querySelectorAll('input[name="items"]:checked')].map((i) => i.value);
  step('msg-items', app.flow.chooseItems(chosen));
});
onSubmit('form-identity', () => {
  const chosen = document.querySelector('input[name="identity"]:checked');
  step('msg-identity', chosen ? app.flow.chooseIdentity(chosen.value) : { ja: '本人確認の方法を選んでください。' });
});
onSubmit('form-pin', () => {
  const input = $('pin');
  const pin = input.value.normalize('NFKC');
  input.value = '';
  if (!/^[0-9]{4}$/.test(pin)) {
    $('msg-pin').textContent = '暗証番号は数字4けたです。';
    return;
  }
  const w = pinWaiter;
  pinWaiter = null;
  if (w) w.resolve(pin);
});
$('pin-cancel').addEventListener('click', () => {
  $('pin').value = '';
  app.cancelled = true;
  const w = pinWaiter;
  pinWaiter = null;
  if (w) w.reject(problem('cancelled', 'cancelled'));
});
$('card-read').addEventListener('click', readCard);
$('card-cancel').addEventListener('click', () => {
  app.cancelled = true;
  if (app.transport) app.transport.close().catch(() => {});
  app.transport = null;
  setBusy(false);
  progress('中止しました。');
});
for (const b of document.querySelectorAll('.back')) b.addEventListener('click', () => history.back());
for (const b of document.querySelectorAll('.retry')) b.addEventListener('click', () => (app.retry || init)());
for (const b of document.querySelectorAll('.to-fallback')) b.addEventListener('click', () => show('fallback'));
for (const b of document.querySelectorAll('.to-card')) b.addEventListener('click', () => showStep());
for (const b of document.querySelectorAll('.to-handoff')) b.addEventListener('click', () => startHandoff('staff'));
for (const b of document.querySelectorAll('.to-continue')) b.addEventListener('click', () => startHandoff('computer'));
for (const b of document.querySelectorAll('.to-pairing')) b.addEventListener('click', () => noReader({ reason: 'pairing' }));
$('card-usb').addEventListener('click', () => {
  app.useUsb = true;  // the patient says a USB reader is plugged in: reading with it comes first now
  save();
  refreshCard().then(() => $('card-read').focus());
});
$('continue-share').addEventListener('click', shareContinuation);
function restart() {
  forget();
  location.replace(location.pathname);  // the first screen, with nothing kept (and no #handoff=… to claim again)
}
for (const b of document.querySelectorAll('.restart')) b.addEventListener('click', restart);
$('to-claim').addEventListener('click', () => {
  history.pushState({ step: 'visit_kind', claim: true }, '');
  showClaim();
});
onSubmit('form-handoff-claim', claimHandoff);
onSubmit('form-pairing', pair);

init();
