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
#include <optional>
#include <set>
#include <tuple>
#include <unordered_map>

namespace kyotaku {

namespace {
constexpr std::size_t max_transitions_kept = 4096;  // distinct value transitions remembered per group
constexpr std::size_t max_combinations = 4096;      // a decision's fact combinations compared exhaustively
constexpr std::size_t max_errors_kept = 5;          // unreadable lines quoted in the report

struct Side {
    std::shared_ptr<Program const> program;
    JsonlEvaluator reader;
    Evaluator evaluator;
    Activation facts;
    std::string id;
    explicit Side(std::shared_ptr<Program const> p) : program(p), reader(p), evaluator(p), facts(*p) {}
};

struct Group {
    DiffGroup::Kind kind = DiffGroup::Kind::changed;
    std::int64_t old_clause = -1, new_clause = -1;  // -1: no answer on that side
    std::string missing;
    std::uint64_t count = 0;
    std::unordered_map<std::string, std::uint64_t> transitions;  // "from\x1Fto" → count
    std::uint64_t other = 0;
    std::vector<DiffExample> examples;
    std::map<std::string, std::uint64_t> classes;
};

// A decision or export let of both rule sets.
struct Pair {
    std::string name, label;
    bool exported = false;
    TypeKind type = TypeKind::Bool;
    std::uint32_t old_slot = 0, new_slot = 0;
    int old_output = -1, new_output = -1;  // its index among the outputs (decisions), -1 for an export let
    bool raw_comparable = false;  // same type on both sides, not text: compare the raw values
    std::uint64_t changed = 0, became_unknown = 0, became_known = 0;
    std::map<std::tuple<int, std::int64_t, std::int64_t, std::string>, Group> groups;
    std::vector<std::string> shown;  // the facts it reads on either side, by name, in the new rules' order
    std::uint64_t combinations = 0, combinations_changed = 0;
    std::vector<DiffExample> combination_examples;
};

bool same_type(Program const& a, Type ta, Program const& b, Type tb) {
    if (ta.kind != tb.kind) return false;
    if (ta.kind == TypeKind::Enum || ta.kind == TypeKind::EnumSet)
        return a.enums[std::size_t(ta.enum_id)].values == b.enums[std::size_t(tb.enum_id)].values;
    return true;
}

// The value of an answer as people read it: null, or the value (a reason without its file:line).
std::string answer_text(Side& side, std::uint32_t slot, Outcome const& o) {
    if (o.status != Status::ok) return "null";
    auto const& info = side.program->slots[slot];
    if (info.type.kind == TypeKind::EnumSet && o.value == 0) return "{}";
    return side.evaluator.format_value(info.type, o.value, side.facts);
}

// Why an answer is null: the facts that were missing, or the slot without a version in force.
std::string missing_text(Program const& p, Outcome const& o) {
    if (o.status == Status::no_version) return "施行中の version がない: " + p.slots[o.failed_slot].name;
    std::string names;
    for (std::size_t f = 0; f < p.facts.size(); ++f)
        if ((o.missing >> f) & 1u) names += (names.empty() ? "" : ", ") + p.facts[f].name;
    return names;
}

// A clause's reason as written, {名前} left where the values go: what policy staff wrote, not the code.
std::string reason_template(Program const& p, ClauseInfo const& c) {
    std::string out;
    for (auto const& piece : c.because) {
        switch (piece.kind) {
            case TextPiece::Kind::Literal: out += piece.literal; break;
            case TextPiece::Kind::Fact:
                out += "{" + (p.facts[piece.id].label.empty() ? p.facts[piece.id].name : p.facts[piece.id].label) + "}";
                break;
            case TextPiece::Kind::Param: out += "{" + p.params[piece.id].name + "}"; break;
            case TextPiece::Kind::Slot:
                out += "{" + (p.slots[piece.id].label.empty() ? p.slots[piece.id].name : p.slots[piece.id].label) + "}";
                break;
        }
    }
    return out;
}

// A fact's value for people: 和暦 with ISO in brackets for dates, months as YYYY-MM, sets as lists.
std::string fact_value(Side& side, int f) {
    Program const& p = *side.program;
    auto const& info = p.facts[std::size_t(f)];
    if (!side.facts.has(f)) return "(なし)";
    switch (info.type.kind) {
        case TypeKind::Date: return wareki_with_iso(Date::from_days(side.facts.raw(f)));
        case TypeKind::MonthSet: {
            std::string months;
            auto const& bits = side.facts.months(f);
            for (std::int64_t m = MonthBits::base; m < MonthBits::base + MonthBits::size; ++m)
                if (bits.has(m)) months += (months.empty() ? "" : ", ") + Month::from_index(m).iso();
            return months.empty() ? "なし" : months;
        }
        default: return side.evaluator.format_value(info.type, side.facts.raw(f), side.facts);
    }
}

std::string value_of(Program const& p, Type t, std::int64_t v) {
    switch (t.kind) {
        case TypeKind::Bool: return v ? "true" : "false";
        case TypeKind::Int: return std::to_string(v);
        case TypeKind::Date: return Date::from_days(v).iso();
        case TypeKind::Month: return Month::from_index(v).iso();
        case TypeKind::Enum: {
            auto const& vals = p.enums[std::size_t(t.enum_id)].values;
            return v >= 0 && std::size_t(v) < vals.size() ? vals[std::size_t(v)] : "?";
        }
        case TypeKind::EnumSet: {
            auto const& vals = p.enums[std::size_t(t.enum_id)].values;
            std::string out;
            for (std::size_t i = 0; i < vals.size(); ++i)
                if ((std::uint64_t(v) >> i) & 1u) out += (out.empty() ? "" : ", ") + vals[i];
            return "{" + out + "}";
        }
        default: return std::to_string(v);
    }
}
}  // namespace

bool DiffReport::changed() const {
    if (changed_cases > 0 || !only_old.empty() || !only_new.empty() || !values.empty()) return true;
    for (auto const& d : decisions)
        if (d.combinations_changed) return true;
    return false;
}

struct RuleDiff::Impl {
    DiffOptions options;
    Side old_side, new_side;
    std::vector<Pair> pairs;
    std::vector<std::string> only_old, only_new;
    std::vector<ValueChange> values;
    std::uint64_t cases = 0, changed_cases = 0, unreadable_both = 0;
    std::vector<DiffError> errors;
    std::vector<std::pair<std::string, std::uint64_t>> classes;
    // Lines only one side can read: reported as a pseudo-decision.
    Pair unreadable;

