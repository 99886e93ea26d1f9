// explain: one case → a Japanese trace that policy staff can read: the facts, for each decision the clause
// that decided (file:line and the line itself), the clauses passed over and why (why not), the version that
// applied, and the intermediate values (起算日 → 満了日 → 末日) in the order they were computed.
#include "kyotaku/engine.hpp"
#include "kyotaku/jsonl.hpp"

#include <algorithm>
#include <sstream>
#include <tuple>

namespace kyotaku {

namespace {
std::string first_line(std::string const& s) { return s.substr(0, s.find('\n')); }
}  // namespace

std::string explain(std::shared_ptr<Program const> program, std::string_view json_facts, std::vector<SourceFile> const*) {
    Program const& p = *program;
    JsonlEvaluator reader(program);
    Activation facts(p);
    std::string id;
    std::string err = reader.read_facts(json_facts, facts, id);
    std::ostringstream out;
    if (!err.empty()) {
        out << "入力エラー: " << err << "\n";
        return out.str();
    }
    Evaluator ev(program);
    out << "事例 id=" << id << "\n\n入力された事実:\n";
    for (std::size_t f = 0; f < p.facts.size(); ++f) {
        auto const& info = p.facts[f];
        out << "  " << info.name << " = ";
        if (!facts.has(int(f))) out << "(なし)";
        else if (info.type.kind == TypeKind::MonthSet) {
            std::string months;
            auto const& bits = facts.months(int(f));
            for (std::int64_t m = MonthBits::base; m < MonthBits::base + MonthBits::size; ++m)
                if (bits.has(m)) months += (months.empty() ? "" : ", ") + Month::from_index(m).iso();
            out << "{" << months << "}";
        } else out << ev.format_value(info.type, facts.raw(int(f)), facts);
        out << "\n";
    }
    std::vector<TraceEvent> trace;
    for (auto s : p.outputs) {
        auto const& slot = p.slots[s];
        trace.clear();
        ev.begin(facts);
        ev.set_trace(&trace);
        Outcome o = ev.evaluate_slot(facts, s);
        // The reason is rendered while tracing, so that the values it names appear among the intermediate ones.
        std::string reason = o.status == Status::ok && !p.clauses[o.clause].because.empty()
                                 ? ev.render_text(std::int64_t(o.clause), facts, false)
                                 : std::string();
        ev.set_trace(nullptr);
        out << "\n■ " << slot.name << " = ";
        if (o.status == Status::missing_facts) {
            std::string names;
            for (std::size_t f = 0; f < p.facts.size(); ++f)
                if ((o.missing >> f) & 1u) names += (names.empty() ? "" : ", ") + p.facts[f].name;
            out << "null\n  判定できません: 必要な事実がありません (" << names << ")\n";
            continue;
        }
        if (o.status == Status::no_version) {
            out << "null\n  判定できません: 基準日に施行中の version がありません (" << p.slots[o.failed_slot].name << ")\n";
            continue;
        }
        out << ev.format_value(slot.type, o.value, facts) << "\n";
        if (!slot.versions.empty()) {
            auto const& v = slot.versions[o.version];
            out << "  適用した版: 「" << v.label << "」 (" << (v.from == std::numeric_limits<std::int64_t>::min() ? std::string("") : Date::from_days(v.from).iso())
                << " 〜 " << (v.until == std::numeric_limits<std::int64_t>::max() ? std::string("") : Date::from_days(v.until).iso()) << ", "
                << p.location(v.loc) << ")\n";
        }
        // Why not: the clauses of this decision whose condition was false.
        for (auto const& e : trace)
            if (e.kind == TraceEvent::Kind::Condition && p.clauses[e.id].slot == s && !e.value)
                out << "  見送り: " << p.location(p.clauses[e.id].loc) << "  " << first_line(p.clauses[e.id].source) << "  → 条件が偽\n";
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
            out << "    " << ls.name << " = " << ev.format_value(ls.type, e.value, facts) << "   (" << p.location(ls.loc) << ")\n";
        }
    }
    return out.str();
}

}  // namespace kyotaku
