// マイナ在宅受付Web: the consent page. Everything it offers (診療区分, consent choices, identity methods,
// whether a 診療予約日 is acceptable) comes from the rule engine in WebAssembly, given the server's rules, the
// facility's 環境設定 and the server's date; the card is read through the transports of hardware-bridge/js.
// The PIN goes from the input straight to the card: it is never stored, logged or sent to the server.
import { b64, unb64 } from './bridge-client.js';
import { chooseTransport, webNfcStatus } from './transports.js';

const $ = (id) => document.getElementById(id);
const token = decodeURIComponent(location.pathname.replace(/^\/c\//, ''));
const BRIDGE_KEY = 'kyotaku-bridge';
const BRIDGE_URL = 'ws://127.0.0.1:39211/';
const app = { info: null, engine: null, rules: null, flow: null, transport: null, passcode: '', cancelled: false, retry: null, busy: false };

const problem = (kind, message, extra = {}) => Object.assign(new Error(message), { kind, ...extra });

// ---- screens -------------------------------------------------------------------------------------------

const STEP_NAMES = { 'visit-kind': '診療区分', appointment: '診療予約日', items: '同意する項目', identity: '本人確認', card: 'カード読み取り', done: '完了' };

function renderSteps(current) {
  const steps = ['visit-kind', ...(app.flow && app.flow.online() ? ['appointment'] : []), 'items', 'identity', 'card', 'done'];
  const list = $('steps');
  list.replaceChildren(...steps.map((s) => {
    const li = document.createElement('li');
    li.textContent = STEP_NAMES[s];
    if (s === current || (current === 'pin' && s === 'card')) li.setAttribute('aria-current', 'step');
    return li;
  }));
}

function show(id) {
  for (const s of document.querySelectorAll('.screen')) s.hidden = s.id !== `screen-${id}`;
  const h = document.querySelector(`#screen-${id} h1`);
  document.title = `${h.textContent} - マイナ在宅受付Web`;
  renderSteps(id);
  h.focus();
}

const STEP_SCREEN = { visit_kind: 'visit-kind', appointment: 'appointment', items: 'items', identity: 'identity', card: 'card', done: 'done' };
function showStep() {
  const screen = STEP_SCREEN[app.flow.step()];
  if (screen === 'visit-kind' && !renderVisitKinds()) return;
  if (screen === 'items') renderItems();
  if (screen === 'identity') renderIdentity();
  show(screen);
}

function radios(container, name, values, checked, notes = {}) {
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
    if (notes[v]) {
      const note = document.createElement('span');
      note.className = 'note';
      note.textContent = notes[v];
      text.append(note);
    }
    label.append(input, text);
    return label;
  }));
}

const ITEM_NOTES = {
  '診療・薬剤情報': '受診歴、処方・調剤された薬の情報',
  手術情報: '受けた手術の情報',
  特定健診情報: '特定健診 (メタボ健診) の結果',
  限度額情報等: '高額療養費の限度額の区分など',
};
const METHOD_NOTES = {
  暗証番号: 'カードの暗証番号 (数字4桁) を入力します',
  目視確認: '職員がカードの顔写真とご本人を見比べます (暗証番号は使いません)',
};

// False when nothing can be chosen today: the rule's reason is shown instead.
function renderVisitKinds() {
  const kinds = app.flow.visitKinds();
  if (kinds.length === 0) {
    $('unavailable-reason').textContent = app.flow.unavailableReason().replace(/ \(.*:\d+\)$/, '');
    show('unavailable');
    return false;
  }
  radios($('visit-kinds'), 'visit_kind', kinds, app.flow.visitKind());
  return true;
}

function renderItems() { radios($('items'), 'items', app.flow.choices(), app.flow.chosen(), ITEM_NOTES); }

function renderIdentity() {
  radios($('identity-methods'), 'identity', app.flow.identityMethods(), app.flow.identityMethod(), METHOD_NOTES);
  updatePasscodeField();
}

function updatePasscodeField() {
  const chosen = document.querySelector('input[name="identity"]:checked');
  $('passcode-field').hidden = !chosen || chosen.value !== '目視確認';
}

function progress(text) { $('card-progress').textContent = text; }

function setBusy(busy) {
  app.busy = busy;
  $('card-read').disabled = busy;
  $('card-back').disabled = busy;
  $('card-cancel').hidden = !busy;
}

// ---- the server and the engine -------------------------------------------------------------------------

async function api(path, body) {
  let r;
  try {
    r = await fetch(path, body ? { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) } : {});
  } catch {
    throw problem('network', '通信できませんでした');
  }
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw problem('server', data.error || `HTTP ${r.status}`, { status: r.status, field: data.field });
  return data;
}