    static bool compared(SlotInfo const& s) { return s.decision || s.exported; }

    Impl(std::shared_ptr<Program const> o, std::shared_ptr<Program const> n, DiffOptions opt)
        : options(opt), old_side(std::move(o)), new_side(std::move(n)) {
        Program const& po = *old_side.program;
        Program const& pn = *new_side.program;
        unreadable.name = "(読めない行)";
        // A key of the other rule set's facts is not an error on this side (a rule change may add or drop a fact).
        std::vector<std::string> old_facts, new_facts;
        for (auto const& f : po.facts) old_facts.push_back(f.name);
        for (auto const& f : pn.facts) new_facts.push_back(f.name);
        old_side.reader.allow_keys(new_facts);
        new_side.reader.allow_keys(old_facts);
        auto output_index = [](Program const& p, std::uint32_t slot) {
            auto const it = std::find(p.outputs.begin(), p.outputs.end(), slot);
            return it == p.outputs.end() ? -1 : int(it - p.outputs.begin());
        };
        for (std::uint32_t j = 0; j < pn.slots.size(); ++j) {
            auto const& ns = pn.slots[j];
            if (!compared(ns)) continue;
            int const os = po.find_slot(ns.name);
            if (os < 0 || !compared(po.slots[std::size_t(os)])) {
                only_new.push_back(ns.name);
                continue;
            }
            auto const& old_slot = po.slots[std::size_t(os)];
            Pair pair;
            pair.name = ns.name;
            pair.label = ns.label.empty() ? old_slot.label : ns.label;
            pair.exported = !ns.decision;
            pair.type = ns.type.kind;
            pair.old_slot = std::uint32_t(os);
            pair.new_slot = j;
            pair.old_output = output_index(po, pair.old_slot);
            pair.new_output = output_index(pn, j);
            pair.raw_comparable = ns.type.kind != TypeKind::Text && same_type(po, old_slot.type, pn, ns.type);
            for (std::size_t f = 0; f < pn.facts.size(); ++f)
                if ((ns.fact_deps >> f) & 1u) pair.shown.push_back(pn.facts[f].name);
            for (std::size_t f = 0; f < po.facts.size(); ++f)
                if (((old_slot.fact_deps >> f) & 1u) &&
                    std::find(pair.shown.begin(), pair.shown.end(), po.facts[f].name) == pair.shown.end())
                    pair.shown.push_back(po.facts[f].name);
            pairs.push_back(std::move(pair));
        }
        for (auto const& os : po.slots) {
            if (!compared(os)) continue;
            int const ns = pn.find_slot(os.name);
            if (ns < 0 || !compared(pn.slots[std::size_t(ns)])) only_old.push_back(os.name);
        }
        compare_values();
        for (auto& pair : pairs) compare_combinations(pair);
    }

    // Params and fact defaults, as values: a change is reported even when no case shows it.
    void compare_values() {
        Program const& po = *old_side.program;
        Program const& pn = *new_side.program;
        auto param_text = [](Program const& p, int i) {
            return i < 0 ? std::string() : value_of(p, p.params[std::size_t(i)].type, p.params[std::size_t(i)].value);
        };
        for (auto const& prm : pn.params) {
            std::string const from = param_text(po, po.find_param(prm.name)),
                              to = param_text(pn, pn.find_param(prm.name));
            if (from != to) values.push_back(ValueChange{prm.name, "param", from, to});
        }
        for (auto const& prm : po.params)
            if (pn.find_param(prm.name) < 0)
                values.push_back(ValueChange{prm.name, "param", param_text(po, po.find_param(prm.name)), ""});
        auto default_text = [](Program const& p, int f) {
            if (f < 0 || !p.facts[std::size_t(f)].has_default) return std::string();
            return value_of(p, p.facts[std::size_t(f)].type, p.facts[std::size_t(f)].default_value);
        };
        for (auto const& f : pn.facts) {
            std::string const from = default_text(po, po.find_fact(f.name)),
                              to = default_text(pn, pn.find_fact(f.name));
            if (from != to) values.push_back(ValueChange{f.name, "fact default", from, to});
        }
        for (auto const& f : po.facts)
            if (pn.find_fact(f.name) < 0 && f.has_default)
                values.push_back(ValueChange{f.name, "fact default", default_text(po, po.find_fact(f.name)), ""});
    }

