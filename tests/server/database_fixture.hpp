// A fresh database for a server test: SQLite in memory, or — when KYOTAKU_TEST_PG names a throwaway PostgreSQL
// (tests/server/with_postgres.sh) — that database with an empty schema: the same tests run against both backends.
#pragma once

#include "storage/database.hpp"
#include "storage/facility_registry.hpp"
#include "storage/records.hpp"

#include <cstdlib>
#include <memory>
#include <optional>
#include <string>

inline std::unique_ptr<kyotaku::server::Database> fresh_database() {
    if (char const* url = std::getenv("KYOTAKU_TEST_PG")) {
        auto db = kyotaku::server::open_postgres(url);
        db->script("DROP SCHEMA public CASCADE; CREATE SCHEMA public;");
        return db;
    }
    return kyotaku::server::open_sqlite(":memory:");
}

// A fresh database with the schema migrated.
inline std::unique_ptr<kyotaku::server::Database> migrated_database() {
    auto db = fresh_database();
    kyotaku::server::migrate(*db);
    return db;
}

// A migrated database with two facilities: 0110113719 (医科) and 2714206386 (訪問看護ステーション), everything off.
inline std::unique_ptr<kyotaku::server::Database> database_with_facilities() {
    auto db = migrated_database();
    kyotaku::server::FacilityRegistry(*db).add("0110113719", "A", "医科", "2024-07-01T00:00:00Z");
    kyotaku::server::FacilityRegistry(*db).add("2714206386", "B", "訪問看護ステーション", "2024-07-01T00:00:00Z");
    return db;
}

// An insurance period of card 06139995 / 123 / `number` / 01, from `from` (to `to`, when it ended).
inline kyotaku::server::EligibilityRecord insurance_period(std::string number, std::string birthdate,
                                                           std::string from = "2020-04-01",
                                                           std::optional<std::string> to = std::nullopt) {
    kyotaku::server::EligibilityRecord r;
    r.insurer = "06139995";
    r.symbol = "123";
    r.number = std::move(number);
    r.branch = "01";
    r.birthdate = std::move(birthdate);
    r.name = "在宅 花子";
    r.name_kana = "ザイタク ハナコ";
    r.burden_ratio = "010";
    r.valid_from = std::move(from);
    r.valid_to = std::move(to);
    return r;
}
