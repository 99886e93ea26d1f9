#include "handoff.hpp"

#include "card_signature.hpp"
#include "url_token.hpp"

#include <date/date.h>
#include <openssl/rand.h>

#include <algorithm>
#include <initializer_list>
#include <mutex>

namespace kyotaku::server {

namespace {

std::mutex installed_mutex;
std::shared_ptr<Handoffs> installed;

// Each route takes its documented fields only: anything else is refused by name (a PIN-like field included).
void only_fields(json const& body, std::initializer_list<char const*> allowed) {
    for (auto const& [key, value] : body.items()) {
        (void)value;
        if (std::none_of(allowed.begin(), allowed.end(), [&](char const* a) { return key == a; }))
            throw ClientError(400, key.substr(0, 64), "この項目は受け付けません / unknown field: " + key.substr(0, 64));
    }
}

std::string string_field(json const& body, char const* name, std::size_t max, bool required = true) {
    auto it = body.find(name);
    if (it == body.end()) {
        if (required) throw ClientError(400, name, std::string(name) + " がありません / " + name + " is required");
        return {};
    }
    if (!it->is_string() || it->get_ref<std::string const&>().size() > max)
        throw ClientError(400, name, std::string(name) + " は " + std::to_string(max) + " 文字までの文字列です / " + name + " must be a string of at most " +
                                         std::to_string(max) + " bytes");
    return it->get<std::string>();
}

// A value of the enum that the rule set gives `type`.
void check_enum(Program const& p, Type type, std::string const& value, char const* field) {
    if (type.enum_id < 0 || p.find_enum_value(type.enum_id, value) < 0)
        throw ClientError(400, field, std::string(field) + " の値が正しくありません / unknown value of " + field);
}

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
        throw ClientError(400, "code", "番号は数字6桁です / the code is 6 digits");
    return out;
}

}  // namespace

void install_handoffs(std::shared_ptr<Handoffs> h) {
    std::lock_guard lock(installed_mutex);
    installed = std::move(h);
}

Handoffs& handoffs() {
    std::lock_guard lock(installed_mutex);
    if (!installed) throw ClientError(503, "", "引き継ぎは使えません / hand-off is not available on this server");
    return *installed;
}

struct Handoffs::Open {
    std::string id, facility, choices_json, challenge_id;
};

Handoffs::Handoffs(Database& db, Service& service, std::shared_ptr<Program const> rules, Clock clock)
    : db_(db), service_(service), rules_(std::move(rules)), clock_(std::move(clock)) {
    auto fact = [&](char const* name) -> std::optional<Type> {
        int const f = rules_->find_fact(name);
        return f < 0 ? std::nullopt : std::optional<Type>(rules_->facts[std::size_t(f)].type);
    };
    int const methods = rules_->find_slot("identity_methods");
    visit_kind_type_ = fact("visit_kind");
    item_type_ = fact("consented_items");
    choice_type_ = fact("consent_choice");
    if (methods >= 0) method_type_ = rules_->slots[std::size_t(methods)].type;
}

std::string Handoffs::now() const {
    return date::format("%FT%TZ", std::chrono::floor<std::chrono::microseconds>(clock_()));
}

std::string Handoffs::facility_of(json const& body) {
    auto check = service_.check_url_token(string_field(body, "token", 512));
    if (!check.facility_code) throw ClientError(404, "token", check.reason);
    return *check.facility_code;
}

