// kyotaku diff: two rule sets over one corpus (see kyotaku/diff.hpp). Each side reads the facts with its own reader
// (a rule change may add a fact or an enum value) and evaluates every decision; answers are compared as values
// (raw integers when both sides type the decision alike, rendered text otherwise, reasons without their file:line),
// so that a million cases take seconds.
#include "kyotaku/diff.hpp"

#include "kyotaku/jsonl.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <unordered_map>

namespace kyotaku {

namespace {
constexpr std::size_t max_transitions_kept = 4096;  // distinct value transitions remembered per group

struct Side {
    std::shared_ptr<Program const> program;
    JsonlEvaluator reader;
    Evaluator evaluator;
    Activation facts;
    std::string id;
    explicit Side(std::shared_ptr<Program const> p) : program(p), reader(p), evaluator(p), facts(*p) {}
};

struct Group {
    std::int64_t old_clause, new_clause;  // -1: no answer on that side
    std::uint64_t count = 0;
    std::unordered_map<std::string, std::uint64_t> transitions;  // "from\x1Fto" → count
    std::uint64_t other = 0;
    std::vector<DiffExample> examples;
};

struct Pair {
    std::string name, label;
    std::size_t old_output, new_output;
    bool raw_comparable;  // same type on both sides, not text: compare the raw values
    std::uint64_t changed = 0;
    std::map<std::pair<std::int64_t, std::int64_t>, Group> groups;
};

bool same_type(Program const& a, Type ta, Program const& b, Type tb) {
    if (ta.kind != tb.kind) return false;
    if (ta.kind == TypeKind::Enum || ta.kind == TypeKind::EnumSet)
        return a.enums[std::size_t(ta.enum_id)].values == b.enums[std::size_t(tb.enum_id)].values;
    return true;
}

// The value of an answer as people read it: null, or the value (a reason without its file:line).
std::string answer_text(Side& side, std::size_t output) {
    Outcome const& o = side.evaluator.outcome(output);
    if (o.status != Status::ok) return "null";
    auto const& slot = side.program->slots[side.program->outputs[output]];
    if (slot.type.kind == TypeKind::EnumSet && o.value == 0) return "{}";
    return side.evaluator.format_value(slot.type, o.value, side.facts);
}
}  // namespace

struct RuleDiff::Impl {
    DiffOptions options;
    Side old_side, new_side;
    std::vector<Pair> pairs;
    std::vector<std::string> only_old, only_new;
    std::uint64_t cases = 0, changed_cases = 0, unreadable_both = 0;
    // Lines only one side can read: reported as a pseudo-decision.
    Pair unreadable{"(読めない行)", "", 0, 0, false, 0, {}};

    Impl(std::shared_ptr<Program const> o, std::shared_ptr<Program const> n, DiffOptions opt)
        : options(opt), old_side(std::move(o)), new_side(std::move(n)) {
        Program const& po = *old_side.program;
        Program const& pn = *new_side.program;
        for (std::size_t j = 0; j < pn.outputs.size(); ++j) {
            auto const& ns = pn.slots[pn.outputs[j]];
            int const os = po.find_slot(ns.name);
            auto const it = std::find(po.outputs.begin(), po.outputs.end(), std::uint32_t(os));
            if (os < 0 || it == po.outputs.end()) {
                only_new.push_back(ns.name);
                continue;
            }
            auto const& old_slot = po.slots[std::size_t(os)];
            bool const raw = ns.type.kind != TypeKind::Text && same_type(po, old_slot.type, pn, ns.type);
            pairs.push_back(Pair{ns.name, ns.label.empty() ? old_slot.label : ns.label, std::size_t(it - po.outputs.begin()), j, raw, 0, {}});
        }
        for (auto o : po.outputs) {
            auto const& name = po.slots[o].name;
            int const ns = pn.find_slot(name);
            if (ns < 0 || std::find(pn.outputs.begin(), pn.outputs.end(), std::uint32_t(ns)) == pn.outputs.end()) only_old.push_back(name);
        }
    }

