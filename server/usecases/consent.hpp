// The consent page (マイナ在宅受付Web, reached with the facility URL's token): what the page needs to know, the
// rules it runs, one-time challenges, 目視確認 passcodes, and the registration of a consent verified by the card.
// Requests and answers are domain types; http/api_json.hpp reads and writes them.
#pragma once

#include "usecases/context.hpp"
#include "usecases/settings.hpp"

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace kyotaku::server {

// What the consent page shows before anything is asked: the facility, its functions, the server's date and where
// the rules are.
struct ConsentPage {
    std::string facility_name, facility_kind;
    bool home_care_feature = false, online_feature = false;
    std::string today, rules;
};

// A one-time challenge for the card to sign (base64), valid until expires_at.
struct Challenge {
    std::string challenge_id, challenge, expires_at;
};

struct VisualPasscode {
    std::string passcode, expires_at;
};

// The patient's choices on the page (what a hand-off carries from the phone to the staff's device).
struct ConsentChoices {
    std::string visit_kind, identity_method;
    TextList items;                               // as sent; checked against the rules' enum
    std::optional<std::string> appointment_date;  // a date as sent
};

// A registration: the choices, the challenge the card signed, the card's certificate (base64) and its signature
// (base64, 暗証番号) or the office terminal's passcode (目視確認).
struct ConsentRegistration {
    std::string token, challenge_id, certificate;
    std::optional<std::string> signature, visual_passcode;
    ConsentChoices choices;
};

struct RegisteredConsent {
    std::string consent_id, first_visit;
    bool retry = false;  // the same registration sent again: the first one's answer (200, not 201)
};

class ConsentDesk {
public:
    ConsentDesk(Context& x, SettingsDesk& settings) : x_(x), settings_(settings) {}
    ConsentPage page(std::string const& token);
    // The rules in force as the page loads them (shared: a reload may replace them while a response is being sent).
    std::shared_ptr<std::string const> rules_bundle();
    Challenge issue_challenge(std::string const& token);
    RegisteredConsent register_consent(ConsentRegistration const& r);
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
