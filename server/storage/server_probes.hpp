// server_probes: what the server asks of a database about itself rather than about anyone's data — committed writes
// that show it takes writes (at start, and /readyz; one row per server instance, rows older than a day removed by
// the next probe), the fingerprint of the key file its servers share, and the counts /metrics shows.
#pragma once

#include "storage/database.hpp"

#include <cstdint>
#include <optional>
#include <string>

namespace kyotaku::server {

// Writes the instance's row (at = now) and removes rows older than `stale_before`, in one transaction.
void write_probe(Database& db, std::string const& instance, std::string const& at, std::string const& stale_before);

// At start: writes and removes a probe row in one transaction; throws when the database takes no write.
void check_writable(Database& db, std::string const& at);

// The fingerprint of the key file the database's servers use (key_fingerprint, one row): nullopt when none is
// stored yet, or the database has no such table yet (not migrated: preflight asks before the migrations).
std::optional<std::string> stored_key_fingerprint(Database& db);
// Stores `fingerprint` as the database's unless one is stored already: the one row makes a second server that races
// the first, with another key, find the first one's. Returns the fingerprint stored (this one or the first's).
std::string store_key_fingerprint(Database& db, std::string const& fingerprint, std::string const& at);

// What /metrics counts in the database, all servers' together.
struct DatabaseCounts {
    std::int64_t batch_rows_pending = 0, batch_rows_answered = 0;
    std::int64_t batch_jobs = 0, batch_jobs_unfinished = 0, batch_jobs_failed = 0;
    std::int64_t consents = 0, consents_open = 0;
    std::int64_t consent_registrations = 0;  // consents registered with a card (challenges used)
};
DatabaseCounts count_rows(Database& db);

}  // namespace kyotaku::server
