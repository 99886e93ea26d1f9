// Limits on the consent page's anonymous routes (issue 10): challenges are purged once expired and their creation is
// bounded per facility URL; 目視確認 passcodes are stored as a keyed hash (secrets.hpp), and a few wrong attempts at a
// facility invalidate its live passcodes. docs/security.md.
#pragma once

#include "usecases/service.hpp"

#include <string>

namespace kyotaku::server {

constexpr int challenges_per_minute = 30;  // per facility URL
constexpr int passcode_attempts = 5;       // wrong passcodes at a facility before its live passcodes stop working

// In the transaction that makes a challenge, before it: purges the expired ones (and those used more than a day ago),
// then refuses (429) a facility whose URL asked for `challenges_per_minute` in the last minute. The facility is
// locked until the transaction ends (desk_util.hpp lock_facility): the limit is exact on every database.
void admit_challenge(Context& x, std::string const& facility);

// A new 8-digit passcode of the facility, stored as its keyed hash until `expires`; returns the passcode.
std::string new_passcode(Context& x, std::string const& facility, std::string const& expires);
// In the registration's transaction, before anything else is written: marks the passcode used and returns true;
// or, when it is wrong, used, expired or spent, counts a wrong attempt against the facility's live passcodes and
// returns false — the caller then commits that count and writes nothing else. The facility is locked until the
// transaction ends (desk_util.hpp lock_facility): one guess is compared at a time, so however many arrive at once no
// more than `passcode_attempts` wrong ones are compared before the facility's passcodes stop working.
bool use_passcode(Context& x, std::string const& facility, std::string const& passcode);

}  // namespace kyotaku::server
