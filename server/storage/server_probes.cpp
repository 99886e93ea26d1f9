#include "storage/server_probes.hpp"

namespace kyotaku::server {

namespace {
char const* const upsert =
    "INSERT INTO server_probes (instance, at) VALUES ($1, $2) ON CONFLICT (instance) DO UPDATE SET at = excluded.at";
}

void write_probe(Database& db, std::string const& instance, std::string const& at, std::string const& stale_before) {
    transaction(db, [&] {
        db.query(upsert, {instance, at});
        db.query("DELETE FROM server_probes WHERE at < $1", {stale_before});
    });
}

void check_writable(Database& db, std::string const& at) {
    transaction(db, [&] {
        db.query(upsert, {std::string("kyotaku-start"), at});
        db.query("DELETE FROM server_probes WHERE instance = 'kyotaku-start'");
    });
}

}  // namespace kyotaku::server
