// storage/facility_urls: the URL keys (sealed) and each facility's URL generation.
#include "../database_fixture.hpp"
#include "storage/facility_registry.hpp"
#include "storage/facility_urls.hpp"

#include <gtest/gtest.h>

using namespace kyotaku::server;

TEST(FacilityUrls, TheCurrentKeyIsTheNewestInUseAndRetiringEndsThemAll) {
    auto db = migrated_database();
    FacilityUrls urls(*db);
    EXPECT_FALSE(urls.current_key());
    EXPECT_EQ(urls.last_version(), 0u);
    urls.add_key(1, "sealed-1", "2024-07-01T00:00:00Z");
    urls.add_key(2, "sealed-2", "2024-07-02T00:00:00Z");
    auto current = urls.current_key();
    ASSERT_TRUE(current);
    EXPECT_EQ(current->version, 2u);
    EXPECT_EQ(current->sealed, "sealed-2");
    urls.retire_keys("2024-07-03T00:00:00Z");
    EXPECT_FALSE(urls.current_key());
    EXPECT_EQ(urls.last_version(), 2u) << "the next key is 3: a version is never used twice";
    auto old = urls.key(1);
    ASSERT_TRUE(old);
    EXPECT_TRUE(old->retired);
    EXPECT_EQ(old->sealed, "sealed-1");
    EXPECT_FALSE(urls.key(3));
    urls.add_key(3, "sealed-3", "2024-07-03T00:00:00Z");
    EXPECT_FALSE(urls.key(3)->retired);
    EXPECT_EQ(urls.current_key()->version, 3u);
}

TEST(FacilityUrls, AGenerationStartsAtOneOnceAndMovesOnWithEachChange) {
    auto db = migrated_database();
    FacilityRegistry(*db).add("0110113719", "A", "医科", "2024-07-01T00:00:00Z");
    FacilityUrls urls(*db);
    EXPECT_FALSE(urls.generation("0110113719"));
    EXPECT_FALSE(urls.named_generation("0110113719")) << "no URL yet";
    urls.start("0110113719", "2024-07-01T01:00:00Z");
    urls.start("0110113719", "2024-07-01T02:00:00Z");  // a second start changes nothing
    auto g = urls.generation("0110113719");
    ASSERT_TRUE(g);
    EXPECT_EQ(g->generation, 1);
    EXPECT_EQ(g->changed_at, "2024-07-01T01:00:00Z");
    urls.change("0110113719", "2024-07-02T00:00:00Z");
    EXPECT_EQ(urls.generation("0110113719")->generation, 2);
    EXPECT_EQ(urls.generation("0110113719")->changed_at, "2024-07-02T00:00:00Z");
    auto named = urls.named_generation("0110113719");
    ASSERT_TRUE(named);
    EXPECT_EQ(named->name, "A");
    EXPECT_EQ(named->generation, 2);
    EXPECT_FALSE(urls.named_generation("2714206386"));
}

TEST(FacilityUrls, SealedKeysAreEveryKeyHeldSealedOldestFirst) {
    auto db = migrated_database();
    FacilityUrls urls(*db);
    EXPECT_TRUE(urls.sealed_keys().empty());
    urls.add_key(2, "sealed-2", "2024-07-02T00:00:00Z");
    urls.add_key(1, "sealed-1", "2024-07-01T00:00:00Z");
    urls.retire_keys("2024-07-03T00:00:00Z");
    urls.add_key(3, "sealed-3", "2024-07-03T00:00:00Z");
    auto keys = urls.sealed_keys();
    ASSERT_EQ(keys.size(), 3u);
    EXPECT_EQ(keys[0].version, 1u);
    EXPECT_EQ(keys[0].sealed, "sealed-1");
    EXPECT_TRUE(keys[1].retired) << "a retired key is still one the key file must open";
    EXPECT_EQ(keys[2].version, 3u);
    EXPECT_FALSE(keys[2].retired);
}