    // A decision or export let that reads only enum and bool facts, with few combinations, is compared on every
    // combination (the values both rule sets know).
    void compare_combinations(Pair& pair) {
        Program const& po = *old_side.program;
        Program const& pn = *new_side.program;
        struct Dim {
            int old_fact, new_fact;
            std::vector<std::string> values;
        };
        std::vector<Dim> dims;
        std::size_t total = 1;
        for (auto const& name : pair.shown) {
            int const of = po.find_fact(name), nf = pn.find_fact(name);
            if (of < 0 || nf < 0) return;
            Type const ot = po.facts[std::size_t(of)].type, nt = pn.facts[std::size_t(nf)].type;
            if (ot.kind != nt.kind || (nt.kind != TypeKind::Enum && nt.kind != TypeKind::Bool)) return;
            Dim d{of, nf, {}};
            if (nt.kind == TypeKind::Bool) d.values = {"false", "true"};
            else
                for (auto const& v : pn.enums[std::size_t(nt.enum_id)].values)
                    if (po.find_enum_value(ot.enum_id, v) >= 0) d.values.push_back(v);
            if (d.values.empty()) return;
            total *= d.values.size();
            if (total > max_combinations) return;
            dims.push_back(std::move(d));
        }
        std::vector<std::size_t> at(dims.size(), 0);
        for (std::size_t k = 0; k < total; ++k) {
            std::size_t rest = k;
            for (std::size_t i = 0; i < dims.size(); ++i) {
                at[i] = rest % dims[i].values.size();
                rest /= dims[i].values.size();
            }
            std::string line = "{";
            for (Side* side : {&old_side, &new_side}) {
                side->facts.clear();
                for (std::size_t i = 0; i < dims.size(); ++i) {
                    int const f = side == &old_side ? dims[i].old_fact : dims[i].new_fact;
                    std::string const& v = dims[i].values[at[i]];
                    if (side->program->facts[std::size_t(f)].type.kind == TypeKind::Bool)
                        side->facts.set_raw(f, v == "true");
                    else
                        side->facts.set_raw(
                            f, side->program->find_enum_value(side->program->facts[std::size_t(f)].type.enum_id, v));
                }
            }
            for (std::size_t i = 0; i < dims.size(); ++i) {
                if (i) line += ",";
                append_json_string(line, pn.facts[std::size_t(dims[i].new_fact)].name);
                line += ":";
                if (dims[i].values[at[i]] == "true" || dims[i].values[at[i]] == "false") line += dims[i].values[at[i]];
                else append_json_string(line, dims[i].values[at[i]]);
            }
            line += "}";
            Outcome const a = old_side.evaluator.evaluate_slot(old_side.facts, pair.old_slot);
            Outcome const b = new_side.evaluator.evaluate_slot(new_side.facts, pair.new_slot);
            std::string from = answer_text(old_side, pair.old_slot, a), to = answer_text(new_side, pair.new_slot, b);
            ++pair.combinations;
            if (from == to) continue;
            ++pair.combinations_changed;
            if (pair.combination_examples.size() < options.examples)
                pair.combination_examples.push_back(example("null", 0, std::move(from), std::move(to), line, pair));
        }
    }

    DiffExample example(std::string const& id, std::uint64_t line_number, std::string from, std::string to,
                        std::string_view line, Pair const& pair) {
        DiffExample e{id, line_number, std::move(from), std::move(to), std::string(line.substr(0, 2000)), {}};
        for (auto const& name : pair.shown) {
            Side& side = new_side.program->find_fact(name) >= 0 ? new_side : old_side;
            int const f = side.program->find_fact(name);
            e.shown.push_back(DiffFact{name, side.program->facts[std::size_t(f)].label, fact_value(side, f)});
        }
        return e;
    }

    void record(Pair& pair, DiffGroup::Kind kind, std::int64_t old_clause, std::int64_t new_clause, std::string missing,
                std::string from, std::string to, std::string_view line, std::uint64_t line_number,
                std::string const& id, std::string const& case_class) {
        (kind == DiffGroup::Kind::changed          ? pair.changed
         : kind == DiffGroup::Kind::became_unknown ? pair.became_unknown
                                                   : pair.became_known)++;
        Group& g = pair.groups[{int(kind), old_clause, new_clause, missing}];
        g.kind = kind;
        g.old_clause = old_clause;
        g.new_clause = new_clause;
        g.missing = std::move(missing);
        ++g.count;
        if (!case_class.empty()) ++g.classes[case_class];
        std::string key = from + '\x1F' + to;
        if (auto it = g.transitions.find(key); it != g.transitions.end()) ++it->second;
        else if (g.transitions.size() < max_transitions_kept) g.transitions.emplace(std::move(key), 1);
        else ++g.other;
        if (g.examples.size() < options.examples)
            g.examples.push_back(example(id, line_number, std::move(from), std::move(to), line, pair));
    }

