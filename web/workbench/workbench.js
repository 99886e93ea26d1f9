// ルールの作業台: a policy officer edits rule files and sees, without installing anything, what the `kyotaku`
// command would say: live diagnostics (file:line:column and the caret), the rule tests, one case explained, and
// the answers that change against the official rules (kyotaku diff over the generated corpus), and — served by
// kyotaku serve — the invariants proven for every input by the server (kyotaku prove). The engine is the
// same C++ compiled to WebAssembly (kyotaku-workbench.js). Served by `kyotaku serve` to administrators at
// /admin/workbench/ (the server's rules loaded, compared with the bundle it runs), or opened from a file (the
// files first opened are what the edits are compared with). A classic script: modules do not load from file://.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const state = {
    wb: null, files: [], current: -1, originals: new Map(), timer: 0, sample: 0, baseline: false, markdown: '',
    storageKey: 'kyotaku-workbench:file', prefix: '', exported: '',
  };

  const setStatus = (text) => { $('status').textContent = text; };
  const el = (tag, props = {}, ...children) => {
    const e = document.createElement(tag);
    Object.assign(e, props);
    e.append(...children);
    return e;
  };
  const number = (n) => Number(n).toLocaleString('ja-JP');
  const sources = () => JSON.stringify(state.files.map(({ path, text }) => ({ path, text })));

  // ---- files ---------------------------------------------------------------------------------------------------

  function loadFiles(files, asBaseline) {
    state.files = files.filter((f) => f.path.endsWith('.rules')).map((f) => ({ path: f.path, text: f.text, problems: 0 }))
      .sort((a, b) => a.path.localeCompare(b.path));
    state.originals = new Map(state.files.map((f) => [f.path, f.text]));
    const restored = restore();
    if (asBaseline || !state.baseline) {
      const r = JSON.parse(state.wb.setBaselineFiles(sources()));
      state.baseline = r.ok;
      if (r.ok) $('baseline-note').textContent = '比べる相手: 最初に開いたファイル (公式ルールとして)';
    }
    const first = state.files.findIndex((f) => !f.path.includes('tests/'));
    select(first >= 0 ? first : 0);
    check();
    $('facts').value = state.wb.sampleFacts(0);
    setStatus(restored
      ? `${state.files.length} 個のファイルを読み込み、前回の編集 (${restored} ファイル) をこのブラウザの保存から戻しました`
      : `${state.files.length} 個のファイルを読み込みました`);
    renderChangeSet();
  }

  // ---- the change set: kept in the browser, exported as one patch -------------------------------------------------

  const changedFiles = () => state.files.filter((f) => state.originals.get(f.path) !== f.text);
  const changeSetText = () => JSON.stringify(changedFiles().map((f) => [f.path, f.text]));

  // Every edit is kept in this browser (localStorage) at once: a reload or a closed tab loses nothing.
  function autosave() {
    const files = changedFiles().map((f) => ({ path: f.path, original: state.originals.get(f.path), text: f.text }));
    try {
      if (files.length) localStorage.setItem(state.storageKey, JSON.stringify({ saved: new Date().toISOString(), files }));
      else localStorage.removeItem(state.storageKey);
    } catch (e) {
      setStatus(`このブラウザに編集を保存できません (${e.message})。書き出して保存してください`);
    }
    renderChangeSet();
  }

  // The edits kept for these files: applied (also when the official file changed since: then said so).
  function restore() {
    let kept;
    try {
      kept = JSON.parse(localStorage.getItem(state.storageKey) || 'null');
    } catch (e) {
      kept = null;
    }
    if (!kept || !Array.isArray(kept.files)) return 0;
    let n = 0;
    const moved = [];
    for (const k of kept.files) {
      const f = state.files.find((x) => x.path === k.path);
      if (!f || typeof k.text !== 'string') continue;
      if (k.original !== state.originals.get(k.path)) moved.push(k.path);
      f.text = k.text;
      ++n;
    }
    $('restore-note').textContent = n
      ? `前回 (${new Date(kept.saved).toLocaleString('ja-JP')}) の編集を戻しました。` +
        (moved.length ? ` ${moved.join('、')} は、その後に元のファイルが変わっています。確かめてください。` : '')
      : '';
    return n;
  }

  function renderChangeSet() {
    const changed = changedFiles();
    $('change-set').textContent = changed.length
      ? `変更したファイル ${changed.length} 個 (このブラウザに自動で保存しています)` +
        (state.exported === changeSetText() ? '。書き出し済み' : '。まだ書き出していません')
      : '変更はありません';
    $('export-patch').disabled = changed.length === 0;
    $('discard-changes').disabled = changed.length === 0;
  }

  // A line diff (longest common subsequence) as the hunks of a unified diff with three lines of context, which
  // `git apply` and `patch -p1` take. A last line without a newline is marked as diff marks it.
  function unifiedDiff(path, before, after) {
    const noEol = '\u0000';
    const lines = (text) => {
      const l = text.split('\n');
      if (l[l.length - 1] === '') l.pop();
      else l[l.length - 1] += noEol;
      return l;
    };
    const a = lines(before), b = lines(after);
    let pre = 0;
    while (pre < a.length && pre < b.length && a[pre] === b[pre]) ++pre;
    let suf = 0;
    while (suf < a.length - pre && suf < b.length - pre && a[a.length - 1 - suf] === b[b.length - 1 - suf]) ++suf;
    const A = a.slice(pre, a.length - suf), B = b.slice(pre, b.length - suf);
    const L = Array.from({ length: A.length + 1 }, () => new Uint32Array(B.length + 1));
    for (let i = A.length - 1; i >= 0; --i)
      for (let j = B.length - 1; j >= 0; --j) L[i][j] = A[i] === B[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
    const ops = a.slice(0, pre).map((l) => [' ', l]);
    let i = 0;
    let j = 0;
    while (i < A.length && j < B.length) {
      if (A[i] === B[j]) ops.push([' ', A[i++]]), ++j;
      else if (L[i + 1][j] >= L[i][j + 1]) ops.push(['-', A[i++]]);
      else ops.push(['+', B[j++]]);
    }
    while (i < A.length) ops.push(['-', A[i++]]);
    while (j < B.length) ops.push(['+', B[j++]]);
    for (const l of a.slice(a.length - suf)) ops.push([' ', l]);
    const changes = ops.map((o, k) => (o[0] === ' ' ? -1 : k)).filter((k) => k >= 0);
    if (changes.length === 0) return '';
    let out = `--- a/${path}\n+++ b/${path}\n`;
    const context = 3;
    for (let h = 0; h < changes.length;) {
      let last = h;
      while (last + 1 < changes.length && changes[last + 1] - changes[last] <= 2 * context) ++last;
      const start = Math.max(0, changes[h] - context), end = Math.min(ops.length, changes[last] + context + 1);
      const count = (from, to, kinds) => ops.slice(from, to).filter((o) => kinds.includes(o[0])).length;
      const oldBefore = count(0, start, ' -'), newBefore = count(0, start, ' +');
      const oldCount = count(start, end, ' -'), newCount = count(start, end, ' +');
      out += `@@ -${oldBefore + (oldCount ? 1 : 0)},${oldCount} +${newBefore + (newCount ? 1 : 0)},${newCount} @@\n`;
      for (const [kind, line] of ops.slice(start, end))
        out += line.endsWith(noEol) ? `${kind}${line.slice(0, -1)}\n\\ No newline at end of file\n` : `${kind}${line}\n`;
      h = last + 1;
    }
    return out;
  }

  // One file for review: the diff report of the whole change set first (git apply skips text before the first
  // ---), then every changed file's patch.
  function exportPatch() {
    const changed = changedFiles();
    if (!changed.length) return;
    check();
    const cases = Math.max(100, Math.min(1000000, Number($('diff-cases').value) || 20000));
    const report = state.wb.diffMarkdown(cases, 1);
    let text = `ルールの変更 (ルールの作業台から書き出し): ${changed.map((f) => state.prefix + f.path).join(', ')}\n` +
      `リポジトリの一番上で git apply (または patch -p1) で当てられます。\n\n` +
      (report ? report.split('\n').map((l) => (l.startsWith('---') || l.startsWith('+++') ? ` ${l}` : l)).join('\n') + '\n' : '');
    for (const f of changed) text += unifiedDiff(state.prefix + f.path, state.originals.get(f.path), f.text);
    download('rules-change.patch', text);
    state.exported = changeSetText();
    renderChangeSet();
    setStatus(`変更したファイル ${changed.length} 個をパッチ rules-change.patch に書き出しました`);
  }

  function discardChanges() {
    if (!window.confirm('このブラウザに保存した編集を破棄して、元のファイルに戻しますか?')) return;
    for (const f of state.files) f.text = state.originals.get(f.path);
    state.exported = '';
    $('restore-note').textContent = '';
    select(state.current);
    check();
    autosave();
  }

  // Leaving with edits that were not exported asks first (they are also kept in this browser).
  window.addEventListener('beforeunload', (e) => {
    if (changedFiles().length === 0 || state.exported === changeSetText()) return;
    e.preventDefault();
    e.returnValue = '';
  });

  async function readPicked(list) {
    const picked = [];
    for (const f of list) if (f.name.endsWith('.rules')) picked.push({ path: f.webkitRelativePath || f.name, text: await f.text() });
    if (picked.length === 0) return setStatus('.rules のファイルがありません');
    loadFiles(picked, false);
  }

  function renderFiles() {
    $('file-list').replaceChildren(...state.files.map((f, i) => {
      const button = el('button', { type: 'button', textContent: f.path });
      button.setAttribute('aria-current', String(i === state.current));
      if (state.originals.get(f.path) !== f.text) button.append(el('span', { className: 'changed', textContent: ' ●', title: '変更あり' }));
      if (f.problems) button.append(el('span', { className: 'count', textContent: ` (${f.problems})` }));
      button.addEventListener('click', () => select(i));
      return el('li', {}, button);
    }));
  }

  function select(i) {
    state.current = i;
    const f = state.files[i];
    $('source').disabled = !f;
    $('source').value = f ? f.text : '';
    $('editor-name').textContent = f ? f.path : '(ファイルなし)';
    renderFiles();
  }

  function download(name, text) {
    const a = el('a', { href: URL.createObjectURL(new Blob([text], { type: 'text/plain;charset=utf-8' })), download: name });
    document.body.append(a);
    a.click();
    a.remove();
  }

  // ---- live diagnostics ----------------------------------------------------------------------------------------

  function check() {
    const r = JSON.parse(state.wb.setFiles(sources()));
    const summary = $('check-summary');
    if (r.error) {
      summary.textContent = r.error;
      return;
    }
    for (const f of state.files) f.problems = r.diagnostics.filter((d) => d.file === f.path && d.severity === 'error').length;
    if (r.ok) {
      const s = r.summary;
      summary.textContent = `エラーなし: ${s.files} ファイル、判定 ${s.decisions}、let ${s.lets}、テスト ${s.tests}` +
        (r.warnings ? `、警告 ${r.warnings}` : '');
      summary.className = r.warnings ? 'summary' : 'summary good';
    } else {
      summary.textContent = `エラー ${r.errors} 件` + (r.warnings ? `、警告 ${r.warnings} 件` : '');
      summary.className = 'summary bad';
    }
    $('diagnostics').replaceChildren(...r.diagnostics.map((d) => {
      const button = el('button', { type: 'button' }, el('pre', { textContent: d.text }));
      button.title = `${d.file}:${d.line}:${d.column} へ移動`;
      button.addEventListener('click', () => goTo(d.file, d.line, d.column));
      return el('li', { className: d.severity }, button);
    }));
    renderFiles();
  }

  // Moves the cursor to line:column (columns count characters, as the diagnostics do).
  function goTo(file, line, column) {
    const i = state.files.findIndex((f) => f.path === file);
    if (i < 0) return;
    if (i !== state.current) select(i);
    const lines = state.files[i].text.split('\n');
    let offset = 0;
    for (let l = 0; l < line - 1 && l < lines.length; ++l) offset += lines[l].length + 1;
    offset += Array.from(lines[line - 1] || '').slice(0, Math.max(0, column - 1)).join('').length;
    const source = $('source');
    source.focus();
    source.setSelectionRange(offset, offset);
    showCursor();
  }

  function showCursor() {
    const source = $('source');
    const before = source.value.slice(0, source.selectionStart);
    const line = before.split('\n').length;
    const column = Array.from(before.slice(before.lastIndexOf('\n') + 1)).length + 1;
    $('cursor').textContent = `${line} 行 ${column} 列`;
  }

  $('source').addEventListener('input', () => {
    const f = state.files[state.current];
    if (!f) return;
    f.text = $('source').value;
    autosave();
    clearTimeout(state.timer);
    state.timer = setTimeout(check, 250);
  });
  for (const ev of ['keyup', 'click']) $('source').addEventListener(ev, showCursor);
  $('open-files').addEventListener('change', (e) => readPicked(e.target.files));
  $('open-folder').addEventListener('change', (e) => readPicked(e.target.files));
  $('save-file').addEventListener('click', () => {
    const f = state.files[state.current];
    if (f) download(f.path.split('/').pop(), f.text);
  });
  $('format-file').addEventListener('click', () => {
    const f = state.files[state.current];
    if (!f) return;
    const r = JSON.parse(state.wb.format(f.path));
    if (!r.ok) return setStatus('構文エラーがあるので書式をそろえられません');
    f.text = r.text;
    $('source').value = r.text;
    autosave();
    check();
  });
  $('export-patch').addEventListener('click', exportPatch);
  $('discard-changes').addEventListener('click', discardChanges);

  // ---- tests, explain, diff ------------------------------------------------------------------------------------

  for (const tab of ['tests', 'explain', 'diff', 'invariants'])
    $(`tab-${tab}`).addEventListener('click', () => {
      for (const other of ['tests', 'explain', 'diff', 'invariants']) {
        $(`tab-${other}`).setAttribute('aria-selected', String(other === tab));
        $(`panel-${other}`).hidden = other !== tab;
      }
    });

  $('run-tests').addEventListener('click', () => {
    check();
    const r = JSON.parse(state.wb.runTests());
    const summary = $('tests-summary');
    summary.textContent = r.error || `${r.passed} passed, ${r.failed} failed (${r.passed} 件成功、${r.failed} 件失敗)`;
    summary.className = r.failed || r.error ? 'summary bad' : 'summary good';
    $('test-failures').replaceChildren(...r.failures.map((f) => {
      const li = el('li', {}, el('strong', { textContent: `「${f.test}」 ` }), `${f.location}: ${f.message}`);
      li.addEventListener('click', () => {
        const [file, line] = [f.location.slice(0, f.location.lastIndexOf(':')), Number(f.location.slice(f.location.lastIndexOf(':') + 1))];
        goTo(file, line, 1);
      });
      return li;
    }));
  });

  $('run-explain').addEventListener('click', () => {
    check();
    $('explain-output').textContent = state.wb.explain($('facts').value, $('explain-full').checked);
  });
  $('sample-facts').addEventListener('click', () => { $('facts').value = state.wb.sampleFacts(++state.sample); });

  function renderDiff(r) {
    const out = $('diff-output');
    if (r.error) {
      // Nothing to compare: the edited rules' errors, each one a link to its place.
      $('diff-summary').textContent = r.error;
      $('diff-summary').className = 'summary bad';
      out.replaceChildren(el('ol', { className: 'diagnostics' }, ...(r.diagnostics || []).filter((d) => d.severity === 'error').map((d) => {
        const button = el('button', { type: 'button' }, el('pre', { textContent: `${d.file}:${d.line}:${d.column}: ${d.ja}` }));
        button.addEventListener('click', () => goTo(d.file, d.line, d.column));
        return el('li', { className: 'error' }, button);
      })));
      return;
    }
    $('diff-summary').textContent = r.changed
      ? `${number(r.cases)} 件のうち ${number(r.changed_cases)} 件で答えが変わります`
      : `${number(r.cases)} 件で、変わった答えはありません`;
    $('diff-summary').className = r.changed ? 'summary bad' : 'summary good';
    const parts = [];
    for (const n of r.only_new) parts.push(el('p', { textContent: `新しく加わった判定・export let: ${n}` }));
    for (const n of r.only_old) parts.push(el('p', { textContent: `なくなった判定・export let: ${n}` }));
    for (const v of r.values)
      parts.push(el('p', { textContent: `${v.kind === 'param' ? '方針の値 (param)' : '事実の既定値'} ${v.name}: ${v.from || '(なし)'} → ${v.to || '(なし)'}` }));
    const total = (d) => d.changed + d.became_unknown + d.became_known;
    const name = (d) => (d.label ? `${d.label} (${d.name})` : d.name) + (d.exported ? ' (export let)' : '');
    const table = el('table', {}, el('tr', {}, el('th', { textContent: '判定・export let' }), el('th', { textContent: '答えが変わった' }),
      el('th', { textContent: '答えられなくなった' }), el('th', { textContent: '答えられるようになった' })));
    for (const d of r.decisions)
      table.append(el('tr', {}, el('td', { textContent: name(d) }), el('td', { className: 'num', textContent: number(d.changed) }),
        el('td', { className: 'num', textContent: number(d.became_unknown) }), el('td', { className: 'num', textContent: number(d.became_known) })));
    parts.push(table);
    for (const d of r.decisions) {
      if (d.combinations_changed)
        parts.push(el('p', { textContent: `${name(d)}: 読む事実のすべての組合せ ${number(d.combinations)} 通りのうち ${number(d.combinations_changed)} 通りで答えが変わります` }));
      if (!total(d)) continue;
      parts.push(el('h3', { textContent: `${d.label || d.name}: ${number(total(d))} 件` }));
      for (const g of d.groups) {
        const box = el('div', { className: 'group' });
        const what = { changed: '答えが変わった', became_unknown: '答えられなくなった', became_known: '答えられるようになった' }[g.kind];
        box.append(el('p', {}, `${what} ${number(g.count)} 件 — 旧の決め手 `, el('code', { textContent: g.old_clause || 'なし' }), ' → 新の決め手 ',
          el('code', { textContent: g.new_clause || 'なし' })));
        if (g.missing) box.append(el('p', { textContent: `足りない事実: ${g.missing}` }));
        if (g.old_source || g.new_source)
          box.append(el('p', {}, '旧: ', el('code', { textContent: g.old_reason || g.old_source || '—' }), el('br'), '新: ',
            el('code', { textContent: g.new_reason || g.new_source || '—' })));
        const t = el('table', {}, el('tr', {}, el('th', { textContent: '旧の答え' }), el('th', { textContent: '新の答え' }), el('th', { textContent: '件数' })));
        for (const x of g.transitions) t.append(el('tr', {}, el('td', { textContent: x.from }), el('td', { textContent: x.to }), el('td', { className: 'num', textContent: number(x.count) })));
        if (g.other_transitions) t.append(el('tr', {}, el('td', { textContent: 'ほか' }), el('td'), el('td', { className: 'num', textContent: number(g.other_transitions) })));
        box.append(t);
        for (const e of g.examples) {
          const explainIt = el('button', { type: 'button', textContent: 'この事例を説明' });
          explainIt.addEventListener('click', () => {
            $('facts').value = e.facts;
            $('tab-explain').click();
            $('run-explain').click();
          });
          box.append(el('details', {}, el('summary', { textContent: `例 ${typeof e.id === 'string' ? e.id : e.line}: ${e.from} → ${e.to}` }),
            el('pre', { textContent: e.facts }), explainIt));
        }
        parts.push(box);
      }
    }
    out.replaceChildren(...parts);
  }

  $('run-diff').addEventListener('click', () => {
    check();
    const cases = Math.max(100, Math.min(1000000, Number($('diff-cases').value) || 20000));
    $('diff-summary').textContent = '比べています…';
    setTimeout(() => {
      renderDiff(JSON.parse(state.wb.diff(cases, 1)));
      state.markdown = state.wb.diffMarkdown(cases, 1);
      $('save-diff').disabled = !state.markdown;
    }, 0);
  });
  $('save-diff').addEventListener('click', () => download('rule-diff.md', state.markdown));

  // Invariants: a counterexample searched among generated cases (a refutation, never a proof: see the panel's note).
  $('run-invariants').addEventListener('click', () => {
    check();
    const cases = Math.max(100, Math.min(1000000, Number($('diff-cases').value) || 20000));
    const r = JSON.parse(state.wb.searchInvariants(cases, 1));
    const summary = $('invariants-summary');
    if (r.error) {
      summary.textContent = r.error;
      summary.className = 'summary bad';
      return;
    }
    const broken = r.invariants.filter((i) => i.counterexample);
    summary.textContent = r.invariants.length === 0
      ? '不変条件はありません'
      : `不変条件 ${r.invariants.length} 個、生成した ${number(cases)} 件で反例が見つかったもの ${broken.length} 個` +
        (broken.length ? '' : ' (証明ではありません: kyotaku prove で証明します)');
    summary.className = broken.length ? 'summary bad' : 'summary good';
    $('invariants-output').replaceChildren(...r.invariants.map((i) => {
      const li = el('li', {}, el('strong', { textContent: `${i.name}${i.label ? `「${i.label}」` : ''} ` }),
        `${i.location}: ${i.counterexample ? '反例があります' : `${number(i.checked)} 件で反例なし`}`);
      if (i.counterexample) {
        const explainIt = el('button', { type: 'button', textContent: 'この反例を説明' });
        explainIt.addEventListener('click', () => {
          $('facts').value = i.counterexample;
          $('tab-explain').click();
          $('run-explain').click();
        });
        li.append(el('pre', { textContent: i.counterexample }), explainIt);
      }
      return li;
    }));
  });

  // ---- proofs on the server (kyotaku prove) ----------------------------------------------------------------------
  // Z3 does not run in the page: the server proves the rules being edited, every file with its edits
  // (POST /api/v1/admin/rules/prove, the administrator's certificate only). Opened from a file, or refused by the
  // server, the page says plainly what to run instead.
  const served = () => location.protocol === 'https:' || location.protocol === 'http:';

  function proofsNeedTheServer(why) {
    $('prove-summary').textContent = why;
    $('prove-summary').className = 'summary bad';
    $('prove-note').replaceChildren('すべての入力についての証明には、サーバ (kyotaku serve) の作業台を管理者の証明書 (kyotaku-admin) で開いてください。' +
      'または、編集したルールを書き出してから、コマンドで ', el('code', { textContent: 'kyotaku prove rules' }),
      ' を実行してください (rules は編集したルールのフォルダ。反例があれば終了コード 1 で示します)。');
    $('prove-output').replaceChildren();
  }

  const verdicts = { proven: '証明済み', counterexample: '反例あり', unknown: '決められませんでした' };

  function renderProofs(status, data) {
    const summary = $('prove-summary');
    const note = $('prove-note');
    const out = $('prove-output');
    summary.textContent = data.message || data.message_ja || `サーバが答えられませんでした (HTTP ${status})`;
    summary.className = data.outcome === 'proved' ? 'summary good' : 'summary bad';
    note.replaceChildren();
    out.replaceChildren();
    if (data.outcome === 'rule_errors') {
      out.replaceChildren(...(data.diagnostics || []).filter((d) => d.severity === 'error').map((d) => {
        const button = el('button', { type: 'button' }, el('pre', { textContent: `${d.file}:${d.line}:${d.column}: ${d.ja}` }));
        button.addEventListener('click', () => goTo(d.file, d.line, d.column));
        return el('li', { className: 'counterexample' }, button);
      }));
      return;
    }
    if (data.outcome === 'timeout') {
      note.replaceChildren('時間の制限なしに証明するには、編集したルールを書き出してから、コマンドで ', el('code', { textContent: 'kyotaku prove rules' }),
        ' を実行してください。');
      return;
    }
    if (!Array.isArray(data.invariants)) return;
    if (data.domain) note.textContent = `証明した範囲: ${data.domain}`;
    out.replaceChildren(...data.invariants.map((i) => {
      const where = el('button', { type: 'button', className: 'link', textContent: i.location });
      const [file, line] = [i.location.slice(0, i.location.lastIndexOf(':')), Number(i.location.slice(i.location.lastIndexOf(':') + 1))];
      where.addEventListener('click', () => goTo(file, line, 1));
      const li = el('li', { className: i.status }, el('span', { className: 'verdict', textContent: verdicts[i.status] || i.status }),
        el('strong', { textContent: i.label ? `${i.label} ` : `${i.name} ` }), `(${i.name}) `, where);
      if (i.status === 'counterexample') {
        const table = el('table', {}, el('tr', {}, el('th', { textContent: '反例の事実' }), el('th', { textContent: '値' })));
        for (const f of i.shown || []) table.append(el('tr', {}, el('td', { textContent: f.fact }), el('td', { textContent: f.value })));
        const explainIt = el('button', { type: 'button', textContent: 'この反例を「一件を説明」で開く' });
        explainIt.addEventListener('click', () => {
          $('facts').value = JSON.stringify(i.facts);
          $('tab-explain').click();
          $('run-explain').click();
        });
        li.append(table, el('pre', { textContent: i.explanation }), explainIt);
      } else if (i.status === 'unknown' && i.reason) {
        li.append(el('p', { textContent: `理由: ${i.reason}` }));
      }
      return li;
    }));
  }

  async function proveOnServer() {
    if (!served()) return proofsNeedTheServer('このページはファイルとして開かれているので、ここでは証明できません。');
    if (!state.files.length) return proofsNeedTheServer('ルールファイルがありません。');
    check();
    const button = $('run-prove');
    button.disabled = true;
    $('prove-summary').textContent = '証明しています… (公式ルールで十数秒かかります)';
    $('prove-summary').className = 'summary';
    $('prove-note').replaceChildren();
    $('prove-output').replaceChildren();
    try {
      const r = await fetch('/api/v1/admin/rules/prove', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ files: state.files.map(({ path, text }) => ({ path, text })) }),
      });
      let data = {};
      try {
        data = await r.json();
      } catch (e) {
        data = {};
      }
      if (r.status === 403) return proofsNeedTheServer('証明はサーバの管理者 (kyotaku-admin の証明書) だけが実行できます。');
      if (r.status === 404) return proofsNeedTheServer('このサーバは証明を受け付けていません。');
      renderProofs(r.status, data);
      if ((r.status === 503 || r.status === 429) && !data.outcome) {
        const retry = r.headers.get('Retry-After');
        $('prove-note').textContent = retry ? `${retry} 秒ほど待ってから、もう一度「証明する」を押してください。` : '';
      }
    } catch (e) {
      proofsNeedTheServer(`サーバにつながりません (${e.message})。`);
    } finally {
      button.disabled = false;
    }
  }
  $('run-prove').addEventListener('click', proveOnServer);

  // ---- start ---------------------------------------------------------------------------------------------------

  async function start() {
    try {
      const engine = await KyotakuWorkbench();
      state.wb = new engine.Workbench();
    } catch (e) {
      return setStatus(`作業台のプログラムを読み込めません: ${e.message}`);
    }
    renderChangeSet();
    if (location.protocol !== 'https:' && location.protocol !== 'http:') {
      $('baseline-note').textContent = '最初に開いたファイルが、比べる相手 (公式ルール) になります。';
      proofsNeedTheServer('このページはファイルとして開かれているので、ここでは証明できません。');
      return setStatus('ルールファイルかフォルダを開いてください');
    }
    // Served by kyotaku serve: its rule sources, compared with the bundle it runs.
    try {
      const r = await fetch('rules.json');
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      const data = await r.json();
      // The server's rules: edits are kept under their path, and a patch names them as the repository does.
      state.storageKey = `kyotaku-workbench:${location.host}:${data.rules}`;
      state.prefix = 'rules/';
      const bundle = await fetch('/web/rules.bundle');
      if (bundle.ok) {
        const loaded = JSON.parse(state.wb.setBaselineBundle(new Uint8Array(await bundle.arrayBuffer())));
        state.baseline = loaded.ok;
        if (loaded.ok) $('baseline-note').textContent = `比べる相手: サーバが使っているルール (${data.rules})`;
      }
      if (data.files.length) loadFiles(data.files, !state.baseline);
      else setStatus('サーバはバンドルからルールを読んでいます。ルールファイルかフォルダを開いてください');
    } catch (e) {
      setStatus(`サーバのルールを読み込めません: ${e.message}`);
    }
  }
  start();
})();
