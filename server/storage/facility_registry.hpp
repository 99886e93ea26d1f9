// facility_registry: the facilities as registered (test data set-up), their 環境設定 and its audit trail, and the
// facility row that the transactions limiting one facility's work lock (the admin and settings desks keep it; what
// the decision reads is Records').
#pragma once

#include "storage/database.hpp"
#include "storage/records.hpp"

#include <optional>
#include <string>
#include <vector>

namespace kyotaku::server {

// One change of a facility's 環境設定: who made it, when, and the settings before and after (JSON as stored).
struct SettingsChangeRecord {
    std::string actor, at, before_json, after_json;
};

class FacilityRegistry {
public:
    explicit FacilityRegistry(Database& db) : db_(db) {}

    bool exists(std::string const& code);
    // Registers the facility with its 環境設定 as the schema's defaults (everything off).
    void add(std::string const& code, std::string const& name, std::string const& kind, std::string const& at);
    std::optional<std::string> name(std::string const& code);
    std::optional<std::string> kind(std::string const& code);

    // Inside a transaction: makes the transactions that limit what one facility does (challenges, hand-offs, wrong
    // codes and passcodes: usecases/consent_limits.hpp, usecases/handoff.hpp) run one after another until this one
    // ends, so that a count and the insert it allows are one step on every database, however many servers and
    // threads ask at once (the facility's row locked on PostgreSQL: Database::lock_suffix; SQLite has one writer).
    void lock(std::string const& code);

    std::optional<Settings> settings(std::string const& code);
    // Stores the facility's new settings (stamped with their updated_at) and the change's audit line (its id given),
    // numbered after the facility's last.
    void change_settings(std::string const& code, Settings const& after, std::string const& audit_id,
                         SettingsChangeRecord const& change);
    // The facility's 環境設定 changes, oldest first.
    std::vector<SettingsChangeRecord> settings_changes(std::string const& code);

private:
    Database& db_;
};

}  // namespace kyotaku::server