    Outcome outcome(Side& side, int output, std::uint32_t slot) {
        return output >= 0 ? side.evaluator.outcome(std::size_t(output))
                           : side.evaluator.evaluate_slot(side.facts, slot);
    }

    void add(std::string_view line, std::uint64_t line_number, std::string const& case_class) {
        if (line.find_first_not_of(" \t\r") == std::string_view::npos) return;
        ++cases;
        if (!case_class.empty()) {
            auto it =
                std::find_if(classes.begin(), classes.end(), [&](auto const& c) { return c.first == case_class; });
            if (it == classes.end()) classes.emplace_back(case_class, 1);
            else ++it->second;
        }
        std::string const old_error = old_side.reader.read_facts(line, old_side.facts, old_side.id);
        std::string const new_error = new_side.reader.read_facts(line, new_side.facts, new_side.id);
        std::string const& id = new_side.id != "null" ? new_side.id : old_side.id;
        if (!old_error.empty() && !new_error.empty()) {
            ++unreadable_both;
            if (errors.size() < max_errors_kept) errors.push_back(DiffError{line_number, id, new_error});
            return;
        }
        if (!old_error.empty() || !new_error.empty()) {
            ++changed_cases;
            record(unreadable, DiffGroup::Kind::changed, -1, -1, "",
                   old_error.empty() ? "読める" : "読めない: " + old_error,
                   new_error.empty() ? "読める" : "読めない: " + new_error, line, line_number, id, case_class);
            return;
        }
        old_side.evaluator.evaluate(old_side.facts);
        new_side.evaluator.evaluate(new_side.facts);
        bool changed = false;
        for (auto& pair : pairs) {
            Outcome const a = outcome(old_side, pair.old_output, pair.old_slot);
            Outcome const b = outcome(new_side, pair.new_output, pair.new_slot);
            bool const a_ok = a.status == Status::ok, b_ok = b.status == Status::ok;
            if (!a_ok && !b_ok) continue;
            if (a_ok && b_ok && pair.raw_comparable && a.value == b.value) continue;
            std::string from = answer_text(old_side, pair.old_slot, a), to = answer_text(new_side, pair.new_slot, b);
            if (from == to) continue;
            changed = true;
            DiffGroup::Kind const kind = a_ok && b_ok ? DiffGroup::Kind::changed
                                         : a_ok       ? DiffGroup::Kind::became_unknown
                                                      : DiffGroup::Kind::became_known;
            std::string missing = !b_ok   ? missing_text(*new_side.program, b)
                                  : !a_ok ? missing_text(*old_side.program, a)
                                          : std::string();
            record(pair, kind, a_ok ? std::int64_t(a.clause) : -1, b_ok ? std::int64_t(b.clause) : -1,
                   std::move(missing), std::move(from), std::move(to), line, line_number, id, case_class);
        }
        changed_cases += changed;
    }

    DecisionDiff summarize(Pair const& pair) const {
        Program const& po = *old_side.program;
        Program const& pn = *new_side.program;
        DecisionDiff d;
        d.name = pair.name;
        d.label = pair.label;
        d.exported = pair.exported;
        d.type = pair.type;
        d.changed = pair.changed;
        d.became_unknown = pair.became_unknown;
        d.became_known = pair.became_known;
        d.combinations = pair.combinations;
        d.combinations_changed = pair.combinations_changed;
        d.combination_examples = pair.combination_examples;
        for (auto const& [key, g] : pair.groups) {
            DiffGroup out;
            out.kind = g.kind;
            out.missing = g.missing;
            if (g.old_clause >= 0) {
                auto const& c = po.clauses[std::size_t(g.old_clause)];
                out.old_clause = po.location(c.loc);
                out.old_source = c.source.substr(0, c.source.find('\n'));
                out.old_reason = reason_template(po, c);
            }
            if (g.new_clause >= 0) {
                auto const& c = pn.clauses[std::size_t(g.new_clause)];
                out.new_clause = pn.location(c.loc);
                out.new_source = c.source.substr(0, c.source.find('\n'));
                out.new_reason = reason_template(pn, c);
            }
            out.count = g.count;
            out.distinct_transitions = g.transitions.size() + (g.other ? 1 : 0);
            std::vector<std::pair<std::string, std::uint64_t>> ts(g.transitions.begin(), g.transitions.end());
            std::sort(ts.begin(), ts.end(), [](auto const& x, auto const& y) {
                return x.second != y.second ? x.second > y.second : x.first < y.first;
            });
            out.other_transitions = g.other;
            for (std::size_t i = 0; i < ts.size(); ++i) {
                if (i >= options.transitions) {
                    out.other_transitions += ts[i].second;
                    continue;
                }
                auto const sep = ts[i].first.find('\x1F');
                out.transitions.push_back(
                    DiffTransition{ts[i].first.substr(0, sep), ts[i].first.substr(sep + 1), ts[i].second});
            }
            out.examples = g.examples;
            out.classes.assign(g.classes.begin(), g.classes.end());
            std::stable_sort(out.classes.begin(), out.classes.end(),
                             [](auto const& x, auto const& y) { return x.second > y.second; });
            d.groups.push_back(std::move(out));
        }
        std::stable_sort(d.groups.begin(), d.groups.end(), [](auto const& x, auto const& y) {
            return x.kind != y.kind ? x.kind < y.kind : x.count > y.count;
        });
        return d;
    }
};

RuleDiff::RuleDiff(std::shared_ptr<Program const> old_rules, std::shared_ptr<Program const> new_rules,
                   DiffOptions options)
    : impl_(std::make_unique<Impl>(std::move(old_rules), std::move(new_rules), options)) {}
RuleDiff::~RuleDiff() = default;

void RuleDiff::add(std::string_view line, std::uint64_t line_number) { impl_->add(line, line_number, {}); }
void RuleDiff::add(std::string_view line, std::uint64_t line_number, std::string const& case_class) {
    impl_->add(line, line_number, case_class);
}

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
            if (impl_->errors.size() < max_errors_kept)
                impl_->errors.push_back(
                    DiffError{number, "null", "行が長すぎます (1 MiB まで) / line too long (1 MiB at most)"});
            continue;
        }
        impl_->add(line, number, {});
    }
    return impl_->cases - before;
}

