#include "usecases/consent_limits.hpp"

#include "storage/consent_registry.hpp"
#include "storage/visual_passcodes.hpp"
#include "usecases/desk_util.hpp"

#include <openssl/rand.h>

#include <array>
#include <stdexcept>

namespace kyotaku::server {

void admit_challenge(Context& x, std::string const& facility, std::string const& client) {
    using std::chrono::seconds;
    lock_facility(x, facility);  // the count and the caller's insert: one step (3 servers × 8 threads made 33 of 30)
    ConsentRegistry registry(x.db);
    registry.forget_challenges(x.now(), x.clock.timestamp_after(seconds(-24 * 3600)));
    if (client == office_client) return;
    RecentCount const recent = registry.recent_challenges(facility, client, x.clock.timestamp_after(seconds(-60)));
    if (recent.count >= challenges_per_minute) {
        long long const wait = seconds_until(x.clock, recent.first, seconds(60));  // the first leaves the minute
        throw too_many("token",
                       "この機器からの申し込みが続いています。" + minutes_ja(wait) +
                           "ほど待ってから、もう一度お試しください。急ぐときは、職員にお知らせください。",
                       "too many challenges from this client for this facility URL in the last minute: retry later",
                       wait);
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
    VisualPasscodes(x.db).add(facility, x.secrets->passcode_hash(facility, code), x.now(), expires);
    return code;
}

bool use_passcode(Context& x, std::string const& facility, std::string const& client, std::string const& passcode) {
    lock_facility(x, facility);  // one guess at a time, until the registration's transaction ends
    std::string const since = x.clock.timestamp_after(-passcode_window);
    VisualPasscodes passcodes(x.db);
    passcodes.forget_failures(since);
    // Wrong passcodes hold back the client that sent them (this facility, this address) before any is compared.
    if (client != office_client) {
        RecentCount const failures = passcodes.failures(facility, client, since);
        if (failures.count >= passcode_attempts) {
            long long const wait = seconds_until(x.clock, failures.first, passcode_window);
            throw too_many("visual_passcode",
                           "パスコードの間違いが続いたため、この機器からは、しばらく登録できません。" +
                               minutes_ja(wait) +
                               "ほど待ってから、職員が事務所のパソコンで受け取った新しいパスコードを入れてください。",
                           "too many wrong 目視確認 passcodes from this client: retry later", wait);
        }
    }
    std::string const hash = x.secrets->passcode_hash(facility, passcode);
    auto const stored = passcodes.find(facility, hash);
    if (!stored || stored->used || stored->expires_at < x.now() || stored->failed_attempts >= passcode_guesses) {
        passcodes.count_wrong_guess(facility, x.now());
        if (client != office_client) passcodes.add_failure(facility, client, x.now());
        return false;
    }
    passcodes.use(facility, hash, x.now());
    return true;
}

}  // namespace kyotaku::server
