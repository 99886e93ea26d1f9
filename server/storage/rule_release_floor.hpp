// rule_release_floor: the highest rule release this database's servers have served (the floor, migration 060) and
// the history of its moves (ops/rule_releases.hpp decides; this only reads and writes them).
#pragma once

#include "storage/database.hpp"

#include <cstdint>
#include <string>

namespace kyotaku::server {

struct ReleaseFloor {
    std::uint64_t release = 0;  // 0: no release served yet
    std::string source_hash, key_id, set_at;
};

// One move of the floor: a newer release served ("served"), or an operator's rollback ("rollback").
struct ReleaseMove {
    std::string at, instance, event;
    std::uint64_t release = 0, from_release = 0;
    std::string source_hash, key_id;
};

class RuleReleaseFloor {
public:
    explicit RuleReleaseFloor(Database& db) : db_(db) {}
    // Runs `body` in one transaction (lock(), the judgement and move() commit together).
    template <typename F>
    auto atomically(F&& body) {
        return transaction(db_, std::forward<F>(body));
    }
    // The floor (release 0 when none was served).
    ReleaseFloor read();
    // The floor, when the database has its table (a database not yet migrated to 060 has none: release 0).
    ReleaseFloor read_if_migrated();
    // Inside atomically(): the floor, its row made when missing and taken for update, so that two servers loading
    // at once decide one after the other (PostgreSQL; SQLite's transactions are one writer at a time already).
    ReleaseFloor lock();
    // Inside atomically(): the floor becomes `move`'s release (its hash and key, set at `move.at`), and the move is
    // added to the history.
    void move(ReleaseMove const& move);
    // The history, oldest first.
    std::vector<ReleaseMove> history();

private:
    Database& db_;
};

}  // namespace kyotaku::server
