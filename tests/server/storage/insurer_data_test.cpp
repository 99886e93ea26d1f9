// storage/insurer_data (資格情報, レセプト審査結果 of the test data) and storage/medical_records' writes, read back as
// the decision reads them (Records).
#include "../database_fixture.hpp"
#include "storage/facility_registry.hpp"
#include "storage/insurer_data.hpp"
#include "storage/medical_records.hpp"

#include <gtest/gtest.h>

using namespace kyotaku::server;

namespace {
EligibilityRecord period(std::string from, std::optional<std::string> to, std::optional<std::string> loss) {
    return {"06139995", "記号", "123", "01", "1980-01-01", "山田 太郎", "ヤマダ タロウ", "030", std::move(from),
            std::move(to), "01", "1", std::move(loss)};
}
}  // namespace

TEST(InsurerData, EligibilityPeriodsAreReadBackAsTheDecisionReadsThem) {
    auto db = migrated_database();
    InsurerData insurers(*db);
    EXPECT_FALSE(insurers.has_person("p1"));
    insurers.add_period("e1", "p1", period("2020-04-01", "2024-03-31", "03"));
    insurers.add_period("e2", "p1", period("2024-04-01", std::nullopt, std::nullopt));
    EXPECT_TRUE(insurers.has_person("p1"));
    EXPECT_FALSE(insurers.has_person("p2"));
    DbRecords records(*db);
    auto periods = records.eligibility("p1");
    ASSERT_EQ(periods.size(), 2u);
    EXPECT_EQ(periods[0].valid_from, "2024-04-01");  // newest first
    EXPECT_FALSE(periods[0].valid_to);
    EXPECT_FALSE(periods[0].loss_reason);
    EXPECT_EQ(periods[1].valid_to, "2024-03-31");
    EXPECT_EQ(periods[1].loss_reason, "03");
    EXPECT_EQ(periods[1].name_kana, "ヤマダ タロウ");
    EXPECT_EQ(records.person_by_card(Card{"06139995", "記号", "123", "01", "1980-01-01"}), "p1");
}

TEST(InsurerData, AClaimReviewedAgainKeepsItsLastDay) {
    auto db = migrated_database();
    FacilityRegistry(*db).add("0110113719", "A", "医科", "2024-07-01T00:00:00Z");
    InsurerData insurers(*db);
    insurers.add_claim_reviews(
        {{"0110113719", "p1", "2024-05", "2024-06-10"}, {"0110113719", "p1", "2024-04", "2024-05-10"}});
    insurers.add_claim_reviews({{"0110113719", "p1", "2024-05", "2024-06-20"}});
    auto rows = db->query("SELECT month, reviewed_on FROM claim_reviews ORDER BY month");
    ASSERT_EQ(rows.size(), 2u);
    EXPECT_EQ(as_text(rows[1][0]), "2024-05");
    EXPECT_EQ(as_text(rows[1][1]), "2024-06-20");
    EXPECT_EQ(DbRecords(*db).claim_months("0110113719", "p1").size(), 2u);
}

TEST(MedicalRecords, RecordsAreAddedAndReadUpToADay) {
    auto db = migrated_database();
    MedicalRecords records(*db);
    records.add("m2", "p1", "薬剤情報", {"2024-06-02", R"({"drug":"B"})"});
    records.add("m1", "p1", "薬剤情報", {"2024-06-01", R"({"drug":"A"})"});
    records.add("m3", "p1", "特定健診情報", {"2024-06-01", "{}"});
    auto upto = records.up_to("p1", "薬剤情報", "2024-06-01");
    ASSERT_EQ(upto.size(), 1u);
    EXPECT_EQ(upto[0].content_json, R"({"drug":"A"})");
    EXPECT_EQ(records.up_to("p1", "薬剤情報", "2024-06-30").size(), 2u);
}
