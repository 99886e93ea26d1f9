// Limits on the consent page's anonymous routes (issue 10): challenges are purged once expired and their creation is
// bounded per facility URL; 目視確認 passcodes are stored as a keyed hash (secrets.hpp), and a few wrong attempts at a
// facility invalidate its live passcodes. docs/security.md.
#pragma once

#include "usecases/service.hpp"

#include <string>

namespace kyotaku::server {

constexpr int challenges_per_minute = 30;  // per facility URL
constexpr int passcode_attempts = 5;       // wrong passcodes at a facility before its live passcodes stop working

// Before a challenge is made: purges the expired ones (and those used more than a day ago), then refuses (429) a
// facility whose URL asked for `challenges_per_minute` in the last minute.
void admit_challenge(Context& x, std::string const& facility);

// A new 8-digit passcode of the facility, stored as its keyed hash until `expires`; returns the passcode.
std::string new_passcode(Context& x, std::string const& facility, std::string const& expires);
// In the registration's transaction: marks the passcode used. False when it is wrong, used, expired, or its
// facility's wrong attempts are spent.
bool use_passcode(Context& x, std::string const& facility, std::string const& passcode);
// Counts a wrong passcode against the facility's live passcodes, in a transaction of its own (the registration that
// found it wrong is rolled back).
void count_wrong_passcode(Context& x, std::string const& facility);

}  // namespace kyotaku::server
