// Parity: the native `kyotaku eval` and the WebAssembly engine give byte-identical output on the same corpus
// (≥ 10,000 generated cases with boundary dates), from the same compiled bundle. Also reports (not asserts) the
// per-evaluation time of both and the size of the engine module, gzipped.
// Usage: node parity_test.mjs KYOTAKU WASM_DIR SOURCE_DIR WORK_DIR [N [ENGINE_BENCH]]
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

import { resolve } from 'node:path';
const [kyotaku, wasmDir, src, work, count = '12000', bench] = process.argv.slice(2).map((a, i) => (i < 4 || i === 5 ? resolve(a) : a));
mkdirSync(work, { recursive: true });
const cases = execFileSync(process.execPath, [join(src, 'tests/parity/gen_cases.mjs'), count], { maxBuffer: 1 << 28 });
writeFileSync(join(work, 'cases.jsonl'), cases);
execFileSync(kyotaku, ['compile', join(src, 'rules'), '-o', join(work, 'rules.bundle')]);

let t = process.hrtime.bigint();
const native = execFileSync(kyotaku, ['eval', '--rules', join(work, 'rules.bundle'), '-i', join(work, 'cases.jsonl')], { maxBuffer: 1 << 28 });
const nativeMs = Number(process.hrtime.bigint() - t) / 1e6;

const require = createRequire(import.meta.url);
const KyotakuEngine = require(join(wasmDir, 'kyotaku-engine.js'));
const engine = await KyotakuEngine({ wasmBinary: readFileSync(join(wasmDir, 'kyotaku-engine.wasm')) });
const rules = new engine.Rules(new Uint8Array(readFileSync(join(work, 'rules.bundle'))));
if (!rules.ok()) throw new Error('the WebAssembly engine refused the bundle: ' + rules.error());
t = process.hrtime.bigint();
const wasm = Buffer.from(rules.evalLines(cases.toString('utf8')), 'utf8');
const wasmMs = Number(process.hrtime.bigint() - t) / 1e6;
writeFileSync(join(work, 'native.jsonl'), native);
writeFileSync(join(work, 'wasm.jsonl'), wasm);

const lines = cases.toString('utf8').trim().split('\n').length;
const nativeLines = native.toString('utf8').trim().split('\n');
const errors = nativeLines.filter((l) => l.includes('"error"')).length;
const nulls = nativeLines.filter((l) => l.includes('"missing"')).length;
console.log(`cases: ${lines} (${errors} answered with an error, ${nulls} with missing facts)`);
let failed = false;
if (lines < 10000) { console.log('FAILED: fewer than 10000 cases'); failed = true; }
if (nativeLines.length !== lines) { console.log(`FAILED: ${nativeLines.length} answers for ${lines} cases`); failed = true; }
if (errors === 0 || nulls === 0) { console.log('FAILED: the corpus must exercise errors and missing facts'); failed = true; }
if (Buffer.compare(native, wasm) !== 0) {
  const w = wasm.toString('utf8').split('\n');
  const i = nativeLines.findIndex((l, k) => l !== w[k]);
  console.log(`FAILED: outputs differ at line ${i + 1}\n native: ${nativeLines[i]}\n wasm:   ${w[i]}`);
  failed = true;
} else {
  console.log(`identical: ${native.length} bytes of output`);
}

// Speed (reported, not asserted): every decision of each record, the corpus's valid records over and over —
// what bench/engine_bench's BM_engine_all_decisions measures natively.
const text = cases.toString('utf8');
rules.repeat(text, 3);  // let the engine's code reach the optimising tier first
t = process.hrtime.bigint();
rules.repeat(text, 0);  // reading the records alone, subtracted below
const readNs = Number(process.hrtime.bigint() - t);
t = process.hrtime.bigint();
const evaluated = rules.repeat(text, 20);
const wasmNs = (Number(process.hrtime.bigint() - t) - readNs) / evaluated;
console.log(`whole corpus through eval: native kyotaku eval ${nativeMs.toFixed(0)} ms (process included), WebAssembly ${wasmMs.toFixed(0)} ms`);
console.log(`all decisions of one record in WebAssembly: ${wasmNs.toFixed(0)} ns`);
if (bench) {
  const outText = execFileSync(bench, ['--benchmark_filter=BM_engine_all_decisions', '--benchmark_color=false'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  // engine_bench's line (e): the interpreter, every output decision of a record.
  const m = outText.match(/\(e\) interpreter \(Evaluator::evaluate\)\s+([\d.]+)/);
  if (m) console.log(`natively (engine_bench): ${Number(m[1]).toFixed(0)} ns → WebAssembly/native ${(wasmNs / Number(m[1])).toFixed(2)}x (target within 3x)`);
}
const size = (f) => gzipSync(readFileSync(join(wasmDir, f)), { level: 9 }).length;
const total = size('kyotaku-engine.wasm') + size('kyotaku-engine.js');
console.log(`kyotaku-engine .wasm + .js gzipped: ${(total / 1024).toFixed(1)} KB`);
console.log(failed ? 'FAILED' : 'parity: ok');
process.exitCode = failed ? 1 : 0;