function loadScript(src, name) {
  if (window[name]) return Promise.resolve(window[name]);
  return new Promise((resolve, reject) => {
    const s = document.createElement('script');
    s.src = src;
    s.onload = () => resolve(window[name]);
    s.onerror = () => reject(problem('network', `${src} を読み込めません`));
    document.head.append(s);
  });
}

const loadCardModule = async () => (await loadScript('/web/kyotaku-card.js', 'KyotakuCard'))({ locateFile: (f) => `/web/${f}` });

// When kyotaku serve runs with --trust, the bundle must carry a signature by one of the keys it lists
// (/web/trust.json): checked with WebCrypto's Ed25519 before the engine reads a byte of it (kyotaku/signing.hpp).
async function checkSignature(bundle) {
  const r = await fetch('/web/trust.json').catch(() => null);
  if (!r) throw problem('network', 'ルールを読み込めません');
  const keys = r.ok ? (await r.json()).keys || [] : [];
  if (keys.length === 0) return;
  const n = bundle.length, at = n - 104;
  const signed = at > 8 && new TextDecoder().decode(bundle.subarray(at, at + 8)) === 'KYTKSIG1';
  const key = signed ? bundle.subarray(at + 8, at + 40) : null;
  let ok = false;
  if (signed && keys.includes(b64(key))) {
    const k = await crypto.subtle.importKey('raw', key, { name: 'Ed25519' }, false, ['verify']);
    ok = await crypto.subtle.verify({ name: 'Ed25519' }, k, bundle.subarray(at + 40), bundle.subarray(0, at));
  }
  if (!ok) throw problem('server', 'ルールの署名を確かめられません');
}

async function init() {
  app.retry = init;
  show('loading');
  try {
    app.info = await api(`/api/v1/consent/page?token=${encodeURIComponent(token)}`);
    $('facility-name').textContent = app.info.facility_name;
    const Engine = await loadScript('/web/kyotaku-engine.js', 'KyotakuEngine');
    app.engine = app.engine || (await Engine({ locateFile: (f) => `/web/${f}` }));
    let bundle;
    try {
      const r = await fetch(app.info.rules);
      if (!r.ok) throw new Error();
      bundle = new Uint8Array(await r.arrayBuffer());
    } catch {
      throw problem('network', 'ルールを読み込めません');
    }
    await checkSignature(bundle);
    app.rules = new app.engine.Rules(bundle);
    if (!app.rules.ok()) throw problem('server', app.rules.error());
    app.flow = new app.engine.PageFlow(app.rules, app.info.facility_kind, app.info.home_care_feature, app.info.online_feature, app.info.today);
    if (app.flow.error()) throw problem('server', app.flow.error());
  } catch (e) {
    return fail(e);
  }
  $('appointment-date').min = app.info.today;
  showStep();
}

// ---- the card ------------------------------------------------------------------------------------------

function savedBridge() {
  try {
    const saved = JSON.parse(localStorage.getItem(BRIDGE_KEY) || 'null');
    return saved && saved.token ? saved : null;
  } catch {
    return null;
  }
}

let pinWaiter = null;
function askPin(tries) {
  $('pin-tries').textContent = tries >= 0 ? `残り ${tries} 回入力できます。` : '';
  $('msg-pin').textContent = '';
  $('pin').value = '';
  show('pin');
  $('pin').focus();
  return new Promise((resolve, reject) => { pinWaiter = { resolve, reject }; });
}

function checkCancelled() {
  if (app.cancelled) throw problem('cancelled', '中止しました');
}

async function readCard() {
  if (app.busy) return;
  app.retry = readCard;
  app.cancelled = false;
  show('card');
  setBusy(true);
  progress('準備しています…');
  try {
    const challenge = await api('/api/v1/consent/challenge', { token });
    checkCancelled();
    if (!app.transport) app.transport = (await chooseTransport({ bridge: savedBridge(), loadCardModule })).transport;
    progress('カードリーダーに接続しています…');
    await app.transport.open();
    checkCancelled();
    progress('カードを読み取っています…');
    const method = app.flow.identityMethod();
    let certificate;
    let signature = null;
    if (method === '暗証番号') {
      const tries = await app.transport.pinTries();
      checkCancelled();
      if (tries === 0) throw problem('locked', 'locked');
      const pin = await askPin(tries);
      show('card');
      progress('カードで確認しています…');
      ({ certificate, signature } = await app.transport.sign(pin, unb64(challenge.challenge)));
    } else {
      certificate = await app.transport.readCertificate();
    }
    checkCancelled();
    progress('登録しています…');
    const registration = JSON.parse(app.flow.registration());
    const body = { token, challenge_id: challenge.challenge_id, certificate: b64(certificate), ...registration };
    if (signature) body.signature = b64(signature);
    if (method === '目視確認') body.visual_passcode = app.passcode;
    const done = await api('/api/v1/consent/register', body);
    app.flow.finish();
    await app.transport.close().catch(() => {});
    renderDone(done, registration);
  } catch (e) {
    fail(e);
  } finally {
    setBusy(false);
    progress('');
  }
}

