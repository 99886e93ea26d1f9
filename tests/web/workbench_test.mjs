// The rule workbench in Debian's Chromium (playwright-core), and the consent page's check of a signed bundle:
//  1. served by a real `kyotaku serve` to the administrator's certificate (403 for anyone else): the server's rules
//     load, edits get live diagnostics with the caret, the rule tests run, the diff against the bundle the server
//     runs shows what 窓の月数 = 4 changes, and an example case is explained;
//     「証明する」 has the server prove the rules being edited (kyotaku prove): a broken official invariant's
//     counterexample with 和暦 facts and its explanation, a rule error pointed at;
//  2. opened from a file (file://): the rule files are picked, the first ones opened are what edits are compared with;
//     「証明する」 says that proofs need the server, and which command to run instead;
//  3. `kyotaku serve --trust` with a signed bundle: the consent page checks the signature with WebCrypto (Ed25519)
//     before use, and refuses a tampered or unsigned bundle; the server refuses rule sources with --trust.
// The workbench adds nothing to what the consent page loads: its files live in their own folder.
// Screenshots in OUT/screenshots. Usage: node workbench_test.mjs KYOTAKU SOURCE_DIR BUILD_DIR OUT
import { spawnSync, execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync, mkdirSync, rmSync, readdirSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import https from 'node:https';
import assert from 'node:assert/strict';
import { startServer, launchTrusting, crashReport } from './harness.mjs';

const [kyotaku, src, build, out] = process.argv.slice(2).map((a) => resolve(a));
const work = join(out, 'work');
const shots = join(out, 'screenshots');
rmSync(out, { recursive: true, force: true });
mkdirSync(shots, { recursive: true });
mkdirSync(work, { recursive: true });
const pki = join(work, 'pki');
const FACILITY = '0110113719';
execFileSync(join(src, 'scripts/make-test-pki'), [pki, FACILITY], { env: { ...process.env, CARDS: '1' } });
const workbenchDir = join(build, 'share/kyotaku/workbench');
const webDir = join(build, 'share/kyotaku/web');

// ---- servers ---------------------------------------------------------------------------------------------------
const servers = [];
function serve(args, name) {
  const started = startServer(kyotaku, ['--tls-dir', pki, '--db', join(work, `${name}.sqlite`), '--port', '0', ...args]);
  servers.push(started.server);
  return started.ready;
}
const tls = (who) => (who ? { ca: readFileSync(join(pki, 'ca.pem')), cert: readFileSync(join(pki, `${who}.pem`)), key: readFileSync(join(pki, `${who}.key`)) }
  : { ca: readFileSync(join(pki, 'ca.pem')) });
function call(base, who, method, path, body) {
  return new Promise((ok, fail) => {
    const req = https.request(base + path, { method, ...tls(who), headers: { 'Content-Type': 'application/json' } }, (res) => {
      let data = '';
      res.on('data', (d) => { data += d; });
      res.on('end', () => ok({ status: res.statusCode, body: data, headers: res.headers }));
    });
    req.on('error', fail);
    if (body) req.write(JSON.stringify(body));
    req.end();
  });
}

// Signed bundle of the official rules, and the keys.
execFileSync(kyotaku, ['keygen', join(work, 'policy')]);
execFileSync(kyotaku, ['keygen', join(work, 'other')]);
execFileSync(kyotaku, ['compile', join(src, 'rules'), '-o', join(work, 'signed.bundle'), '--release', '1', '--sign', join(work, 'policy.key')], { stdio: 'ignore' });

// Trusting the test server's certificate (harness.mjs): the consent page below opens several connections at once.
// The administrator's contexts still set ignoreHTTPSErrors: Playwright's client certificates go through a proxy of
// its own that presents another certificate.
const browser = await launchTrusting(pki, out);  // Chromium's log and crash dumps in OUT
let passed = 0;
let current = null;
async function test(name, fn) {
  try {
    await fn();
  } catch (e) {
    console.error(`not ok - ${name}`);
    if (/Target crashed/.test(e.message)) console.error(`a Chromium renderer crashed:\n${crashReport(out)}`);
    if (current) await current.screenshot({ path: join(shots, 'failure.png'), fullPage: true }).catch(() => {});
    throw e;
  }
  passed += 1;
  console.log(`ok - ${name}`);
}
const watch = (page) => {
  current = page;
  page.on('pageerror', (e) => console.error('page error:', e.message));
  page.on('console', (m) => { if (m.type() === 'error') console.error('console:', m.text()); });
};
// Changes the text of the file being edited as typing would (an input event): replaces `from` by `to`, or appends
// `to` when `from` is empty.
const edit = (page, from, to) => page.$eval('#source', (t, [a, b]) => {
  const before = t.value;
  t.value = a ? t.value.replace(a, b) : t.value + b;
  if (t.value === before) throw new Error(`edit: no ${a}`);
  t.dispatchEvent(new Event('input', { bubbles: true }));
}, [from, to]);
const openFile = (page, name) => page.locator('#file-list button').filter({ hasText: new RegExp(`^${name.replace('.', '\\.')}`) }).click();
const summaryIs = (page, re) => page.waitForFunction((s) => new RegExp(s).test(document.getElementById('check-summary').textContent), re.source);
// Waits until the element's text matches (the diagnostics follow typing after a short pause).
const textMatches = (page, selector, re) => page.waitForFunction(([sel, s]) => {
  const e = document.querySelector(sel);
  return e && new RegExp(s).test(e.textContent);
}, [selector, re.source], { timeout: 15000 });

// The workbench as the administrator opens it from the server, its rules loaded.
async function adminWorkbench(base) {
  const context = await browser.newContext({
    ignoreHTTPSErrors: true, locale: 'ja-JP', viewport: { width: 1400, height: 1000 },
    clientCertificates: [{ origin: base, certPath: join(pki, 'admin.pem'), keyPath: join(pki, 'admin.key') }],
  });
  const page = await context.newPage();
  watch(page);
  await page.goto(`${base}/admin/workbench/`);
  await page.waitForFunction(() => /ファイルを読み込みました/.test(document.getElementById('status').textContent), null, { timeout: 30000 });
  return { context, page };
}

try {
  const base = await serve(['--rules', join(src, 'rules')], 'plain');

  await test('only the administrator certificate opens the workbench', async () => {
    assert.equal((await call(base, `facility-${FACILITY}`, 'GET', '/admin/workbench/')).status, 403);
    assert.equal((await call(base, null, 'GET', '/admin/workbench/rules.json')).status, 403);
    const page = await call(base, 'admin', 'GET', '/admin/workbench/');
    assert.equal(page.status, 200);
    assert.match(page.body, /ルールの作業台/);
    // The consent page's folder holds nothing of the workbench, and /web/ does not serve it.
    assert.ok(!readdirSync(webDir).some((f) => f.includes('workbench')), 'workbench files in the consent page folder');
    assert.equal((await call(base, null, 'GET', '/web/kyotaku-workbench.js')).status, 404);
    assert.ok(!readFileSync(join(webDir, 'index.html'), 'utf8').includes('workbench'));
  });

  await test('served: live diagnostics, rule tests, the diff of 窓の月数 = 4 and an explained case', async () => {
    const { context, page } = await adminWorkbench(base);
    const files = await page.$$eval('#file-list button', (b) => b.map((x) => x.firstChild.textContent));
    assert.ok(files.includes('20_window.rules') && files.includes('tests/window_test.rules'), files.join(', '));
    assert.match(await page.textContent('#baseline-note'), /サーバが使っているルール/);
    await summaryIs(page, /エラーなし/);
    await page.click('#run-tests');
    assert.match(await page.textContent('#tests-summary'), /^\d+ passed, 0 failed/);

    await openFile(page, '20_window.rules');
    // A syntax error: the caret message appears while typing, and a click on it moves the cursor there.
    await edit(page, '', '\nlet 途中 = \n');
    await summaryIs(page, /エラー 1 件/);
    const diag = await page.textContent('#diagnostics li.error pre');
    assert.match(diag, /20_window\.rules:\d+:\d+: エラー\[構文\]: 構文エラー: 式 expression が必要ですが/);
    assert.match(diag, /\^/);
    await page.click('#diagnostics li.error button');
    assert.match(await page.textContent('#cursor'), /行/);
    await page.screenshot({ path: join(shots, '01-diagnostic.png'), fullPage: true });
    // A misspelt name gets a suggestion; an unused let a warning.
    await edit(page, 'let 途中 = \n', 'let 途中 = 窓の月 + 1\n');
    await textMatches(page, '#diagnostics li.error pre', /「窓の月数」のことですか/);
    await edit(page, '窓の月 + 1', '窓の月数 + 1');
    await summaryIs(page, /エラーなし/);
    await textMatches(page, '#diagnostics', /let「途中」はどの decision にも使われていません/);
    await edit(page, '\nlet 途中 = 窓の月数 + 1\n', '');

    // The policy change: the tests say which expectations moved, the diff says which answers.
    await edit(page, 'param 窓の月数 = 3', 'param 窓の月数 = 4');
    await summaryIs(page, /エラーなし/);
    await page.click('#run-tests');
    assert.match(await page.textContent('#tests-summary'), /[1-9]\d* failed/);
    assert.match(await page.textContent('#test-failures'), /window_test\.rules:\d+/);
    await page.click('#tab-diff');
    await page.fill('#diff-cases', '20000');
    await page.click('#run-diff');
    await page.waitForFunction(() => /答えが変わります/.test(document.getElementById('diff-summary').textContent), null, { timeout: 60000 });
    const diff = await page.textContent('#diff-output');
    assert.match(diff, /window_end/);
    assert.match(diff, /30_reinquiry\.rules:\d+/);
    assert.ok(await page.$('#diff-output td:text-is("true")'), 'a false → true transition');
    await page.screenshot({ path: join(shots, '02-diff.png'), fullPage: true });
    // An example of a changed answer, explained.
    await page.click('#diff-output details summary');
    await page.click('#diff-output details button');
    const explained = await page.textContent('#explain-output');
    assert.match(explained, /■ 当初の期間の末日 \(window_end\) = /);
    assert.match(explained, /途中の値/);
    await page.screenshot({ path: join(shots, '03-explain.png'), fullPage: true });
    await context.close();
  });

  await test('the change set: kept across a reload, a warning before leaving, one patch of every changed file, errors pointed at', async () => {
    const context = await browser.newContext({
      ignoreHTTPSErrors: true, locale: 'ja-JP', viewport: { width: 1400, height: 1000 }, acceptDownloads: true,
      clientCertificates: [{ origin: base, certPath: join(pki, 'admin.pem'), keyPath: join(pki, 'admin.key') }],
    });
    let page = await context.newPage();
    watch(page);
    const loaded = () => page.waitForFunction(() => /ファイルを読み込み/.test(document.getElementById('status').textContent), null, { timeout: 30000 });
    await page.goto(`${base}/admin/workbench/`);
    await loaded();
    assert.match(await page.textContent('#change-set'), /変更はありません/);
    // Two files edited: both kept in the browser at once.
    await openFile(page, '20_window.rules');
    await edit(page, 'param 窓の月数 = 3', 'param 窓の月数 = 6');
    await openFile(page, '30_reinquiry.rules');
    await edit(page, '  訪問看護,\n', '');
    await textMatches(page, '#change-set', /変更したファイル 2 個.*まだ書き出していません/);
    // A reload loses nothing.
    await page.reload();
    await loaded();
    assert.match(await page.textContent('#status'), /前回の編集 \(2 ファイル\)/);
    assert.match(await page.textContent('#restore-note'), /前回 .* の編集を戻しました/);
    await openFile(page, '20_window.rules');
    assert.match(await page.inputValue('#source'), /param 窓の月数 = 6/);
    // Leaving with edits not exported asks first.
    let asked = '';
    page.on('dialog', async (d) => { asked = d.type(); await d.dismiss(); });
    await page.close({ runBeforeUnload: true });
    for (let i = 0; i < 50 && !asked; ++i) await new Promise((r) => setTimeout(r, 100));
    assert.equal(asked, 'beforeunload', 'no warning before leaving with unexported edits');
    // Export: one patch of both files, the diff report of the whole change set before it; it applies to rules/.
    page = await context.newPage();
    watch(page);
    await page.goto(`${base}/admin/workbench/`);
    await loaded();
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export-patch')]);
    const patchPath = join(work, 'rules-change.patch');
    await download.saveAs(patchPath);
    const patch = readFileSync(patchPath, 'utf8');
    assert.match(patch, /^--- a\/rules\/20_window\.rules$/m);
    assert.match(patch, /^--- a\/rules\/30_reinquiry\.rules$/m);
    assert.match(patch, /# ルール変更の影響/);
    assert.match(patch, /窓の月数`: 3 → 6/);
    const tree = join(work, 'apply');
    rmSync(tree, { recursive: true, force: true });
    mkdirSync(tree, { recursive: true });
    execFileSync('cp', ['-r', join(src, 'rules'), tree]);
    execFileSync('patch', ['-p1', '-s', '-i', patchPath], { cwd: tree });
    const applied = readFileSync(join(tree, 'rules/20_window.rules'), 'utf8');
    assert.match(applied, /^param 窓の月数 = 6$/m);
    assert.ok(!/^ {2}訪問看護,$/m.test(readFileSync(join(tree, 'rules/30_reinquiry.rules'), 'utf8').split('export let 再照会できる区分')[1].split('}')[0]));
    await textMatches(page, '#change-set', /書き出し済み/);
    // Errors are pointed at, not "nothing to compare".
    await openFile(page, '20_window.rules');
    await edit(page, 'param 窓の月数 = 6', 'param 窓の月数 = ');
    await summaryIs(page, /エラー 1 件/);
    await page.click('#tab-diff');
    await page.click('#run-diff');
    await textMatches(page, '#diff-summary', /エラーが 1 件あります/);
    assert.match(await page.textContent('#diff-output'), /20_window\.rules:\d+:\d+/);
    await page.click('#diff-output li.error button');
    assert.match(await page.textContent('#cursor'), /行/);
    await edit(page, 'param 窓の月数 = ', 'param 窓の月数 = 6');
    await summaryIs(page, /エラーなし/);
    // Invariants: a counterexample searched in the page among generated cases (Z3 is not in the page).
    await page.click('#tab-invariants');
    await page.click('#run-invariants');
    await textMatches(page, '#invariants-summary', /反例が見つかったもの 0 個/);
    await openFile(page, '40_viewing.rules');
    await edit(page, '  when terminal == モバイル端末 => false\n    because "モバイル端末からは医療情報を閲覧できません (資格確認端末か電子カルテ端末を使います)"\n', '');
    await summaryIs(page, /エラーなし/);
    await page.click('#run-invariants');
    await textMatches(page, '#invariants-summary', /反例が見つかったもの [1-9]/);
    assert.match(await page.textContent('#invariants-output'), /モバイル端末では閲覧しない.*反例があります/);
    await page.click('#invariants-output button');
    assert.match(await page.textContent('#explain-output'), /■ 医療情報を閲覧できるか \(medical_info_viewable\) = true/);
    await edit(page, '  when not service_available => false\n', '  when terminal == モバイル端末 => false\n    because "モバイル端末からは医療情報を閲覧できません (資格確認端末か電子カルテ端末を使います)"\n  when not service_available => false\n');
    // A misspelt fact key is an error with the nearest fact's name, in explain too.
    await page.click('#tab-explain');
    await page.fill('#facts', '{"facility_kind":"医科","reviewed_claims_months":["2024-04"]}');
    await page.click('#run-explain');
    assert.match(await page.textContent('#explain-output'), /reviewed_claims_months.*「reviewed_claim_months」のことですか/);
    await page.screenshot({ path: join(shots, '04-change-set.png'), fullPage: true });
    // Discarding returns to the files as loaded.
    page.once('dialog', (d) => d.accept());
    await page.click('#discard-changes');
    await textMatches(page, '#change-set', /変更はありません/);
    await context.close();
  });

  await test('served: 証明する proves the rules being edited on the server — a counterexample with 和暦 facts, errors pointed at', async () => {
    // Only the operator's certificate may ask the server for a proof.
    const files = [{ path: 'a.rules', text: 'fact a : bool\ndecision d : bool = a\n' }];
    assert.equal((await call(base, `facility-${FACILITY}-manager`, 'POST', '/api/v1/admin/rules/prove', { files })).status, 403);
    assert.equal((await call(base, null, 'POST', '/api/v1/admin/rules/prove', { files })).status, 403);
    assert.equal((await call(base, 'admin', 'POST', '/api/v1/admin/rules/prove', { files: [{ path: '../a.rules', text: '' }] })).status, 400);
    const { context, page } = await adminWorkbench(base);
    // The change: 40_viewing.rules without its モバイル端末 clause breaks the official invariant モバイル端末では閲覧しない.
    await openFile(page, '40_viewing.rules');
    await edit(page, '  when terminal == モバイル端末 => false\n    because "モバイル端末からは医療情報を閲覧できません (資格確認端末か電子カルテ端末を使います)"\n', '');
    await summaryIs(page, /エラーなし/);
    await page.click('#tab-invariants');
    await page.click('#run-prove');
    await textMatches(page, '#prove-summary', /証明しています/);
    // Z3 on the server: the official rules take seconds (a loaded machine: more).
    await page.waitForFunction(() => /反例があります/.test(document.getElementById('prove-summary').textContent), null, { timeout: 300000 });
    const broken = page.locator('#prove-output li.counterexample');
    assert.equal(await broken.count(), 1);
    assert.match(await broken.textContent(), /反例あり.*モバイル端末からは医療情報を閲覧できない.*60_invariants\.rules:\d+/);
    assert.ok(await page.locator('#prove-output li.proven').count() >= 8, 'the other official invariants are proven');
    // The counterexample's facts as people read them: 和暦 dates with ISO in brackets, and explain's explanation.
    const facts = await broken.locator('table').textContent();
    assert.match(facts, /terminalモバイル端末/);
    assert.match(facts, /令和\d+年\d+月\d+日 \(\d{4}-\d{2}-\d{2}\)/);
    assert.match(await broken.locator('pre').textContent(), /■ 医療情報を閲覧できるか \(medical_info_viewable\) = true/);
    assert.match(await page.textContent('#prove-note'), /証明した範囲: /);
    await page.screenshot({ path: join(shots, '05-prove-counterexample.png'), fullPage: true });
    await broken.locator('button', { hasText: '一件を説明' }).click();
    assert.match(await page.textContent('#explain-output'), /■ 医療情報を閲覧できるか \(medical_info_viewable\) = true/);
    // A rule error: answered at once with its place, and a click moves there.
    await edit(page, 'decision medical_info_viewable', 'decision medical_info_viewable 余計');
    await summaryIs(page, /エラー/);
    await page.click('#tab-invariants');
    await page.click('#run-prove');
    await textMatches(page, '#prove-summary', /ルールにエラーが \d+ 件あります/);
    assert.match(await page.textContent('#prove-output'), /40_viewing\.rules:\d+:\d+: /);
    await page.click('#prove-output li button');
    assert.match(await page.textContent('#cursor'), /行/);
    await context.close();
  });

  await test('through TLS: one proof at a time per certificate (429), and a client that goes kills its proof', async () => {
    const root = join(src, 'rules');
    const files = [...readdirSync(root).filter((f) => f.endsWith('.rules')).map((f) => ({ path: f, text: readFileSync(join(root, f), 'utf8') })),
      ...readdirSync(join(root, 'tests')).map((f) => ({ path: `tests/${f}`, text: readFileSync(join(root, 'tests', f), 'utf8') }))];
    const metric = async (name) => {
      const text = (await call(base, 'admin', 'GET', '/metrics')).body;
      const line = text.split('\n').find((l) => l.startsWith(`${name} `));
      return line ? Number(line.split(' ')[1]) : NaN;
    };
    // Waits (bounded) until the server's own figures say what the test waits for.
    const until = async (what, name, value) => {
      for (let i = 0; i < 1200 && (await metric(name)) !== value; ++i) await new Promise((r) => setTimeout(r, 50));
      assert.equal(await metric(name), value, what);
    };
    const gone = 'kyotaku_workbench_proofs_total{outcome="client_gone"}';
    const before = await metric(gone);
    const held = https.request(`${base}/api/v1/admin/rules/prove`, { method: 'POST', ...tls('admin'), headers: { 'Content-Type': 'application/json' } });
    held.on('error', () => {});
    held.end(JSON.stringify({ files }));
    await until('the proof runs', 'kyotaku_workbench_proofs_running', 1);
    const again = await call(base, 'admin', 'POST', '/api/v1/admin/rules/prove', { files });
    assert.equal(again.status, 429, again.body);
    assert.ok(Number(again.headers['retry-after']) > 0);
    assert.match(JSON.parse(again.body).message_ja, /前の証明がまだ終わっていません/);
    // The browser goes (a closed tab): the server kills the child at once instead of proving for nobody.
    held.destroy();
    await until('the proof is killed when its client goes', gone, before + 1);
    // The outcome is counted as the proof's task ends; its place and folder are let go just after, when the task is
    // destroyed (a load-15 run read running = 1 in between): waited for the same bounded way.
    await until('its place is given back', 'kyotaku_workbench_proofs_running', 0);
    const folders = () => readdirSync(join(work, 'plain.sqlite.spool')).filter((f) => f.startsWith('prove-'));
    for (let i = 0; i < 1200 && folders().length > 0; ++i) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(folders(), [], 'its folder is removed');
  });

  await test('from a file: the picked files are checked, tested and compared with the first ones opened', async () => {
    const context = await browser.newContext({ locale: 'ja-JP', viewport: { width: 1400, height: 1000 } });
    const page = await context.newPage();
    watch(page);
    await page.goto(`file://${join(workbenchDir, 'index.html')}`);
    await page.waitForFunction(() => /開いてください/.test(document.getElementById('status').textContent), null, { timeout: 30000 });
    const ruleFiles = [...readdirSync(join(src, 'rules')).filter((f) => f.endsWith('.rules')).map((f) => join(src, 'rules', f)),
      ...readdirSync(join(src, 'rules/tests')).map((f) => join(src, 'rules/tests', f))];
    await page.setInputFiles('#open-files', ruleFiles);
    await page.waitForFunction(() => /ファイルを読み込みました/.test(document.getElementById('status').textContent));
    await summaryIs(page, /エラーなし/);
    await page.click('#run-tests');
    assert.match(await page.textContent('#tests-summary'), /^\d+ passed, 0 failed/);
    await page.click('#tab-diff');
    await page.click('#run-diff');
    await page.waitForFunction(() => /変わった答えはありません/.test(document.getElementById('diff-summary').textContent));
    await openFile(page, '20_window.rules');
    await edit(page, 'param 初日の扱い = 初日不算入', 'param 初日の扱い = 初日算入');
    await page.click('#run-diff');
    await page.waitForFunction(() => /答えが変わります/.test(document.getElementById('diff-summary').textContent), null, { timeout: 60000 });
    await page.click('#tab-explain');
    await page.click('#run-explain');
    assert.match(await page.textContent('#explain-output'), /■ 居宅同意取得型を使えるか \(service_available\)/);
    // Proofs need the server: the page says so, with the command to run instead.
    await page.click('#tab-invariants');
    await page.click('#run-prove');
    assert.match(await page.textContent('#prove-summary'), /ファイルとして開かれている/);
    assert.match(await page.textContent('#prove-note'), /サーバ \(kyotaku serve\).*管理者の証明書.*kyotaku prove rules/);
    await context.close();
  });

  // ---- the consent page with a signed bundle ------------------------------------------------------------------
  const refused = spawnSync(kyotaku, ['serve', '--tls-dir', pki, '--db', join(work, 'refused.sqlite'), '--port', '0',
    '--rules', join(src, 'rules'), '--trust', join(work, 'policy.pub')], { encoding: 'utf8', timeout: 30000 });
  await test('kyotaku serve --trust refuses rule sources and a bundle signed by another key', async () => {
    assert.equal(refused.status, 2);
    assert.match(refused.stderr, /ルールのソース/);
    const other = spawnSync(kyotaku, ['serve', '--tls-dir', pki, '--db', join(work, 'refused.sqlite'), '--port', '0',
      '--rules', join(work, 'signed.bundle'), '--trust', join(work, 'other.pub')], { encoding: 'utf8', timeout: 30000 });
    assert.equal(other.status, 2);
    assert.match(other.stderr, /not trusted/);
  });

  const signedBase = await serve(['--rules', join(work, 'signed.bundle'), '--trust', join(work, 'policy.pub')], 'signed');
  assert.equal((await call(signedBase, 'admin', 'POST', '/api/v1/admin/facilities', { code: FACILITY, name: '札幌在宅クリニック', kind: '医科' })).status, 201);
  assert.equal((await call(signedBase, `facility-${FACILITY}-manager`, 'PUT', '/api/v1/settings', { terms_agreed: true, home_visit_enabled: true, online_enabled: true })).status, 200);
  const url = JSON.parse((await call(signedBase, `facility-${FACILITY}`, 'GET', '/api/v1/url')).body).url;
  const trust = JSON.parse((await call(signedBase, null, 'GET', '/web/trust.json')).body);
  const signedBytes = readFileSync(join(work, 'signed.bundle'));

  async function consentPage(alter) {
    const context = await browser.newContext({ locale: 'ja-JP', viewport: { width: 360, height: 740 } });
    if (alter) await context.route('**/web/rules.bundle', async (route) => route.fulfill({ body: alter(Buffer.from(signedBytes)), contentType: 'application/octet-stream' }));
    const page = await context.newPage();
    watch(page);
    await page.goto(url);
    return { page, context };
  }
  await test('the consent page checks the signed bundle with WebCrypto and uses it', async () => {
    assert.equal(trust.keys.length, 1);
    const served = await new Promise((ok) => https.get(`${signedBase}/web/rules.bundle`, { ca: readFileSync(join(pki, 'ca.pem')) }, (res) => {
      const parts = [];
      res.on('data', (d) => parts.push(d));
      res.on('end', () => ok(Buffer.concat(parts)));
    }));
    assert.ok(served.equals(signedBytes), 'the page gets the bundle exactly as signed');
    const { page, context } = await consentPage(null);
    await page.waitForSelector('#screen-visit-kind:not([hidden])', { timeout: 15000 });
    await context.close();
  });
  await test('the consent page refuses a tampered bundle and an unsigned one', async () => {
    for (const [name, alter] of [['tampered', (b) => { b[200] ^= 1; return b; }], ['unsigned', (b) => b.subarray(0, b.length - 104)]]) {
      const { page, context } = await consentPage(alter);
      await page.waitForSelector('#screen-error-server:not([hidden])', { timeout: 15000 });
      assert.match(await page.textContent('#error-server-message'), /ルールの署名を確かめられません/, name);
      await page.screenshot({ path: join(shots, `04-consent-${name}.png`), fullPage: true });
      await context.close();
    }
  });

  // A browser without Ed25519 in WebCrypto (Chrome before 137, Safari before 17: a phone no longer updated). The
  // check is never skipped: the rules are not used, and the patient reads why and what to do instead, in Japanese.
  await test('a browser without Ed25519 in WebCrypto: the rules are not used; its own screen says to use another device', async () => {
    const context = await browser.newContext({ locale: 'ja-JP', viewport: { width: 360, height: 740 } });
    await context.addInitScript(() => {
      const refuse = (name, at) => {
        const real = SubtleCrypto.prototype[name];
        SubtleCrypto.prototype[name] = function (...args) {
          const algorithm = args[at];
          if (/^ed25519$/i.test(typeof algorithm === 'string' ? algorithm : (algorithm && algorithm.name) || '')) {
            return Promise.reject(new DOMException('Algorithm: Unrecognized name', 'NotSupportedError'));
          }
          return real.apply(this, args);
        };
      };
      refuse('importKey', 2);
      refuse('verify', 0);
      refuse('generateKey', 0);
    });
    const page = await context.newPage();
    watch(page);
    await page.goto(url);
    await page.waitForSelector('#screen-error-browser:not([hidden])', { timeout: 15000 });
    const text = await page.textContent('#screen-error-browser');
    assert.match(text, /このブラウザでは続けられません/);
    assert.match(text, /ほかのスマートフォンやパソコン、または職員の機器で、このページを開いてください/);
    assert.doesNotMatch(text, /[A-Za-z]|端末/, 'Japanese only, in words a patient knows');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'h-browser', 'the heading has the focus');
    assert.equal(await page.locator('#screen-error-browser button:visible').count(), 0, 'no もう一度試す that cannot succeed');
    assert.equal(await page.isVisible('#screen-visit-kind'), false, 'the rules were not used unchecked');
    await page.screenshot({ path: join(shots, '04-consent-no-ed25519.png'), fullPage: true });
    await context.close();
  });
} finally {
  await browser.close();
  for (const s of servers) s.kill();
}
console.log(`${passed} passed`);
