// storage/server_probes: the probes that show the database takes writes, the key file's fingerprint, and the counts
// of /metrics.
#include "../database_fixture.hpp"
#include "storage/consent_registry.hpp"
#include "storage/facility_registry.hpp"
#include "storage/server_probes.hpp"

#include <gtest/gtest.h>

using namespace kyotaku::server;

namespace {
std::int64_t count(Database& db, std::string const& sql) { return as_int(db.query(sql)[0][0]); }
}  // namespace

TEST(ServerProbes, AProbeKeepsOneRowPerInstanceAndRemovesStaleOnes) {
    auto db = migrated_database();
    write_probe(*db, "host/1/a", "2026-12-01T00:00:00Z", "2026-11-30T00:00:00Z");
    write_probe(*db, "host/2/b", "2026-12-01T00:00:01Z", "2026-11-30T00:00:00Z");
    write_probe(*db, "host/1/a", "2026-12-01T00:00:02Z", "2026-11-30T00:00:00Z");
    auto rows = db->query("SELECT instance, at FROM server_probes ORDER BY instance");
    ASSERT_EQ(rows.size(), 2u);
    EXPECT_EQ(as_text(rows[0][1]), "2026-12-01T00:00:02Z") << "the instance's row, written again";
    // A day later: the other instance's row is older than the cutoff and goes.
    write_probe(*db, "host/1/a", "2026-12-02T00:00:03Z", "2026-12-01T00:00:02Z");
    rows = db->query("SELECT instance FROM server_probes ORDER BY instance");
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_EQ(as_text(rows[0][0]), "host/1/a");
}

TEST(ServerProbes, TheStartCheckWritesAndLeavesNothing) {
    auto db = migrated_database();
    check_writable(*db, "2026-12-01T00:00:00Z");
    EXPECT_EQ(count(*db, "SELECT COUNT(*) FROM server_probes"), 0);
}

TEST(ServerProbes, TheFirstKeyFingerprintStoredStays) {
    auto db = fresh_database();
    EXPECT_FALSE(stored_key_fingerprint(*db)) << "a database not yet migrated holds none";
    migrate(*db);
    EXPECT_FALSE(stored_key_fingerprint(*db));
    EXPECT_EQ(store_key_fingerprint(*db, "aa11", "2026-12-01T00:00:00Z"), "aa11");
    EXPECT_EQ(stored_key_fingerprint(*db), "aa11");
    // A second server with another key finds the first one's; the first's is kept.
    EXPECT_EQ(store_key_fingerprint(*db, "bb22", "2026-12-01T00:00:01Z"), "aa11");
    EXPECT_EQ(stored_key_fingerprint(*db), "aa11");
    EXPECT_EQ(count(*db, "SELECT COUNT(*) FROM key_fingerprint"), 1);
}

TEST(ServerProbes, TheCountsAreAllFacilitiesTogether) {
    auto db = migrated_database();
    EXPECT_EQ(count_rows(*db).batch_jobs, 0);
    EXPECT_EQ(count_rows(*db).consents, 0);
    FacilityRegistry(*db).add("0110113719", "A", "医科", "2024-07-01T00:00:00Z");
    FacilityRegistry(*db).add("2714206386", "B", "訪問看護ステーション", "2024-07-01T00:00:00Z");
    auto job = [&](char const* reception, char const* facility, int total, int done, char const* finished,
                   char const* failed) {
        db->query("INSERT INTO batch_jobs (reception_number, facility_code, category, query_date, file_identifier, "
                  "format, total, done, created_at, finished_at, failed_at) VALUES ($1, $2, '1', '2024-07-01', 'f', "
                  "'csv', $3, $4, '2024-07-01T00:00:00Z', $5, $6)",
                  {std::string(reception), std::string(facility), std::int64_t(total), std::int64_t(done),
                   finished ? Value(std::string(finished)) : Value(nullptr),
                   failed ? Value(std::string(failed)) : Value(nullptr)});
    };
    job("r1", "0110113719", 10, 4, nullptr, nullptr);  // under way
    job("r2", "2714206386", 5, 0, nullptr, nullptr);  // not started
    job("r3", "0110113719", 3, 3, "2024-07-01T01:00:00Z", nullptr);  // finished
    job("r4", "2714206386", 8, 2, "2024-07-01T01:00:00Z", "2024-07-01T01:00:00Z");  // gave up
    auto consent = [&](char const* id, char const* facility, char const* withdrawn) {
        db->query("INSERT INTO consents (id, facility_code, person_key, visit_kind, first_visit, identity_method, "
                  "items, registered_at, withdrawn_at) VALUES ($1, $2, 'p', '訪問診療', '2024-07-01', '暗証番号', "
                  "'', '2024-07-01T00:00:00Z', $3)",
                  {std::string(id), std::string(facility),
                   withdrawn ? Value(std::string(withdrawn)) : Value(nullptr)});
    };
    consent("c1", "0110113719", nullptr);
    consent("c2", "2714206386", nullptr);
    consent("c3", "0110113719", "2024-07-02T00:00:00Z");
    db->query("INSERT INTO challenges (id, facility_code, challenge_hex, created_at, expires_at, consent_id) VALUES "
              "('h1', '0110113719', '00', '2024-07-01T00:00:00Z', '2024-07-01T00:05:00Z', 'c1'), "
              "('h2', '0110113719', '01', '2024-07-01T00:00:00Z', '2024-07-01T00:05:00Z', NULL)");
    DatabaseCounts n = count_rows(*db);
    EXPECT_EQ(n.batch_jobs, 4);
    EXPECT_EQ(n.batch_jobs_unfinished, 2);
    EXPECT_EQ(n.batch_jobs_failed, 1);
    EXPECT_EQ(n.batch_rows_pending, 6 + 5) << "the unfinished jobs' rows not yet answered";
    EXPECT_EQ(n.batch_rows_answered, 4 + 0 + 3 + 2);
    EXPECT_EQ(n.consents, 3);
    EXPECT_EQ(n.consents_open, 2);
    EXPECT_EQ(n.consent_registrations, 1) << "only the challenge a consent used";
}
