// The consent page (マイナ在宅受付Web, reached with the facility URL's token): what the page needs to know, the
// rules it runs, one-time challenges, 目視確認 passcodes, and the registration of a consent verified by the card.
// Requests and answers are domain types; http/api_json.hpp reads and writes them.
#pragma once

#include "usecases/context.hpp"
#include "usecases/settings.hpp"

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace kyotaku::server {

// What the consent page shows before anything is asked: the facility, its functions, the server's date, where the
// rules are, and the 診療区分 whose registration asks the staff whether it was a preparatory visit (the rules'
// 事前の訪問を尋ねる).
struct ConsentPage {
    std::string facility_name, facility_kind;
    bool home_care_feature = false, online_feature = false;
    std::string today, rules;
    std::vector<std::string> preparatory_kinds;
};

// A one-time challenge for the card to sign (base64), valid until expires_at.
struct Challenge {
    std::string challenge_id, challenge, expires_at;
};

// A 目視確認 passcode of the office terminal's facility, valid until expires_at.
struct VisualPasscode {
    std::string passcode, expires_at;
};

// The patient's choices on the page, as sent (checked against the rules' enums by the desk).
struct ConsentChoices {
    std::string visit_kind, identity_method;
    TextList items;
    std::optional<std::string> appointment_date;  // a date as sent
};

// A registration: the choices, the challenge the card signed, the card's certificate (base64) and its signature
// (base64, 暗証番号) or the office terminal's passcode (目視確認), and the staff's answer whether this was a
// preparatory visit (契約や計画策定などのための事前の訪問, 通知 第2).
struct ConsentSubmission {
    std::string token, challenge_id, certificate;
    std::optional<std::string> signature, visual_passcode;
    ConsentChoices choices;
    bool preparatory_visit = false;
};

struct RegisteredConsent {
    std::string consent_id, first_visit;
    bool retry = false;  // the same registration sent again (a retry after a lost answer): the first one's answer
};

class ConsentDesk {
public:
    ConsentDesk(Context& x, SettingsDesk& settings) : x_(x), settings_(settings) {}
    ConsentPage page(std::string const& token);
    // The rules in force as the page loads them (shared: a reload may replace them while a response is being sent).
    std::shared_ptr<std::string const> rules_bundle();
    // The caller's address is the key of the budgets these spend (consent_limits.hpp).
    Challenge issue_challenge(Caller const& caller, std::string const& token);
    // `with` (when set) runs inside the registration's transaction with its answer: what is committed with it.
    RegisteredConsent register_consent(Caller const& caller, ConsentSubmission const& r,
                                       std::function<void(RegisteredConsent const&)> const& with = {});
    VisualPasscode visual_passcode(Caller const& c);

private:
    std::string facility_of_token(std::string const& token);
    Context& x_;
    SettingsDesk& settings_;
    std::mutex bundle_mutex_;
    Rules bundle_rules_;
    std::shared_ptr<std::string const> bundle_;
};

}  // namespace kyotaku::server