    void record(Pair& pair, std::int64_t old_clause, std::int64_t new_clause, std::string from, std::string to, std::string_view line,
                std::uint64_t line_number, std::string const& id) {
        ++pair.changed;
        Group& g = pair.groups[{old_clause, new_clause}];
        g.old_clause = old_clause;
        g.new_clause = new_clause;
        ++g.count;
        std::string key = from + '\x1F' + to;
        if (auto it = g.transitions.find(key); it != g.transitions.end()) ++it->second;
        else if (g.transitions.size() < max_transitions_kept) g.transitions.emplace(std::move(key), 1);
        else ++g.other;
        if (g.examples.size() < options.examples)
            g.examples.push_back(DiffExample{id, line_number, std::move(from), std::move(to), std::string(line.substr(0, 2000))});
    }

    void add(std::string_view line, std::uint64_t line_number) {
        if (line.find_first_not_of(" \t\r") == std::string_view::npos) return;
        ++cases;
        std::string const old_error = old_side.reader.read_facts(line, old_side.facts, old_side.id);
        std::string const new_error = new_side.reader.read_facts(line, new_side.facts, new_side.id);
        std::string const& id = new_side.id != "null" ? new_side.id : old_side.id;
        if (!old_error.empty() && !new_error.empty()) {
            ++unreadable_both;
            return;
        }
        if (!old_error.empty() || !new_error.empty()) {
            ++changed_cases;
            record(unreadable, -1, -1, old_error.empty() ? "読める" : "読めない: " + old_error,
                   new_error.empty() ? "読める" : "読めない: " + new_error, line, line_number, id);
            return;
        }
        old_side.evaluator.evaluate(old_side.facts);
        new_side.evaluator.evaluate(new_side.facts);
        bool changed = false;
        for (auto& pair : pairs) {
            Outcome const& a = old_side.evaluator.outcome(pair.old_output);
            Outcome const& b = new_side.evaluator.outcome(pair.new_output);
            bool const a_ok = a.status == Status::ok, b_ok = b.status == Status::ok;
            if (!a_ok && !b_ok) continue;
            if (a_ok && b_ok && pair.raw_comparable && a.value == b.value) continue;
            std::string from = answer_text(old_side, pair.old_output), to = answer_text(new_side, pair.new_output);
            if (from == to) continue;
            changed = true;
            record(pair, a_ok ? std::int64_t(a.clause) : -1, b_ok ? std::int64_t(b.clause) : -1, std::move(from), std::move(to), line,
                   line_number, id);
        }
        changed_cases += changed;
    }

