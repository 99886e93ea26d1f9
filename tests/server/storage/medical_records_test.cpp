// storage/medical_records: a person's 薬剤情報等 by item, up to a day.
#include "../database_fixture.hpp"
#include "storage/medical_records.hpp"

#include <gtest/gtest.h>

using namespace kyotaku::server;

TEST(MedicalRecords, APersonsRecordsOfAnItemUpToADayOldestFirst) {
    auto db = migrated_database();
    MedicalRecords records(*db);
    records.add("m3", "p1", "薬剤情報", {"2024-07-03", R"({"drug":"C"})"});
    records.add("m1", "p1", "薬剤情報", {"2024-07-01", R"({"drug":"A"})"});
    records.add("m2", "p1", "薬剤情報", {"2024-07-01", R"({"drug":"B"})"});
    records.add("m4", "p1", "特定健診情報", {"2024-07-01", R"({"bmi":22})"});
    records.add("m5", "p2", "薬剤情報", {"2024-07-01", R"({"drug":"X"})"});
    auto until_second = records.up_to("p1", "薬剤情報", "2024-07-02");
    ASSERT_EQ(until_second.size(), 2u);
    EXPECT_EQ(until_second[0].content_json, R"({"drug":"A"})") << "one day's records in the order of their ids";
    EXPECT_EQ(until_second[1].content_json, R"({"drug":"B"})");
    EXPECT_EQ(until_second[1].recorded_on, "2024-07-01");
    auto until_third = records.up_to("p1", "薬剤情報", "2024-07-03");
    ASSERT_EQ(until_third.size(), 3u) << "the day itself is included";
    EXPECT_EQ(until_third[2].content_json, R"({"drug":"C"})");
    EXPECT_TRUE(records.up_to("p1", "薬剤情報", "2024-06-30").empty());
    EXPECT_EQ(records.up_to("p1", "特定健診情報", "2024-07-31").size(), 1u);
    EXPECT_TRUE(records.up_to("p3", "薬剤情報", "2024-07-31").empty());
    EXPECT_THROW(records.add("m1", "p1", "薬剤情報", {"2024-07-04", "{}"}), DatabaseError) << "an id is one record's";
}
