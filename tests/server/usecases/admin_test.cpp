// The admin desk: the operator's test data.
#include "../server_fixture.hpp"

// Outsider 24, F10: the operator's consents skipped the appointment rules (オンライン診療 without a 診療予約日,
// 訪問診療 with one, an appointment in 2099). The operator path asks them as the other registration paths do, on the
// consent's own first visit.
TEST_F(ServerFixture, OperatorConsentsAskTheAppointmentRules) {
    std::string const key = person();
    today("2024-06-30");
    auto add = [&](char const* kind, char const* first, char const* appointment) {
        json c{{"facility_code", "0110113719"}, {"person_key", key}, {"visit_kind", kind}, {"first_visit", first},
               {"identity_method", "暗証番号"}, {"items", json::array()}};
        if (appointment) c["appointment_date"] = appointment;
        return call(admin, "POST", "/api/v1/admin/consents", c.dump());
    };
    for (auto const& [kind, appointment] :
         std::vector<std::pair<char const*, char const*>>{{"オンライン診療", nullptr},
                                                          {"訪問診療", "2024-06-20"},
                                                          {"オンライン診療", "2099-01-01"},
                                                          {"オンライン診療", "2024-05-31"}}) {
        auto r = add(kind, "2024-06-01", appointment);
        EXPECT_EQ(r.status, 400) << kind << " " << (appointment ? appointment : "-") << ": " << r.body;
        EXPECT_EQ(body(r).value("field", ""), "appointment_date") << r.body;
    }
    EXPECT_NE(body(add("オンライン診療", "2024-06-01", nullptr))["message_ja"].get<std::string>().find(
                  "診療予約日が必要"),
              std::string::npos);
    EXPECT_EQ(add("オンライン診療", "2024-06-01", "2024-08-30").status, 201);  // within 90 days of the first visit
    EXPECT_EQ(add("訪問診療", "2024-06-01", nullptr).status, 201);
    EXPECT_EQ(as_int(db->query("SELECT COUNT(*) FROM consents")[0][0]), 2);
}

// Every registration path asks what the facility kind offers (item 1) — the operator's test data too — and no path
// takes a date after today (item 13): a test consent dated 2099 would have become the patient's newest first visit.
TEST_F(ServerFixture, TheOperatorsConsentsAskTheRulesAndAreNotDatedAfterToday) {
    enable(a);
    ASSERT_EQ(call(b, "PUT", "/api/v1/settings", R"({"terms_agreed":true,"home_visit_enabled":true})").status, 200);
    std::string const key = person();
    today("2024-07-01");
    json c{{"facility_code", "2714206386"}, {"person_key", key},
           {"visit_kind", "訪問診療"},      {"first_visit", "2024-06-03"},
           {"identity_method", "暗証番号"}, {"items", {"薬剤情報"}}};
    auto station = call(admin, "POST", "/api/v1/admin/consents", c.dump());
    EXPECT_EQ(station.status, 409) << station.body;
    EXPECT_EQ(body(station)["field"], "visit_kind");
    EXPECT_NE(body(station)["message_ja"].get<std::string>().find(
                  "訪問看護ステーション は 訪問診療 を行う施設区分ではありません"),
              std::string::npos);
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
                       json{{"person_key", key},
                            {"item", "薬剤情報"},
                            {"recorded_on", "2099-01-01"},
                            {"content", {{"薬剤", "x"}}}}
                           .dump());
    EXPECT_EQ(record.status, 400);
    EXPECT_EQ(body(record)["field"], "recorded_on");
    // The patient's real relationship is the one of 7/1: nothing from 2099 stands in front of it.
    EXPECT_EQ(body(call(a, "POST", "/api/v1/reinquiry", on("2024-07-01")))["first_visit"], "2024-07-01");
}

// A name, a kana, a key, a device's name, its staff and its checker are one line each: a tab or a line break is
// refused naming the field (review33 found the admin API taking them while refusing every other control character);
// a multi-line text (a fallback verification's reason) keeps them.
TEST_F(ServerFixture, OneLineFieldsRefuseTabsAndLineBreaksNamingTheField) {
    for (std::string const bad : {"在宅\n太郎", "在宅\t太郎", "在宅\r"}) {
        auto facility = call(admin, "POST", "/api/v1/admin/facilities",
                             json{{"code", "1310000003"}, {"name", bad}, {"kind", "医科"}}.dump());
        EXPECT_EQ(facility.status, 400) << facility.body;
        EXPECT_EQ(body(facility)["field"], "name");
        EXPECT_NE(body(facility)["message_ja"].get<std::string>().find("タブや改行は使えません"), std::string::npos);
        json p{{"insurer_number", "01130012"}, {"symbol", "1"},          {"number", "2"},
               {"branch", "01"},              {"birthdate", "1940-05-01"}, {"name", "在宅 太郎"},
               {"name_kana", "ザイタク タロウ"},    {"burden_ratio", "010"},   {"valid_from", "2020-04-01"}};
        for (char const* field : {"name", "name_kana", "person_key"}) {
            json q = p;
            q[field] = bad;
            auto r = call(admin, "POST", "/api/v1/admin/insured-persons", q.dump());
            EXPECT_EQ(r.status, 400) << field << ": " << r.body;
            EXPECT_EQ(body(r)["field"], field) << r.body;
        }
        json device{
            {"name", "端末"}, {"kind", "タブレット"}, {"ownership", "施設所有"}, {"permitted_staff", {"看護 一郎"}}};
        for (char const* field : {"name", "permitted_staff"}) {
            json d = device;
            if (std::string(field) == "name") d["name"] = bad;
            else d["permitted_staff"] = {"看護 一郎", bad};
            auto r = call(a, "POST", "/api/v1/devices", d.dump());
            EXPECT_EQ(r.status, 400) << field << ": " << r.body;
            EXPECT_EQ(body(r)["field"], field) << r.body;
        }
    }
    EXPECT_EQ(as_int(db->query("SELECT COUNT(*) FROM facilities WHERE code = '1310000003'")[0][0]), 0);
    EXPECT_EQ(as_int(db->query("SELECT COUNT(*) FROM devices")[0][0]), 0);
    // The same names on one line are taken.
    EXPECT_EQ(call(admin, "POST", "/api/v1/admin/facilities",
                   json{{"code", "1310000003"}, {"name", "在宅 診療所"}, {"kind", "医科"}}.dump())
                  .status,
              201);
}
