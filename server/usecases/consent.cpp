// The consent page's side of the server (マイナ在宅受付Web, reached with the facility URL's token): what the page
// needs to know, the rules it runs, one-time challenges, 目視確認 passcodes, and the registration of a consent
// verified by the card. The first visit of a consent is the day the server registers it (its own clock).
#include "usecases/consent.hpp"

#include "core/card_signature.hpp"
#include "storage/consent_registry.hpp"
#include "usecases/consent_limits.hpp"
#include "usecases/desk_util.hpp"

#include <nlohmann/json.hpp>

namespace kyotaku::server {

// Stored details (資格確認履歴, hand-off choices, device staff lists) are JSON text.
using json = nlohmann::json;

std::string ConsentDesk::facility_of_token(std::string const& token) {
    auto check = settings_.check_token(token);
    if (!check.facility_code) throw url_refused(check.reason);
    return *check.facility_code;
}

ConsentPage ConsentDesk::page(std::string const& token) {
    if (token.empty()) throw invalid("token", "token が必要です", "token is required");
    auto check = settings_.check_token(token);
    if (!check.facility_code) throw url_refused(check.reason);
    auto f = DbRecords(x_.db).facility(*check.facility_code);
    if (!f) throw url_refused({"URL が正しくありません", "unknown facility"});
    // The 診療区分 whose registration asks the staff whether it was a preparatory visit (the rules'
    // 事前の訪問を尋ねる).
    ConsentPage out{f->name,
                    f->kind,
                    f->settings.home_visit_enabled,
                    f->settings.online_enabled,
                    x_.today().iso(),
                    "/web/rules.bundle",
                    {}};
    auto rules = x_.rules();
    for (auto const& [kind, info] : rules->kinds)
        if (info.asks_preparatory) out.preparatory_kinds.push_back(kind);
    return out;
}

std::shared_ptr<std::string const> ConsentDesk::rules_bundle() {
    auto rules = x_.rules();
    if (rules->exact_bundle) return rules->exact_bundle;  // signed: exactly the bytes whose signature was checked
    std::lock_guard lock(bundle_mutex_);
    if (bundle_rules_ != rules) {
        bundle_ = std::make_shared<std::string const>(save_bundle(*rules->program));
        bundle_rules_ = rules;
    }
    return bundle_;
}

Challenge ConsentDesk::issue_challenge(Caller const& caller, std::string const& token) {
    std::string facility = facility_of_token(token);
    std::string const client = budget_client(caller, facility);
    std::string id = new_id();
    std::string challenge = new_id() + new_id();  // 32 random bytes, hex
    std::string expires = x_.clock.timestamp_after(std::chrono::seconds(300));
    transaction(x_.db, [&] {
        admit_challenge(x_, facility, client);
        ConsentRegistry(x_.db).add_challenge(id, facility, challenge, x_.now(), expires, client);
    });
    return {id, base64_encode(from_hex(challenge)), expires};
}

VisualPasscode ConsentDesk::visual_passcode(Caller const& c) {
    require_facility(c);
    std::string expires = x_.clock.timestamp_after(std::chrono::seconds(900));
    return {new_passcode(x_, c.facility_code, expires), expires};
}

namespace {
// What a registration is, as one text: a retry is the same registration when this is the same (its hash is stored
// with the used challenge; nothing in it is a PIN, and it is never shown).
std::string registration_text(ConsentSubmission const& r) {
    std::string out;
    auto add = [&](std::optional<std::string> const& v) {
        out += v ? "+" + std::to_string(v->size()) + ":" + *v : std::string("-");
    };
    for (std::string const* v :
         {&r.token, &r.challenge_id, &r.certificate, &r.choices.visit_kind, &r.choices.identity_method})
        add(*v);
    for (auto const* v : {&r.signature, &r.visual_passcode, &r.choices.appointment_date}) add(*v);
    out += r.preparatory_visit ? "P" : "-";
    for (auto const& item : r.choices.items) add(item);
    return out;
}
}  // namespace

RegisteredConsent ConsentDesk::register_consent(Caller const& caller, ConsentSubmission const& r,
                                                std::function<void(RegisteredConsent const&)> const& with) {
    auto rules = x_.rules();
    std::string facility = facility_of_token(r.token);
    std::string const& challenge_id = r.challenge_id;
    auto certificate = base64_decode(r.certificate);
    if (!certificate) throw invalid("certificate", "certificate は base64 です", "certificate must be base64");
    std::string const& method = r.choices.identity_method;
    if (method != "暗証番号" && method != "目視確認")
        throw invalid("identity_method", "本人確認は 暗証番号 か 目視確認 です",
                      "identity_method is 暗証番号 or 目視確認");
    // 暗証番号: the card signed the challenge after the PIN. 目視確認: no PIN, so no signature; the certificate is
    // checked and the office terminal's one-time passcode authorises the visit (interfaces.md section 3).
    std::optional<std::vector<unsigned char>> signature;
    if (method == "暗証番号" || r.signature) {
        signature = base64_decode(required("signature", r.signature));
        if (!signature) throw invalid("signature", "signature は base64 です", "signature must be base64");
    }
    std::string passcode = method == "目視確認" ? r.visual_passcode.value_or("") : std::string();
    std::string kind = enum_value(*rules->program, "visit_kind", "visit_kind", r.choices.visit_kind);
    std::string list;
    for (auto const& item : enum_list(*rules->program, "items", "consented_items", r.choices.items))
        list += (list.empty() ? "" : ",") + item;
    std::optional<std::string> appointment;
    if (r.choices.appointment_date) appointment = iso_date("appointment_date", *r.choices.appointment_date);
    // The staff's answer: was this a preparatory visit (契約や計画策定などのための事前の訪問, 通知 第2)?
    bool const preparatory = r.preparatory_visit;
    std::string const request_hash = sha256_hex(registration_text(r));
    std::string const today = x_.today().iso();

    bool wrong_passcode = false;
    RegisteredConsent out = transaction(x_.db, [&]() -> RegisteredConsent {
        ConsentRegistry registry(x_.db);
        auto const ch = registry.challenge(challenge_id);
        if (!ch || ch->facility != facility)
            throw invalid("challenge_id", "チャレンジが見つかりません", "unknown challenge");
        if (ch->used) {
            // The same registration sent again (a retry after a lost answer) gets the same answer; anything else
            // with a used challenge is a replay.
            if (ch->request_hash == request_hash) {
                RegisteredConsent again{ch->consent_id, registry.first_visit(ch->consent_id).value_or(today), true};
                if (with) with(again);
                return again;
            }
            throw conflict("challenge_id", "このチャレンジは使用済みです (再送は同じ内容でだけ)",
                           "the challenge was already used");
        }
        if (ch->expires_at < x_.now())
            throw invalid("challenge_id", "チャレンジの有効期限が切れました", "the challenge expired");
        // The service, the identity method and the 診療予約日, by the rules on the server's date (nothing about the
        // card's holder is needed, nor revealed, to decide them).
        DbRecords records(x_.db);
        auto info = records.facility(facility);
        DecisionPath decisions(rules, records, x_.today());
        auto decided = decisions.registration(*info, kind, method, appointment, preparatory);
        if (!decided.ok)
            throw Error(decided.field == "visit_kind" ? Error::Kind::conflict : Error::Kind::invalid, decided.field,
                        decided.reason);
        if (x_.card_ca.empty())
            throw Error(Error::Kind::unavailable, "", "カードの認証局が設定されていません",
                        "the card CA is not configured");
        CardCheck card = verify_card_signature(x_.card_ca, *certificate, from_hex(ch->challenge_hex),
                                               signature ? &*signature : nullptr);
        if (!card.ok)
            throw Error(card.field.empty() ? Error::Kind::unavailable : Error::Kind::invalid, card.field, card.error_ja,
                        card.error_en);
        // 目視確認: the passcode is checked before anything is looked up about the card's holder, so that a holder
        // of the URL and a card's (public) certificate learns nothing without it. One guess at a time per facility:
        // a wrong one is counted (against this client, and the facility's live passcodes) and committed (nothing
        // else was written) before the next is compared.
        if (method == "目視確認" && !use_passcode(x_, facility, budget_client(caller, facility), passcode)) {
            wrong_passcode = true;
            return RegisteredConsent{};
        }
        std::string const person = registry.card_holder(card.fingerprint);
        if (person.empty())
            throw invalid("certificate", "このカードの資格情報がありません", "no eligibility for this card");

        std::string consent_id = new_id();
        registry.add(
            ConsentRow{consent_id, facility, person, kind, today, method, list, appointment, x_.now(), preparatory});
        registry.use_challenge(challenge_id, x_.now(), request_hash, consent_id);
        // The first visit's 居宅同意取得型 verification is itself a 資格確認 of the facility: logged.
        log_inquiry(x_, InquiryEntry{facility, "マイナ在宅受付Web", "資格確認（居宅同意取得型）", person, true,
                                     json{{"consent_id", consent_id},
                                          {"identity_method", method},
                                          {"visit_kind", kind},
                                          {"first_visit", today},
                                          {"preparatory_visit", preparatory}}
                                         .dump()});
        RegisteredConsent made{consent_id, today, false};
        if (with) with(made);
        return made;
    });
    if (wrong_passcode)
        throw invalid("visual_passcode", "目視確認用パスコードが正しくないか、使用済みか、期限切れです",
                      "the 目視確認 passcode is wrong, used or expired");
    return out;
}

}  // namespace kyotaku::server
