// Generates the parity corpus: N lines of facts (deterministic), weighted towards boundary dates — month ends,
// leap days, 施行日 ± 1 of every version and start date in rules/, the window's end — plus 和暦 spellings,
// missing facts, and lines with bad values (each must get the same error from both builds).
// Usage: node gen_cases.mjs N > cases.jsonl
const n = Number(process.argv[2] || 10000);
let seed = 20241001;
const rand = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648; };
const pick = (a) => a[Math.floor(rand() * a.length)];
const pad = (x) => String(x).padStart(2, '0');
const iso = (d) => `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
const day = (s) => new Date(s + 'T00:00:00Z');
const add = (d, k) => new Date(d.getTime() + k * 86400000);
const monthEnd = (y, m) => new Date(Date.UTC(y, m, 0));

const facilityKinds = ['医科', '歯科', '薬局', '訪問看護ステーション'];
const visitKinds = ['訪問診療', '訪問看護', '歯科訪問診療', '訪問薬剤管理指導', '訪問リハビリテーション', '訪問栄養食事指導',
  '訪問歯科衛生指導', '往診', 'オンライン診療', 'オンライン服薬指導'];
const terminals = ['モバイル端末', '資格確認端末', '電子カルテ端末'];
const items = ['手術情報', '診療情報', '薬剤情報', '特定健診情報', '限度額情報'];

// Dates the rules turn on, each with its neighbours.
const pivots = ['2023-11-30', '2024-02-01', '2024-04-01', '2024-06-01', '2024-10-01', '2024-12-02', '2025-12-02'];
const boundary = [];
for (const p of pivots) for (const k of [-1, 0, 1]) boundary.push(add(day(p), k));
for (const y of [2023, 2024, 2025, 2027, 2028]) {
  for (let m = 1; m <= 12; m++) boundary.push(monthEnd(y, m), new Date(Date.UTC(y, m - 1, 1)));
}
boundary.push(day('2024-02-29'), day('2028-02-29'), day('2023-02-28'), day('2024-01-31'), day('2024-03-31'));

const wareki = (d) => {
  const y = d.getUTCFullYear() - 2018;
  return rand() < 0.5 ? `令和${y === 1 ? '元' : y}年${d.getUTCMonth() + 1}月${d.getUTCDate()}日` : `R${y}.${d.getUTCMonth() + 1}.${d.getUTCDate()}`;
};
const spell = (d) => (d.getUTCFullYear() >= 2019 && rand() < 0.1 ? wareki(d) : iso(d));

const out = [];
for (let i = 0; i < n; i++) {
  const first = rand() < 0.6 ? pick(boundary) : add(day('2023-10-01'), Math.floor(rand() * 900));
  let query;
  const r = rand();
  if (r < 0.3) query = pick(boundary);
  else if (r < 0.6) {
    // around the end of the initial window: the last day of the month in which 3 months have elapsed
    const y = first.getUTCFullYear(), m = first.getUTCMonth();
    query = add(monthEnd(y, m + 4 + Math.floor(rand() * 2)), Math.floor(rand() * 3) - 1);
  } else query = add(first, Math.floor(rand() * 500) - 20);
  const months = [];
  const fm = first.getUTCFullYear() * 12 + first.getUTCMonth();
  for (let k = 0; k < 14; k++) if (rand() < 0.7) months.push(`${Math.floor((fm + k) / 12)}-${pad(((fm + k) % 12) + 1)}`);
  const facts = {
    id: i % 7 === 0 ? i : `c${i}`,
    facility_kind: pick(facilityKinds),
    visit_kind: pick(visitKinds),
    first_visit: spell(first),
    query_date: spell(query),
    continuing_home_care: rand() < 0.5,
    reviewed_claim_months: months,
    terminal: pick(terminals),
    consented_items: items.filter(() => rand() < 0.5),
    requested_item: pick(items),
    feature_enabled: rand() < 0.85,
  };
  // Missing facts (null decisions naming them), and bad values (errors naming the field).
  const x = rand();
  if (x < 0.04) delete facts[pick(Object.keys(facts).filter((k) => k !== 'id'))];
  else if (x < 0.05) facts.query_date = pick(['2023-02-29', '2024-13-01', '令和7年2月29日', 'R0.1.1', 'tomorrow']);
  else if (x < 0.06) facts.visit_kind = '訪問診察';
  else if (x < 0.065) facts.reviewed_claim_months = ['2024-1'];
  else if (x < 0.07) facts.feature_enabled = 'yes';
  else if (x < 0.075) facts.first_visit = null;
  out.push(JSON.stringify(facts));
}
process.stdout.write(out.join('\n') + '\n');
