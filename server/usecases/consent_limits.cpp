#include "usecases/consent_limits.hpp"

#include "usecases/desk_util.hpp"

#include <openssl/rand.h>

#include <array>
#include <stdexcept>

namespace kyotaku::server {

void admit_challenge(Context& x, std::string const& facility) {
    using std::chrono::seconds;
    lock_facility(x, facility);  // the count and the caller's insert: one step (3 servers × 8 threads made 33 of 30)
    x.db.query("DELETE FROM challenges WHERE expires_at < $1 AND (used_at IS NULL OR used_at < $2)",
               {x.now(), x.clock.timestamp_after(seconds(-24 * 3600))});
    auto recent = x.db.query("SELECT COUNT(*) FROM challenges WHERE facility_code = $1 AND created_at > $2",
                             {facility, x.clock.timestamp_after(seconds(-60))});
    if (as_int(recent[0][0]) >= challenges_per_minute)
        throw too_many("token", "同意の受付が混み合っています。1分ほど待ってから、もう一度お試しください",
                       "too many challenges for this facility URL in the last minute: retry later", 60);
}

std::string new_passcode(Context& x, std::string const& facility, std::string const& expires) {
    std::array<unsigned char, 8> r{};
    if (RAND_bytes(r.data(), int(r.size())) != 1) throw std::runtime_error("RAND_bytes failed");
    std::string code;
    for (auto b : r) code += char('0' + b % 10);
    x.db.query("INSERT INTO visual_passcodes (facility_code, passcode_hash, created_at, expires_at) VALUES ($1, $2, $3, $4)",
               {facility, x.secrets->passcode_hash(facility, code), x.now(), expires});
    return code;
}

bool use_passcode(Context& x, std::string const& facility, std::string const& passcode) {
    lock_facility(x, facility);  // one guess at a time, until the registration's transaction ends
    std::string const hash = x.secrets->passcode_hash(facility, passcode);
    auto row = x.db.query("SELECT expires_at, used_at, failed_attempts FROM visual_passcodes WHERE facility_code = $1 AND passcode_hash = $2",
                          {facility, hash});
    if (row.empty() || !is_null(row[0][1]) || as_text(row[0][0]) < x.now() || as_int(row[0][2]) >= passcode_attempts) {
        x.db.query("UPDATE visual_passcodes SET failed_attempts = failed_attempts + 1 WHERE facility_code = $1 AND used_at IS NULL AND expires_at >= $2",
                   {facility, x.now()});
        return false;
    }
    x.db.query("UPDATE visual_passcodes SET used_at = $3 WHERE facility_code = $1 AND passcode_hash = $2", {facility, hash, x.now()});
    return true;
}

}  // namespace kyotaku::server
