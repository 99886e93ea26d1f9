#include "storage/facility_urls.hpp"

#include <stdexcept>

namespace kyotaku::server {

std::optional<StoredUrlKey> FacilityUrls::current_key() {
    auto rows =
        db_.query("SELECT version, key_sealed FROM url_keys WHERE retired_at IS NULL ORDER BY version DESC LIMIT 1");
    if (rows.empty()) return std::nullopt;
    return StoredUrlKey{std::uint32_t(as_int(rows[0][0])), as_text(rows[0][1]), false};
}

std::optional<StoredUrlKey> FacilityUrls::key(std::uint32_t version) {
    auto rows = db_.query("SELECT key_sealed, retired_at FROM url_keys WHERE version = $1", {std::int64_t(version)});
    if (rows.empty()) return std::nullopt;
    return StoredUrlKey{version, as_text(rows[0][0]), !is_null(rows[0][1])};
}

std::uint32_t FacilityUrls::last_version() {
    return std::uint32_t(as_int(db_.query("SELECT COALESCE(MAX(version), 0) FROM url_keys")[0][0]));
}

void FacilityUrls::add_key(std::uint32_t version, std::string const& sealed, std::string const& at) {
    db_.query("INSERT INTO url_keys (version, key_hex, key_sealed, created_at) VALUES ($1, '', $2, $3)",
              {std::int64_t(version), sealed, at});
}

void FacilityUrls::retire_keys(std::string const& at) {
    db_.query("UPDATE url_keys SET retired_at = $1 WHERE retired_at IS NULL", {at});
}

std::vector<StoredUrlKey> FacilityUrls::sealed_keys() {
    std::vector<StoredUrlKey> out;
    // The column, not the table: another server starting at the same moment may be half-way through the migrations
    // (url_keys made, key_sealed not yet added); a database without the column holds no sealed key.
    if (db_.query(db_.backend() == "postgresql"
                      ? "SELECT 1 FROM information_schema.columns WHERE table_name = 'url_keys' AND "
                        "column_name = 'key_sealed'"
                      : "SELECT 1 FROM pragma_table_info('url_keys') WHERE name = 'key_sealed'")
            .empty())
        return out;
    for (auto const& row :
         db_.query("SELECT version, key_sealed, retired_at FROM url_keys WHERE key_sealed IS NOT NULL "
                   "ORDER BY version"))
        out.push_back({std::uint32_t(as_int(row[0])), as_text(row[1]), !is_null(row[2])});
    return out;
}

std::optional<UrlGeneration> FacilityUrls::generation(std::string const& facility) {
    auto rows = db_.query("SELECT generation, changed_at FROM facility_url WHERE facility_code = $1", {facility});
    if (rows.empty()) return std::nullopt;
    return UrlGeneration{as_int(rows[0][0]), as_text(rows[0][1])};
}

void FacilityUrls::start(std::string const& facility, std::string const& at) {
    db_.query("INSERT INTO facility_url (facility_code, generation, changed_at) VALUES ($1, 1, $2) "
              "ON CONFLICT (facility_code) DO NOTHING",
              {facility, at});
}

void FacilityUrls::change(std::string const& facility, std::string const& at) {
    db_.query("UPDATE facility_url SET generation = generation + 1, changed_at = $2 WHERE facility_code = $1",
              {facility, at});
}

std::optional<FacilityUrls::Named> FacilityUrls::named_generation(std::string const& facility) {
    auto rows =
        db_.query("SELECT f.name, u.generation FROM facilities f JOIN facility_url u ON u.facility_code = f.code "
                  "WHERE f.code = $1",
                  {facility});
    if (rows.empty()) return std::nullopt;
    return Named{as_text(rows[0][0]), as_int(rows[0][1])};
}

int seal_plain_url_keys(Database& db, Secrets const& secrets) {
    return transaction(db, [&] {
        int sealed = 0;
        for (auto const& row : db.query("SELECT version, key_hex, key_sealed FROM url_keys ORDER BY version")) {
            auto const version = std::uint32_t(as_int(row[0]));
            std::string const n = std::to_string(version);
            if (!is_null(row[2])) {
                if (!secrets.open_url_key(version, as_text(row[2])))
                    throw std::runtime_error("URL 鍵 " + n +
                                             " を開けません: このデータベースを封じた鍵ファイルではありません / "
                                             "URL key " +
                                             n +
                                             " does not open: the key file is not the one this database "
                                             "was sealed with");
                continue;
            }
            auto const key = secrets.seal_plain_url_key(version, as_text(row[1]));
            if (!key) throw std::runtime_error("URL 鍵 " + n + " が壊れています / URL key " + n + " is damaged");
            db.query("UPDATE url_keys SET key_sealed = $2, key_hex = '' WHERE version = $1",
                     {std::int64_t(version), *key});
            ++sealed;
        }
        return sealed;
    });
}

}  // namespace kyotaku::server
