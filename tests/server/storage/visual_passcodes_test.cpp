// storage/visual_passcodes: 目視確認's one-time passcodes (hashes) and the wrong ones per client.
#include "../database_fixture.hpp"
#include "storage/facility_registry.hpp"
#include "storage/visual_passcodes.hpp"

#include <gtest/gtest.h>

using namespace kyotaku::server;

TEST(VisualPasscodes, APasscodeIsFoundByItsHashUsedOnceAndCountsWrongGuesses) {
    auto db = migrated_database();
    FacilityRegistry(*db).add("0110113719", "A", "医科", "2024-07-01T00:00:00Z");
    FacilityRegistry(*db).add("2714206386", "B", "訪問看護ステーション", "2024-07-01T00:00:00Z");
    VisualPasscodes passcodes(*db);
    passcodes.add("0110113719", "h1", "2024-07-01T10:00:00Z", "2024-07-01T10:10:00Z");
    passcodes.add("0110113719", "h2", "2024-07-01T09:00:00Z", "2024-07-01T09:10:00Z");  // expired at 10:05
    passcodes.add("2714206386", "h1", "2024-07-01T10:00:00Z", "2024-07-01T10:10:00Z");
    EXPECT_FALSE(passcodes.find("0110113719", "nope"));
    auto p = passcodes.find("0110113719", "h1");
    ASSERT_TRUE(p);
    EXPECT_EQ(p->expires_at, "2024-07-01T10:10:00Z");
    EXPECT_FALSE(p->used);
    EXPECT_EQ(p->failed_attempts, 0);
    passcodes.count_wrong_guess("0110113719", "2024-07-01T10:05:00Z");
    EXPECT_EQ(passcodes.find("0110113719", "h1")->failed_attempts, 1);
    EXPECT_EQ(passcodes.find("0110113719", "h2")->failed_attempts, 0) << "an expired one is not counted";
    EXPECT_EQ(passcodes.find("2714206386", "h1")->failed_attempts, 0) << "another facility's is not counted";
    passcodes.use("0110113719", "h1", "2024-07-01T10:06:00Z");
    EXPECT_TRUE(passcodes.find("0110113719", "h1")->used);
    passcodes.count_wrong_guess("0110113719", "2024-07-01T10:07:00Z");
    EXPECT_EQ(passcodes.find("0110113719", "h1")->failed_attempts, 1) << "a used one is not counted";
}

TEST(VisualPasscodes, WrongPasscodesAreCountedPerClientWithinTheWindow) {
    auto db = migrated_database();
    FacilityRegistry(*db).add("0110113719", "A", "医科", "2024-07-01T00:00:00Z");
    VisualPasscodes passcodes(*db);
    passcodes.add_failure("0110113719", "10.0.0.1", "2024-07-01T10:00:02Z");
    passcodes.add_failure("0110113719", "10.0.0.1", "2024-07-01T10:00:01Z");
    passcodes.add_failure("0110113719", "10.0.0.2", "2024-07-01T10:00:03Z");
    auto mine = passcodes.failures("0110113719", "10.0.0.1", "2024-07-01T10:00:00Z");
    EXPECT_EQ(mine.count, 2);
    EXPECT_EQ(mine.first, "2024-07-01T10:00:01Z");
    passcodes.forget_failures("2024-07-01T10:00:01Z");
    EXPECT_EQ(passcodes.failures("0110113719", "10.0.0.1", "").count, 1);
    EXPECT_EQ(passcodes.failures("0110113719", "10.0.0.2", "").count, 1);
    EXPECT_EQ(passcodes.failures("0110113719", "10.0.0.3", "").first, "");
}
