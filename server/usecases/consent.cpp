// The consent page's side of the server (マイナ在宅受付Web, reached with the facility URL's token): what the page
// needs to know, the rules it runs, one-time challenges, 目視確認 passcodes, and the registration of a consent
// verified by the card. The first visit of a consent is the day the server registers it (its own clock).
#include "core/card_signature.hpp"
#include "usecases/consent_limits.hpp"
#include "usecases/desk_util.hpp"

namespace kyotaku::server {

std::string ConsentDesk::facility_of_token(std::string const& token) {
    auto check = settings_.check_token(token);
    if (!check.facility_code) throw url_refused(check.reason);
    return *check.facility_code;
}

json ConsentDesk::page(std::string const& token) {
    if (token.empty()) throw invalid("token", "token が必要です", "token is required");
    auto check = settings_.check_token(token);
    if (!check.facility_code) throw url_refused(check.reason);
    auto f = DbRecords(x_.db).facility(*check.facility_code);
    if (!f) throw url_refused({"URL が正しくありません", "unknown facility"});
    // The 診療区分 whose registration asks the staff whether it was a preparatory visit (the rules' 事前の訪問を尋ねる).
    json preparatory = json::array();
    auto rules = x_.rules();
    for (auto const& [kind, info] : rules->kinds)
        if (info.asks_preparatory) preparatory.push_back(kind);
    return json{{"facility_name", f->name}, {"facility_kind", f->kind}, {"home_care_feature", f->settings.home_visit_enabled},
                {"online_feature", f->settings.online_enabled}, {"today", x_.today().iso()}, {"rules", "/web/rules.bundle"},
                {"preparatory_kinds", preparatory}};
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

json ConsentDesk::issue_challenge(Caller const& caller, json const& body) {
    Fields f(body, {"token"});
    std::string facility = facility_of_token(f.text("token"));
    std::string const client = budget_client(caller, facility);
    std::string id = new_id();
    std::string challenge = new_id() + new_id();  // 32 random bytes, hex
    std::string expires = x_.clock.timestamp_after(std::chrono::seconds(300));
    transaction(x_.db, [&] {
        admit_challenge(x_, facility, client);
        x_.db.query("INSERT INTO challenges (id, facility_code, challenge_hex, created_at, expires_at, client) VALUES ($1, $2, $3, $4, $5, $6)",
                    {id, facility, challenge, x_.now(), expires, client});
    });
    return json{{"challenge_id", id}, {"challenge", base64_encode(from_hex(challenge))}, {"expires_at", expires}};
}

json ConsentDesk::visual_passcode(Caller const& c) {
    require_facility(c);
    std::string expires = x_.clock.timestamp_after(std::chrono::seconds(900));
    return json{{"passcode", new_passcode(x_, c.facility_code, expires)}, {"expires_at", expires}};
}

json ConsentDesk::register_consent(Caller const& caller, json const& body, int& status, std::function<void(json const&)> const& with) {
    Fields f(body, {"token", "challenge_id", "certificate", "signature", "identity_method", "visit_kind", "items", "appointment_date",
                    "visual_passcode", "preparatory_visit"});
    auto rules = x_.rules();
    std::string facility = facility_of_token(f.text("token"));
    std::string challenge_id = f.text("challenge_id");
    auto certificate = base64_decode(f.text("certificate"));
    if (!certificate) throw invalid("certificate", "certificate は base64 です", "certificate must be base64");
    std::string method = f.text("identity_method");
    if (method != "暗証番号" && method != "目視確認")
        throw invalid("identity_method", "本人確認は 暗証番号 か 目視確認 です", "identity_method is 暗証番号 or 目視確認");
    // 暗証番号: the card signed the challenge after the PIN. 目視確認: no PIN, so no signature; the certificate is
    // checked and the office terminal's one-time passcode authorises the visit (interfaces.md section 3).
    std::optional<std::vector<unsigned char>> signature;
    if (method == "暗証番号" || f.has("signature")) {
        signature = base64_decode(f.text("signature"));
        if (!signature) throw invalid("signature", "signature は base64 です", "signature must be base64");
    }
    std::string passcode = method == "目視確認" ? f.optional_text("visual_passcode") : std::string();
    std::string kind = f.enum_value(*rules->program, "visit_kind", "visit_kind");
    std::string list;
    for (auto const& item : f.enum_list(*rules->program, "items", "consented_items")) list += (list.empty() ? "" : ",") + item;
    std::optional<std::string> appointment;
    if (f.has("appointment_date")) appointment = f.date("appointment_date");
    // The staff's answer: was this a preparatory visit (契約や計画策定などのための事前の訪問, 通知 第2)?
    bool const preparatory = f.boolean("preparatory_visit", false);
    std::string const request_hash = sha256_hex(body.dump());
    std::string const today = x_.today().iso();

    bool wrong_passcode = false;
    json out = transaction(x_.db, [&]() -> json {
        auto ch = x_.db.query("SELECT facility_code, challenge_hex, expires_at, used_at, request_hash, consent_id FROM challenges WHERE id = $1",
                              {challenge_id});
        if (ch.empty() || as_text(ch[0][0]) != facility) throw invalid("challenge_id", "チャレンジが見つかりません", "unknown challenge");
        if (!is_null(ch[0][3])) {
            // The same registration sent again (a retry after a lost answer) gets the same answer; anything else
            // with a used challenge is a replay.
            if (as_text(ch[0][4]) == request_hash) {
                status = 200;
                auto c = x_.db.query("SELECT first_visit FROM consents WHERE id = $1", {as_text(ch[0][5])});
                json again{{"consent_id", as_text(ch[0][5])}, {"first_visit", c.empty() ? today : as_text(c[0][0])}, {"retry", true}};
                if (with) with(again);
                return again;
            }
            throw conflict("challenge_id", "このチャレンジは使用済みです (再送は同じ内容でだけ)", "the challenge was already used");
        }
        if (as_text(ch[0][2]) < x_.now()) throw invalid("challenge_id", "チャレンジの有効期限が切れました", "the challenge expired");
        // The service, the identity method and the 診療予約日, by the rules on the server's date (nothing about the
        // card's holder is needed, nor revealed, to decide them).
        DbRecords records(x_.db);
        auto info = records.facility(facility);
        DecisionPath decisions(rules, records, x_.today());
        auto decided = decisions.registration(*info, kind, method, appointment, preparatory);
        if (!decided.ok)
            throw Error(decided.field == "visit_kind" ? Error::Kind::conflict : Error::Kind::invalid, decided.field,
                        decided.reason);
        if (x_.card_ca.empty()) throw Error(Error::Kind::unavailable, "", "カードの認証局が設定されていません", "the card CA is not configured");
        CardCheck card = verify_card_signature(x_.card_ca, *certificate, from_hex(as_text(ch[0][1])), signature ? &*signature : nullptr);
        if (!card.ok) throw Error(card.field.empty() ? Error::Kind::unavailable : Error::Kind::invalid, card.field, card.error_ja, card.error_en);
        // 目視確認: the passcode is checked before anything is looked up about the card's holder, so that a holder
        // of the URL and a card's (public) certificate learns nothing without it. One guess at a time per facility:
        // a wrong one is counted (against this client, and the facility's live passcodes) and committed (nothing
        // else was written) before the next is compared.
        if (method == "目視確認" && !use_passcode(x_, facility, budget_client(caller, facility), passcode)) {
            wrong_passcode = true;
            return json();
        }
        auto holder = x_.db.query("SELECT person_key FROM card_certificates WHERE fingerprint = $1", {card.fingerprint});
        if (holder.empty()) throw invalid("certificate", "このカードの資格情報がありません", "no eligibility for this card");
        std::string person = as_text(holder[0][0]);

        std::string consent_id = new_id();
        x_.db.query("INSERT INTO consents (id, facility_code, person_key, visit_kind, first_visit, identity_method, items, appointment_date, registered_at, "
                    "preparatory_visit) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    {consent_id, facility, person, kind, today, method, list, appointment ? Value(*appointment) : Value(nullptr), x_.now(),
                     std::int64_t(preparatory)});
        x_.db.query("UPDATE challenges SET used_at = $2, request_hash = $3, consent_id = $4 WHERE id = $1", {challenge_id, x_.now(), request_hash, consent_id});
        // The first visit's 居宅同意取得型 verification is itself a 資格確認 of the facility: logged.
        log_inquiry(x_, InquiryEntry{facility, "マイナ在宅受付Web", "資格確認（居宅同意取得型）", person, true,
                                     json{{"consent_id", consent_id}, {"identity_method", method}, {"visit_kind", kind}, {"first_visit", today},
                                          {"preparatory_visit", preparatory}}});
        status = 201;
        json made{{"consent_id", consent_id}, {"first_visit", today}};
        if (with) with(made);
        return made;
    });
    if (wrong_passcode) throw invalid("visual_passcode", "目視確認用パスコードが正しくないか、使用済みか、期限切れです", "the 目視確認 passcode is wrong, used or expired");
    return out;
}

}  // namespace kyotaku::server
