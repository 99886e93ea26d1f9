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

std::optional<std::string> stored_key_fingerprint(Database& db) {
    if (db.query(db.backend() == "postgresql"
                     ? "SELECT 1 FROM information_schema.tables WHERE table_name = 'key_fingerprint'"
                     : "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'key_fingerprint'")
            .empty())
        return std::nullopt;
    auto stored = db.query("SELECT fingerprint FROM key_fingerprint WHERE id = 1");
    if (stored.empty()) return std::nullopt;
    return as_text(stored[0][0]);
}

std::string store_key_fingerprint(Database& db, std::string const& fingerprint, std::string const& at) {
    db.query("INSERT INTO key_fingerprint (id, fingerprint, created_at) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING",
             {fingerprint, at});
    return stored_key_fingerprint(db).value_or(fingerprint);
}

DatabaseCounts count_rows(Database& db) {
    DatabaseCounts c;
    auto jobs = db.query("SELECT COUNT(*), COALESCE(SUM(done), 0), "
                         "COALESCE(SUM(CASE WHEN finished_at IS NULL THEN 1 ELSE 0 END), 0), "
                         "COALESCE(SUM(CASE WHEN failed_at IS NOT NULL THEN 1 ELSE 0 END), 0) FROM batch_jobs");
    c.batch_jobs = as_int(jobs[0][0]);
    c.batch_rows_answered = as_int(jobs[0][1]);
    c.batch_jobs_unfinished = as_int(jobs[0][2]);
    c.batch_jobs_failed = as_int(jobs[0][3]);
    c.batch_rows_pending =
        as_int(db.query("SELECT COALESCE(SUM(total - done), 0) FROM batch_jobs WHERE finished_at IS NULL")[0][0]);
    auto consents = db.query(
        "SELECT COALESCE(SUM(CASE WHEN withdrawn_at IS NULL THEN 1 ELSE 0 END), 0), COUNT(*) FROM consents");
    c.consents_open = as_int(consents[0][0]);
    c.consents = as_int(consents[0][1]);
    c.consent_registrations = as_int(db.query("SELECT COUNT(*) FROM challenges WHERE consent_id IS NOT NULL")[0][0]);
    return c;
}

}  // namespace kyotaku::server
