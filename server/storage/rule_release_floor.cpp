#include "storage/rule_release_floor.hpp"

namespace kyotaku::server {

ReleaseFloor RuleReleaseFloor::read() {
    ReleaseFloor floor;
    auto rows = db_.query("SELECT release_number, source_hash, key_id, set_at FROM rule_release_floor WHERE id = 1");
    if (!rows.empty()) {
        floor.release = std::uint64_t(as_int(rows[0][0]));
        floor.source_hash = as_text(rows[0][1]);
        floor.key_id = as_text(rows[0][2]);
        floor.set_at = as_text(rows[0][3]);
    }
    return floor;
}

ReleaseFloor RuleReleaseFloor::read_if_migrated() {
    bool const migrated =
        !db_.query(db_.backend() == "postgresql"
                       ? "SELECT 1 FROM information_schema.tables WHERE table_name = 'rule_release_floor'"
                       : "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'rule_release_floor'")
             .empty();
    return migrated ? read() : ReleaseFloor{};
}

ReleaseFloor RuleReleaseFloor::lock() {
    db_.query("INSERT INTO rule_release_floor (id, release_number, source_hash, key_id, set_at) VALUES (1, 0, '', "
              "'', '') ON CONFLICT (id) DO NOTHING");
    db_.query(std::string("SELECT release_number FROM rule_release_floor WHERE id = 1") + db_.lock_suffix());
    return read();
}

void RuleReleaseFloor::move(ReleaseMove const& m) {
    db_.query("UPDATE rule_release_floor SET release_number = $1, source_hash = $2, key_id = $3, set_at = $4 "
              "WHERE id = 1",
              {std::int64_t(m.release), m.source_hash, m.key_id, m.at});
    db_.query("INSERT INTO rule_release_history (at, instance, event, release_number, from_release, "
              "source_hash, key_id) VALUES ($1, $2, $3, $4, $5, $6, $7)",
              {m.at, m.instance, m.event, std::int64_t(m.release), std::int64_t(m.from_release), m.source_hash,
               m.key_id});
}

std::vector<ReleaseMove> RuleReleaseFloor::history() {
    std::vector<ReleaseMove> out;
    for (auto const& r : db_.query("SELECT at, instance, event, release_number, from_release, source_hash, key_id "
                                   "FROM rule_release_history ORDER BY at, release_number"))
        out.push_back({as_text(r[0]), as_text(r[1]), as_text(r[2]), std::uint64_t(as_int(r[3])),
                       std::uint64_t(as_int(r[4])), as_text(r[5]), as_text(r[6])});
    return out;
}

}  // namespace kyotaku::server
