// storage/rule_release_floor: the highest release served and the history of the floor's moves.
#include "../database_fixture.hpp"
#include "storage/rule_release_floor.hpp"

#include <gtest/gtest.h>

using namespace kyotaku::server;

TEST(RuleReleaseFloor, NoReleaseServedIsReleaseZeroAndLockMakesTheRowOnce) {
    auto db = migrated_database();
    RuleReleaseFloor floor(*db);
    EXPECT_EQ(floor.read().release, 0u);
    EXPECT_TRUE(floor.read().source_hash.empty());
    ReleaseFloor locked = floor.atomically([&] { return floor.lock(); });
    EXPECT_EQ(locked.release, 0u);
    floor.atomically([&] { return floor.lock(); });  // the row is there already: nothing is added
    EXPECT_EQ(as_int(db->query("SELECT COUNT(*) FROM rule_release_floor")[0][0]), 1);
    EXPECT_TRUE(floor.history().empty()) << "taking the lock is not a move";
}

TEST(RuleReleaseFloor, AMoveSetsTheFloorAndIsKeptInTheHistory) {
    auto db = migrated_database();
    RuleReleaseFloor floor(*db);
    floor.atomically([&] {
        ReleaseFloor before = floor.lock();
        floor.move({"2026-12-01T00:00:00Z", "host/1/a", "served", 3, before.release, "00112233aabbccdd", "key-a"});
    });
    ReleaseFloor now = floor.read();
    EXPECT_EQ(now.release, 3u);
    EXPECT_EQ(now.source_hash, "00112233aabbccdd");
    EXPECT_EQ(now.key_id, "key-a");
    EXPECT_EQ(now.set_at, "2026-12-01T00:00:00Z");
    floor.atomically([&] {
        EXPECT_EQ(floor.lock().release, 3u);
        floor.move({"2026-12-02T00:00:00Z", "host/2/b", "rollback", 2, 3, "ffeeddccbbaa9988", ""});
    });
    EXPECT_EQ(floor.read().release, 2u);
    EXPECT_EQ(floor.read().key_id, "");
    auto history = floor.history();
    ASSERT_EQ(history.size(), 2u);
    EXPECT_EQ(history[0].event, "served");
    EXPECT_EQ(history[0].release, 3u);
    EXPECT_EQ(history[0].from_release, 0u);
    EXPECT_EQ(history[0].instance, "host/1/a");
    EXPECT_EQ(history[1].event, "rollback");
    EXPECT_EQ(history[1].release, 2u);
    EXPECT_EQ(history[1].from_release, 3u);
    EXPECT_EQ(history[1].source_hash, "ffeeddccbbaa9988");
}

TEST(RuleReleaseFloor, AMoveInATransactionThatFailsIsNotKept) {
    auto db = migrated_database();
    RuleReleaseFloor floor(*db);
    EXPECT_THROW(floor.atomically([&] {
        floor.lock();
        floor.move({"2026-12-01T00:00:00Z", "i", "served", 5, 0, "00", "k"});
        throw std::runtime_error("the judgement failed after the move");
    }),
                 std::runtime_error);
    EXPECT_EQ(floor.read().release, 0u);
    EXPECT_TRUE(floor.history().empty());
}

TEST(RuleReleaseFloor, ADatabaseNotYetMigratedHasReleaseZero) {
    auto db = fresh_database();
    EXPECT_EQ(RuleReleaseFloor(*db).read_if_migrated().release, 0u);
    migrate(*db);
    RuleReleaseFloor floor(*db);
    floor.atomically([&] {
        floor.lock();
        floor.move({"2026-12-01T00:00:00Z", "i", "served", 7, 0, "00", "k"});
    });
    EXPECT_EQ(floor.read_if_migrated().release, 7u);
}
