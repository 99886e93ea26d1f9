// The admin desk: the operator's test data.
#include "../server_fixture.hpp"

// Every registration path asks what the facility kind offers (item 1) — the operator's test data too — and no path
// takes a date after today (item 13): a test consent dated 2099 would have become the patient's newest first visit.
TEST_F(ServerFixture, TheOperatorsConsentsAskTheRulesAndAreNotDatedAfterToday) {
    enable(a);
    ASSERT_EQ(call(b, "PUT", "/api/v1/settings", R"({"terms_agreed":true,"home_visit_enabled":true})").status, 200);
    std::string const key = person();
    today("2024-07-01");
    json c{{"facility_code", "2714206386"}, {"person_key", key}, {"visit_kind", "訪問診療"}, {"first_visit", "2024-06-03"},
           {"identity_method", "暗証番号"}, {"items", {"薬剤情報"}}};
    auto station = call(admin, "POST", "/api/v1/admin/consents", c.dump());
    EXPECT_EQ(station.status, 409) << station.body;
    EXPECT_EQ(body(station)["field"], "visit_kind");
    EXPECT_NE(body(station)["message_ja"].get<std::string>().find("訪問看護ステーション は 訪問診療 を行う施設区分ではありません"), std::string::npos);
    c["visit_kind"] = "訪問看護";
    EXPECT_EQ(call(admin, "POST", "/api/v1/admin/consents", c.dump()).status, 201);
    c["facility_code"] = "0110113719";
    c["visit_kind"] = "訪問診療";
    c["first_visit"] = "2099-01-01";
    auto future = call(admin, "POST", "/api/v1/admin/consents", c.dump());
    EXPECT_EQ(future.status, 400);
    EXPECT_EQ(body(future)["field"], "first_visit");
    c["first_visit"] = "2024-07-02";
    EXPECT_EQ(call(admin, "POST", "/api/v1/admin/consents", c.dump()).status, 400);
    c["first_visit"] = "2024-07-01";
    EXPECT_EQ(call(admin, "POST", "/api/v1/admin/consents", c.dump()).status, 201);
    auto record = call(admin, "POST", "/api/v1/admin/medical-records",
                       json{{"person_key", key}, {"item", "薬剤情報"}, {"recorded_on", "2099-01-01"}, {"content", {{"薬剤", "x"}}}}.dump());
    EXPECT_EQ(record.status, 400);
    EXPECT_EQ(body(record)["field"], "recorded_on");
    // The patient's real relationship is the one of 7/1: nothing from 2099 stands in front of it.
    EXPECT_EQ(body(call(a, "POST", "/api/v1/reinquiry", on("2024-07-01")))["first_visit"], "2024-07-01");
}
