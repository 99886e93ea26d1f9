// An integrator's program: compile the rules once, evaluate a record, print the re-inquiry decision.
#include <kyotaku/engine.hpp>

#include <iostream>

int main(int argc, char** argv) {
    if (argc < 2) return 2;
    auto compiled = kyotaku::compile_directory(argv[1]);
    if (!compiled.ok()) {
        std::cerr << kyotaku::format_diagnostics(compiled.diagnostics);
        return 1;
    }
    kyotaku::Evaluator ev(compiled.program);
    kyotaku::Activation facts(*compiled.program);
    bool ok = facts.set_enum("facility_kind", "医科") && facts.set_enum("visit_kind", "訪問診療") &&
              facts.set_date("first_visit", *kyotaku::Date::from_ymd(2024, 4, 15)) &&
              facts.set_date("query_date", *kyotaku::Date::from_ymd(2024, 7, 31)) &&
              facts.set_bool("feature_enabled", true) && facts.set_bool("continuing_home_care", false) &&
              facts.set_month_set("reviewed_claim_months", {});
    if (!ok) return 3;
    int slot = compiled.program->find_slot("reinquiry_allowed");
    auto outcome = ev.evaluate_slot(facts, std::uint32_t(slot));
    std::cout << "reinquiry_allowed=" << (outcome.value ? "true" : "false") << "\n";
    return outcome.status == kyotaku::Status::ok && outcome.value ? 0 : 1;
}
