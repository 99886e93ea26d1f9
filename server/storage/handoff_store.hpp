// handoff_store: the consent page's 引き継ぎ (hand-offs) as stored — each hand-off's code, the patient's choices, its
// claim and its end — and the wrong codes each claimant entered (the hand-off desk keeps it: usecases/handoff.hpp).
#pragma once

#include "storage/database.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kyotaku::server {

// A hand-off to store, unclaimed.
struct NewHandoff {
    std::string id, facility, code, choices_json, created_at, expires_at, client;
    bool to_computer = false;
};

// A hand-off of a facility still open (neither done nor cancelled nor expired): its code, who started it, whether it
// is claimed, until when.
struct OpenHandoff {
    std::string code, client;
    bool claimed = false;
    std::string expires_at;
};

// A hand-off as the phone asks for it. `consent_id` is the consent its registration made, if any: the hand-off's own,
// or else the one its challenge was used for (empty when none).
struct HandoffState {
    std::string expires_at;
    bool claimed = false, cancelled = false;
    std::string consent_id;
    std::optional<std::string> first_visit;
    std::string choices_json;
};

// An open hand-off that a code names, before it is claimed.
struct CodedHandoff {
    std::string id, choices_json;
    bool to_computer = false;
};

// A hand-off as its claim finds it (the staff's device).
struct ClaimedHandoff {
    std::string id, choices_json, challenge_id, expires_at;  // challenge_id: empty until the card's challenge is asked
    bool done = false, cancelled = false;
};

class HandoffStore {
public:
    explicit HandoffStore(Database& db) : db_(db) {}

    // Forgets the hand-offs that expired before `before` (they are kept a while: the phone may still ask).
    void forget_expired(std::string const& before);
    // The facility's open hand-offs at `at`, oldest first.
    std::vector<OpenHandoff> open(std::string const& facility, std::string const& at);
    // Cancels, stamped `at`, the oldest open unclaimed hand-off that `client` started at the facility.
    void cancel_oldest_unclaimed(std::string const& facility, std::string const& client, std::string const& at);
    void add(NewHandoff const& h);
    std::optional<HandoffState> state(std::string const& id);
    // Cancels the hand-off, stamped `at`, unless it is done or cancelled already.
    void cancel(std::string const& id, std::string const& at);

    // The open hand-off of the facility with this code at `at`.
    std::optional<CodedHandoff> by_code(std::string const& facility, std::string const& code, std::string const& at);
    // Claims the hand-off at `at` with the claim's hash, extended until `expires_at`; false when another claim was
    // first.
    bool claim(std::string const& id, std::string const& at, std::string const& claim_hash,
               std::string const& expires_at);
    std::optional<ClaimedHandoff> by_claim(std::string const& claim_hash, std::string const& facility);
    void set_challenge(std::string const& id, std::string const& challenge_id);
    // The hand-off is done: the consent its registration made, stamped `at`.
    void finish(std::string const& id, std::string const& consent_id, std::string const& first_visit,
                std::string const& at);

    // The wrong codes: forgotten once they are `since` or older; counted per claimant (facility and client).
    void forget_failures(std::string const& since);
    RecentCount failures(std::string const& facility, std::string const& claimant, std::string const& since);
    void add_failure(std::string const& facility, std::string const& claimant, std::string const& at);

private:
    Database& db_;
};

}  // namespace kyotaku::server
