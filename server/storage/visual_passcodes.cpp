#include "storage/visual_passcodes.hpp"

namespace kyotaku::server {

void VisualPasscodes::add(std::string const& facility, std::string const& hash, std::string const& at,
                          std::string const& expires_at) {
    db_.query(
        "INSERT INTO visual_passcodes (facility_code, passcode_hash, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        {facility, hash, at, expires_at});
}

std::optional<StoredPasscode> VisualPasscodes::find(std::string const& facility, std::string const& hash) {
    auto rows = db_.query("SELECT expires_at, used_at, failed_attempts FROM visual_passcodes "
                          "WHERE facility_code = $1 AND passcode_hash = $2",
                          {facility, hash});
    if (rows.empty()) return std::nullopt;
    return StoredPasscode{as_text(rows[0][0]), !is_null(rows[0][1]), as_int(rows[0][2])};
}

void VisualPasscodes::count_wrong_guess(std::string const& facility, std::string const& at) {
    db_.query("UPDATE visual_passcodes SET failed_attempts = failed_attempts + 1 "
              "WHERE facility_code = $1 AND used_at IS NULL AND expires_at >= $2",
              {facility, at});
}

void VisualPasscodes::use(std::string const& facility, std::string const& hash, std::string const& at) {
    db_.query("UPDATE visual_passcodes SET used_at = $3 WHERE facility_code = $1 AND passcode_hash = $2",
              {facility, hash, at});
}

void VisualPasscodes::forget_failures(std::string const& since) {
    db_.query("DELETE FROM visual_passcode_failures WHERE at <= $1", {since});
}

RecentCount VisualPasscodes::failures(std::string const& facility, std::string const& client,
                                      std::string const& since) {
    return recent_count(db_.query("SELECT COUNT(*), MIN(at) FROM visual_passcode_failures WHERE facility_code = $1 "
                                  "AND client = $2 AND at > $3",
                                  {facility, client, since}));
}

void VisualPasscodes::add_failure(std::string const& facility, std::string const& client, std::string const& at) {
    db_.query("INSERT INTO visual_passcode_failures (facility_code, client, at) VALUES ($1, $2, $3)",
              {facility, client, at});
}

}  // namespace kyotaku::server
