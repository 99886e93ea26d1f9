#include "formats/eligibility_json.hpp"

namespace kyotaku::server {

namespace {
using json = nlohmann::json;

json eligibility_json(EligibilityRecord const& e) {
    json out{{"insurer_number", e.insurer},   {"symbol", e.symbol},       {"number", e.number},
             {"branch", e.branch},            {"birthdate", e.birthdate}, {"name", e.name},
             {"name_kana", e.name_kana},      {"burden_ratio", e.burden_ratio}, {"valid_from", e.valid_from},
             {"valid_to", e.valid_to ? json(*e.valid_to) : json(nullptr)},
             {"card_classification", e.card_classification}, {"personal_family", e.personal_family}};
    if (e.valid_to) {
        // 資格喪失日 (DisqualificationDate) is the day after the last day the insurance was valid.
        if (auto last = parse_iso_date_fast(*e.valid_to)) out["disqualification_date"] = Date::from_days(last->days() + 1).iso();
        if (e.loss_reason) out["loss_reason"] = *e.loss_reason;
    }
    return out;
}
}  // namespace

json eligibility_answer_json(EligibilityAnswer const& a) {
    json out{{"allowed", a.allowed},
             {"qualification_validity", a.qualification_validity ? json(*a.qualification_validity) : json(nullptr)},
             {"reason", a.reason.ja}};
    if (!a.reason.en.empty()) out["reason_en"] = a.reason.en;
    if (a.visit_kind) out["visit_kind"] = *a.visit_kind;
    if (a.first_visit) out["first_visit"] = *a.first_visit;
    if (a.window_end) out["window_end"] = *a.window_end;
    if (a.eligibility) out["eligibility"] = eligibility_json(*a.eligibility);
    if (a.reference_numbers) out["reference_numbers"] = *a.reference_numbers;
    if (a.query_date) out["query_date"] = *a.query_date;
    return out;
}

}  // namespace kyotaku::server
