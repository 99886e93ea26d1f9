#include "usecases/handoff.hpp"

#include "core/card_signature.hpp"
#include "core/url_token.hpp"
#include "usecases/desk_util.hpp"

#include <openssl/rand.h>

#include <algorithm>
#include <map>
#include <sstream>

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
        throw invalid("code", "番号は数字6けたです。スマートフォンに出ている番号を入れてください。", "the code is 6 digits");
    return out;
}

}  // namespace

struct Handoffs::Open {
    std::string id, facility, choices_json, challenge_id;
};

std::string Handoffs::facility_of(std::string const& token) {
    auto check = settings_.check_token(token);
    if (!check.facility_code) throw url_refused(check.reason);
    return *check.facility_code;
}

json Handoffs::create(Caller const& caller, json const& body) {
    Fields f(body, {"token", "visit_kind", "items", "identity_method", "appointment_date", "choices", "to"});
    std::string const to = f.has("to") ? f.text("to") : "staff";
    if (to != "staff" && to != "computer") throw invalid("to", "引き継ぎ先が正しくありません。ページを読み込み直して、もう一度お試しください。", "to is \"staff\" or \"computer\"");
    auto const rules = x_.rules();
    Program const& program = *rules->program;
    std::string const facility = facility_of(f.text("token"));
    // The choices as the phone's flow made them; the registration checks them against the rules again.
    json choices{{"visit_kind", f.enum_value(program, "visit_kind", "visit_kind")}, {"identity_method", f.text("identity_method")}};
    if (rules->value_index_of_slot(rules->slot.identity_methods, choices["identity_method"].get<std::string>()) < 0)
        throw invalid("identity_method", "本人確認の方法が正しくありません", "unknown identity method");
    choices["items"] = f.enum_list(program, "items", "consented_items");
    // The consent choices the patient ticked (同意の選択肢), so that the staff's device shows them as chosen.
    if (f.has("choices")) choices["choices"] = f.enum_list(program, "choices", "consent_choice");
    if (!f.optional_date("appointment_date").empty()) choices["appointment_date"] = f.optional_date("appointment_date");
    // What the registration will ask the rules, asked now (the facility's 環境設定 switches included), and whether
    // the rules have staff there to read the card: a hand-off the rules would refuse is never started.
    DbRecords records(x_.db);
    auto const info = records.facility(facility);
    if (!info) throw url_refused({"URL が正しくありません", "unknown facility"});
    std::optional<std::string> const appointment =
        choices.contains("appointment_date") ? std::optional<std::string>(choices["appointment_date"].get<std::string>()) : std::nullopt;
    auto const decided = DecisionPath(rules, records, x_.today()).registration(*info, choices["visit_kind"], choices["identity_method"], appointment);
    if (!decided.ok)
        throw Error(decided.field == "visit_kind" ? Error::Kind::conflict : Error::Kind::invalid, decided.field, decided.reason);
    if (to == "staff" && !decided.staff_present)
        throw conflict("to", "この受付では、職員の機器で読み取る引き継ぎはできません", "the rules have no staff present for this visit kind (let 職員がいる)");

    Context& x = x_;
    std::string const client = budget_client(caller, facility);
    std::string const at = x.now();
    // Until it is claimed a code lives briefly (claim extends it): a stranger's hand-offs are gone within minutes.
    std::string const expires = x.clock.timestamp_after(to == "computer" ? computer_claim_within : claim_within);
    std::string const id = new_id();
    std::string code;
    transaction(x.db, [&] {
        lock_facility(x, facility);  // the count of open hand-offs and the insert: one step (3 servers made 55 of 50)
        // Expired hand-offs are kept a day (the phone may still ask), then forgotten.
        x.db.query("DELETE FROM consent_handoffs WHERE expires_at < $1", {iso_timestamp(x.clock.now() - std::chrono::hours(24))});
        auto open = x.db.query("SELECT code, client, claimed_at, expires_at FROM consent_handoffs "
                               "WHERE facility_code = $1 AND expires_at > $2 AND done_at IS NULL AND cancelled_at IS NULL ORDER BY created_at",
                               {facility, at});
        if (client != office_client && max_open_per_client > 0) {
            // This client's budget: its open hand-offs at this facility; room again when the first of them ends.
            std::vector<std::string> mine;
            for (Row const& r : open)
                if (as_text(r[1]) == client) mine.push_back(as_text(r[3]));
            if (int(mine.size()) >= max_open_per_client) {
                long long const wait = seconds_until(x.clock, *std::min_element(mine.begin(), mine.end()));
                throw too_many("", "この機器から始めた引き継ぎが多すぎます。" + minutes_ja(wait) + "ほど待ってから、もう一度お試しください。急ぐときは、職員にお知らせください。",
                               "this client has too many open hand-offs at this facility: retry later", wait);
            }
        }
        if (client != office_client) {
            // The facility's unclaimed hand-offs (its office terminals' aside): at the cap, the oldest unclaimed one of
            // the client holding the most (two or more) gives way; a patient's single one never does.
            std::map<std::string, int> held;
            int unclaimed = 0;
            for (Row const& r : open)
                if (is_null(r[2]) && as_text(r[1]) != office_client) ++unclaimed, ++held[as_text(r[1])];
            if (unclaimed >= max_open) {
                auto most = std::max_element(held.begin(), held.end(), [](auto const& a, auto const& b) { return a.second < b.second; });
                if (most == held.end() || most->second < 2) {
                    std::vector<std::string> ends;
                    for (Row const& r : open)
                        if (is_null(r[2])) ends.push_back(as_text(r[3]));
                    long long const wait = ends.empty() ? 60 : seconds_until(x.clock, *std::min_element(ends.begin(), ends.end()));
                    throw too_many("", "受付中の引き継ぎが多すぎます。" + minutes_ja(wait) + "ほど待ってから、もう一度お試しください。急ぐときは、職員にお知らせください。",
                                   "too many unclaimed hand-offs for this facility: retry later", wait);
                }
                x.db.query("UPDATE consent_handoffs SET cancelled_at = $3 WHERE id = (SELECT id FROM consent_handoffs WHERE facility_code = $1 AND client = $2 "
                           "AND claimed_at IS NULL AND expires_at > $3 AND done_at IS NULL AND cancelled_at IS NULL ORDER BY created_at LIMIT 1)",
                           {facility, most->first, at});
            }
        }
        for (int tries = 0; tries < 20 && code.empty(); ++tries) {
            std::string candidate = six_digits();
            if (std::none_of(open.begin(), open.end(), [&](Row const& r) { return as_text(r[0]) == candidate; })) code = candidate;
        }
        if (code.empty()) throw std::runtime_error("no free hand-off code");
        x.db.query("INSERT INTO consent_handoffs (id, facility_code, code, choices_json, created_at, expires_at, client, to_computer) "
                   "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                   {id, facility, code, choices.dump(), at, expires, client, std::int64_t(to == "computer" ? 1 : 0)});
    });
    // The QR code opens the same facility page on the other device, with the code filled in: a PNG of one pixel per
    // module (a few hundred bytes; the page draws it larger), not an SVG of 16 KB for a phone to wait for.
    std::string const png = qr_png(x.public_url + "/c/" + f.text("token") + "#handoff=" + code, 1);
    return json{{"handoff_id", id}, {"code", code}, {"expires_at", expires},
                {"qr", "data:image/png;base64," + base64_encode(std::vector<unsigned char>(png.begin(), png.end()))}};
}

json Handoffs::status(std::string const& handoff_id) {
    Context& x = x_;
    if (handoff_id.size() != 32) throw not_found("handoff_id", "引き継ぎが見つかりません。はじめの画面に戻って、もう一度お試しください。", "no such hand-off");
    auto rows = x.db.query(
        "SELECT h.expires_at, h.claimed_at, h.consent_id, h.first_visit, h.cancelled_at, h.choices_json, c.consent_id "
        "FROM consent_handoffs h LEFT JOIN challenges c ON c.id = h.challenge_id WHERE h.id = $1",
        {handoff_id});
    if (rows.empty()) throw not_found("handoff_id", "引き継ぎが見つかりません。はじめの画面に戻って、もう一度お試しください。", "no such hand-off");
    Row const& r = rows[0];
    json out{{"expires_at", as_text(r[0])}};
    // Done is read from the registration itself: the consent of the hand-off's challenge.
    std::string const consent_id = !is_null(r[2]) ? as_text(r[2]) : !is_null(r[6]) ? as_text(r[6]) : "";
    if (!consent_id.empty()) {
        json consent = json::parse(as_text(r[5]));
        consent["consent_id"] = consent_id;
        if (!is_null(r[3])) consent["first_visit"] = as_text(r[3]);
        out["state"] = "done";
        out["consent"] = consent;
    } else if (!is_null(r[4])) {
        out["state"] = "cancelled";
    } else if (as_text(r[0]) < x.now()) {
        out["state"] = "expired";
    } else {
        out["state"] = is_null(r[1]) ? "waiting" : "claimed";
    }
    return out;
}

json Handoffs::cancel(std::string const& handoff_id) {
    Context& x = x_;
    if (handoff_id.size() == 32)
        x.db.query("UPDATE consent_handoffs SET cancelled_at = $2 WHERE id = $1 AND done_at IS NULL AND cancelled_at IS NULL", {handoff_id, x.now()});
    return status(handoff_id);
}

json Handoffs::claim(Caller const& caller, json const& body) {
    Fields f(body, {"token", "code"});
    Context& x = x_;
    std::string const facility = facility_of(f.text("token"));
    std::string const code = normalized_code(f.text("code"));
    std::string const claimant = budget_client(caller, facility);
    std::string const at = x.now();
    std::string const since = iso_timestamp(x.clock.now() - failure_window);
    std::string const secret = new_id() + new_id();
    std::optional<json> answer;
    transaction(x.db, [&] {
        lock_facility(x, facility);  // one claim at a time: a wrong code is counted before the next is compared
        x.db.query("DELETE FROM consent_handoff_failures WHERE at <= $1", {since});
        // Wrong codes slow this claimant down (this facility, this client) before any code is compared; nobody else.
        if (claimant != office_client) {
            auto failures = x.db.query("SELECT COUNT(*), MIN(at) FROM consent_handoff_failures WHERE facility_code = $1 AND claimant = $2 AND at > $3",
                                       {facility, claimant, since});
            if (as_int(failures[0][0]) >= max_failures) {
                long long const wait = seconds_until(x.clock, as_text(failures[0][1]), failure_window);  // the first leaves the window
                throw too_many("code", "番号の間違いが続いたため、この機器からは、しばらく番号を入れられません。" + minutes_ja(wait) +
                                           "ほど待ってから、患者さんのスマートフォンに出ている6けたの番号を入れてください。",
                               "too many wrong codes from this client: retry later", wait);
            }
        }
        auto rows = x.db.query("SELECT id, choices_json, to_computer FROM consent_handoffs WHERE facility_code = $1 AND code = $2 AND "
                               "expires_at > $3 AND done_at IS NULL AND cancelled_at IS NULL",
                               {facility, code, at});
        if (rows.empty()) {
            x.db.query("INSERT INTO consent_handoff_failures (facility_code, at, claimant) VALUES ($1, $2, $3)", {facility, at, claimant});
            return;  // committed: the failure counts
        }
        // Claimed, the card step has its own time from now.
        std::string const expires = x.clock.timestamp_after(as_int(rows[0][2]) ? computer_lifetime : lifetime);
        auto claimed = x.db.query("UPDATE consent_handoffs SET claimed_at = $2, claim_hash = $3, expires_at = $4 WHERE id = $1 AND claimed_at IS NULL RETURNING id",
                                  {as_text(rows[0][0]), at, sha256_hex(secret), expires});
        if (claimed.empty()) throw conflict("code", "この番号は、ほかの機器が引き継ぎました。スマートフォンで、新しい番号を出してください。", "this code was already claimed by another device");
        answer = json{{"claim", secret}, {"choices", json::parse(as_text(rows[0][1]))}, {"expires_at", expires}};
    });
    if (!answer) throw not_found("code", "番号が違うか、期限が切れています。スマートフォンに出ている6けたの番号を、もう一度入れてください。", "no open hand-off has this code");
    return *answer;
}

Handoffs::Open Handoffs::find_claimed(std::string const& token, std::string const& claim) {
    Context& x = x_;
    std::string const facility = facility_of(token);
    auto rows = x.db.query("SELECT id, choices_json, challenge_id, expires_at, done_at, cancelled_at FROM consent_handoffs "
                           "WHERE claim_hash = $1 AND facility_code = $2",
                           {sha256_hex(claim), facility});
    if (rows.empty()) throw not_found("claim", "引き継ぎが見つかりません。スマートフォンで、新しい番号を出してもらい、入れ直してください。", "no hand-off with this claim");
    Row const& r = rows[0];
    if (!is_null(r[4])) throw conflict("claim", "この引き継ぎは終わっています。続けるときは、スマートフォンで新しい番号を出してもらってください。", "this hand-off is already done");
    if (!is_null(r[5])) throw conflict("claim", "患者さんの画面で引き継ぎが取り消されました。続けるときは、スマートフォンで新しい番号を出してもらってください。", "the phone cancelled this hand-off");
    if (as_text(r[3]) < x.now()) throw conflict("claim", "引き継ぎの期限が切れました。スマートフォンで新しい番号を出してもらい、入れ直してください。", "this hand-off expired");
    return Open{as_text(r[0]), facility, as_text(r[1]), is_null(r[2]) ? "" : as_text(r[2])};
}

json Handoffs::challenge(Caller const& caller, json const& body) {
    Fields f(body, {"token", "claim"});
    Open const h = find_claimed(f.text("token"), f.text("claim"));
    json out = consent_.issue_challenge(caller, json{{"token", f.text("token")}});
    x_.db.query("UPDATE consent_handoffs SET challenge_id = $2 WHERE id = $1", {h.id, out["challenge_id"].get<std::string>()});
    return out;
}

json Handoffs::register_consent(Caller const& caller, json const& body, int& status) {
    Fields f(body, {"token", "claim", "challenge_id", "certificate", "signature", "visual_passcode", "preparatory_visit"});
    Open const h = find_claimed(f.text("token"), f.text("claim"));
    if (f.text("challenge_id") != h.challenge_id)
        throw invalid("challenge_id", "この引き継ぎのチャレンジではありません。もう一度カードを読み取ってください。", "not this hand-off's challenge");
    // The registration the phone's choices describe, with the card's answer from the staff's device.
    json const choices = json::parse(h.choices_json);
    json registration = json::object();
    for (char const* field : {"visit_kind", "identity_method", "items", "appointment_date"})
        if (choices.contains(field)) registration[field] = choices[field];
    // The card's answer, and the staff's own (preparatory_visit: the staff's device asks it, not the phone).
    for (char const* field : {"token", "challenge_id", "certificate", "signature", "visual_passcode", "preparatory_visit"})
        if (f.has(field)) registration[field] = f.raw(field);
    // The hand-off's 完了 in the registration's transaction: the consent and it are committed together or not at all
    // (and no transaction may enclose that one: it commits the count of a wrong passcode, then refuses).
    Context& x = x_;
    return consent_.register_consent(caller, registration, status, [&](json const& out) {
        x.db.query("UPDATE consent_handoffs SET consent_id = $2, first_visit = $3, done_at = $4 WHERE id = $1",
                   {h.id, out.value("consent_id", std::string()), out.value("first_visit", std::string()), x.now()});
    });
}

}  // namespace kyotaku::server
