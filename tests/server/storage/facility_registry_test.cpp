// storage/facility_registry: the facilities, their 環境設定 and its audit trail, and the facility's lock.
#include "../database_fixture.hpp"
#include "storage/facility_registry.hpp"

#include <gtest/gtest.h>

using namespace kyotaku::server;

TEST(FacilityRegistry, AFacilityIsRegisteredWithEverySettingOff) {
    auto db = migrated_database();
    FacilityRegistry registry(*db);
    EXPECT_FALSE(registry.exists("0110113719"));
    EXPECT_FALSE(registry.name("0110113719"));
    EXPECT_FALSE(registry.settings("0110113719"));
    registry.add("0110113719", "A クリニック", "医科", "2024-07-01T00:00:00Z");
    EXPECT_TRUE(registry.exists("0110113719"));
    EXPECT_EQ(registry.name("0110113719"), "A クリニック");
    EXPECT_EQ(registry.kind("0110113719"), "医科");
    auto s = registry.settings("0110113719");
    ASSERT_TRUE(s);
    EXPECT_FALSE(s->terms_agreed || s->home_visit_enabled || s->online_enabled);
    EXPECT_EQ(s->updated_at, "2024-07-01T00:00:00Z");
    EXPECT_THROW(registry.add("0110113719", "again", "医科", "x"), DatabaseError);
}

TEST(FacilityRegistry, SettingsChangeWithTheirAuditLineNumberedPerFacility) {
    auto db = migrated_database();
    FacilityRegistry registry(*db);
    registry.add("0110113719", "A", "医科", "2024-07-01T00:00:00Z");
    registry.add("2714206386", "B", "訪問看護ステーション", "2024-07-01T00:00:00Z");
    Settings after;
    after.terms_agreed = after.home_visit_enabled = true;
    after.viewing = {true, false, true, false, true};
    after.updated_at = "2024-07-02T00:00:00Z";
    registry.change_settings("0110113719", after, "a1", {"管理者1", after.updated_at, R"({"v":1})", R"({"v":2})"});
    after.online_enabled = true;
    after.updated_at = "2024-07-03T00:00:00Z";
    registry.change_settings("0110113719", after, "a2", {"管理者2", after.updated_at, R"({"v":2})", R"({"v":3})"});
    registry.change_settings("2714206386", after, "b1", {"管理者B", after.updated_at, "{}", "{}"});
    auto s = registry.settings("0110113719");
    EXPECT_TRUE(s->terms_agreed && s->home_visit_enabled && s->online_enabled);
    EXPECT_EQ(s->viewing, (std::array<bool, 5>{true, false, true, false, true}));
    EXPECT_EQ(s->updated_at, "2024-07-03T00:00:00Z");
    auto changes = registry.settings_changes("0110113719");
    ASSERT_EQ(changes.size(), 2u);
    EXPECT_EQ(changes[0].actor, "管理者1");
    EXPECT_EQ(changes[0].before_json, R"({"v":1})");
    EXPECT_EQ(changes[1].actor, "管理者2");
    EXPECT_EQ(changes[1].after_json, R"({"v":3})");
    EXPECT_EQ(registry.settings_changes("2714206386").size(), 1u);
}

TEST(FacilityRegistry, TheLockIsTakenInsideATransaction) {
    auto db = migrated_database();
    FacilityRegistry registry(*db);
    registry.add("0110113719", "A", "医科", "2024-07-01T00:00:00Z");
    // Two transactions that lock the facility run one after another (PostgreSQL's row lock; SQLite's one writer):
    // here, the lock is taken and released with its transaction.
    transaction(*db, [&] { registry.lock("0110113719"); });
    transaction(*db, [&] {
        registry.lock("0110113719");
        registry.lock("unknown");  // a facility that is not registered locks nothing, and fails nothing
    });
    EXPECT_TRUE(registry.exists("0110113719"));
}
