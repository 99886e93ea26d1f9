#include "usecases/handoff.hpp"

#include "core/card_signature.hpp"
#include "core/url_token.hpp"
#include "formats/fields.hpp"

#include <openssl/rand.h>

#include <algorithm>
#include <mutex>

namespace kyotaku::server {

namespace {

std::string six_digits() {
    for (;;) {
        std::uint32_t v = 0;
        if (RAND_bytes(reinterpret_cast<unsigned char*>(&v), sizeof v) != 1) throw std::runtime_error("RAND_bytes failed");
        if (v >= 4'294'000'000u) continue;  // a multiple of 10^6 below 2^32: every code equally likely
        std::string code = std::to_string(v % 1'000'000);
        return std::string(6 - code.size(), '0') + code;
    }
}

// The code as the page sends it, forgiving what people type: full-width digits, spaces, hyphens.
std::string normalized_code(std::string const& text) {
    std::string out;
    for (char ch : normalize_width(text))
        if (ch != ' ' && ch != '-') out += ch;
    if (out.size() != 6 || !std::all_of(out.begin(), out.end(), [](char c) { return c >= '0' && c <= '9'; }))
        throw invalid("code", "番号は数字6けたです", "the code is 6 digits");
    return out;
}

// The choices as the hand-off row keeps them (consent_handoffs.choices_json).
std::string stored(HandoffChoices const& c) {
    json out{{"visit_kind", c.visit_kind}, {"identity_method", c.identity_method}, {"items", c.items}};
    if (c.choices) out["choices"] = *c.choices;
    if (c.appointment_date) out["appointment_date"] = *c.appointment_date;
    return out.dump();
}
HandoffChoices choices_of(std::string const& stored_text) {
    json const j = json::parse(stored_text);
    HandoffChoices c{j.at("visit_kind"), j.at("identity_method"), j.at("items"), std::nullopt, std::nullopt};
    if (j.contains("choices")) c.choices = j["choices"].get<std::vector<std::string>>();
    if (j.contains("appointment_date")) c.appointment_date = j["appointment_date"].get<std::string>();
    return c;
}

}  // namespace

struct Handoffs::Open {
    std::string id, facility, choices_json, challenge_id;
};

std::string Handoffs::facility_of(std::string const& token) {
    auto check = settings_.check_token(token);
    if (!check.facility_code) throw Error(Error::Kind::not_found, "token", check.reason);
    return *check.facility_code;
}

HandoffCreated Handoffs::create(HandoffStart const& start) {
    std::string const to = start.to.value_or("staff");
    if (to != "staff" && to != "computer") throw invalid("to", "引き継ぎ先が正しくありません", "to is \"staff\" or \"computer\"");
    auto const rules = x_.rules();
    Program const& program = *rules->program;
    std::string const facility = facility_of(start.token);
    // The choices as the phone's flow made them; the registration checks them against the rules again.
    HandoffChoices choices{enum_value(program, "visit_kind", "visit_kind", start.choices.visit_kind), start.choices.identity_method, {},
                           std::nullopt, std::nullopt};
    if (rules->value_index_of_slot(rules->slot.identity_methods, choices.identity_method) < 0)
        throw invalid("identity_method", "本人確認の方法が正しくありません", "unknown identity method");
    choices.items = enum_list(program, "items", "consented_items", start.choices.items);
    // The consent choices the patient ticked (同意の選択肢), so that the staff's device shows them as chosen.
    if (start.consent_choices) choices.choices = enum_list(program, "choices", "consent_choice", *start.consent_choices);
    if (start.choices.appointment_date) choices.appointment_date = iso_date("appointment_date", *start.choices.appointment_date);

    Context& x = x_;
    std::string const at = x.now();
    std::string const expires = x.clock.timestamp_after(to == "computer" ? computer_lifetime : lifetime);
    std::string const id = new_id();
    std::string code;
    transaction(x.db, [&] {
        // Expired hand-offs are kept a day (the phone may still ask), then forgotten.
        x.db.query("DELETE FROM consent_handoffs WHERE expires_at < $1", {iso_timestamp(x.clock.now() - std::chrono::hours(24))});
        auto open = x.db.query("SELECT code FROM consent_handoffs WHERE facility_code = $1 AND expires_at > $2 AND done_at IS NULL AND cancelled_at IS NULL",
                               {facility, at});
        if (int(open.size()) >= max_open)
            throw Error(Error::Kind::too_many, "", "受付中の引き継ぎが多すぎます。しばらくしてからお試しください", "too many open hand-offs for this facility");
        for (int tries = 0; tries < 20 && code.empty(); ++tries) {
            std::string candidate = six_digits();
            if (std::none_of(open.begin(), open.end(), [&](Row const& r) { return as_text(r[0]) == candidate; })) code = candidate;
        }
        if (code.empty()) throw std::runtime_error("no free hand-off code");
        x.db.query("INSERT INTO consent_handoffs (id, facility_code, code, choices_json, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
                   {id, facility, code, stored(choices), at, expires});
    });
    // The QR code opens the same facility page on the other device, with the code filled in: a PNG of one pixel per
    // module (a few hundred bytes; the page draws it larger), not an SVG of 16 KB for a phone to wait for.
    std::string const png = qr_png(x.public_url + "/c/" + start.token + "#handoff=" + code, 1);
    return {id, code, expires, "data:image/png;base64," + base64_encode(std::vector<unsigned char>(png.begin(), png.end()))};
}

HandoffStatus Handoffs::status(std::string const& handoff_id) {
    Context& x = x_;
    if (handoff_id.size() != 32) throw not_found("handoff_id", "引き継ぎが見つかりません", "no such hand-off");
    auto rows = x.db.query(
        "SELECT h.expires_at, h.claimed_at, h.consent_id, h.first_visit, h.cancelled_at, h.choices_json, c.consent_id "
        "FROM consent_handoffs h LEFT JOIN challenges c ON c.id = h.challenge_id WHERE h.id = $1",
        {handoff_id});
    if (rows.empty()) throw not_found("handoff_id", "引き継ぎが見つかりません", "no such hand-off");
    Row const& r = rows[0];
    HandoffStatus out{as_text(r[0]), "", std::nullopt};
    // Done is read from the registration itself: the consent of the hand-off's challenge.
    std::string const consent_id = !is_null(r[2]) ? as_text(r[2]) : !is_null(r[6]) ? as_text(r[6]) : "";
    if (!consent_id.empty()) {
        out.state = "done";
        out.consent = HandoffStatus::Done{choices_of(as_text(r[5])), consent_id,
                                          is_null(r[3]) ? std::nullopt : std::optional<std::string>(as_text(r[3]))};
    } else if (!is_null(r[4])) {
        out.state = "cancelled";
    } else if (as_text(r[0]) < x.now()) {
        out.state = "expired";
    } else {
        out.state = is_null(r[1]) ? "waiting" : "claimed";
    }
    return out;
}

HandoffStatus Handoffs::cancel(std::string const& handoff_id) {
    Context& x = x_;
    if (handoff_id.size() == 32)
        x.db.query("UPDATE consent_handoffs SET cancelled_at = $2 WHERE id = $1 AND done_at IS NULL AND cancelled_at IS NULL", {handoff_id, x.now()});
    return status(handoff_id);
}

HandoffClaimed Handoffs::claim(std::string const& token, std::string const& code_as_typed) {
    Context& x = x_;
    std::string const facility = facility_of(token);
    std::string const code = normalized_code(code_as_typed);
    std::string const at = x.now();
    std::string const since = iso_timestamp(x.clock.now() - failure_window);
    std::string const secret = new_id() + new_id();
    std::optional<HandoffClaimed> answer;
    transaction(x.db, [&] {
        x.db.query("DELETE FROM consent_handoff_failures WHERE at <= $1", {since});
        // Wrong codes slow the facility's claims down before any code is compared.
        auto failures = x.db.query("SELECT COUNT(*) FROM consent_handoff_failures WHERE facility_code = $1 AND at > $2", {facility, since});
        if (as_int(failures[0][0]) >= max_failures)
            throw Error(Error::Kind::too_many, "code", "番号の間違いが続きました。10分ほど待ってから入れてください", "too many wrong codes; try again later");
        auto rows = x.db.query("SELECT id, choices_json, expires_at FROM consent_handoffs WHERE facility_code = $1 AND code = $2 AND "
                               "expires_at > $3 AND done_at IS NULL AND cancelled_at IS NULL",
                               {facility, code, at});
        if (rows.empty()) {
            x.db.query("INSERT INTO consent_handoff_failures (facility_code, at) VALUES ($1, $2)", {facility, at});
            return;  // committed: the failure counts
        }
        auto claimed = x.db.query("UPDATE consent_handoffs SET claimed_at = $2, claim_hash = $3 WHERE id = $1 AND claimed_at IS NULL RETURNING id",
                                  {as_text(rows[0][0]), at, sha256_hex(secret)});
        if (claimed.empty()) throw conflict("code", "この番号は、ほかの端末が引き継ぎました", "this code was already claimed by another device");
        answer = HandoffClaimed{secret, choices_of(as_text(rows[0][1])), as_text(rows[0][2])};
    });
    if (!answer) throw not_found("code", "番号が違います", "no open hand-off has this code");
    return *answer;
}

Handoffs::Open Handoffs::find_claimed(std::string const& token, std::string const& claim) {
    Context& x = x_;
    std::string const facility = facility_of(token);
    auto rows = x.db.query("SELECT id, choices_json, challenge_id, expires_at, done_at, cancelled_at FROM consent_handoffs "
                           "WHERE claim_hash = $1 AND facility_code = $2",
                           {sha256_hex(claim), facility});
    if (rows.empty()) throw not_found("claim", "引き継ぎが見つかりません", "no hand-off with this claim");
    Row const& r = rows[0];
    if (!is_null(r[4])) throw conflict("claim", "この引き継ぎは終わっています", "this hand-off is already done");
    if (!is_null(r[5])) throw conflict("claim", "患者さんの画面で引き継ぎが取り消されました", "the phone cancelled this hand-off");
    if (as_text(r[3]) < x.now()) throw conflict("claim", "引き継ぎの期限が切れました", "this hand-off expired");
    return Open{as_text(r[0]), facility, as_text(r[1]), is_null(r[2]) ? "" : as_text(r[2])};
}

Challenge Handoffs::challenge(std::string const& token, std::string const& claim) {
    Open const h = find_claimed(token, claim);
    Challenge out = consent_.issue_challenge(token);
    x_.db.query("UPDATE consent_handoffs SET challenge_id = $2 WHERE id = $1", {h.id, out.challenge_id});
    return out;
}

RegisteredConsent Handoffs::register_consent(HandoffRegistration const& r) {
    Open const h = find_claimed(r.token, r.claim);
    if (r.challenge_id != h.challenge_id)
        throw invalid("challenge_id", "この引き継ぎのチャレンジではありません", "not this hand-off's challenge");
    // The registration the phone's choices describe, with the card's answer from the staff's device.
    HandoffChoices const choices = choices_of(h.choices_json);
    ConsentRegistration registration{r.token, r.challenge_id, r.certificate, r.signature, r.visual_passcode,
                                     ConsentChoices{choices.visit_kind, choices.identity_method, {}, choices.appointment_date}};
    for (auto const& item : choices.items) registration.choices.items.emplace_back(item);
    // One transaction (the registration's own becomes a savepoint in it): the consent and the hand-off's 完了 are
    // committed together or not at all.
    Context& x = x_;
    return transaction(x.db, [&] {
        RegisteredConsent out = consent_.register_consent(registration);
        x.db.query("UPDATE consent_handoffs SET consent_id = $2, first_visit = $3, done_at = $4 WHERE id = $1",
                   {h.id, out.consent_id, out.first_visit, x.now()});
        return out;
    });
}

}  // namespace kyotaku::server
