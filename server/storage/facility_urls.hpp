// facility_urls: 医療機関別URL as stored — the keys that seal the URLs' tokens (sealed themselves with the key file's
// key: core/secrets.hpp, never in plain text) and each facility's URL generation, which a change of URL moves on (the
// settings and admin desks keep it).
#pragma once

#include "core/secrets.hpp"
#include "storage/database.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kyotaku::server {

// A URL key as stored: its version, the key sealed, and whether it was retired (URLs sealed with it are refused).
struct StoredUrlKey {
    std::uint32_t version = 0;
    std::string sealed;
    bool retired = false;
};

// A facility's URL generation and when it last changed.
struct UrlGeneration {
    std::int64_t generation = 1;
    std::string changed_at;
};

class FacilityUrls {
public:
    explicit FacilityUrls(Database& db) : db_(db) {}

    // The newest key in use (nullopt when every key is retired, or none was made yet).
    std::optional<StoredUrlKey> current_key();
    std::optional<StoredUrlKey> key(std::uint32_t version);
    // The highest version ever made (0 when none).
    std::uint32_t last_version();
    void add_key(std::uint32_t version, std::string const& sealed, std::string const& at);
    // Retires every key in use, stamped `at`: the next key made seals the URLs from then on.
    void retire_keys(std::string const& at);
    // Every key held sealed, oldest first (none in a database from before sealing, whose url_keys lacks the column:
    // preflight asks this of any database, even one another server is migrating at that moment).
    std::vector<StoredUrlKey> sealed_keys();

    std::optional<UrlGeneration> generation(std::string const& facility);
    // Gives the facility its first generation (1) unless it has one.
    void start(std::string const& facility, std::string const& at);
    // Moves the facility's URL on to its next generation (the URLs before are refused).
    void change(std::string const& facility, std::string const& at);
    // The facility's name and URL generation (nullopt when it is unknown or has no URL yet).
    struct Named {
        std::string name;
        std::int64_t generation = 1;
    };
    std::optional<Named> named_generation(std::string const& facility);

private:
    Database& db_;
};

// Seals the URL keys a database from before issue 10 holds in plain text (url_keys.key_hex), in one transaction,
// and checks that every sealed key opens with these secrets. Returns how many it sealed; throws std::runtime_error
// when a key does not open (the key file is not the one this database was sealed with) or is damaged.
int seal_plain_url_keys(Database& db, Secrets const& secrets);

}  // namespace kyotaku::server
