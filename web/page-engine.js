// The one facade over the page's WebAssembly module (kyotaku-page.wasm; wasm/page_module.cpp): the server's
// compiled rules and the consent flow (wasm/consent_flow.hpp). Lists cross the boundary as lines of text; why a
// step was refused stays in the module as a message whose Japanese and English texts are asked for apart. Here
// they become arrays and {ja, en}. Nothing here decides policy.

// Starts compiling the module (while its bytes and the rules still arrive): call it first. The page fetches the
// .wasm itself (Emscripten's instantiateWasm) so that a failure says what failed: fetch's TypeError for the network,
// an Error naming the status for an HTTP error (Emscripten's loader asks again after either, and ends both alike).
export function startEngine() {
  let url = '';
  let failed;
  const download = new Promise((_, reject) => { failed = reject; });
  const ready = globalThis.KyotakuPage({
    locateFile: (file, directory) => (url = directory + file),
    instantiateWasm(imports, receive) {
      instantiate(url, imports).then((result) => receive(result.instance, result.module), failed);
      return {};
    },
  });
  return Promise.race([ready, download]);
}

// Streaming when the answer says application/wasm; else (no instantiateStreaming, a proxy that relabels it) the
// whole answer: no copy held beside the stream, no second request, a network failure still fetch's TypeError.
async function instantiate(url, imports) {
  const response = await fetch(url, { credentials: 'same-origin' });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  const wasm = /^application\/wasm\b/i.test(response.headers.get('Content-Type'));
  const stream = wasm && typeof WebAssembly.instantiateStreaming === 'function';
  if (stream) return WebAssembly.instantiateStreaming(response, imports);
  return WebAssembly.instantiate(await response.arrayBuffer(), imports);
}

/**
 * @param engine the promise startEngine() gave
 * @returns the flow for this facility, or throws Error(kind 'rules', ja, en) when the rules cannot be used.
 */
export async function openFlow(engine, bundle, { facility_kind: kind, home_care_feature: home, online_feature: online, today }) {
  const module = await engine;
  const call = (fn, types, args) => module.ccall(fn, 'string', types, args);
  const get = (what, arg = '') => call('kp_get', ['string', 'string'], [what, arg]);
  const problem = () => ({ ja: get('problem', 'ja'), en: get('problem', 'en') });
  if (call('kp_open', ['array', 'number', 'string', 'number', 'number', 'string'], [bundle, bundle.length, kind, home ? 1 : 0, online ? 1 : 0, today])) {
    const { ja, en } = problem();
    throw Object.assign(new Error(`${ja} / ${en}`), { kind: 'rules', ja, en });
  }
  const list = (what) => { const text = get(what); return text ? text.split('\n') : []; };
  // null when the step was accepted, else {ja, en}
  const act = (action, arg = '') => (call('kp_do', ['string', 'string'], [action, arg]) ? problem() : null);
  return {
    step: () => get('step'),
    online: () => get('online') === '1',
    staffPresent: () => get('staff_present') === '1',
    visitKinds: () => list('visit_kinds'),
    visitKindNote: (kind) => get('visit_kind_note', kind),
    unavailableReason: () => get('unavailable_reason'),
    choices: () => list('choices'),
    chosen: () => list('chosen'),
    items: () => list('items'),
    identityMethods: () => list('identity_methods'),
    visitKind: () => get('visit_kind'),
    identityMethod: () => get('identity_method'),
    appointment: () => get('appointment'),
    today: () => get('today'),
    lastAppointment: () => get('last_appointment'),
    wareki: (iso) => get('wareki', iso),
    chooseVisitKind: (kind) => act('visit_kind', kind),
    setAppointment: (date) => act('appointment', date),
    chooseItems: (chosen) => act('items', chosen.join('\n')),
    chooseIdentity: (method) => act('identity', method),
    finish: () => act('finish'),
    back: () => act('back') === null,
  };
}
