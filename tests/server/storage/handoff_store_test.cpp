// storage/handoff_store: the hand-offs as stored, their claims and ends, and the wrong codes per claimant.
#include "../database_fixture.hpp"
#include "storage/consent_registry.hpp"
#include "storage/facility_registry.hpp"
#include "storage/handoff_store.hpp"

#include <gtest/gtest.h>

using namespace kyotaku::server;

namespace {
class HandoffStoreTest : public ::testing::Test {
protected:
    void SetUp() override {
        FacilityRegistry(*db).add("0110113719", "A", "医科", "2024-07-01T00:00:00Z");
        FacilityRegistry(*db).add("2714206386", "B", "訪問看護ステーション", "2024-07-01T00:00:00Z");
    }
    NewHandoff handoff(std::string id, std::string code, std::string client, std::string created,
                       std::string facility = "0110113719") {
        return {std::move(id), std::move(facility), std::move(code), R"({"visit_kind":"訪問診療"})", created,
                "2024-07-01T10:05:00Z", std::move(client), false};
    }
    std::unique_ptr<Database> db = migrated_database();
    HandoffStore store{*db};
};
}  // namespace

TEST_F(HandoffStoreTest, OpenHandoffsAreTheFacilitysUnfinishedOnesOldestFirst) {
    store.add(handoff("h2", "222222", "10.0.0.2", "2024-07-01T10:00:02Z"));
    store.add(handoff("h1", "111111", "10.0.0.1", "2024-07-01T10:00:01Z"));
    store.add(handoff("h3", "333333", "10.0.0.1", "2024-07-01T10:00:03Z"));
    store.add(handoff("hb", "444444", "10.0.0.1", "2024-07-01T10:00:00Z", "2714206386"));
    store.cancel("h3", "2024-07-01T10:01:00Z");
    auto open = store.open("0110113719", "2024-07-01T10:01:00Z");
    ASSERT_EQ(open.size(), 2u);
    EXPECT_EQ(open[0].code, "111111");
    EXPECT_EQ(open[0].client, "10.0.0.1");
    EXPECT_FALSE(open[0].claimed);
    EXPECT_EQ(open[0].expires_at, "2024-07-01T10:05:00Z");
    EXPECT_EQ(open[1].code, "222222");
    EXPECT_TRUE(store.open("0110113719", "2024-07-01T10:05:00Z").empty()) << "expired at its end";
}

TEST_F(HandoffStoreTest, TheOldestUnclaimedOfAClientGivesWay) {
    store.add(handoff("h1", "111111", "10.0.0.1", "2024-07-01T10:00:01Z"));
    store.add(handoff("h2", "222222", "10.0.0.1", "2024-07-01T10:00:02Z"));
    store.add(handoff("h3", "333333", "10.0.0.2", "2024-07-01T10:00:00Z"));
    store.cancel_oldest_unclaimed("0110113719", "10.0.0.1", "2024-07-01T10:01:00Z");
    EXPECT_TRUE(store.state("h1")->cancelled);
    EXPECT_FALSE(store.state("h2")->cancelled);
    EXPECT_FALSE(store.state("h3")->cancelled) << "another client's, older, stays";
}

TEST_F(HandoffStoreTest, AClaimIsTakenOnceAndFoundByItsHash) {
    store.add(handoff("h1", "111111", "10.0.0.1", "2024-07-01T10:00:01Z"));
    EXPECT_FALSE(store.by_code("0110113719", "999999", "2024-07-01T10:01:00Z"));
    EXPECT_FALSE(store.by_code("2714206386", "111111", "2024-07-01T10:01:00Z")) << "another facility's code";
    auto coded = store.by_code("0110113719", "111111", "2024-07-01T10:01:00Z");
    ASSERT_TRUE(coded);
    EXPECT_EQ(coded->id, "h1");
    EXPECT_FALSE(coded->to_computer);
    EXPECT_TRUE(store.claim("h1", "2024-07-01T10:01:00Z", "hash", "2024-07-01T10:16:00Z"));
    EXPECT_FALSE(store.claim("h1", "2024-07-01T10:01:01Z", "other", "2024-07-01T10:16:01Z")) << "claimed already";
    EXPECT_FALSE(store.by_claim("hash", "2714206386"));
    auto claimed = store.by_claim("hash", "0110113719");
    ASSERT_TRUE(claimed);
    EXPECT_EQ(claimed->expires_at, "2024-07-01T10:16:00Z");
    EXPECT_EQ(claimed->challenge_id, "");
    EXPECT_FALSE(claimed->done);
    EXPECT_TRUE(store.state("h1")->claimed);
    store.set_challenge("h1", "c1");
    EXPECT_EQ(store.by_claim("hash", "0110113719")->challenge_id, "c1");
}

