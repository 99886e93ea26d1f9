// consent_registry: the write side of the consents — the card's one-time challenges, the consents registered and
// withdrawn, the card certificates' holders, and the facility's open consents by date for the file downloads (the
// consent, withdrawal and file desks keep it; what the decision reads is Records').
#pragma once

#include "storage/database.hpp"

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace kyotaku::server {

// A challenge as stored: whose it is, the bytes the card signs (hex), until when, and — once a registration used it —
// the hash of that registration and its consent.
struct StoredChallenge {
    std::string facility, challenge_hex, expires_at;
    bool used = false;
    std::string request_hash, consent_id;  // when used
};

// A consent to register.
struct ConsentRow {
    std::string id, facility, person, visit_kind, first_visit, identity_method;
    std::string items;  // the consented items, comma-separated
    std::optional<std::string> appointment_date;
    std::string registered_at;
    bool preparatory_visit = false;
};

// A consent as stored, withdrawn or not (the operator's listing).
struct StoredConsent {
    std::string id, person, visit_kind, first_visit, registered_at;
    std::optional<std::string> withdrawn_at;
    std::string identity_method;
    std::vector<std::string> items;
    std::optional<std::string> appointment_date;
    bool preparatory_visit = false;
    std::optional<std::string> withdrawn_by;
};

// An open consent of a facility, oldest first (first visit, registration, id).
struct OpenConsent {
    std::string person, visit_kind, first_visit;
};

class ConsentRegistry {
public:
    explicit ConsentRegistry(Database& db) : db_(db) {}
    // A challenge of the facility, asked for by `client` (the key of the budget it spends: consent_limits.hpp).
    void add_challenge(std::string const& id, std::string const& facility, std::string const& challenge_hex,
                       std::string const& created_at, std::string const& expires_at, std::string const& client);
    std::optional<StoredChallenge> challenge(std::string const& id);
    // Forgets the challenges expired before `now`, unused or used before `used_before` (a registration sent again
    // finds its challenge a day long).
    void forget_challenges(std::string const& now, std::string const& used_before);
    // The challenges `client` asked for at the facility after `since`.
    RecentCount recent_challenges(std::string const& facility, std::string const& client, std::string const& since);
    // Marks the challenge used by the registration whose hash is `request_hash` and that made `consent_id`.
    void use_challenge(std::string const& id, std::string const& at, std::string const& request_hash,
                       std::string const& consent_id);
    std::optional<std::string> first_visit(std::string const& consent_id);
    // The person whose card has this certificate ("" when none is registered).
    std::string card_holder(std::string const& fingerprint);
    // Registers the card certificate's holder (test data: a card issued to the person); a certificate registered
    // before changes holder.
    void register_card(std::string const& fingerprint, std::string const& person, std::string const& at);
    void add(ConsentRow const& c);
    // Every consent of the facility, withdrawn or not, in the order registered.
    std::vector<StoredConsent> of_facility(std::string const& facility);
    // Withdraws the facility's open consents of the person, stamped `at` and `by`; returns how many.
    std::size_t withdraw(std::string const& facility, std::string const& person, std::string const& at,
                         std::string const& by);
    // The facility's open consents whose first visit is from `from` to `to` (ISO, inclusive).
    std::vector<OpenConsent> open_between(std::string const& facility, std::string const& from, std::string const& to);

private:
    Database& db_;
};

}  // namespace kyotaku::server
