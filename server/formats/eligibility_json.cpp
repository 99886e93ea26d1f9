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
    if (auto lost = disqualification_date(e)) out["disqualification_date"] = *lost;
    if (e.valid_to && e.loss_reason) out["loss_reason"] = *e.loss_reason;
    return out;
}
std::optional<std::string> text_of(json const& o, char const* key) {
    auto it = o.find(key);
    return it != o.end() && it->is_string() ? std::optional<std::string>(it->get<std::string>()) : std::nullopt;
}

EligibilityRecord eligibility_of(json const& e) {
    EligibilityRecord r;
    r.insurer = e.at("insurer_number").get<std::string>();
    r.symbol = e.at("symbol").get<std::string>();
    r.number = e.at("number").get<std::string>();
    r.branch = e.at("branch").get<std::string>();
    r.birthdate = e.at("birthdate").get<std::string>();
    r.name = e.at("name").get<std::string>();
    r.name_kana = e.at("name_kana").get<std::string>();
    r.burden_ratio = e.at("burden_ratio").get<std::string>();
    r.valid_from = e.at("valid_from").get<std::string>();
    r.valid_to = text_of(e, "valid_to");
    if (auto v = text_of(e, "card_classification")) r.card_classification = *v;
    if (auto v = text_of(e, "personal_family")) r.personal_family = *v;
    r.loss_reason = text_of(e, "loss_reason");
    return r;
}
}  // namespace

json eligibility_answer_json(EligibilityAnswer const& a) {
    json out{{"allowed", a.allowed},
             {"qualification_validity", a.qualification_validity ? json(*a.qualification_validity) : json(nullptr)},
             {"reason", a.reason.ja}};
    if (!a.reason.en.empty()) out["reason_en"] = a.reason.en;
    if (a.basis) {
        out["visit_kind"] = a.basis->visit_kind;
        out["first_visit"] = a.basis->first_visit;
    }
    if (a.window_end) out["window_end"] = *a.window_end;
    if (a.eligibility) out["eligibility"] = eligibility_json(*a.eligibility);
    if (a.reference_numbers) out["reference_numbers"] = *a.reference_numbers;
    if (a.query_date) out["query_date"] = *a.query_date;
    return out;
}

EligibilityAnswer eligibility_answer_of(json const& a) {
    EligibilityAnswer out;
    out.allowed = a.value("allowed", false);
    if (auto it = a.find("qualification_validity"); it != a.end() && it->is_number())
        out.qualification_validity = it->get<int>();
    out.reason = Message{text_of(a, "reason").value_or(""), text_of(a, "reason_en").value_or("")};
    if (auto kind = text_of(a, "visit_kind")) {
        out.basis = ConsentRecord{};
        out.basis->visit_kind = *kind;
        out.basis->first_visit = text_of(a, "first_visit").value_or("");
    }
    out.window_end = text_of(a, "window_end");
    if (auto it = a.find("eligibility"); it != a.end() && it->is_object()) out.eligibility = eligibility_of(*it);
    if (auto it = a.find("reference_numbers"); it != a.end() && it->is_array())
        out.reference_numbers = it->get<std::vector<std::string>>();
    out.query_date = text_of(a, "query_date");
    return out;
}

json card_json(Card const& card) {
    return json{{"insurer_number", card.insurer},
                {"symbol", card.symbol},
                {"number", card.number},
                {"branch", card.branch},
                {"birthdate", card.birthdate}};
}

}  // namespace kyotaku::server
