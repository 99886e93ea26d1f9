// The JSON of テスト用データセットアップ and the operator's tasks (docs/api.md "運用者").
#include "http/api_json.hpp"

#include "formats/fields.hpp"

namespace kyotaku::server::api_json {

NewFacility new_facility(json const& body) {
    Fields f(body, {"code", "name", "kind"});
    return {f.text("code"), f.text("name"), f.text("kind")};
}

NewInsuredPerson new_insured_person(json const& body) {
    Fields f(body, {"insurer_number", "symbol", "number", "branch", "birthdate", "name", "name_kana", "burden_ratio",
                    "valid_from", "valid_to", "person_key", "card_classification", "personal_family", "loss_reason"});
    return {card_fields(f),
            f.text("name"),
            f.optional_text("name_kana"),
            f.text("burden_ratio"),
            f.text("valid_from"),
            f.maybe_text("valid_to"),
            f.maybe_text("card_classification"),
            f.maybe_text("personal_family"),
            f.optional_text("loss_reason"),
            f.optional_text("person_key")};
}

TestConsent test_consent(json const& body) {
    Fields f(body, {"facility_code", "person_key", "visit_kind", "first_visit", "identity_method", "items",
                    "appointment_date", "preparatory_visit"});
    return {f.text("facility_code"),   f.text("person_key"),  f.text("visit_kind"),
            f.text("first_visit"),     f.text("identity_method"), text_list(f, "items"),
            f.maybe_text("appointment_date"), f.boolean("preparatory_visit", false)};
}

NewMedicalRecord new_medical_record(json const& body) {
    Fields f(body, {"person_key", "item", "recorded_on", "content"});
    NewMedicalRecord r{f.text("person_key"), f.text("item"), f.text("recorded_on"), {}};
    json const& content = f.raw("content");
    if (!content.is_object()) throw invalid("content", "content はオブジェクトです", "content must be an object");
    // every text in it, like any field's: no control, non-character or bidi control
    check_texts_in(content, "content", 10000);
    r.content_json = content.dump();
    return r;
}

CardRegistration card_registration(json const& body) {
    Fields f(body, {"person_key", "certificate"});
    return {f.text("person_key"), f.text("certificate")};
}

std::string clock_day(json const& body) { return Fields(body, {"today"}).text("today"); }

json to_json(NewFacility const& f) { return json{{"code", f.code}, {"name", f.name}, {"kind", f.kind}}; }

json to_json(InsuredPersonAdded const& p) { return json{{"id", p.id}, {"person_key", p.person_key}}; }

json to_json(std::vector<ConsentListing> const& consents) {
    auto text_or_null = [](std::optional<std::string> const& v) { return v ? json(*v) : json(nullptr); };
    json out = json::array();
    for (auto const& c : consents)
        out.push_back(json{{"id", c.id},
                           {"person_key", c.person_key},
                           {"visit_kind", c.visit_kind},
                           {"first_visit", c.first_visit},
                           {"registered_at", c.registered_at},
                           {"withdrawn_at", text_or_null(c.withdrawn_at)},
                           {"identity_method", c.identity_method},
                           {"items", c.items},
                           {"appointment_date", text_or_null(c.appointment_date)},
                           {"preparatory_visit", c.preparatory_visit},
                           {"withdrawn_by", text_or_null(c.withdrawn_by)}});
    return out;
}

json to_json(ClaimReviewImport const& r) {
    json errors = json::array();
    for (auto const& e : r.errors)
        errors.push_back(json{{"line", e.line},
                              {"field", e.field},
                              {"error", e.message.text()},
                              {"ja", e.message.ja},
                              {"en", e.message.en}});
    return json{{"imported", r.imported}, {"errors", errors}};
}

}  // namespace kyotaku::server::api_json