json Handoffs::create(json const& body) {
    only_fields(body, {"token", "visit_kind", "items", "identity_method", "appointment_date", "choices"});
    if (!visit_kind_type_ || !method_type_ || !item_type_ || !choice_type_)
        throw ClientError(503, "", "このルールでは引き継ぎを使えません / the rules lack a fact the hand-off needs");
    std::string const facility = facility_of(body);
    // The choices as the phone's flow made them; the registration checks them against the rules again.
    json choices{{"visit_kind", string_field(body, "visit_kind", 64)}, {"identity_method", string_field(body, "identity_method", 64)}};
    check_enum(*rules_, *visit_kind_type_, choices["visit_kind"], "visit_kind");
    check_enum(*rules_, *method_type_, choices["identity_method"], "identity_method");
    auto items = body.find("items");
    if (items == body.end() || !items->is_array() || items->size() > 16)
        throw ClientError(400, "items", "items は同意する閲覧項目の配列です / items must be an array of viewing items");
    for (auto const& item : *items) {
        if (!item.is_string()) throw ClientError(400, "items", "items は文字列の配列です / items must be strings");
        check_enum(*rules_, *item_type_, item.get<std::string>(), "items");
    }
    choices["items"] = *items;
    // The consent choices the patient ticked (同意の選択肢), so that the staff's device shows them as chosen.
    auto ticked = body.find("choices");
    if (ticked != body.end()) {
        if (!ticked->is_array() || ticked->size() > 16) throw ClientError(400, "choices", "choices は同意の選択肢の配列です / choices must be an array");
        for (auto const& c : *ticked) {
            if (!c.is_string()) throw ClientError(400, "choices", "choices は文字列の配列です / choices must be strings");
            check_enum(*rules_, *choice_type_, c.get<std::string>(), "choices");
        }
        choices["choices"] = *ticked;
    }
    std::string const appointment = string_field(body, "appointment_date", 10, false);
    if (!appointment.empty()) {
        if (!parse_iso_date_fast(appointment)) throw ClientError(400, "appointment_date", "日付は YYYY-MM-DD です / appointment_date must be YYYY-MM-DD");
        choices["appointment_date"] = appointment;
    }
    std::string const at = now();
    std::string const expires = date::format("%FT%TZ", std::chrono::floor<std::chrono::microseconds>(clock_() + lifetime));
    std::string const id = new_id();
    std::string code;
    transaction(db_, [&] {
        // Expired hand-offs are kept a day (the phone may still ask), then forgotten.
        std::string const day_ago = date::format("%FT%TZ", std::chrono::floor<std::chrono::microseconds>(clock_() - std::chrono::hours(24)));
        db_.query("DELETE FROM consent_handoffs WHERE expires_at < $1", {day_ago});
        auto open = db_.query("SELECT code FROM consent_handoffs WHERE facility_code = $1 AND expires_at > $2 AND done_at IS NULL AND cancelled_at IS NULL",
                              {facility, at});
        if (int(open.size()) >= max_open)
            throw ClientError(429, "", "受付中の引き継ぎが多すぎます。しばらくしてからお試しください / too many open hand-offs for this facility");
        for (int tries = 0; tries < 20 && code.empty(); ++tries) {
            std::string candidate = six_digits();
            if (std::none_of(open.begin(), open.end(), [&](Row const& r) { return as_text(r[0]) == candidate; })) code = candidate;
        }
        if (code.empty()) throw std::runtime_error("no free hand-off code");
        db_.query("INSERT INTO consent_handoffs (id, facility_code, code, choices_json, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
                  {id, facility, code, choices.dump(), at, expires});
    });
    // The QR code opens the same facility page on the staff's device, with the code filled in.
    std::string const svg = qr_svg(public_url_ + "/c/" + body.at("token").get<std::string>() + "#handoff=" + code);
    return json{{"handoff_id", id}, {"code", code}, {"expires_at", expires},
                {"qr", "data:image/svg+xml;base64," + base64_encode(std::vector<unsigned char>(svg.begin(), svg.end()))}};
}

json Handoffs::status(std::string const& handoff_id) {
    if (handoff_id.size() != 32) throw ClientError(404, "handoff_id", "引き継ぎが見つかりません / no such hand-off");
    auto rows = db_.query(
        "SELECT h.expires_at, h.claimed_at, h.consent_id, h.first_visit, h.cancelled_at, h.choices_json, c.consent_id "
        "FROM consent_handoffs h LEFT JOIN challenges c ON c.id = h.challenge_id WHERE h.id = $1",
        {handoff_id});
    if (rows.empty()) throw ClientError(404, "handoff_id", "引き継ぎが見つかりません / no such hand-off");
    Row const& r = rows[0];
    json out{{"expires_at", as_text(r[0])}};
    // Done is read from the registration itself: the consent of the hand-off's challenge.
    std::string consent_id = !is_null(r[2]) ? as_text(r[2]) : !is_null(r[6]) ? as_text(r[6]) : "";
    if (!consent_id.empty()) {
        json consent = json::parse(as_text(r[5]));
        consent["consent_id"] = consent_id;
        if (!is_null(r[3])) consent["first_visit"] = as_text(r[3]);
        out["state"] = "done";
        out["consent"] = consent;
    } else if (!is_null(r[4])) {
        out["state"] = "cancelled";
    } else if (as_text(r[0]) < now()) {
        out["state"] = "expired";
    } else {
        out["state"] = is_null(r[1]) ? "waiting" : "claimed";
    }
    return out;
}

json Handoffs::cancel(std::string const& handoff_id) {
    if (handoff_id.size() == 32)
        db_.query("UPDATE consent_handoffs SET cancelled_at = $2 WHERE id = $1 AND done_at IS NULL AND cancelled_at IS NULL", {handoff_id, now()});
    return status(handoff_id);
}

