// explain: one case → a Japanese trace that policy staff can read.
//
// Compact (the default): the facts on a few lines; for each decision (by its name for people when the rule file
// gives one) the value, the clause that decided (file:line and the clause), its reason, and the clauses passed
// over, each with the values its condition compared; then every intermediate value once, in the order the rule
// files state them (起算日 → 満了日 → 末日 …). Full (`--full`): the long form, every decision with its own list.
#include "kyotaku/engine.hpp"
#include "kyotaku/jsonl.hpp"

#include <algorithm>
#include <limits>
#include <sstream>
#include <tuple>

namespace kyotaku {

namespace {
std::string first_line(std::string const& s) { return s.substr(0, s.find('\n')); }

// "file.rules:12" → ":12" when the file is the decision's own.
std::string short_location(Program const& p, SourceLoc const& loc, std::uint16_t own_file) {
    return loc.file == own_file ? ":" + std::to_string(loc.line) : p.location(loc);
}

std::string month_set_text(Activation const& facts, int f) {
    std::string months;
    auto const& bits = facts.months(f);
    for (std::int64_t m = MonthBits::base; m < MonthBits::base + MonthBits::size; ++m)
        if (bits.has(m)) months += (months.empty() ? "" : ", ") + Month::from_index(m).iso();
    return "{" + months + "}";
}

// A value for people: dates in 和暦 with ISO in brackets (令和6年4月15日 (2024-04-15)), the rest as the evaluator
// writes it.
std::string people_value(Evaluator& ev, Type type, std::int64_t value, Activation const& facts) {
    if (type.kind == TypeKind::Date) return wareki_with_iso(Date::from_days(value));
    return ev.format_value(type, value, facts);
}

std::string fact_text(Evaluator& ev, Program const& p, Activation const& facts, int f) {
    auto const& info = p.facts[std::size_t(f)];
    if (!facts.has(f)) return "(なし)";
    if (info.type.kind == TypeKind::MonthSet) return month_set_text(facts, f);
    return people_value(ev, info.type, facts.raw(f), facts);
}

// A case's id for its heading: the id as written, or a note that it has none.
std::string case_heading(std::string const& id) {
    if (id == "null") return "事例 (id なし)";
    return "事例 " + (id.size() >= 2 && id.front() == '"' ? id.substr(1, id.size() - 2) : id);
}

// A decision's, let's or fact's name for people: its label, with the name itself when they differ.
template <typename Info>
std::string display_name(Info const& s) { return s.label.empty() ? s.name : s.label + " (" + s.name + ")"; }

bool ident_byte(unsigned char c) {
    return c >= 0x80 || c == '_' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// The condition of a clause as written (between `when` and `=>`), with the value of every fact, param, let and
// decision it names written after the name: query_date〈2024-09-10〉 < 運用開始日〈2024-04-01〉.
std::string condition_with_values(Evaluator& ev, Program const& p, Activation const& facts, ClauseInfo const& c) {
    std::string src = first_line(c.source);
    std::size_t from = src.rfind("when", 0) == 0 ? 4 : 0;
    std::size_t arrow = src.find("=>", from);
    std::string cond = src.substr(from, arrow == std::string::npos ? std::string::npos : arrow - from);
    while (!cond.empty() && cond.front() == ' ') cond.erase(0, 1);
    while (!cond.empty() && cond.back() == ' ') cond.pop_back();
    std::string out;
    bool in_string = false;
    for (std::size_t i = 0; i < cond.size();) {
        auto ch = static_cast<unsigned char>(cond[i]);
        if (ch == '"') in_string = !in_string;
        if (in_string || !ident_byte(ch) || (ch >= '0' && ch <= '9')) {
            out += cond[i++];
            continue;
        }
        std::size_t end = i;
        while (end < cond.size() && ident_byte(static_cast<unsigned char>(cond[end]))) ++end;
        std::string const word = cond.substr(i, end - i);
        out += word;
        std::string value;
        bool known = true;
        if (int f = p.find_fact(word); f >= 0) value = fact_text(ev, p, facts, f);
        else if (int pa = p.find_param(word); pa >= 0)
            value = people_value(ev, p.params[std::size_t(pa)].type, p.params[std::size_t(pa)].value, facts);
        else if (int s = p.find_slot(word); s >= 0) {
            Outcome o = ev.evaluate_slot(facts, std::uint32_t(s));
            value = o.status == Status::ok ? people_value(ev, p.slots[std::size_t(s)].type, o.value, facts) : "不明";
        } else known = false;
        if (known) out += "〈" + value + "〉";
        i = end;
    }
    return out;
}

// One decision evaluated with a trace (the events in `trace`); its reason is rendered while tracing, so that the
// values it names appear among the intermediate ones.
struct Traced {
    Outcome outcome;
    std::string reason;
};
Traced traced(Evaluator& ev, Program const& p, Activation const& facts, std::uint32_t s,
              std::vector<TraceEvent>& trace) {
    trace.clear();
    ev.begin(facts);
    ev.set_trace(&trace);
    Traced t{ev.evaluate_slot(facts, s), {}};
    if (t.outcome.status == Status::ok && !p.clauses[t.outcome.clause].because.empty())
        t.reason = ev.render_text(std::int64_t(t.outcome.clause), facts, false);
    ev.set_trace(nullptr);
    return t;
}

// The facts a null decision lacked, by name.
std::string missing_names(Program const& p, Outcome const& o) {
    std::string names;
    for (std::size_t f = 0; f < p.facts.size(); ++f)
        if ((o.missing >> f) & 1u) names += (names.empty() ? "" : ", ") + p.facts[f].name;
    return names;
}

std::string explain_full(std::shared_ptr<Program const> const& program, Activation const& facts, std::string const& id);
}  // namespace

std::string explain(std::shared_ptr<Program const> program, std::string_view json_facts, std::vector<SourceFile> const*,
                    bool full) {
    Program const& p = *program;
    JsonlEvaluator reader(program);
    Activation facts(p);
    std::string id;
    std::string err = reader.read_facts(json_facts, facts, id);
    if (!err.empty()) return "入力エラー: " + err + "\n";
    if (full) return explain_full(program, facts, id);

    Evaluator ev(program);
    std::ostringstream out;
    out << case_heading(id);
    if (p.asof_fact >= 0 && facts.has(p.asof_fact))
        out << " (基準日 " << display_name(p.facts[std::size_t(p.asof_fact)]) << " = "
            << fact_text(ev, p, facts, p.asof_fact) << ")";
    out << "\n";
    // The facts, one a line with their names for people; the absent ones named once.
    std::string absent;
    out << "入力:\n";
    for (std::size_t f = 0; f < p.facts.size(); ++f) {
        auto const& info = p.facts[f];
        if (!facts.has(int(f))) {
            absent += (absent.empty() ? "" : ", ") + display_name(info);
            continue;
        }
        out << "  " << display_name(info) << ": " << fact_text(ev, p, facts, int(f)) << "\n";
    }
    if (!absent.empty()) out << "入力なし: " << absent << "\n";

    std::vector<TraceEvent> trace;
    std::vector<char> computed(p.slots.size(), 0);
    for (auto s : p.outputs) {
        auto const& slot = p.slots[s];
        auto const [o, reason] = traced(ev, p, facts, s, trace);
        for (auto const& e : trace)
            if (e.kind == TraceEvent::Kind::Slot) computed[e.id] = 1;
        out << "\n■ " << display_name(slot) << " = ";
        if (o.status == Status::missing_facts) {
            out << "null — 判定に必要な入力がありません: " << missing_names(p, o) << "\n";
            continue;
        }
        if (o.status == Status::no_version) {
            out << "null — 基準日に施行中の version がありません (" << p.slots[o.failed_slot].name << ")\n";
            continue;
        }
        auto const& c = p.clauses[o.clause];
        out << people_value(ev, slot.type, o.value, facts) << "\n";
        out << "  決め手 " << p.location(c.loc) << "  " << first_line(c.source);
        if (!c.otherwise) out << "  ← " << condition_with_values(ev, p, facts, c) << " が真";
        out << "\n";
        if (!slot.versions.empty()) out << "  版 「" << slot.versions[o.version].label << "」\n";
        if (!reason.empty()) out << "  理由 " << reason << "\n";
        bool header = false;
        for (auto const& e : trace) {
            if (e.kind != TraceEvent::Kind::Condition || p.clauses[e.id].slot != s || e.value) continue;
            out << (header ? "         " : "  見送り ") << short_location(p, p.clauses[e.id].loc, c.loc.file) << "  "
                << condition_with_values(ev, p, facts, p.clauses[e.id]) << " が偽\n";
            header = true;
        }
    }
    // Every intermediate value once, in the order the rule files state them.
    std::vector<std::uint32_t> lets;
    for (std::uint32_t s = 0; s < p.slots.size(); ++s)
        if (computed[s] && !p.slots[s].decision) lets.push_back(s);
    std::stable_sort(lets.begin(), lets.end(), [&](std::uint32_t a, std::uint32_t b) {
        return std::tie(p.slots[a].loc.file, p.slots[a].loc.line) < std::tie(p.slots[b].loc.file, p.slots[b].loc.line);
    });
    if (!lets.empty()) out << "\n途中の値:\n";
    for (auto s : lets) {
        Outcome o = ev.evaluate_slot(facts, s);
        if (o.status != Status::ok) continue;
        out << "  " << display_name(p.slots[s]) << " = " << people_value(ev, p.slots[s].type, o.value, facts) << "   ("
            << p.location(p.slots[s].loc) << ")\n";
    }
    return out.str();
}

namespace {
// The long form (kyotaku explain --full): every fact on its own line, and for each decision every clause passed
// over, the deciding one, the version and all the intermediate values it needed.
std::string explain_full(std::shared_ptr<Program const> const& program, Activation const& facts,
                         std::string const& id) {
    Program const& p = *program;
    Evaluator ev(program);
    std::ostringstream out;
    out << case_heading(id) << "\n\n入力された事実:\n";
    for (std::size_t f = 0; f < p.facts.size(); ++f)
        out << "  " << display_name(p.facts[f]) << " = " << fact_text(ev, p, facts, int(f)) << "\n";
    std::vector<TraceEvent> trace;
    for (auto s : p.outputs) {
        auto const& slot = p.slots[s];
        auto const [o, reason] = traced(ev, p, facts, s, trace);
        out << "\n■ " << display_name(slot) << " = ";
        if (o.status == Status::missing_facts) {
            out << "null\n  判定できません: 必要な事実がありません (" << missing_names(p, o) << ")\n";
            continue;
        }
        if (o.status == Status::no_version) {
            out << "null\n  判定できません: 基準日に施行中の version がありません (" << p.slots[o.failed_slot].name
                << ")\n";
            continue;
        }
        out << people_value(ev, slot.type, o.value, facts) << "\n";
        if (!slot.versions.empty()) {
            auto const& v = slot.versions[o.version];
            out << "  適用した版: 「" << v.label << "」 ("
                << (v.from == std::numeric_limits<std::int64_t>::min() ? std::string("")
                                                                       : Date::from_days(v.from).iso())
                << " 〜 "
                << (v.until == std::numeric_limits<std::int64_t>::max() ? std::string("")
                                                                        : Date::from_days(v.until).iso())
                << ", " << p.location(v.loc) << ")\n";
        }
        // Why not: the clauses of this decision whose condition was false.
        for (auto const& e : trace)
            if (e.kind == TraceEvent::Kind::Condition && p.clauses[e.id].slot == s && !e.value)
                out << "  見送り: " << p.location(p.clauses[e.id].loc) << "  " << first_line(p.clauses[e.id].source)
                    << "  → 条件が偽\n";
        auto const& c = p.clauses[o.clause];
        out << "  決め手: " << p.location(c.loc) << "  " << first_line(c.source) << "\n";
        if (!reason.empty()) out << "  理由: " << reason << "\n";
        // Intermediate values in the order the rule files state them (起算日 → 満了日 → 末日 …).
        std::vector<TraceEvent> values;
        for (auto const& e : trace)
            if (e.kind == TraceEvent::Kind::Slot && e.id != s) values.push_back(e);
        std::stable_sort(values.begin(), values.end(), [&](TraceEvent const& a, TraceEvent const& b) {
            auto const& la = p.slots[a.id].loc;
            auto const& lb = p.slots[b.id].loc;
            return std::tie(la.file, la.line) < std::tie(lb.file, lb.line);
        });
        bool header = false;
        for (auto const& e : values) {
            if (!header) out << "  途中の値:\n";
            header = true;
            auto const& ls = p.slots[e.id];
            out << "    " << display_name(ls) << " = " << people_value(ev, ls.type, e.value, facts) << "   ("
                << p.location(ls.loc) << ")\n";
        }
    }
    return out.str();
}
}  // namespace

}  // namespace kyotaku
