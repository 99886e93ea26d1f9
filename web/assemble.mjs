// Assembles the consent page for `kyotaku serve` (run by web/CMakeLists.txt at build time):
//   - every asset gets a content-hashed name (app.js → app.1a2b3c4d5e.js), and the names inside the files that
//     refer to it are rewritten, so the server can let browsers keep them for a year (immutable);
//   - style.css goes inline into index.html (the first paint needs no second request; the server allows it by
//     its hash in the Content-Security-Policy);
//   - each asset is precompressed with Debian's brotli (-q 11) and gzip (-9), kept only when smaller;
//   - manifest.json maps each logical name to its file, with the sizes of each encoding.
// index.html stays a template: the server fills in {{facility_name}} and {{page_data}} per request.
// Usage: node assemble.mjs OUT BROTLI GZIP PAGE STYLE NAME=PATH…  (assets in dependency order: a file may refer
// only to the names before it)
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync, statSync, existsSync } from 'node:fs';
import { basename, extname, join } from 'node:path';

const [out, brotli, gzip, pagePath, stylePath, ...assets] = process.argv.slice(2);
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

const isText = (name) => /\.(js|css|html)$/.test(name);
const files = {};  // logical name → hashed name
const sizes = {};

// Replaces every logical name already hashed by its hashed name (longest first, so no name eats another).
function rewrite(text) {
  for (const name of Object.keys(files).sort((a, b) => b.length - a.length)) text = text.split(name).join(files[name]);
  return text;
}

function compress(file) {
  const identity = statSync(file).size;
  const size = { identity };
  for (const [encoding, tool, args] of [['br', brotli, ['-q', '11', '-f', '-o', `${file}.br`, file]], ['gz', gzip, ['-9', '-n', '-k', '-f', file]]]) {
    execFileSync(tool, args);
    const compressed = `${file}.${encoding}`;
    if (existsSync(compressed) && statSync(compressed).size < identity) size[encoding] = statSync(compressed).size;
    else rmSync(compressed, { force: true });
  }
  return size;
}

for (const spec of assets) {
  const at = spec.indexOf('=');
  const name = spec.slice(0, at);
  let content = readFileSync(spec.slice(at + 1));
  if (isText(name)) content = Buffer.from(rewrite(content.toString('utf8')));
  const hash = createHash('sha256').update(content).digest('hex').slice(0, 10);
  const ext = extname(name);
  const hashed = `${basename(name, ext)}.${hash}${ext}`;
  writeFileSync(join(out, hashed), content);
  files[name] = hashed;
  sizes[hashed] = compress(join(out, hashed));
}

const style = readFileSync(stylePath, 'utf8').trim();
const link = '<link rel="stylesheet" href="/web/style.css">';
let page = readFileSync(pagePath, 'utf8');
if (!page.includes(link)) throw new Error(`${pagePath} does not link /web/style.css as expected`);
page = rewrite(page.replace(link, `<style>${style}</style>`));
writeFileSync(join(out, 'index.html'), page);
sizes['index.html'] = { identity: Buffer.byteLength(page) };
writeFileSync(join(out, 'manifest.json'), `${JSON.stringify({ files, sizes }, null, 1)}\n`);