json Handoffs::claim(json const& body) {
    only_fields(body, {"token", "code"});
    std::string const facility = facility_of(body);
    std::string const code = normalized_code(string_field(body, "code", 32));
    std::string const at = now();
    std::string const since = date::format("%FT%TZ", std::chrono::floor<std::chrono::microseconds>(clock_() - failure_window));
    std::string const secret = new_id() + new_id();
    std::optional<json> answer;
    transaction(db_, [&] {
        db_.query("DELETE FROM consent_handoff_failures WHERE at <= $1", {since});
        // Wrong codes slow the facility's claims down before any code is compared.
        auto failures = db_.query("SELECT COUNT(*) FROM consent_handoff_failures WHERE facility_code = $1 AND at > $2", {facility, since});
        if (as_int(failures[0][0]) >= max_failures)
            throw ClientError(429, "code", "番号の間違いが続きました。10分ほど待ってから入れてください / too many wrong codes; try again later");
        auto rows = db_.query("SELECT id, choices_json, expires_at, claimed_at FROM consent_handoffs WHERE facility_code = $1 AND code = $2 AND "
                              "expires_at > $3 AND done_at IS NULL AND cancelled_at IS NULL",
                              {facility, code, at});
        if (rows.empty()) {
            db_.query("INSERT INTO consent_handoff_failures (facility_code, at) VALUES ($1, $2)", {facility, at});
            return;  // committed: the failure counts
        }
        auto claimed = db_.query("UPDATE consent_handoffs SET claimed_at = $2, claim_hash = $3 WHERE id = $1 AND claimed_at IS NULL RETURNING id",
                                 {as_text(rows[0][0]), at, sha256_hex(secret)});
        if (claimed.empty())
            throw ClientError(409, "code", "この番号は、ほかの端末が引き継ぎました / this code was already claimed by another device");
        answer = json{{"claim", secret}, {"choices", json::parse(as_text(rows[0][1]))}, {"expires_at", as_text(rows[0][2])}};
    });
    if (!answer) throw ClientError(404, "code", "番号が違います / no open hand-off has this code");
    return *answer;
}

Handoffs::Open Handoffs::find_claimed(json const& body) {
    std::string const facility = facility_of(body);
    std::string const claim = string_field(body, "claim", 64);
    auto rows = db_.query("SELECT id, choices_json, challenge_id, expires_at, done_at, cancelled_at FROM consent_handoffs "
                          "WHERE claim_hash = $1 AND facility_code = $2",
                          {sha256_hex(claim), facility});
    if (rows.empty()) throw ClientError(404, "claim", "引き継ぎが見つかりません / no hand-off with this claim");
    Row const& r = rows[0];
    if (!is_null(r[4])) throw ClientError(409, "claim", "この引き継ぎは完了しています / this hand-off is already done");
    if (!is_null(r[5])) throw ClientError(409, "claim", "患者さんの画面で引き継ぎが取り消されました / the phone cancelled this hand-off");
    if (as_text(r[3]) < now()) throw ClientError(410, "claim", "引き継ぎの期限が切れました / this hand-off expired");
    return Open{as_text(r[0]), facility, as_text(r[1]), is_null(r[2]) ? "" : as_text(r[2])};
}

json Handoffs::challenge(json const& body) {
    only_fields(body, {"token", "claim"});
    Open const h = find_claimed(body);
    json out = service_.issue_challenge(json{{"token", body.at("token")}});
    db_.query("UPDATE consent_handoffs SET challenge_id = $2 WHERE id = $1", {h.id, out["challenge_id"].get<std::string>()});
    return out;
}

json Handoffs::register_consent(json const& body, int& status) {
    only_fields(body, {"token", "claim", "challenge_id", "certificate", "signature", "visual_passcode"});
    Open const h = find_claimed(body);
    if (string_field(body, "challenge_id", 64) != h.challenge_id)
        throw ClientError(400, "challenge_id", "この引き継ぎのチャレンジではありません / not this hand-off's challenge");
    // The registration the phone's choices describe, with the card's answer from the staff's device.
    json const choices = json::parse(h.choices_json);
    json registration = json::object();
    for (char const* field : {"visit_kind", "identity_method", "items", "appointment_date"})
        if (choices.contains(field)) registration[field] = choices[field];
    for (char const* field : {"token", "challenge_id", "certificate", "signature", "visual_passcode"})
        if (body.contains(field)) registration[field] = body[field];
    // One transaction: the consent and the hand-off's 完了 are committed together or not at all.
    return transaction(db_, [&] {
        json out = service_.register_consent(registration, status);
        db_.query("UPDATE consent_handoffs SET consent_id = $2, first_visit = $3, done_at = $4 WHERE id = $1",
                  {h.id, out.value("consent_id", std::string()), out.value("first_visit", std::string()), now()});
        return out;
    });
}

}  // namespace kyotaku::server
