#include "storage/facility_registry.hpp"

namespace kyotaku::server {

bool FacilityRegistry::exists(std::string const& code) {
    return !db_.query("SELECT 1 FROM facilities WHERE code = $1", {code}).empty();
}

void FacilityRegistry::add(std::string const& code, std::string const& name, std::string const& kind,
                           std::string const& at) {
    db_.query("INSERT INTO facilities (code, name, kind, created_at) VALUES ($1, $2, $3, $4)", {code, name, kind, at});
    db_.query("INSERT INTO facility_settings (facility_code, updated_at) VALUES ($1, $2)", {code, at});
}

std::optional<std::string> FacilityRegistry::name(std::string const& code) {
    auto rows = db_.query("SELECT name FROM facilities WHERE code = $1", {code});
    if (rows.empty()) return std::nullopt;
    return as_text(rows[0][0]);
}

std::optional<std::string> FacilityRegistry::kind(std::string const& code) {
    auto rows = db_.query("SELECT kind FROM facilities WHERE code = $1", {code});
    if (rows.empty()) return std::nullopt;
    return as_text(rows[0][0]);
}

void FacilityRegistry::lock(std::string const& code) {
    db_.query("SELECT code FROM facilities WHERE code = $1" + std::string(db_.lock_suffix()), {code});
}

std::optional<Settings> FacilityRegistry::settings(std::string const& code) {
    auto rows =
        db_.query(std::string("SELECT ") + settings_columns + " FROM facility_settings WHERE facility_code = $1",
                  {code});
    if (rows.empty()) return std::nullopt;
    return settings_from_row(rows[0]);
}

void FacilityRegistry::change_settings(std::string const& code, Settings const& after, std::string const& audit_id,
                                       SettingsChangeRecord const& change) {
    std::vector<Value> params{code, std::int64_t(after.terms_agreed), std::int64_t(after.home_visit_enabled),
                              std::int64_t(after.online_enabled)};
    for (bool v : after.viewing) params.emplace_back(std::int64_t(v));
    params.emplace_back(after.updated_at);
    db_.query("UPDATE facility_settings SET terms_agreed = $2, home_visit_enabled = $3, online_enabled = $4, "
              "view_operation = $5, view_diagnosis = $6, view_pharmacy = $7, view_checkup = $8, view_limit = $9, "
              "updated_at = $10 WHERE facility_code = $1",
              params);
    db_.query("INSERT INTO settings_audit (id, facility_code, seq, actor, at, before_json, after_json) VALUES ($1, $2, "
              "(SELECT COALESCE(MAX(seq), 0) + 1 FROM settings_audit WHERE facility_code = $2), $3, $4, $5, $6)",
              {audit_id, code, change.actor, change.at, change.before_json, change.after_json});
}

std::vector<SettingsChangeRecord> FacilityRegistry::settings_changes(std::string const& code) {
    std::vector<SettingsChangeRecord> out;
    for (Row const& r :
         db_.query("SELECT actor, at, before_json, after_json FROM settings_audit WHERE facility_code = $1 "
                   "ORDER BY seq",
                   {code}))
        out.push_back({as_text(r[0]), as_text(r[1]), as_text(r[2]), as_text(r[3])});
    return out;
}

}  // namespace kyotaku::server
