// 引き継ぎ (hand-off) of the consent page: the patient's phone cannot read the card (a browser cannot send card
// commands over NFC, and a phone seldom has a reader), so the staff's device with a reader (kyotaku-bridge or
// WebUSB) does the card step of the session the phone started (docs/consent-page.md, "The hand-off").
//
//   phone   POST /api/v1/consent/handoff {token, visit_kind, items, identity_method, appointment_date?, to?}
//           → {handoff_id, code (6 digits), expires_at, qr}; then polls GET /api/v1/consent/handoff/{handoff_id}
//   staff   POST /api/v1/consent/handoff/claim {token, code} → {claim, choices, expires_at}
//           POST /api/v1/consent/handoff/challenge {token, claim} → the card's challenge
//           POST /api/v1/consent/handoff/register {token, claim, challenge_id, certificate, signature | visual_passcode}
//   phone   GET …/{handoff_id} → {"state":"done", "consent":{…}} → 完了
//
// `to` is "staff" (the default: the staff's device, during a home visit) or "computer" (オンライン診療等: the
// patient, alone with a phone that cannot read the card, finishes the same session on their own or a family
// member's computer with a reader). The two differ only in how long the code lives: a computer may be in another
// room, or another house.
//
// The patient's choices travel once, from the phone to the server: the staff's device shows them and the
// registration uses the stored ones, so nobody retypes them and the staff's device cannot change them. The
// PIN goes from the staff's device to the card only; it never reaches the phone or the server (no route has a
// field for it). The hand-off is finished in the consent registration's own transaction, so the phone's 完了
// and the consent in the registry are one fact. Codes live 15 minutes (2 hours to a computer), are claimed once,
// and wrong codes are counted per facility: after 5 in 10 minutes the facility's claims wait (429). Each route
// takes its documented fields only (fields.hpp).
#pragma once

#include "usecases/consent.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace kyotaku::server {

// The phone starts a hand-off with the patient's choices; `to` is staff (the default) or computer.
struct HandoffStart {
    std::string token;
    ConsentChoices choices;
    std::optional<TextList> consent_choices;  // 同意の選択肢 the patient ticked
    std::optional<std::string> to;
};
// The choices as the hand-off keeps them (checked against the rules' enums).
struct HandoffChoices {
    std::string visit_kind, identity_method;
    std::vector<std::string> items;
    std::optional<std::vector<std::string>> choices;
    std::optional<std::string> appointment_date;  // ISO
};
struct HandoffCreated {
    std::string handoff_id, code, expires_at;
    std::string qr;  // a data: URL of a PNG
};
// What the phone sees: waiting, claimed, done (with the consent), cancelled or expired.
struct HandoffStatus {
    std::string expires_at, state;
    struct Done {
        HandoffChoices choices;
        std::string consent_id;
        std::optional<std::string> first_visit;
    };
    std::optional<Done> consent;
};
struct HandoffClaimed {
    std::string claim;
    HandoffChoices choices;
    std::string expires_at;
};
// The staff's device finishes the registration with the card's answer.
struct HandoffRegistration {
    std::string token, claim, challenge_id, certificate;
    std::optional<std::string> signature, visual_passcode;
};

class Handoffs {
public:
    /// The database, the clock (injected: tests move it), the rules in force and the URL base are the context's;
    /// the token checks and the registration are the settings' and the consent desk's (Service wires them).
    Handoffs(Context& x, SettingsDesk& settings, ConsentDesk& consent) : x_(x), settings_(settings), consent_(consent) {}

    HandoffCreated create(HandoffStart const& start);            ///< the phone starts a hand-off
    HandoffStatus status(std::string const& handoff_id);         ///< the phone polls it
    HandoffStatus cancel(std::string const& handoff_id);         ///< the phone takes it back
    HandoffClaimed claim(std::string const& token, std::string const& code);         ///< the staff's device enters the code
    Challenge challenge(std::string const& token, std::string const& claim);         ///< … asks for the card's challenge
    RegisteredConsent register_consent(HandoffRegistration const& r);  ///< … registers with the card

    std::chrono::seconds lifetime{15 * 60};   ///< how long a code can be claimed and the card step done (to the staff) …
    std::chrono::seconds computer_lifetime{2 * 60 * 60};  ///< … and to a computer
    int max_failures = 5;                     ///< wrong codes per facility within failure_window …
    std::chrono::seconds failure_window{10 * 60};  ///< … before its claims wait
    int max_open = 50;                        ///< open hand-offs per facility

private:
    struct Open;
    std::string facility_of(std::string const& token);
    Open find_claimed(std::string const& token, std::string const& claim);
    Context& x_;
    SettingsDesk& settings_;
    ConsentDesk& consent_;
};

}  // namespace kyotaku::server
