// 引き継ぎ (hand-off) of the consent page: the patient's phone cannot read the card (a browser cannot send card
// commands over NFC, and a phone seldom has a reader), so the staff's device with a reader (kyotaku-bridge or
// WebUSB) does the card step of the session the phone started (docs/consent-page.md, "The hand-off").
//
//   phone   POST /api/v1/consent/handoff {token, visit_kind, items, identity_method, appointment_date?, to?}
//           → {handoff_id, code (6 digits), expires_at, qr}; then polls GET /api/v1/consent/handoff/{handoff_id}
//   staff   POST /api/v1/consent/handoff/claim {token, code} → {claim, choices, expires_at}
//           POST /api/v1/consent/handoff/challenge {token, claim} → the card's challenge
//           POST /api/v1/consent/handoff/register {token, claim, challenge_id, certificate, signature |
//           visual_passcode}
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
// and the consent in the registry are one fact. Each route takes its documented fields only (fields.hpp).
//
// Anyone who has a facility's URL may start hand-offs and enter codes (the URL is on paper in patients' homes), so
// nothing a stranger does may stop the facility's own work (docs/security.md, "Hand-off numbers"):
// - a code must be claimed within 5 minutes (30 to a computer); once claimed, the card step has 15 minutes (2
//   hours on a computer, which may be in another room or another house);
// - each client (Caller::client: its network address, an IPv6 /64) has at most 5 open hand-offs per facility
//   (too_many, with retry_after, beyond);
// - a facility has at most 50 unclaimed hand-offs; a new one beyond takes the place of the oldest unclaimed one of
//   a client that holds two or more, so a flood churns among itself while a patient's single hand-off stays;
// - wrong codes are counted per claimant (facility and client): after 5 in 10 minutes that claimant waits
//   (too_many, with retry_after), nobody else does;
// - an office terminal of the facility itself (its certificate) is not counted against any of these.
//
// Requests and answers are domain types; http/api_json.hpp reads and writes them.
#pragma once

#include "usecases/consent.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace kyotaku::server {

// The phone starts a hand-off with the patient's choices and the 同意の選択肢 ticked; `to` is "staff" (the default) or
// "computer".
struct HandoffStart {
    std::string token;
    ConsentChoices choices;
    std::optional<TextList> consent_choices;
    std::optional<std::string> to;
};
// The choices as the hand-off keeps them, checked against the rules' enums.
struct HandoffChoices {
    std::string visit_kind, identity_method;
    std::vector<std::string> items;
    std::optional<std::vector<std::string>> choices;  // 同意の選択肢
    std::optional<std::string> appointment_date;      // ISO
};
struct HandoffCreated {
    std::string handoff_id, code, expires_at;
    std::string qr;  // a data: URL of a PNG that opens the facility page on the other device, the code filled in
};
// What the phone sees: waiting, claimed, done (with the consent), cancelled or expired.
struct HandoffStatus {
    std::string expires_at, state;
    struct Done {
        HandoffChoices choices;
        std::string consent_id;
        std::optional<std::string> first_visit;
    };
    std::optional<Done> consent;  // when done
};
struct HandoffClaimed {
    std::string claim;  // the secret the staff's device shows in the next steps
    HandoffChoices choices;
    std::string expires_at;
};
// The staff's device asks for the card's challenge of a claimed hand-off.
struct HandoffChallengeRequest {
    std::string token, claim;
};
// The staff's device finishes the registration with the card's answer (and the staff's own: was it a preparatory
// visit); the choices are the hand-off's.
struct HandoffRegistration {
    std::string token, claim, challenge_id, certificate;
    std::optional<std::string> signature, visual_passcode;
    bool preparatory_visit = false;
};

class Handoffs {
public:
    /// The database, the clock (injected: tests move it), the rules in force and the URL base are the context's;
    /// the token checks and the registration are the settings' and the consent desk's (Service wires them).
    Handoffs(Context& x, SettingsDesk& settings, ConsentDesk& consent)
        : x_(x), settings_(settings), consent_(consent) {}

    /// the phone starts a hand-off
    HandoffCreated create(Caller const& caller, HandoffStart const& start);
    /// the phone polls it
    HandoffStatus status(std::string const& handoff_id);
    /// the phone takes it back
    HandoffStatus cancel(std::string const& handoff_id);
    /// the staff's device enters the code
    HandoffClaimed claim(Caller const& caller, std::string const& token, std::string const& code);
    /// The staff's device asks for the card's challenge, then registers with the card; both spend the staff's
    /// device's budgets (its address: consent_limits.hpp), not the phone's.
    Challenge challenge(Caller const& caller, HandoffChallengeRequest const& r);
    RegisteredConsent register_consent(Caller const& caller, HandoffRegistration const& r);

    std::chrono::seconds claim_within{5 * 60};             ///< how long a code can be claimed (to the staff) …
    std::chrono::seconds computer_claim_within{30 * 60};   ///< … and to a computer
    std::chrono::seconds lifetime{15 * 60};                ///< the card step's time once claimed (the staff's device) …
    std::chrono::seconds computer_lifetime{2 * 60 * 60};   ///< … and on a computer
    int max_failures = 5;                                  ///< wrong codes per claimant within failure_window …
    std::chrono::seconds failure_window{10 * 60};          ///< … before that claimant's claims wait
    int max_open = 50;                                     ///< unclaimed hand-offs per facility
    /// open hand-offs per client and facility (0: no such budget)
    int max_open_per_client = 5;

private:
    struct Open;
    std::string facility_of(std::string const& token);
    Open find_claimed(std::string const& token, std::string const& claim);
    Context& x_;
    SettingsDesk& settings_;
    ConsentDesk& consent_;
};

}  // namespace kyotaku::server