    DecisionDiff summarize(Pair const& pair) const {
        Program const& po = *old_side.program;
        Program const& pn = *new_side.program;
        DecisionDiff d{pair.name, pair.label, pair.changed, {}};
        for (auto const& [key, g] : pair.groups) {
            DiffGroup out;
            if (g.old_clause >= 0) {
                auto const& c = po.clauses[std::size_t(g.old_clause)];
                out.old_clause = po.location(c.loc);
                out.old_source = c.source.substr(0, c.source.find('\n'));
            }
            if (g.new_clause >= 0) {
                auto const& c = pn.clauses[std::size_t(g.new_clause)];
                out.new_clause = pn.location(c.loc);
                out.new_source = c.source.substr(0, c.source.find('\n'));
            }
            out.count = g.count;
            out.distinct_transitions = g.transitions.size() + (g.other ? 1 : 0);
            std::vector<std::pair<std::string, std::uint64_t>> ts(g.transitions.begin(), g.transitions.end());
            std::sort(ts.begin(), ts.end(), [](auto const& x, auto const& y) { return x.second != y.second ? x.second > y.second : x.first < y.first; });
            out.other_transitions = g.other;
            for (std::size_t i = 0; i < ts.size(); ++i) {
                if (i >= options.transitions) {
                    out.other_transitions += ts[i].second;
                    continue;
                }
                auto const sep = ts[i].first.find('\x1F');
                out.transitions.push_back(DiffTransition{ts[i].first.substr(0, sep), ts[i].first.substr(sep + 1), ts[i].second});
            }
            out.examples = g.examples;
            d.groups.push_back(std::move(out));
        }
        std::stable_sort(d.groups.begin(), d.groups.end(), [](auto const& x, auto const& y) { return x.count > y.count; });
        return d;
    }
};

RuleDiff::RuleDiff(std::shared_ptr<Program const> old_rules, std::shared_ptr<Program const> new_rules, DiffOptions options)
    : impl_(std::make_unique<Impl>(std::move(old_rules), std::move(new_rules), options)) {}
RuleDiff::~RuleDiff() = default;

void RuleDiff::add(std::string_view line, std::uint64_t line_number) { impl_->add(line, line_number); }

std::uint64_t RuleDiff::add_stream(std::FILE* in) {
    LineReader reader(in);
    std::string_view line;
    bool too_long = false;
    std::uint64_t number = 0, before = impl_->cases;
    while (reader.next(line, too_long)) {
        ++number;
        if (too_long) {
            ++impl_->cases;
            ++impl_->unreadable_both;
            continue;
        }
        impl_->add(line, number);
    }
    return impl_->cases - before;
}

DiffReport RuleDiff::report() const {
    DiffReport r;
    r.cases = impl_->cases;
    r.changed_cases = impl_->changed_cases;
    r.unreadable_both = impl_->unreadable_both;
    r.only_old = impl_->only_old;
    r.only_new = impl_->only_new;
    for (auto const& pair : impl_->pairs) r.decisions.push_back(impl_->summarize(pair));
    if (impl_->unreadable.changed) r.decisions.push_back(impl_->summarize(impl_->unreadable));
    return r;
}

// ---- the generated corpus ------------------------------------------------------------------------------------

namespace {
struct SplitMix {
    std::uint64_t s;
    std::uint64_t next() {
        std::uint64_t z = (s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    std::size_t below(std::size_t n) { return n ? std::size_t(next() % n) : 0; }
    bool chance(unsigned percent) { return next() % 100 < percent; }
};

struct FactSpec {
    std::string name;
    Type type;
    bool has_default = false;
    std::vector<std::string> values;  // enum values (the union of both rule sets, old order first)
    std::vector<std::int64_t> ints;   // candidate ints
};

std::int64_t day_of(int y, unsigned m, unsigned d) { return Date::from_ymd(y, m, d)->days(); }
}  // namespace

void generate_corpus(Program const& a, Program const& b, std::size_t cases, std::uint64_t seed,
                     std::function<void(std::string_view line)> const& emit) {
    // The facts of both rule sets, by name.
    std::vector<FactSpec> facts;
    for (Program const* p : {&a, &b})
        for (auto const& f : p->facts) {
            auto it = std::find_if(facts.begin(), facts.end(), [&](auto const& x) { return x.name == f.name; });
            if (it == facts.end()) {
                facts.push_back(FactSpec{f.name, f.type, f.has_default, {}, {}});
                it = facts.end() - 1;
            }
            if (f.type.kind == TypeKind::Enum || f.type.kind == TypeKind::EnumSet)
                for (auto const& v : p->enums[std::size_t(f.type.enum_id)].values)
                    if (std::find(it->values.begin(), it->values.end(), v) == it->values.end()) it->values.push_back(v);
        }
    // The dates the rules name: versions' boundaries, and constants that are days between 2000 and 2100.
    std::set<std::int64_t> boundaries;
    std::set<std::int64_t> small_ints{0, 1, 2, 3};
    std::int64_t const lo_day = day_of(2000, 1, 1), hi_day = day_of(2100, 12, 31);
    for (Program const* p : {&a, &b}) {
        for (auto const& s : p->slots)
            for (auto const& v : s.versions) {
                if (v.from != std::numeric_limits<std::int64_t>::min()) boundaries.insert(v.from);
                if (v.until != std::numeric_limits<std::int64_t>::max()) boundaries.insert(v.until + 1);
            }
        for (auto k : p->consts) {
            if (k >= lo_day && k <= hi_day) boundaries.insert(k);
            if (k >= -100 && k <= 100) small_ints.insert(k);
        }
        for (auto const& prm : p->params)
            if (prm.type.kind == TypeKind::Int) small_ints.insert(prm.value);
    }
    std::vector<std::int64_t> bounds(boundaries.begin(), boundaries.end());
    std::int64_t const first = bounds.empty() ? day_of(2024, 1, 1) : bounds.front();
    std::int64_t const last = bounds.empty() ? day_of(2025, 12, 31) : bounds.back();
    std::int64_t const span_lo = first - 400, span_hi = last + 400;
    for (auto& f : facts) {
        if (f.type.kind != TypeKind::Int) continue;
        for (auto v : small_ints)
            for (std::int64_t d : {-1, 0, 1}) f.ints.push_back(v + d);
        std::sort(f.ints.begin(), f.ints.end());
        f.ints.erase(std::unique(f.ints.begin(), f.ints.end()), f.ints.end());
    }

    SplitMix rng{seed ^ 0x6B796F74616B75ull};
    // A day of interest: a boundary and the day before or after it, a month end, a 1st, or any day of the span.
    auto some_day = [&]() -> std::int64_t {
        std::size_t const pick = rng.below(10);
        if (pick < 4 && !bounds.empty()) return bounds[rng.below(bounds.size())] + std::int64_t(rng.below(3)) - 1;
        std::int64_t const d = span_lo + std::int64_t(rng.below(std::size_t(span_hi - span_lo + 1)));
        Date const day = Date::from_days(d);
        if (pick < 6) return month_end(day).days();
        if (pick < 7) return Month::of(day).first_day().days();
        return d;
    };
    // Another date of the same case, relative to `base`: a few days apart, or k months later, at the
    // corresponding day (clamped), the day before or after it, or the end of that month.
    auto relative_day = [&](std::int64_t base) -> std::int64_t {
        std::size_t const pick = rng.below(10);
        if (pick < 2) {
            static constexpr std::int64_t near[] = {-1, 0, 1, 2, 7, 14, 30};
            return base + near[rng.below(std::size(near))];
        }
        std::int64_t const k = 1 + std::int64_t(rng.below(15));
        Date const target = add_months(Date::from_days(base), k, Rounding::clamp);
        switch (rng.below(4)) {
            case 0: return target.days() - 1;
            case 1: return target.days();
            case 2: return target.days() + 1;
            default: return month_end(target).days() + std::int64_t(rng.below(2));
        }
    };

    std::string line;
    std::vector<std::int64_t> dates;
    for (std::size_t i = 0; i < cases; ++i) {
        line = "{\"id\":\"gen-" + std::to_string(i + 1) + "\"";
        dates.clear();
        std::int64_t anchor = 0;
        bool have_anchor = false;
        for (std::size_t fi = 0; fi < facts.size(); ++fi) {
            auto const& f = facts[fi];
            // Every fact is sometimes absent (a decision that needs it is then null).
            if (rng.chance(f.has_default ? 8 : 3)) continue;
            line += ",";
            append_json_string(line, f.name);
            line += ":";
            // The first cases cycle through every value of every enum, so that each appears whatever `cases` is.
            std::size_t const cycle = i + fi * 7;
            switch (f.type.kind) {
                case TypeKind::Bool: line += (i < 64 ? (cycle & 1) : rng.below(2)) ? "true" : "false"; break;
                case TypeKind::Int: line += std::to_string(f.ints[rng.below(f.ints.size())]); break;
                case TypeKind::Enum: {
                    std::size_t const n = f.values.size();
                    append_json_string(line, f.values[i < 4 * n ? cycle % n : rng.below(n)]);
                    break;
                }
                case TypeKind::EnumSet: {
                    std::size_t const n = f.values.size();
                    std::uint64_t mask = 0;
                    switch (rng.below(5)) {
                        case 0: break;                                              // none
                        case 1: mask = n >= 64 ? ~0ull : (1ull << n) - 1; break;    // all
                        case 2: mask = 1ull << (i < 4 * n ? cycle % n : rng.below(n)); break;  // one
                        case 3: mask = (n >= 64 ? ~0ull : (1ull << n) - 1) & ~(1ull << rng.below(n)); break;  // all but one
                        default: mask = rng.next() & (n >= 64 ? ~0ull : (1ull << n) - 1); break;
                    }
                    line += "[";
                    bool firstv = true;
                    for (std::size_t v = 0; v < n; ++v)
                        if ((mask >> v) & 1u) {
                            if (!firstv) line += ",";
                            firstv = false;
                            append_json_string(line, f.values[v]);
                        }
                    line += "]";
                    break;
                }
                case TypeKind::Date: {
                    std::int64_t d;
                    if (!have_anchor) d = some_day();
                    else if (rng.chance(70)) d = relative_day(dates.empty() ? anchor : dates[rng.below(dates.size())]);
                    else d = some_day();
                    if (!have_anchor) anchor = d, have_anchor = true;
                    dates.push_back(d);
                    append_json_string(line, Date::from_days(d).iso());
                    break;
                }
                case TypeKind::Month: {
                    std::int64_t const base = have_anchor ? Month::of(Date::from_days(anchor)).index() : Month::of(Date::from_days(some_day())).index();
                    append_json_string(line, Month::from_index(base + std::int64_t(rng.below(16))).iso());
                    break;
                }
                case TypeKind::MonthSet: {
                    // Months from the first date's month on: complete, empty, missing one, or a random selection.
                    std::int64_t const base = Month::of(Date::from_days(have_anchor ? anchor : some_day())).index();
                    std::int64_t const length = std::int64_t(rng.below(16));
                    std::int64_t const gap = rng.chance(35) ? base + std::int64_t(rng.below(std::size_t(length) + 1)) : -1;
                    bool const random = rng.chance(15), empty = rng.chance(10);
                    line += "[";
                    bool firstm = true;
                    for (std::int64_t m = base; !empty && m <= base + length; ++m) {
                        if (m == gap || (random && rng.chance(30))) continue;
                        if (!firstm) line += ",";
                        firstm = false;
                        append_json_string(line, Month::from_index(m).iso());
                    }
                    line += "]";
                    break;
                }
                case TypeKind::Text:
                case TypeKind::MonthRange: line += "null"; break;
            }
        }
        line += "}";
        emit(line);
    }
}

// ---- reports ---------------------------------------------------------------------------------------------------

namespace {
std::string thousands(std::uint64_t n) {
    std::string s = std::to_string(n);
    for (int i = int(s.size()) - 3; i > 0; i -= 3) s.insert(std::size_t(i), ",");
    return s;
}
std::string percent(std::uint64_t part, std::uint64_t whole) {
    if (whole == 0) return "0%";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f%%", 100.0 * double(part) / double(whole));
    return buf;
}
// Markdown table cells: no pipes, no newlines.
std::string cell(std::string s) {
    for (auto& c : s)
        if (c == '|' || c == '\n') c = ' ';
    return s;
}
std::string unquote(std::string const& id) { return id.size() >= 2 && id.front() == '"' ? id.substr(1, id.size() - 2) : id; }
std::string code(std::string const& s) { return s.empty() ? std::string("—") : "`" + cell(s) + "`"; }
}  // namespace

std::string diff_markdown(DiffReport const& r) {
    std::string o = "# ルール変更の影響 (kyotaku diff)\n\n";
    o += "- 旧: `" + r.old_rules + "`\n- 新: `" + r.new_rules + "`\n";
    o += "- 事例: " + thousands(r.cases) + " 件 (" + r.corpus + ")\n";
    o += "- 答えが一つでも変わった事例: " + thousands(r.changed_cases) + " 件 (" + percent(r.changed_cases, r.cases) + ")\n";
    if (r.unreadable_both) o += "- どちらのルールでも読めない行: " + thousands(r.unreadable_both) + " 件 (比べていません)\n";
    for (auto const& n : r.only_new) o += "- 新しく加わった判定: `" + n + "`\n";
    for (auto const& n : r.only_old) o += "- なくなった判定: `" + n + "`\n";
    if (!r.changed()) {
        o += "\n変わった答えはありません。\n";
        return o;
    }
    o += "\n| 判定 | 変わった件数 | 割合 |\n|---|---:|---:|\n";
    for (auto const& d : r.decisions)
        o += "| " + cell(d.label.empty() ? d.name : d.label + " (" + d.name + ")") + " | " + thousands(d.changed) + " | " +
             percent(d.changed, r.cases) + " |\n";
    for (auto const& d : r.decisions) {
        if (d.changed == 0) continue;
        o += "\n## " + (d.label.empty() ? d.name : d.label + " (" + d.name + ")") + ": " + thousands(d.changed) + " 件\n";
        for (auto const& g : d.groups) {
            o += "\n### " + thousands(g.count) + " 件 — 旧の決め手 " + (g.old_clause.empty() ? std::string("なし (答えが null)") : g.old_clause) +
                 " → 新の決め手 " + (g.new_clause.empty() ? std::string("なし (答えが null)") : g.new_clause) + "\n\n";
            o += "- 旧: " + code(g.old_source) + "\n- 新: " + code(g.new_source) + "\n\n";
            o += "| 旧の答え | 新の答え | 件数 |\n|---|---|---:|\n";
            for (auto const& t : g.transitions) o += "| " + cell(t.from) + " | " + cell(t.to) + " | " + thousands(t.count) + " |\n";
            if (g.other_transitions)
                o += "| ほか " + thousands(g.distinct_transitions - g.transitions.size()) + " 通り | | " + thousands(g.other_transitions) + " |\n";
            o += "\n例:\n";
            for (auto const& e : g.examples)
                o += "- " + (e.id == "null" ? "行 " + std::to_string(e.line) : unquote(e.id)) + ": " + cell(e.from) + " → " + cell(e.to) + "\n  `" +
                     cell(e.facts) + "`\n";
        }
    }
    return o;
}

std::string diff_json(DiffReport const& r) {
    using json = nlohmann::ordered_json;
    json decisions = json::array();
    for (auto const& d : r.decisions) {
        json groups = json::array();
        for (auto const& g : d.groups) {
            json transitions = json::array(), examples = json::array();
            for (auto const& t : g.transitions) transitions.push_back({{"from", t.from}, {"to", t.to}, {"count", t.count}});
            for (auto const& e : g.examples) {
                json id = json::parse(e.id, nullptr, false);  // the case's id as it was written (JSON)
                examples.push_back({{"id", id.is_discarded() ? json() : id}, {"line", e.line}, {"from", e.from}, {"to", e.to}, {"facts", e.facts}});
            }
            groups.push_back({{"count", g.count}, {"old_clause", g.old_clause}, {"new_clause", g.new_clause}, {"old_source", g.old_source},
                              {"new_source", g.new_source}, {"transitions", transitions}, {"other_transitions", g.other_transitions},
                              {"examples", examples}});
        }
        decisions.push_back({{"name", d.name}, {"label", d.label}, {"changed", d.changed}, {"groups", groups}});
    }
    json out = {{"old", r.old_rules}, {"new", r.new_rules}, {"corpus", r.corpus}, {"cases", r.cases}, {"changed_cases", r.changed_cases},
                {"unreadable_both", r.unreadable_both}, {"changed", r.changed()}, {"only_old", r.only_old}, {"only_new", r.only_new},
                {"decisions", decisions}};
    return out.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

}  // namespace kyotaku
