// Rule releases move forward only (issue 23; TUF's rollback protection is the model: a client never accepts
// metadata older than what it has seen). A signed bundle carries its release number inside the signed part
// (kyotaku::ReleaseInfo); the database remembers the highest release its servers have served (the floor,
// migration 060), and `kyotaku serve` refuses an older release at start and on SIGHUP, naming both numbers. Going
// back is an operator's explicit act: `rollback_to = N` (--rollback-to N) accepts release N once it is older than
// the floor, logs it, and makes N the new floor.
#pragma once

#include "kyotaku/engine.hpp"
#include "storage/rule_release_floor.hpp"

#include <cstdint>
#include <string>

namespace kyotaku::server {

struct ReleaseAdmission {
    bool accepted = false;
    bool raises_floor = false;  // a newer release: it becomes the floor
    bool rollback = false;      // accepted because rollback_to names it: the floor goes back to it
    ReleaseFloor floor;         // the floor before this release
    Message refusal;            // when !accepted: why, naming both release numbers
    Message note;               // when accepted: anything the operator should know (a rollback_to left set)
};

// What the floor says of a rule set: `release` (0 for rule sources and unnumbered bundles) with its source hash.
// `rollback_to` is the operator's setting (0: none). Reads only.
ReleaseAdmission judge_release(ReleaseFloor const& floor, ReleaseInfo const& release, std::uint64_t source_hash,
                               std::uint64_t rollback_to);

// The database's floor (storage/rule_release_floor.hpp).
ReleaseFloor read_release_floor(Database& db);

// judge_release against the database's floor, and when accepted records it (the floor raised or gone back, a row of
// history), in one transaction, so that servers that load at once agree. Throws DatabaseError.
ReleaseAdmission admit_release(Database& db, ReleaseInfo const& release, std::uint64_t source_hash,
                               std::uint64_t rollback_to, std::string const& instance);

}  // namespace kyotaku::server
