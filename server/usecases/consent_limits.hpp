// Limits on the consent page's anonymous routes (issues 10, 21 and 22): challenges are purged once expired and their
// creation is bounded per client (its network address, Caller::client) at each facility URL; 目視確認 passcodes are
// stored as a keyed hash (secrets.hpp), a few wrong ones hold back the client that sent them, and many — from many
// clients — make the facility's live passcodes stop working. The facility URL is on paper in patients' homes: what a
// stranger does with it must not stop a patient's registration (docs/security.md, "Consent-page challenges" and
// "目視確認 passcodes"). An office terminal of the facility itself (its certificate) is never held back.
#pragma once

#include "usecases/service.hpp"

#include <chrono>
#include <string>

namespace kyotaku::server {

constexpr int challenges_per_minute = 30;  // per client and facility URL
constexpr int passcode_attempts = 5;       // wrong passcodes per client and facility within passcode_window …
constexpr std::chrono::seconds passcode_window{15 * 60};  // … (a passcode's lifetime) before that client waits
// wrong passcodes at a facility, from anyone, before its live ones stop working
constexpr int passcode_guesses = 100;

// In the transaction that makes a challenge, before it: purges the expired ones (and those used more than a day ago),
// then refuses (too_many, with its retry_after) a client that asked this facility URL for `challenges_per_minute` in
// the last minute; nobody else waits. `client` is budget_client's (desk_util.hpp). The facility is locked until the
// transaction ends (desk_util.hpp lock_facility): the limit is exact on every database, however many servers ask.
void admit_challenge(Context& x, std::string const& facility, std::string const& client);

// A new 8-digit passcode of the facility, stored as its keyed hash until `expires`; returns the passcode.
std::string new_passcode(Context& x, std::string const& facility, std::string const& expires);
// In the registration's transaction, before anything else is written: refuses (too_many, with its retry_after) a client
// that sent `passcode_attempts` wrong passcodes to this facility within `passcode_window`, before comparing; else marks
// the passcode used and returns true; or, when it is wrong, used, expired or spent, counts a wrong attempt against the
// client and against the facility's live passcodes (each stops working after `passcode_guesses`) and returns false —
// the caller then commits that count and writes nothing else. The facility is locked until the transaction ends
// (desk_util.hpp lock_facility): one guess is compared at a time, so however many arrive at once, at however many
// servers, no more than `passcode_attempts` wrong ones of a client, and `passcode_guesses` in all, are compared.
bool use_passcode(Context& x, std::string const& facility, std::string const& client, std::string const& passcode);

}  // namespace kyotaku::server
