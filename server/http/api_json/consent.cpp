// The JSON of the consent page's routes and the hand-off (docs/api.md "同意の登録", "引き継ぎ").
#include "http/api_json.hpp"

#include "formats/fields.hpp"
#include "http/json_codec.hpp"

namespace kyotaku::server::api_json {

namespace {
json choices_json(HandoffChoices const& c) {
    json out{{"visit_kind", c.visit_kind}, {"identity_method", c.identity_method}, {"items", c.items}};
    if (c.choices) out["choices"] = *c.choices;
    if (c.appointment_date) out["appointment_date"] = *c.appointment_date;
    return out;
}
}  // namespace

std::string challenge_token(json const& body) { return Fields(body, {"token"}).text("token"); }

ConsentSubmission consent_registration(json const& body) {
    Fields f(body, {"token", "challenge_id", "certificate", "signature", "identity_method", "visit_kind", "items",
                    "appointment_date", "visual_passcode", "preparatory_visit"});
    return {f.text("token"),
            f.text("challenge_id"),
            f.text("certificate"),
            f.maybe_text("signature"),
            f.maybe_text("visual_passcode"),
            {f.text("visit_kind"), f.text("identity_method"), text_list(f, "items"), f.maybe_text("appointment_date")},
            f.boolean("preparatory_visit", false)};
}

HandoffStart handoff_start(json const& body) {
    Fields f(body, {"token", "visit_kind", "items", "identity_method", "appointment_date", "choices", "to"});
    HandoffStart start{f.text("token"),
                       {f.text("visit_kind"), f.text("identity_method"), text_list(f, "items"),
                        f.maybe_text("appointment_date")},
                       std::nullopt,
                       f.maybe_text("to")};
    if (f.has("choices")) start.consent_choices = text_list(f, "choices");
    return start;
}

std::pair<std::string, std::string> handoff_claim(json const& body) {
    Fields f(body, {"token", "code"});
    return {f.text("token"), f.text("code")};
}

HandoffChallengeRequest handoff_challenge(json const& body) {
    Fields f(body, {"token", "claim"});
    return {f.text("token"), f.text("claim")};
}

HandoffRegistration handoff_registration(json const& body) {
    Fields f(body,
             {"token", "claim", "challenge_id", "certificate", "signature", "visual_passcode", "preparatory_visit"});
    return {f.text("token"),
            f.text("claim"),
            f.text("challenge_id"),
            f.text("certificate"),
            f.maybe_text("signature"),
            f.maybe_text("visual_passcode"),
            f.boolean("preparatory_visit", false)};
}

json to_json(ConsentPage const& p) {
    return json{{"facility_name", p.facility_name},
                {"facility_kind", p.facility_kind},
                {"home_care_feature", p.home_care_feature},
                {"online_feature", p.online_feature},
                {"today", p.today},
                {"rules", p.rules},
                {"preparatory_kinds", p.preparatory_kinds}};
}

json to_json(Challenge const& c) {
    return json{{"challenge_id", c.challenge_id}, {"challenge", c.challenge}, {"expires_at", c.expires_at}};
}

json to_json(VisualPasscode const& p) { return json{{"passcode", p.passcode}, {"expires_at", p.expires_at}}; }

HttpResult answer(RegisteredConsent const& r) {
    json out{{"consent_id", r.consent_id}, {"first_visit", r.first_visit}};
    if (r.retry) out["retry"] = true;
    return json_result(r.retry ? 200 : 201, out);  // 201, or 200 for the same registration sent again
}

json to_json(HandoffCreated const& h) {
    return json{{"handoff_id", h.handoff_id}, {"code", h.code}, {"expires_at", h.expires_at}, {"qr", h.qr}};
}

json to_json(HandoffStatus const& s) {
    json out{{"expires_at", s.expires_at}, {"state", s.state}};
    if (s.consent) {
        json consent = choices_json(s.consent->choices);
        consent["consent_id"] = s.consent->consent_id;
        if (s.consent->first_visit) consent["first_visit"] = *s.consent->first_visit;
        out["consent"] = consent;
    }
    return out;
}

json to_json(HandoffClaimed const& c) {
    return json{{"claim", c.claim}, {"choices", choices_json(c.choices)}, {"expires_at", c.expires_at}};
}

}  // namespace kyotaku::server::api_json
