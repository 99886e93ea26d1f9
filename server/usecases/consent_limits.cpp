#include "usecases/consent_limits.hpp"

#include "usecases/desk_util.hpp"

#include <openssl/rand.h>

#include <array>
#include <stdexcept>

namespace kyotaku::server {

void admit_challenge(Context& x, std::string const& facility, std::string const& client) {
    using std::chrono::seconds;
    lock_facility(x, facility);  // the count and the caller's insert: one step (3 servers × 8 threads made 33 of 30)
    x.db.query("DELETE FROM challenges WHERE expires_at < $1 AND (used_at IS NULL OR used_at < $2)",
               {x.now(), x.clock.timestamp_after(seconds(-24 * 3600))});
    if (client == office_client) return;
    auto recent = x.db.query("SELECT COUNT(*), MIN(created_at) FROM challenges WHERE facility_code = $1 AND client = $2 AND created_at > $3",
                             {facility, client, x.clock.timestamp_after(seconds(-60))});
    if (as_int(recent[0][0]) >= challenges_per_minute) {
        long long const wait = seconds_until(x.clock, as_text(recent[0][1]), seconds(60));  // the first leaves the minute
        throw too_many("token", "この機器からの申し込みが続いています。" + minutes_ja(wait) + "ほど待ってから、もう一度お試しください。急ぐときは、職員にお知らせください。",
                       "too many challenges from this client for this facility URL in the last minute: retry later", wait);
    }
}

std::string new_passcode(Context& x, std::string const& facility, std::string const& expires) {
    // Eight uniform digits: a byte of 250 or more is drawn again (b % 10 of any byte made 0–5 likelier).
    std::string code;
    while (code.size() < 8) {
        std::array<unsigned char, 16> r{};
        if (RAND_bytes(r.data(), int(r.size())) != 1) throw std::runtime_error("RAND_bytes failed");
        for (auto b : r)
            if (b < 250 && code.size() < 8) code += char('0' + b % 10);
    }
    x.db.query("INSERT INTO visual_passcodes (facility_code, passcode_hash, created_at, expires_at) VALUES ($1, $2, $3, $4)",
               {facility, x.secrets->passcode_hash(facility, code), x.now(), expires});
    return code;
}

bool use_passcode(Context& x, std::string const& facility, std::string const& client, std::string const& passcode) {
    lock_facility(x, facility);  // one guess at a time, until the registration's transaction ends
    std::string const since = x.clock.timestamp_after(-passcode_window);
    x.db.query("DELETE FROM visual_passcode_failures WHERE at <= $1", {since});
    // Wrong passcodes hold back the client that sent them (this facility, this address) before any is compared.
    if (client != office_client) {
        auto failures = x.db.query("SELECT COUNT(*), MIN(at) FROM visual_passcode_failures WHERE facility_code = $1 AND client = $2 AND at > $3",
                                   {facility, client, since});
        if (as_int(failures[0][0]) >= passcode_attempts) {
            long long const wait = seconds_until(x.clock, as_text(failures[0][1]), passcode_window);
            throw too_many("visual_passcode",
                           "パスコードの間違いが続いたため、この機器からは、しばらく登録できません。" + minutes_ja(wait) +
                               "ほど待ってから、職員が事務所のパソコンで受け取った新しいパスコードを入れてください。",
                           "too many wrong 目視確認 passcodes from this client: retry later", wait);
        }
    }
    std::string const hash = x.secrets->passcode_hash(facility, passcode);
    auto row = x.db.query("SELECT expires_at, used_at, failed_attempts FROM visual_passcodes WHERE facility_code = $1 AND passcode_hash = $2",
                          {facility, hash});
    if (row.empty() || !is_null(row[0][1]) || as_text(row[0][0]) < x.now() || as_int(row[0][2]) >= passcode_guesses) {
        x.db.query("UPDATE visual_passcodes SET failed_attempts = failed_attempts + 1 WHERE facility_code = $1 AND used_at IS NULL AND expires_at >= $2",
                   {facility, x.now()});
        if (client != office_client)
            x.db.query("INSERT INTO visual_passcode_failures (facility_code, client, at) VALUES ($1, $2, $3)", {facility, client, x.now()});
        return false;
    }
    x.db.query("UPDATE visual_passcodes SET used_at = $3 WHERE facility_code = $1 AND passcode_hash = $2", {facility, hash, x.now()});
    return true;
}

}  // namespace kyotaku::server
