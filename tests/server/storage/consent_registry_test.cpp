// storage/consent_registry: challenges (and their budget's count), card holders, consents registered, listed and
// withdrawn.
#include "../database_fixture.hpp"
#include "storage/consent_registry.hpp"
#include "storage/facility_registry.hpp"

#include <gtest/gtest.h>

using namespace kyotaku::server;

namespace {
std::unique_ptr<Database> with_facility() {
    auto db = migrated_database();
    FacilityRegistry(*db).add("0110113719", "A", "医科", "2024-07-01T00:00:00Z");
    return db;
}
ConsentRow consent(std::string id, std::string person, std::string registered_at) {
    return {std::move(id), "0110113719", std::move(person), "訪問診療", "2024-07-01", "暗証番号", "薬剤情報,,診療情報",
            std::nullopt, std::move(registered_at), false};
}
}  // namespace

TEST(ConsentRegistry, ChallengesAreCountedPerClientAndForgottenADayAfterUse) {
    auto db = with_facility();
    ConsentRegistry registry(*db);
    registry.add_challenge("c1", "0110113719", "aa", "2024-07-01T10:00:01Z", "2024-07-01T10:05:00Z", "10.0.0.1");
    registry.add_challenge("c2", "0110113719", "bb", "2024-07-01T10:00:02Z", "2024-07-01T10:05:00Z", "10.0.0.1");
    registry.add_challenge("c3", "0110113719", "cc", "2024-07-01T10:00:03Z", "2024-07-01T10:05:00Z", "10.0.0.2");
    auto recent = registry.recent_challenges("0110113719", "10.0.0.1", "2024-07-01T10:00:00Z");
    EXPECT_EQ(recent.count, 2);
    EXPECT_EQ(recent.first, "2024-07-01T10:00:01Z");
    EXPECT_EQ(registry.recent_challenges("0110113719", "10.0.0.1", "2024-07-01T10:00:01Z").count, 1);
    registry.use_challenge("c1", "2024-07-01T10:01:00Z", "hash", "consent-1");
    auto used = registry.challenge("c1");
    ASSERT_TRUE(used);
    EXPECT_TRUE(used->used);
    EXPECT_EQ(used->consent_id, "consent-1");
    // Expired: the unused ones go; a used one stays until its use is a day old.
    registry.forget_challenges("2024-07-01T10:06:00Z", "2024-06-30T10:06:00Z");
    EXPECT_TRUE(registry.challenge("c1"));
    EXPECT_FALSE(registry.challenge("c2"));
    registry.forget_challenges("2024-07-02T10:02:00Z", "2024-07-01T10:02:00Z");
    EXPECT_FALSE(registry.challenge("c1"));
}

TEST(ConsentRegistry, ACardCertificateHasOneHolderTheLastRegistered) {
    auto db = with_facility();
    ConsentRegistry registry(*db);
    EXPECT_EQ(registry.card_holder("fp"), "");
    registry.register_card("fp", "p1", "2024-07-01T00:00:00Z");
    EXPECT_EQ(registry.card_holder("fp"), "p1");
    registry.register_card("fp", "p2", "2024-07-02T00:00:00Z");
    EXPECT_EQ(registry.card_holder("fp"), "p2");
}

TEST(ConsentRegistry, TheFacilitysConsentsAreListedWithdrawnOrNotInTheOrderRegistered) {
    auto db = with_facility();
    ConsentRegistry registry(*db);
    registry.add(consent("k2", "p1", "2024-07-01T10:00:02Z"));
    auto with_appointment = consent("k1", "p2", "2024-07-01T10:00:01Z");
    with_appointment.appointment_date = "2024-07-10";
    with_appointment.preparatory_visit = true;
    registry.add(with_appointment);
    EXPECT_EQ(registry.withdraw("0110113719", "p1", "2024-07-02T00:00:00Z", "患者"), 1u);
    EXPECT_EQ(registry.withdraw("0110113719", "p1", "2024-07-03T00:00:00Z", "患者"), 0u) << "nothing open";
    auto listed = registry.of_facility("0110113719");
    ASSERT_EQ(listed.size(), 2u);
    EXPECT_EQ(listed[0].id, "k1");
    EXPECT_EQ(listed[0].appointment_date, "2024-07-10");
    EXPECT_TRUE(listed[0].preparatory_visit);
    EXPECT_FALSE(listed[0].withdrawn_at);
    EXPECT_EQ(listed[0].items, (std::vector<std::string>{"薬剤情報", "診療情報"})) << "empty items are dropped";
    EXPECT_EQ(listed[1].withdrawn_at, "2024-07-02T00:00:00Z");
    EXPECT_EQ(listed[1].withdrawn_by, "患者");
    EXPECT_EQ(registry.first_visit("k1"), "2024-07-01");
    EXPECT_TRUE(registry.open_between("0110113719", "2024-07-01", "2024-07-01").size() == 1u);
}
