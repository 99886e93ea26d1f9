// Runs the tests written in rule files: given facts (and param overrides), expected decisions.
#include "kyotaku/engine.hpp"

namespace kyotaku {

namespace {
std::string describe(Evaluator& ev, Program const& p, Outcome const& o, Type t, Activation const& facts) {
    if (o.status == Status::missing_facts) {
        std::string names;
        for (std::size_t f = 0; f < p.facts.size(); ++f)
            if ((o.missing >> f) & 1u) names += (names.empty() ? "" : ", ") + p.facts[f].name;
        return "null (不足している fact: " + names + ")";
    }
    if (o.status == Status::no_version) return "null (施行中の version なし)";
    std::string v = ev.format_value(t, o.value, facts);
    return v + " (" + p.location(p.clauses[o.clause].loc) + " で決定)";
}
}  // namespace

TestReport run_tests(std::shared_ptr<Program const> program) {
    TestReport report;
    Program const& p = *program;
    Evaluator ev(program);
    Activation facts(p);
    for (auto const& t : p.tests) {
        facts.clear();
        ev.reset_params();
        std::vector<TestBinding const*> given;
        if (t.fixture >= 0)
            for (auto const& g : p.fixtures[std::size_t(t.fixture)]) given.push_back(&g);
        for (auto const& g : t.given) given.push_back(&g);
        for (auto const* gp : given) {
            auto const& g = *gp;
            if (g.target == TestBinding::Target::Param) {
                ev.set_param(g.id, g.value.scalar);
                continue;
            }
            int f = int(g.id);
            if (g.value.is_null) {
                facts.unset(f);
                continue;
            }
            if (p.facts[g.id].type.kind == TypeKind::MonthSet) {
                auto& bits = facts.month_set(f);
                for (auto m : g.value.months) bits.set(m);
            } else {
                facts.set_raw(f, g.value.scalar);
            }
        }
        ev.begin(facts);
        bool ok = true;
        for (auto const& e : t.expect) {
            auto const& slot = p.slots[e.id];
            Outcome o = ev.evaluate_slot(facts, e.id);
            bool pass;
            std::string want;
            if (e.value.is_null) {
                pass = o.status != Status::ok;
                want = "null";
            } else if (e.contains) {
                pass = o.status == Status::ok && ev.render_text(o.value, facts).find(e.value.text) != std::string::npos;
                want = "「" + e.value.text + "」を含む";
            } else {
                pass = o.status == Status::ok && o.value == e.value.scalar;
                want = ev.format_value(slot.type, e.value.scalar, facts);
            }
            if (!pass) {
                ok = false;
                std::string got = e.contains && o.status == Status::ok ? "「" + ev.render_text(o.value, facts) + "」"
                                                                       : describe(ev, p, o, slot.type, facts);
                report.failures.push_back(TestFailure{t.name, p.location(e.loc),
                                                      slot.name + ": 期待 " + want + "、結果 " + got + " / expected " +
                                                          want + ", got " + got});
            }
        }
        if (ok) ++report.passed;
        else ++report.failed;
    }
    return report;
}

}  // namespace kyotaku
