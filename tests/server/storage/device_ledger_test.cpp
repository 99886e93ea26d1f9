// storage/device_ledger: the facility's devices, their checks, and the fallback verifications.
#include "../database_fixture.hpp"
#include "storage/device_ledger.hpp"
#include "storage/facility_registry.hpp"

#include <gtest/gtest.h>

using namespace kyotaku::server;

TEST(DeviceLedger, DevicesAreTheFacilitysOwnInTheOrderRegistered) {
    auto db = database_with_facilities();
    DeviceLedger ledger(*db);
    ledger.add_device({"d2", "0110113719", "iPad 2", "タブレット", "施設所有", R"(["佐藤"])", "2024-07-02T00:00:00Z"});
    ledger.add_device(
        {"d1", "0110113719", "iPhone", "スマートフォン", "個人所有", R"(["佐藤","鈴木"])", "2024-07-01T00:00:00Z"});
    ledger.add_device({"db", "2714206386", "PC", "ノートPC", "施設所有", R"(["田中"])", "2024-07-01T00:00:00Z"});
    auto devices = ledger.devices("0110113719");
    ASSERT_EQ(devices.size(), 2u);
    EXPECT_EQ(devices[0].id, "d1");
    EXPECT_EQ(devices[0].permitted_staff_json, R"(["佐藤","鈴木"])");
    EXPECT_EQ(devices[0].ownership, "個人所有");
    EXPECT_EQ(devices[1].name, "iPad 2");
    EXPECT_TRUE(ledger.has_device("0110113719", "d1"));
    EXPECT_FALSE(ledger.has_device("0110113719", "db")) << "another facility's device";
    EXPECT_FALSE(ledger.has_device("0110113719", "nope"));
}

TEST(DeviceLedger, ChecksKeepTheirFiveItemsAndTheLastIsTheNewestDay) {
    auto db = database_with_facilities();
    DeviceLedger ledger(*db);
    ledger.add_device(
        {"d1", "0110113719", "iPhone", "スマートフォン", "施設所有", R"(["佐藤"])", "2024-07-01T00:00:00Z"});
    EXPECT_FALSE(ledger.last_check("d1"));
    ledger.add_check({"c2", "d1", "2024-07-03", "佐藤", {true, true, false, true, true}, "2024-07-03T09:00:00Z"});
    ledger.add_check({"c1", "d1", "2024-07-02", "鈴木", {true, false, true, true, false}, "2024-07-04T09:00:00Z"});
    auto checks = ledger.checks("d1");
    ASSERT_EQ(checks.size(), 2u);
    EXPECT_EQ(checks[0].checked_on, "2024-07-02");  // by check day, not by when recorded
    EXPECT_EQ(checks[0].passed, (std::array<bool, 5>{true, false, true, true, false}));
    EXPECT_EQ(checks[1].checker, "佐藤");
    auto last = ledger.last_check("d1");
    ASSERT_TRUE(last);
    EXPECT_EQ(last->id, "c2");
    EXPECT_EQ(last->passed, (std::array<bool, 5>{true, true, false, true, true}));
}

TEST(DeviceLedger, AFallbackVerificationIsStoredWithOrWithoutAKnownPerson) {
    auto db = database_with_facilities();
    DeviceLedger ledger(*db);
    ledger.add_fallback({"v1", "0110113719", std::string("p1"), "マイナポータル", "カードの読み取りに失敗",
                         "2024-07-01", "06139995", "記号", "123", "01", "1980-01-01", "030", "2024-07-01T10:00:00Z"});
    ledger.add_fallback({"v2", "0110113719", std::nullopt, "資格情報のお知らせ", "カードを持っていない", "2024-07-01",
                         "06139995", "記号", "999", "", "1980-01-01", "010", "2024-07-01T11:00:00Z"});
    auto rows =
        db->query("SELECT id, person_key, method, number, burden_ratio FROM fallback_verifications ORDER BY id");
    ASSERT_EQ(rows.size(), 2u);
    EXPECT_EQ(as_text(rows[0][1]), "p1");
    EXPECT_TRUE(is_null(rows[1][1]));
    EXPECT_EQ(as_text(rows[1][2]), "資格情報のお知らせ");
    EXPECT_EQ(as_text(rows[1][3]), "999");
    EXPECT_EQ(as_text(rows[1][4]), "010");
}