function renderDone(done, registration) {
  const rows = [['診療区分', registration.visit_kind], ['同意した項目', app.flow.chosen().join('、')], ['本人確認', registration.identity_method],
    ['同意の日', done.first_visit || registration.visit_date]];
  if (registration.appointment_date) rows.splice(1, 0, ['診療予約日', registration.appointment_date]);
  $('done-summary').replaceChildren(...rows.flatMap(([k, v]) => {
    const dt = document.createElement('dt');
    dt.textContent = k;
    const dd = document.createElement('dd');
    dd.textContent = v;
    return [dt, dd];
  }));
  show('done');
}

function fail(e) {
  switch (e.kind) {
    case 'cancelled': return show('card');
    case 'network': return show('error-network');
    case 'server':
      $('error-server-message').textContent = e.message;
      return show('error-server');
    case 'no_reader': {
      app.transport = null;
      const nfc = webNfcStatus();
      $('web-nfc-explanation').hidden = !nfc.present;
      $('web-nfc-explanation').textContent = (nfc.explanation || '').split(' / ')[0];
      return show('error-no-reader');
    }
    case 'wrong_pin':
      $('wrong-pin-tries').textContent = `残り ${e.triesLeft} 回入力できます。`;
      return show('error-wrong-pin');
    case 'locked': return show('error-locked');
    case 'card_removed':
    case 'no_card':
    case 'timeout':
      $('error-card-detail').textContent = e.message;
      return show('error-card');
    default:
      app.transport = null;
      $('error-reader-detail').textContent = e.message;
      return show('error-reader');
  }
}

// ---- wiring --------------------------------------------------------------------------------------------

function onSubmit(form, handler) {
  $(form).addEventListener('submit', (event) => {
    event.preventDefault();
    handler();
  });
}

function step(messageId, error) {
  $(messageId).textContent = error;
  if (!error) showStep();
}

onSubmit('form-visit-kind', () => {
  const chosen = document.querySelector('input[name="visit_kind"]:checked');
  step('msg-visit-kind', chosen ? app.flow.chooseVisitKind(chosen.value) : '診療区分を選んでください');
});
onSubmit('form-appointment', () => {
  const value = $('appointment-date').value;
  step('msg-appointment', value ? app.flow.setAppointment(value) : '診療予約日を入れてください');
});
onSubmit('form-items', () => {
  const chosen = [...document.querySelectorAll('input[name="items"]:checked')].map((i) => i.value);
  step('msg-items', app.flow.chooseItems(chosen).split(' / ')[0]);
});
onSubmit('form-identity', () => {
  const chosen = document.querySelector('input[name="identity"]:checked');
  if (!chosen) return step('msg-identity', '本人確認の方法を選んでください');
  if (chosen.value === '目視確認') {
    app.passcode = $('visual-passcode').value.trim();
    if (!app.passcode) return step('msg-identity', '目視確認用パスコードを入れてください');
  }
  step('msg-identity', app.flow.chooseIdentity(chosen.value).split(' / ')[0]);
});
$('identity-methods').addEventListener('change', updatePasscodeField);
onSubmit('form-pin', () => {
  const input = $('pin');
  const pin = input.value;
  input.value = '';
  if (!/^[0-9]{4}$/.test(pin)) {
    $('msg-pin').textContent = '暗証番号は数字4桁です';
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
  if (w) w.reject(problem('cancelled', '中止しました'));
});
$('card-read').addEventListener('click', readCard);
$('card-cancel').addEventListener('click', () => {
  app.cancelled = true;
  if (app.transport) app.transport.close().catch(() => {});
  app.transport = null;
  setBusy(false);
  progress('中止しました。');
});
$('card-back').addEventListener('click', () => {
  app.flow.back();
  showStep();
});
for (const b of document.querySelectorAll('form .back')) {
  b.addEventListener('click', () => {
    app.flow.back();
    showStep();
  });
}
for (const b of document.querySelectorAll('.retry')) b.addEventListener('click', () => (app.retry || init)());
for (const b of document.querySelectorAll('.to-fallback')) b.addEventListener('click', () => show('fallback'));
for (const b of document.querySelectorAll('.restart')) b.addEventListener('click', () => location.reload());
onSubmit('form-pairing', () => {
  // "CODE" for kyotaku-bridge on its usual port, "PORT:CODE" when it listens elsewhere.
  const code = $('pairing-code').value.trim();
  const m = code.match(/^(\d{1,5}):(\S+)$/);
  if (code) localStorage.setItem(BRIDGE_KEY, JSON.stringify({ url: m ? `ws://127.0.0.1:${m[1]}/` : BRIDGE_URL, token: m ? m[2] : code }));
  $('pairing-code').value = '';
  readCard();
});

init();
