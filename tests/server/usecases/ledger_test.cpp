// The ledger desk: the device ledger and its checklist, fallback verifications.
#include "../server_fixture.hpp"

TEST_F(ServerFixture, DeviceLedgerAndChecklistPerFacility) {
    auto dev = call(
        a, "POST", "/api/v1/devices",
        R"({"name":"訪問用タブレット1","kind":"タブレット","ownership":"個人所有","permitted_staff":["看護 一郎",)"
        R"("医師 花子"]})");
    ASSERT_EQ(dev.status, 201) << dev.body;
    std::string id = body(dev)["id"];
    EXPECT_EQ(call(a, "POST", "/api/v1/devices",
                   R"({"name":"x","kind":"ガラケー","ownership":"施設所有","permitted_staff":["a"]})")
                  .status,
              400);
    EXPECT_EQ(body(call(a, "POST", "/api/v1/devices",
                        R"({"name":"x","kind":"タブレット","ownership":"施設所有","permitted_staff":[]})"))["field"],
              "permitted_staff");
    json check{{"checked_on", "2024-05-01"},
               {"checker", "管理者 太郎"},
               {"checks",
                {{"os_updated", true},
                 {"antivirus", true},
                 {"screen_lock", true},
                 {"ledger_reviewed", true},
                 {"staff_trained", false}}}};
    EXPECT_EQ(call(a, "POST", "/api/v1/devices/" + id + "/checks", check.dump()).status, 201);
    auto list = body(call(a, "GET", "/api/v1/devices"));
    ASSERT_EQ(list.size(), 1u);
    EXPECT_FALSE(list[0]["last_check"]["all_passed"].get<bool>());
    EXPECT_EQ(list[0]["last_check"]["failed"][0], "職員の教育");
    json incomplete = check;
    incomplete["checks"].erase("antivirus");
    EXPECT_EQ(body(call(a, "POST", "/api/v1/devices/" + id + "/checks", incomplete.dump()))["field"],
              "checks.antivirus");
    // Another facility neither sees nor checks A's device.
    EXPECT_EQ(body(call(b, "GET", "/api/v1/devices")).size(), 0u);
    EXPECT_EQ(call(b, "POST", "/api/v1/devices/" + id + "/checks", check.dump()).status, 404);
    EXPECT_EQ(call(b, "GET", "/api/v1/devices/" + id + "/checks").status, 404);
    EXPECT_EQ(body(call(a, "GET", "/api/v1/devices/" + id + "/checks")).size(), 1u);
}

TEST_F(ServerFixture, FallbackVerificationsAreRecordedWithTheirMethodButAllowNoReinquiry) {
    enable(a);
    person();
    json v{{"method", "マイナポータル"},
           {"reason", "カードのICチップの破損"},
           {"verified_on", "2024-05-01"},
           {"insurer_number", "06132013"},
           {"symbol", "123"},
           {"number", "4567"},
           {"branch", "01"},
           {"birthdate", "1940-05-01"},
           {"burden_ratio", "010"}};
    ASSERT_EQ(call(a, "POST", "/api/v1/fallback-verifications", v.dump()).status, 201);
    auto history = body(call(a, "GET", "/api/v1/history/inquiries"))["entries"];
    ASSERT_EQ(history.size(), 1u);
    EXPECT_EQ(history[0]["kind"], "資格確認（マイナポータル）");
    EXPECT_EQ(body(call(b, "GET", "/api/v1/history/inquiries"))["entries"].size(), 0u);
    // No consent came from it.
    EXPECT_NE(body(call(a, "POST", "/api/v1/reinquiry", on("2024-05-15")))["reason"].get<std::string>().find(
                  "同意がありません"),
              std::string::npos);
    v["method"] = "保険証";
    EXPECT_EQ(body(call(a, "POST", "/api/v1/fallback-verifications", v.dump()))["field"], "method");
}

