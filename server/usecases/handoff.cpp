#include "usecases/handoff.hpp"

#include "core/card_signature.hpp"
#include "core/url_token.hpp"
#include "storage/handoff_store.hpp"
#include "usecases/desk_util.hpp"

#include <nlohmann/json.hpp>
#include <openssl/rand.h>

#include <algorithm>
#include <map>
#include <sstream>

namespace kyotaku::server {

// Stored details (資格確認履歴, hand-off choices, device staff lists) are JSON text.
using json = nlohmann::json;

namespace {

std::string six_digits() {
    for (;;) {
        std::uint32_t v = 0;
        if (RAND_bytes(reinterpret_cast<unsigned char*>(&v), sizeof v) != 1)
            throw std::runtime_error("RAND_bytes failed");
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
        throw invalid("code", "番号は数字6けたです。スマートフォンに出ている番号を入れてください。",
                      "the code is 6 digits");
    return out;
}

// The choices as stored with the hand-off (consent_handoffs.choices_json), and back.
std::string choices_json(HandoffChoices const& c) {
    json out{{"visit_kind", c.visit_kind}, {"identity_method", c.identity_method}, {"items", c.items}};
    if (c.choices) out["choices"] = *c.choices;
    if (c.appointment_date) out["appointment_date"] = *c.appointment_date;
    return out.dump();
}
HandoffChoices choices_of(std::string const& stored) {
    json const c = json::parse(stored);
    HandoffChoices out{c.at("visit_kind").get<std::string>(), c.at("identity_method").get<std::string>(),
                       c.at("items").get<std::vector<std::string>>(), std::nullopt, std::nullopt};
    if (c.contains("choices")) out.choices = c["choices"].get<std::vector<std::string>>();
    if (c.contains("appointment_date")) out.appointment_date = c["appointment_date"].get<std::string>();
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

HandoffCreated Handoffs::create(Caller const& caller, HandoffStart const& start) {
    std::string const to = start.to.value_or("staff");
    if (to != "staff" && to != "computer")
        throw invalid("to", "引き継ぎ先が正しくありません。ページを読み込み直して、もう一度お試しください。",
                      "to is \"staff\" or \"computer\"");
    auto const rules = x_.rules();
    Program const& program = *rules->program;
    std::string const facility = facility_of(start.token);
    // The choices as the phone's flow made them; the registration checks them against the rules again.
    HandoffChoices choices{enum_value(program, "visit_kind", "visit_kind", start.choices.visit_kind),
                           start.choices.identity_method,
                           {},
                           std::nullopt,
                           std::nullopt};
    if (rules->value_index_of_slot(rules->slot.identity_methods, choices.identity_method) < 0)
        throw invalid("identity_method", "本人確認の方法が正しくありません", "unknown identity method");
    choices.items = enum_list(program, "items", "consented_items", start.choices.items);
    // The consent choices the patient ticked (同意の選択肢), so that the staff's device shows them as chosen.
    if (start.consent_choices)
        choices.choices = enum_list(program, "choices", "consent_choice", *start.consent_choices);
    if (start.choices.appointment_date)
        choices.appointment_date = iso_date("appointment_date", *start.choices.appointment_date);
    // What the registration will ask the rules, asked now (the facility's 環境設定 switches included), and whether
    // the rules have staff there to read the card: a hand-off the rules would refuse is never started.
    DbRecords records(x_.db);
    auto const info = records.facility(facility);
    if (!info) throw url_refused({"URL が正しくありません", "unknown facility"});
    auto const decided =
        DecisionPath(rules, records, x_.today())
            .registration(*info, choices.visit_kind, choices.identity_method, choices.appointment_date);
    if (!decided.ok)
        throw Error(decided.field == "visit_kind" ? Error::Kind::conflict : Error::Kind::invalid, decided.field,
                    decided.reason);
    if (to == "staff" && !decided.staff_present)
        throw conflict("to", "この受付では、職員の機器で読み取る引き継ぎはできません",
                       "the rules have no staff present for this visit kind (let 職員がいる)");

    Context& x = x_;
    std::string const client = budget_client(caller, facility);
    std::string const at = x.now();
    // Until it is claimed a code lives briefly (claim extends it): a stranger's hand-offs are gone within minutes.
    std::string const expires = x.clock.timestamp_after(to == "computer" ? computer_claim_within : claim_within);
    std::string const id = new_id();
    std::string code;
    HandoffStore store(x.db);
    transaction(x.db, [&] {
        lock_facility(x, facility);  // the count of open hand-offs and the insert: one step (3 servers made 55 of 50)
        // Expired hand-offs are kept a day (the phone may still ask), then forgotten.
        store.forget_expired(iso_timestamp(x.clock.now() - std::chrono::hours(24)));
        auto const open = store.open(facility, at);
        if (client != office_client && max_open_per_client > 0) {
            // This client's budget: its open hand-offs at this facility; room again when the first of them ends.
            std::vector<std::string> mine;
            for (OpenHandoff const& h : open)
                if (h.client == client) mine.push_back(h.expires_at);
            if (int(mine.size()) >= max_open_per_client) {
                long long const wait = seconds_until(x.clock, *std::min_element(mine.begin(), mine.end()));
                throw too_many("",
                               "この機器から始めた引き継ぎが多すぎます。" + minutes_ja(wait) +
                                   "ほど待ってから、もう一度お試しください。急ぐときは、職員にお知らせください。",
                               "this client has too many open hand-offs at this facility: retry later", wait);
            }
        }
        if (client != office_client) {
            // The facility's unclaimed hand-offs (its office terminals' aside): at the cap, the oldest unclaimed one of
            // the client holding the most (two or more) gives way; a patient's single one never does.
            std::map<std::string, int> held;
            int unclaimed = 0;
            for (OpenHandoff const& h : open)
                if (!h.claimed && h.client != office_client) ++unclaimed, ++held[h.client];
            if (unclaimed >= max_open) {
                auto most = std::max_element(held.begin(), held.end(),
                                             [](auto const& a, auto const& b) { return a.second < b.second; });
                if (most == held.end() || most->second < 2) {
                    std::vector<std::string> ends;
                    for (OpenHandoff const& h : open)
                        if (!h.claimed) ends.push_back(h.expires_at);
                    long long const wait =
                        ends.empty() ? 60 : seconds_until(x.clock, *std::min_element(ends.begin(), ends.end()));
                    throw too_many("",
                                   "受付中の引き継ぎが多すぎます。" + minutes_ja(wait) +
                                       "ほど待ってから、もう一度お試しください。急ぐときは、職員にお知らせください。",
                                   "too many unclaimed hand-offs for this facility: retry later", wait);
                }
                store.cancel_oldest_unclaimed(facility, most->first, at);
            }
        }
        for (int tries = 0; tries < 20 && code.empty(); ++tries) {
            std::string candidate = six_digits();
            if (std::none_of(open.begin(), open.end(), [&](OpenHandoff const& h) { return h.code == candidate; }))
                code = candidate;
        }
        if (code.empty()) throw std::runtime_error("no free hand-off code");
        store.add(NewHandoff{id, facility, code, choices_json(choices), at, expires, client, to == "computer"});
    });
    // The QR code opens the same facility page on the other device, with the code filled in: a PNG of one pixel per
    // module (a few hundred bytes; the page draws it larger), not an SVG of 16 KB for a phone to wait for.
    std::string const png = qr_png(x.public_url + "/c/" + start.token + "#handoff=" + code, 1);
    return {id, code, expires,
            "data:image/png;base64," + base64_encode(std::vector<unsigned char>(png.begin(), png.end()))};
}

HandoffStatus Handoffs::status(std::string const& handoff_id) {
    Context& x = x_;
    if (handoff_id.size() != 32)
        throw not_found("handoff_id", "引き継ぎが見つかりません。はじめの画面に戻って、もう一度お試しください。",
                        "no such hand-off");
    auto const h = HandoffStore(x.db).state(handoff_id);
    if (!h)
        throw not_found("handoff_id", "引き継ぎが見つかりません。はじめの画面に戻って、もう一度お試しください。",
                        "no such hand-off");
    HandoffStatus out{h->expires_at, "", std::nullopt};
    // Done is read from the registration itself (the store's consent_id: the hand-off's, or its challenge's).
    if (!h->consent_id.empty()) {
        out.state = "done";
        out.consent = HandoffStatus::Done{choices_of(h->choices_json), h->consent_id, h->first_visit};
    } else if (h->cancelled) {
        out.state = "cancelled";
    } else if (h->expires_at < x.now()) {
        out.state = "expired";
    } else {
        out.state = h->claimed ? "claimed" : "waiting";
    }
    return out;
}

HandoffStatus Handoffs::cancel(std::string const& handoff_id) {
    Context& x = x_;
    if (handoff_id.size() == 32) HandoffStore(x.db).cancel(handoff_id, x.now());
    return status(handoff_id);
}

HandoffClaimed Handoffs::claim(Caller const& caller, std::string const& token, std::string const& sent_code) {
    Context& x = x_;
    std::string const facility = facility_of(token);
    std::string const code = normalized_code(sent_code);
    std::string const claimant = budget_client(caller, facility);
    std::string const at = x.now();
    std::string const since = iso_timestamp(x.clock.now() - failure_window);
    std::string const secret = new_id() + new_id();
    std::optional<HandoffClaimed> answer;
    HandoffStore store(x.db);
    transaction(x.db, [&] {
        lock_facility(x, facility);  // one claim at a time: a wrong code is counted before the next is compared
        store.forget_failures(since);
        // Wrong codes slow this claimant down (this facility, this client) before any code is compared; nobody else.
        if (claimant != office_client) {
            RecentCount const failures = store.failures(facility, claimant, since);
            if (failures.count >= max_failures) {
                // The first leaves the window.
                long long const wait = seconds_until(x.clock, failures.first, failure_window);
                throw too_many("code",
                               "番号の間違いが続いたため、この機器からは、しばらく番号を入れられません。" +
                                   minutes_ja(wait) +
                                   "ほど待ってから、患者さんのスマートフォンに出ている6けたの番号を入れてください。",
                               "too many wrong codes from this client: retry later", wait);
            }
        }
        auto const coded = store.by_code(facility, code, at);
        if (!coded) {
            store.add_failure(facility, claimant, at);
            return;  // committed: the failure counts
        }
        // Claimed, the card step has its own time from now.
        std::string const expires = x.clock.timestamp_after(coded->to_computer ? computer_lifetime : lifetime);
        if (!store.claim(coded->id, at, sha256_hex(secret), expires))
            throw conflict("code",
                           "この番号は、ほかの機器が引き継ぎました。スマートフォンで、新しい番号を出してください。",
                           "this code was already claimed by another device");
        answer = HandoffClaimed{secret, choices_of(coded->choices_json), expires};
    });
    if (!answer)
        throw not_found(
            "code", "番号が違うか、期限が切れています。スマートフォンに出ている6けたの番号を、もう一度入れてください。",
            "no open hand-off has this code");
    return *answer;
}

Handoffs::Open Handoffs::find_claimed(std::string const& token, std::string const& claim) {
    Context& x = x_;
    std::string const facility = facility_of(token);
    auto const h = HandoffStore(x.db).by_claim(sha256_hex(claim), facility);
    if (!h)
        throw not_found("claim",
                        "引き継ぎが見つかりません。スマートフォンで、新しい番号を出してもらい、入れ直してください。",
                        "no hand-off with this claim");
    if (h->done)
        throw conflict(
            "claim", "この引き継ぎは終わっています。続けるときは、スマートフォンで新しい番号を出してもらってください。",
            "this hand-off is already done");
    if (h->cancelled)
        throw conflict("claim",
                       "患者さんの画面で引き継ぎが取り消されました。続けるときは、スマートフォンで新しい番号を出しても"
                       "らってください。",
                       "the phone cancelled this hand-off");
    if (h->expires_at < x.now())
        throw conflict("claim",
                       "引き継ぎの期限が切れました。スマートフォンで新しい番号を出してもらい、入れ直してください。",
                       "this hand-off expired");
    return Open{h->id, facility, h->choices_json, h->challenge_id};
}

Challenge Handoffs::challenge(Caller const& caller, HandoffChallengeRequest const& r) {
    Open const h = find_claimed(r.token, r.claim);
    Challenge out = consent_.issue_challenge(caller, r.token);
    HandoffStore(x_.db).set_challenge(h.id, out.challenge_id);
    return out;
}

RegisteredConsent Handoffs::register_consent(Caller const& caller, HandoffRegistration const& r) {
    Open const h = find_claimed(r.token, r.claim);
    if (r.challenge_id != h.challenge_id)
        throw invalid("challenge_id", "この引き継ぎのチャレンジではありません。もう一度カードを読み取ってください。",
                      "not this hand-off's challenge");
    // The registration the phone's choices describe, with the card's answer from the staff's device and the staff's
    // own (preparatory_visit: the staff's device asks it, not the phone).
    HandoffChoices const choices = choices_of(h.choices_json);
    ConsentSubmission registration{r.token,
                                   r.challenge_id,
                                   r.certificate,
                                   r.signature,
                                   r.visual_passcode,
                                   ConsentChoices{choices.visit_kind, choices.identity_method,
                                                  TextList(choices.items.begin(), choices.items.end()),
                                                  choices.appointment_date},
                                   r.preparatory_visit};
    // The hand-off's 完了 in the registration's transaction: the consent and it are committed together or not at all
    // (and no transaction may enclose that one: it commits the count of a wrong passcode, then refuses).
    Context& x = x_;
    return consent_.register_consent(caller, registration, [&](RegisteredConsent const& out) {
        HandoffStore(x.db).finish(h.id, out.consent_id, out.first_visit, x.now());
    });
}

}  // namespace kyotaku::server
