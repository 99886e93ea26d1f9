// visual_passcodes: the one-time passcodes of 目視確認 (their hashes only: core/secrets.hpp) and the wrong ones each
// client sent (the consent desk's budgets keep it: usecases/consent_limits.hpp).
#pragma once

#include "storage/database.hpp"

#include <cstdint>
#include <optional>
#include <string>

namespace kyotaku::server {

// A passcode as stored: until when, whether used, how many wrong guesses were made while it was open.
struct StoredPasscode {
    std::string expires_at;
    bool used = false;
    std::int64_t failed_attempts = 0;
};

class VisualPasscodes {
public:
    explicit VisualPasscodes(Database& db) : db_(db) {}

    void add(std::string const& facility, std::string const& hash, std::string const& at,
             std::string const& expires_at);
    std::optional<StoredPasscode> find(std::string const& facility, std::string const& hash);
    // A wrong guess at the facility: counted against each of its passcodes still open at `at`.
    void count_wrong_guess(std::string const& facility, std::string const& at);
    void use(std::string const& facility, std::string const& hash, std::string const& at);

    // The wrong passcodes: forgotten once they are `since` or older; counted per client of a facility.
    void forget_failures(std::string const& since);
    RecentCount failures(std::string const& facility, std::string const& client, std::string const& since);
    void add_failure(std::string const& facility, std::string const& client, std::string const& at);

private:
    Database& db_;
};

}  // namespace kyotaku::server