DiffReport RuleDiff::report() const {
    DiffReport r;
    r.cases = impl_->cases;
    r.changed_cases = impl_->changed_cases;
    r.unreadable_both = impl_->unreadable_both;
    r.unreadable_examples = impl_->errors;
    r.only_old = impl_->only_old;
    r.only_new = impl_->only_new;
    r.values = impl_->values;
    r.classes = impl_->classes;
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

namespace {
// The facts of both rule sets, by name (enum values: the union, the old rules' order first).
std::vector<FactSpec> facts_of(Program const& a, Program const& b) {
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
    return facts;
}
}  // namespace

void generate_corpus(Program const& a, Program const& b, std::size_t cases, std::uint64_t seed,
                     std::function<void(std::string_view line)> const& emit) {
    std::vector<FactSpec> facts = facts_of(a, b);
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
                        // all but one
                        case 3: mask = (n >= 64 ? ~0ull : (1ull << n) - 1) & ~(1ull << rng.below(n)); break;
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
                    std::int64_t const base = have_anchor ? Month::of(Date::from_days(anchor)).index()
                                                          : Month::of(Date::from_days(some_day())).index();
                    append_json_string(line, Month::from_index(base + std::int64_t(rng.below(16))).iso());
                    break;
                }
                case TypeKind::MonthSet: {
                    // Months from the first date's month on: complete, empty, missing one, or a random selection.
                    std::int64_t const base = Month::of(Date::from_days(have_anchor ? anchor : some_day())).index();
                    std::int64_t const length = std::int64_t(rng.below(16));
                    std::int64_t const gap =
                        rng.chance(35) ? base + std::int64_t(rng.below(std::size_t(length) + 1)) : -1;
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

// ---- the realistic corpus ------------------------------------------------------------------------------------------

namespace {
// One rule set's view of a candidate case: its reader and its `assume` declarations.
struct Realism {
    std::shared_ptr<Program const> program;
    JsonlEvaluator reader;
    Evaluator evaluator;
    Activation facts;
    std::string id;
    explicit Realism(Program const& p, std::vector<std::string> other_facts)
        : program(std::make_shared<Program const>(p)), reader(program), evaluator(program), facts(*program) {
        reader.allow_keys(std::move(other_facts));
    }
    // The case satisfies every assumption of these rules (each answered, and true).
    bool holds(std::string_view line) {
        if (!reader.read_facts(line, facts, id).empty()) return false;
        for (auto const& a : program->assumptions) {
            Outcome const o = evaluator.evaluate_slot(facts, a.slot);
            if (o.status != Status::ok || o.value == 0) return false;
        }
        return true;
    }
};
}  // namespace

void generate_realistic_corpus(Program const& a, Program const& b, std::size_t cases, std::uint64_t seed,
                               std::function<void(std::string_view line, std::string const& case_class)> const& emit) {
    std::vector<FactSpec> const facts = facts_of(a, b);
    std::vector<std::string> names;
    for (auto const& f : facts) names.push_back(f.name);
    Realism old_side(a, names), new_side(b, names);
    // The period the rules are about: from the earliest date they name (プレ運用開始日 …) up to their horizon, else
    // three years on.
    std::int64_t const lo_day = day_of(2000, 1, 1), hi_day = day_of(2100, 12, 31);
    std::optional<std::int64_t> earliest;
    for (Program const* p : {&a, &b})
        for (auto k : p->consts)
            if (k >= lo_day && k <= hi_day && (!earliest || k < *earliest)) earliest = k;
    std::int64_t const start = earliest.value_or(day_of(2024, 1, 1));
    std::int64_t horizon = std::min(a.horizon, b.horizon);
    if (horizon == std::numeric_limits<std::int64_t>::max() || horizon <= start) horizon = start + 3 * 365;
    // The as-of fact (the query date) and the first other date fact (the first visit): a case happens some time after
    // its first date; every other date lies around the as-of date.
    int const asof = b.asof_fact >= 0 ? b.asof_fact : a.asof_fact;
    std::string const asof_name = asof < 0 ? std::string() : (b.asof_fact >= 0 ? b : a).facts[std::size_t(asof)].name;
    std::string anchor_name;
    for (auto const& f : facts)
        if (f.type.kind == TypeKind::Date && f.name != asof_name) {
            anchor_name = f.name;
            break;
        }
    struct Scenario {
        char const* label;
        unsigned percent;
        std::int64_t lo, hi;  // days from the first date to the as-of date
    };
    static constexpr Scenario scenarios[] = {{"初回と同じ日", 10, 0, 0},
                                             {"初回から3か月以内", 35, 1, 91},
                                             {"初回から3〜6か月", 25, 92, 183},
                                             {"初回から6か月〜2年", 30, 184, 730}};
    SplitMix rng{seed ^ 0x7265616c697374ull};
    std::string line;
    for (std::size_t i = 0; i < cases; ++i) {
        std::string case_class;
        for (int attempt = 0; attempt < 200; ++attempt) {
            unsigned roll = unsigned(rng.below(100));
            Scenario const* sc = &scenarios[0];
            for (auto const& x : scenarios) {
                if (roll < x.percent) {
                    sc = &x;
                    break;
                }
                roll -= x.percent;
            }
            std::int64_t const anchor =
                start + std::int64_t(rng.below(std::size_t(std::max<std::int64_t>(1, horizon - start))));
            std::int64_t const day =
                std::min(horizon, anchor + sc->lo + std::int64_t(rng.below(std::size_t(sc->hi - sc->lo + 1))));
            std::string claims;
            line = "{\"id\":\"real-" + std::to_string(i + 1) + "\"";
            for (auto const& f : facts) {
                // Facts with a stated default are sometimes left to it; every other fact is present (a realistic
                // record has its core facts).
                if (f.has_default && rng.chance(30)) continue;
                line += ",";
                append_json_string(line, f.name);
                line += ":";
                switch (f.type.kind) {
                    case TypeKind::Bool: line += rng.below(2) ? "true" : "false"; break;
                    case TypeKind::Int: line += std::to_string(rng.below(4)); break;
                    case TypeKind::Enum: append_json_string(line, f.values[rng.below(f.values.size())]); break;
                    case TypeKind::EnumSet: {
                        line += "[";
                        bool first = true;
                        for (auto const& v : f.values)
                            if (rng.chance(50)) {
                                if (!first) line += ",";
                                first = false;
                                append_json_string(line, v);
                            }
                        line += "]";
                        break;
                    }
                    case TypeKind::Date: {
                        std::int64_t d = day;
                        if (f.name == anchor_name) d = anchor;
                        else if (f.name != asof_name && !rng.chance(40)) d = day - 7 + std::int64_t(rng.below(128));
                        append_json_string(line, Date::from_days(d).iso());
                        break;
                    }
                    case TypeKind::Month: append_json_string(line, Month::of(Date::from_days(day)).iso()); break;
                    case TypeKind::MonthSet: {
                        // Reviewed claims from the first date's month up to a month or two before the as-of date's:
                        // every month, one month missing (a late claim), none, or all but the first month.
                        std::int64_t const base = Month::of(Date::from_days(anchor)).index();
                        std::int64_t const last =
                            Month::of(Date::from_days(day)).index() - 1 - std::int64_t(rng.below(2));
                        unsigned const shape = unsigned(rng.below(100));
                        std::int64_t gap = -1, from = base;
                        if (last < base) claims = "まだ審査結果なし";
                        else if (shape < 65) claims = "毎月あり";
                        else if (shape < 85)
                            claims = "一月抜け", gap = base + std::int64_t(rng.below(std::size_t(last - base + 1)));
                        else if (shape < 95) claims = "なし", from = last + 1;
                        else claims = "初回の月なし", from = base + 1;
                        line += "[";
                        bool first = true;
                        for (std::int64_t m = from; m <= last; ++m) {
                            if (m == gap) continue;
                            if (!first) line += ",";
                            first = false;
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
            case_class = std::string(sc->label) + (claims.empty() ? std::string() : " / 審査済みレセプト: " + claims);
            if (old_side.holds(line) && new_side.holds(line)) break;
            if (attempt == 199) case_class = "(assume を満たす事例を作れません) " + case_class;
        }
        emit(line, case_class);
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
std::string unquote(std::string const& id) {
    return id.size() >= 2 && id.front() == '"' ? id.substr(1, id.size() - 2) : id;
}
std::string named(std::string const& name, std::string const& label) {
    return label.empty() || label == name ? name : label + " (" + name + ")";
}
// An answer for people: dates in 和暦 with ISO in brackets, null as 「答えなし (null)」.
std::string human(std::string const& value, TypeKind type) {
    if (value == "null") return "答えなし (null)";
    if (type == TypeKind::Date)
        if (auto d = parse_iso_date_fast(value)) return wareki_with_iso(*d);
    return value;
}
std::string transition_text(DiffGroup const& g, TypeKind type) {
    if (g.transitions.size() == 1 && g.other_transitions == 0)
        return human(g.transitions[0].from, type) + " → " + human(g.transitions[0].to, type);
    return thousands(std::uint64_t(g.distinct_transitions)) + " 通りの変化";
}
std::string decider(std::string const& reason, std::string const& source, std::string const& where) {
    if (where.empty()) return "なし (答えなし)";
    return (reason.empty() ? "`" + cell(source) + "`" : "「" + cell(reason) + "」") + " (" + where + ")";
}
void example_table(std::string& o, DiffExample const& e, TypeKind type, std::string const& rules_hint) {
    std::string const who = e.line == 0      ? std::string("組合せ")
                            : e.id == "null" ? "行 " + std::to_string(e.line)
                                             : unquote(e.id);
    o += "\n例 " + who + " (" + human(e.from, type) + " → " + human(e.to, type) + "):\n\n| 事実 | 値 |\n|---|---|\n";
    for (auto const& f : e.shown) o += "| " + cell(named(f.name, f.label)) + " | " + cell(f.value) + " |\n";
    o += "\n<details><summary>この事例を説明する (kyotaku explain)</summary>\n\n```sh\nkyotaku explain --rules " +
         rules_hint + " '" + e.facts + "'\n```\n</details>\n";
}
constexpr std::size_t groups_shown = 6;
}  // namespace

std::string diff_markdown(DiffReport const& r) {
    std::string o = "# ルール変更の影響 (kyotaku diff)\n\n## まとめ\n\n";
    o += "- 旧: `" + r.old_rules + "` → 新: `" + r.new_rules + "`\n";
    o += "- 事例: " + thousands(r.cases) + " 件 (" + r.corpus + ")\n";
    if (r.cases == 0) o += "- **事例がありません。何も比べていません (エラー)**\n";
    if (r.unreadable_both)
        o += "- **どちらのルールでも読めない行: " + thousands(r.unreadable_both) +
             " 件。比べていません (エラー: 事例のファイルを直してください)**\n";
    std::uint64_t changed = 0, unknown = 0;
    for (auto const& d : r.decisions) {
        changed += d.changed;
        unknown += d.became_unknown;
    }
    o += "- 答えが一つでも変わった事例: " + thousands(r.changed_cases) + " 件 (" + percent(r.changed_cases, r.cases) +
         ")\n";
    if (changed || unknown)
        o += "  (判定・export let ごとの数の合計: 答えが変わった " + thousands(changed) +
             "、答えられなくなった (null) " + thousands(unknown) + ")\n";
    for (auto const& v : r.values)
        o += "- " + std::string(v.kind == "param" ? "方針の値 (param) " : "事実の既定値 ") + "`" + v.name +
             "`: " + (v.from.empty() ? "(なし)" : v.from) + " → " + (v.to.empty() ? "(なし)" : v.to) + "\n";
    for (auto const& d : r.decisions)
        if (d.combinations_changed)
            o += "- " + named(d.name, d.label) + ": 読む事実のすべての組合せ " + thousands(d.combinations) +
                 " 通りのうち " + thousands(d.combinations_changed) + " 通りで答えが変わります (事例になくても)\n";
    for (auto const& n : r.only_new) o += "- 新しく加わった判定・export let: `" + n + "`\n";
    for (auto const& n : r.only_old) o += "- なくなった判定・export let: `" + n + "`\n";
    if (!r.changed() && !r.corpus_error()) {
        o += "\n変わった答えはありません (判定、export let、param、既定値のどれも)。\n";
        return o;
    }
    if (!r.unreadable_examples.empty()) {
        o += "\n### 読めない行\n\n| 行 | id | エラー |\n|---:|---|---|\n";
        for (auto const& e : r.unreadable_examples)
            o += "| " + std::to_string(e.line) + " | " + cell(unquote(e.id)) + " | " + cell(e.error) + " |\n";
    }
    if (!r.classes.empty()) {
        o += "\n事例の種類:\n\n| 種類 | 件数 | 割合 |\n|---|---:|---:|\n";
        for (auto const& [name, count] : r.classes)
            o += "| " + cell(name) + " | " + thousands(count) + " | " + percent(count, r.cases) + " |\n";
    }
    // Only what changed in the table; the rest named on one line.
    std::string same;
    o += "\n| 判定・export let | 答えが変わった | 答えられなくなった (null) | 答えられるようになった | 事例の割合 "
         "|\n|---|---:|---:|---:|---:|\n";
    for (auto const& d : r.decisions) {
        if (d.total() == 0 && d.combinations_changed == 0) {
            same += (same.empty() ? "" : "、") + named(d.name, d.label);
            continue;
        }
        o += "| " + cell(named(d.name, d.label)) + (d.exported ? " (export let)" : "") + " | " + thousands(d.changed) +
             " | " + thousands(d.became_unknown) + " | " + thousands(d.became_known) + " | " +
             percent(d.total(), r.cases) + " |\n";
    }
    if (!same.empty()) o += "\n答えが変わらなかったもの: " + same + "\n";
    for (auto const& d : r.decisions) {
        if (d.total() == 0 && d.combinations_changed == 0) continue;
        o += "\n## " + named(d.name, d.label) + ": " + thousands(d.total()) + " 件 (" + percent(d.total(), r.cases) +
             ")\n";
        std::size_t shown = 0;
        std::uint64_t rest_cases = 0;
        for (auto const& g : d.groups) {
            if (shown == groups_shown) {
                rest_cases += g.count;
                continue;
            }
            ++shown;
            char const* what = g.kind == DiffGroup::Kind::changed          ? "答えが変わった"
                               : g.kind == DiffGroup::Kind::became_unknown ? "答えられなくなった"
                                                                           : "答えられるようになった";
            o += "\n### " + std::string(what) + " " + thousands(g.count) + " 件 (" + percent(g.count, r.cases) +
                 "): " + transition_text(g, d.type) + "\n\n";
            o += "- 旧の決め手: " + decider(g.old_reason, g.old_source, g.old_clause) + "\n";
            o += "- 新の決め手: " + decider(g.new_reason, g.new_source, g.new_clause) + "\n";
            if (!g.missing.empty()) o += "- 足りない事実: " + g.missing + "\n";
            if (!g.classes.empty()) {
                o += "- 事例の種類:";
                for (std::size_t k = 0; k < g.classes.size() && k < 4; ++k)
                    o +=
                        std::string(k ? "、" : " ") + g.classes[k].first + " " + thousands(g.classes[k].second) + " 件";
                if (g.classes.size() > 4) o += " ほか";
                o += "\n";
            }
            if (g.transitions.size() > 1 || g.other_transitions) {
                o += "\n| 旧の答え | 新の答え | 件数 |\n|---|---|---:|\n";
                for (auto const& t : g.transitions)
                    o += "| " + cell(human(t.from, d.type)) + " | " + cell(human(t.to, d.type)) + " | " +
                         thousands(t.count) + " |\n";
                if (g.other_transitions)
                    o += "| ほか " + thousands(g.distinct_transitions - g.transitions.size()) + " 通り | | " +
                         thousands(g.other_transitions) + " |\n";
            }
            for (auto const& e : g.examples) example_table(o, e, d.type, r.new_rules);
        }
        if (rest_cases)
            o += "\nほか " + thousands(d.groups.size() - groups_shown) + " 組 (" + thousands(rest_cases) +
                 " 件): `--format json` にすべてあります\n";
        if (d.combinations_changed) {
            o += "\n### すべての組合せ: " + thousands(d.combinations) + " 通りのうち " +
                 thousands(d.combinations_changed) + " 通りで答えが変わります\n";
            for (auto const& e : d.combination_examples) example_table(o, e, d.type, r.new_rules);
        }
    }
    return o;
}

std::string diff_json(DiffReport const& r) {
    using json = nlohmann::ordered_json;
    auto examples_json = [](std::vector<DiffExample> const& list) {
        json examples = json::array();
        for (auto const& e : list) {
            json id = json::parse(e.id, nullptr, false);  // the case's id as it was written (JSON)
            json shown = json::array();
            for (auto const& f : e.shown) shown.push_back({{"name", f.name}, {"label", f.label}, {"value", f.value}});
            examples.push_back({{"id", id.is_discarded() ? json() : id},
                                {"line", e.line},
                                {"from", e.from},
                                {"to", e.to},
                                {"facts", e.facts},
                                {"shown", shown}});
        }
        return examples;
    };
    json decisions = json::array();
    for (auto const& d : r.decisions) {
        json groups = json::array();
        for (auto const& g : d.groups) {
            json transitions = json::array();
            for (auto const& t : g.transitions)
                transitions.push_back({{"from", t.from}, {"to", t.to}, {"count", t.count}});
            char const* kind = g.kind == DiffGroup::Kind::changed          ? "changed"
                               : g.kind == DiffGroup::Kind::became_unknown ? "became_unknown"
                                                                           : "became_known";
            groups.push_back({{"kind", kind},
                              {"count", g.count},
                              {"old_clause", g.old_clause},
                              {"new_clause", g.new_clause},
                              {"old_source", g.old_source},
                              {"new_source", g.new_source},
                              {"old_reason", g.old_reason},
                              {"new_reason", g.new_reason},
                              {"missing", g.missing},
                              {"transitions", transitions},
                              {"other_transitions", g.other_transitions},
                              {"examples", examples_json(g.examples)},
                              {"classes", g.classes}});
        }
        decisions.push_back({{"name", d.name},
                             {"label", d.label},
                             {"exported", d.exported},
                             {"changed", d.changed},
                             {"became_unknown", d.became_unknown},
                             {"became_known", d.became_known},
                             {"combinations", d.combinations},
                             {"combinations_changed", d.combinations_changed},
                             {"combination_examples", examples_json(d.combination_examples)},
                             {"groups", groups}});
    }
    json values = json::array();
    for (auto const& v : r.values)
        values.push_back({{"name", v.name}, {"kind", v.kind}, {"from", v.from}, {"to", v.to}});
    json unreadable = json::array();
    for (auto const& e : r.unreadable_examples) {
        json id = json::parse(e.id, nullptr, false);
        unreadable.push_back({{"line", e.line}, {"id", id.is_discarded() ? json() : id}, {"error", e.error}});
    }
    json classes = json::array();
    for (auto const& [name, count] : r.classes) classes.push_back({{"class", name}, {"count", count}});
    json out = {{"old", r.old_rules},
                {"new", r.new_rules},
                {"corpus", r.corpus},
                {"cases", r.cases},
                {"changed_cases", r.changed_cases},
                {"unreadable_both", r.unreadable_both},
                {"unreadable", unreadable},
                {"corpus_error", r.corpus_error()},
                {"changed", r.changed()},
                {"only_old", r.only_old},
                {"only_new", r.only_new},
                {"values", values},
                {"classes", classes},
                {"decisions", decisions}};
    return out.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

}  // namespace kyotaku
