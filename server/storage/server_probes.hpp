// server_probes: committed writes that show the database takes writes (at start, and /readyz). One row per server
// instance; rows older than a day are removed by the next probe.
#pragma once

#include "storage/database.hpp"

#include <string>

namespace kyotaku::server {

// Writes the instance's row (at = now) and removes rows older than `stale_before`, in one transaction.
void write_probe(Database& db, std::string const& instance, std::string const& at, std::string const& stale_before);

// At start: writes and removes a probe row in one transaction; throws when the database takes no write.
void check_writable(Database& db, std::string const& at);

}  // namespace kyotaku::server
