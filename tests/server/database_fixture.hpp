// A fresh database for a server test: SQLite in memory, or — when KYOTAKU_TEST_PG names a throwaway PostgreSQL
// (tests/server/with_postgres.sh) — that database with an empty schema: the same tests run against both backends.
#pragma once

#include "storage/database.hpp"

#include <cstdlib>
#include <memory>

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