TEST_F(HandoffStoreTest, DoneIsTheHandoffsConsentOrItsChallengesOnes) {
    store.add(handoff("h1", "111111", "10.0.0.1", "2024-07-01T10:00:01Z"));
    store.add(handoff("h2", "222222", "10.0.0.1", "2024-07-01T10:00:02Z"));
    EXPECT_FALSE(store.state("nope"));
    EXPECT_EQ(store.state("h1")->consent_id, "");
    ConsentRegistry consents(*db);
    consents.add_challenge("c2", "0110113719", "00", "2024-07-01T10:00:00Z", "2024-07-01T10:05:00Z", "10.0.0.1");
    consents.use_challenge("c2", "2024-07-01T10:02:00Z", "rh", "consent-2");
    store.set_challenge("h2", "c2");
    EXPECT_EQ(store.state("h2")->consent_id, "consent-2") << "the registration itself says done";
    EXPECT_FALSE(store.state("h2")->first_visit);
    store.finish("h1", "consent-1", "2024-07-01", "2024-07-01T10:03:00Z");
    auto done = store.state("h1");
    EXPECT_EQ(done->consent_id, "consent-1");
    EXPECT_EQ(done->first_visit, "2024-07-01");
    EXPECT_EQ(done->choices_json, R"({"visit_kind":"訪問診療"})");
    store.cancel("h1", "2024-07-01T10:04:00Z");
    EXPECT_FALSE(store.state("h1")->cancelled) << "a done hand-off is not cancelled";
    EXPECT_TRUE(store.by_claim("x", "0110113719") == std::nullopt);
}

TEST_F(HandoffStoreTest, ExpiredHandoffsAreForgotten) {
    store.add(handoff("h1", "111111", "10.0.0.1", "2024-07-01T10:00:01Z"));
    store.forget_expired("2024-07-01T10:05:00Z");
    EXPECT_TRUE(store.state("h1")) << "not before its end";
    store.forget_expired("2024-07-01T10:05:01Z");
    EXPECT_FALSE(store.state("h1"));
}

TEST_F(HandoffStoreTest, WrongCodesAreCountedPerClaimantWithinTheWindow) {
    EXPECT_EQ(store.failures("0110113719", "10.0.0.1", "2024-07-01T10:00:00Z").count, 0);
    store.add_failure("0110113719", "10.0.0.1", "2024-07-01T10:00:02Z");
    store.add_failure("0110113719", "10.0.0.1", "2024-07-01T10:00:01Z");
    store.add_failure("0110113719", "10.0.0.2", "2024-07-01T10:00:03Z");
    store.add_failure("2714206386", "10.0.0.1", "2024-07-01T10:00:03Z");
    auto mine = store.failures("0110113719", "10.0.0.1", "2024-07-01T10:00:00Z");
    EXPECT_EQ(mine.count, 2);
    EXPECT_EQ(mine.first, "2024-07-01T10:00:01Z");
    EXPECT_EQ(store.failures("0110113719", "10.0.0.1", "2024-07-01T10:00:01Z").count, 1) << "after `since` only";
    store.forget_failures("2024-07-01T10:00:02Z");
    EXPECT_EQ(store.failures("0110113719", "10.0.0.1", "").count, 0);
    EXPECT_EQ(store.failures("0110113719", "10.0.0.2", "").count, 1);
}
