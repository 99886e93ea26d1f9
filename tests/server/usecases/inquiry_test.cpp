// The inquiry desk: 再照会 decided by the official rules, 薬剤情報等の閲覧, 照会番号, the histories.
#include "../server_fixture.hpp"

TEST_F(ServerFixture, ReinquiryIsDecidedByTheRulesWithTheirReason) {
    enable(a);
    consent("0110113719", person());
    auto in = body(call(a, "POST", "/api/v1/reinquiry", on("2024-07-31")));
    EXPECT_TRUE(in["allowed"].get<bool>());
    EXPECT_EQ(in["qualification_validity"], 1);
    EXPECT_EQ(in["eligibility"]["burden_ratio"], "010");
    EXPECT_NE(in["reason"].get<std::string>().find("30_reinquiry.rules:"), std::string::npos);
    auto out = body(call(a, "POST", "/api/v1/reinquiry", on("2024-08-01")));
    EXPECT_FALSE(out["allowed"].get<bool>());
    EXPECT_FALSE(out.contains("eligibility"));  // refused: nothing is disclosed
    EXPECT_NE(out["reason"].get<std::string>().find("審査済みレセプトがありません"), std::string::npos);
}

TEST_F(ServerFixture, AChangeOfInsurerReturnsTheNewEligibility) {
    enable(a);
    std::string key = person("06132013", "2024-05-31");
    person("01130012", nullptr, key.c_str(), "2024-06-01", "9999");
    consent("0110113719", key);
    auto r = body(call(a, "POST", "/api/v1/reinquiry", on("2024-07-01")));
    EXPECT_TRUE(r["allowed"].get<bool>());
    EXPECT_EQ(r["qualification_validity"], 3);  // 無効（新しい資格あり）
    EXPECT_EQ(r["eligibility"]["insurer_number"], "01130012");
}

TEST_F(ServerFixture, MedicalInformationOnlyWhereTheRulesAllowIt) {
    enable(a);
    std::string key = person();
    consent("0110113719", key);
    auto rec = call(admin, "POST", "/api/v1/admin/medical-records",
                    json{{"person_key", key},
                         {"item", "薬剤情報"},
                         {"recorded_on", "2024-05-01"},
                         {"content", {{"薬剤", "アムロジピン 5mg"}}}}
                        .dump());
    ASSERT_EQ(rec.status, 201) << rec.body;
    auto ok = body(call(a, "POST", "/api/v1/medical-info", viewing_on("2024-06-01")));
    ASSERT_TRUE(ok["allowed"].get<bool>()) << ok.dump();
    EXPECT_EQ(ok["records"][0]["content"]["薬剤"], "アムロジピン 5mg");
    // A mobile terminal never sees medical information (the rules say so; nothing is returned).
    auto mobile = body(call(facility("0110113719", Caller::Role::staff, "モバイル端末"), "POST", "/api/v1/medical-info",
                            viewing_on("2024-06-01")));
    EXPECT_FALSE(mobile["allowed"].get<bool>());
    EXPECT_FALSE(mobile.contains("records"));
    // Not consented, and disabled in 環境設定.
    EXPECT_FALSE(
        body(call(a, "POST", "/api/v1/medical-info", viewing_on("2024-06-01", "手術情報")))["allowed"].get<bool>());
    ASSERT_EQ(call(a, "PUT", "/api/v1/settings", R"({"viewing_items":{"薬剤情報":false}})").status, 200);
    auto disabled = body(call(a, "POST", "/api/v1/medical-info", viewing_on("2024-06-01")));
    EXPECT_FALSE(disabled["allowed"].get<bool>());
    EXPECT_NE(disabled["reason"].get<std::string>().find("利用しない"), std::string::npos);
    // Another facility sees nothing of this patient.
    enable(b);
    EXPECT_FALSE(body(call(b, "POST", "/api/v1/medical-info", viewing_on("2024-06-01")))["allowed"].get<bool>());
    // Every attempt is in the caller's own 医療情報閲覧履歴.
    EXPECT_EQ(body(call(a, "GET", "/api/v1/history/viewings"))["entries"].size(), 4u);
    EXPECT_EQ(body(call(b, "GET", "/api/v1/history/viewings"))["entries"].size(), 1u);
}

TEST_F(ServerFixture, AMobileSessionIsWeakerAndNeverSeesMedicalInformation) {
    enable(a);
    std::string key = person();
    consent("0110113719", key);
    ASSERT_EQ(call(admin, "POST", "/api/v1/admin/medical-records",
                   json{{"person_key", key},
                        {"item", "薬剤情報"},
                        {"recorded_on", "2024-05-01"},
                        {"content", {{"薬剤", "x"}}}}
                       .dump())
                  .status,
              201);
    auto url = body(call(a, "GET", "/api/v1/url"))["url"].get<std::string>();
    Caller mobile = mobile_caller(*service, url.substr(url.find("/c/") + 3));
    ASSERT_EQ(mobile.kind, Caller::Kind::mobile);
    EXPECT_EQ(mobile.facility_code, "0110113719");
    EXPECT_EQ(mobile_caller(*service, "not-a-token").kind, Caller::Kind::anonymous);
    // Whatever terminal it claims, a mobile session is a モバイル端末, and the rules refuse it; nothing is returned.
    json claims_office = json::parse(viewing_on("2024-06-01"));
    claims_office["terminal"] = "資格確認端末";  // a body cannot name a terminal: unknown field
    EXPECT_EQ(call(mobile, "POST", "/api/v1/medical-info", claims_office.dump()).status, 400);
    auto r = call(mobile, "POST", "/api/v1/medical-info", viewing_on("2024-06-01"));
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_FALSE(body(r)["allowed"].get<bool>());
    EXPECT_FALSE(body(r).contains("records"));
    EXPECT_NE(body(r)["reason"].get<std::string>().find("モバイル端末からは"), std::string::npos) << r.body;
    // The attempt is in the facility's 医療情報閲覧履歴, as a モバイル端末.
    auto history = body(call(a, "GET", "/api/v1/history/viewings"))["entries"];
    ASSERT_EQ(history.size(), 1u);
    EXPECT_EQ(history[0]["terminal"], "モバイル端末");
    // Everything an office terminal does is out of its reach.
    EXPECT_EQ(call(mobile, "POST", "/api/v1/reinquiry", on("2024-06-01")).status, 403);
    EXPECT_EQ(call(mobile, "GET", "/api/v1/settings").status, 403);
    EXPECT_EQ(call(mobile, "GET", "/api/v1/url").status, 403);
    EXPECT_EQ(call(mobile, "GET", "/api/v1/history/viewings").status, 403);
    EXPECT_EQ(call(mobile, "POST", "/api/v1/visual-passcode").status, 403);
    EXPECT_EQ(call(mobile, "POST", "/api/v1/admin/url-keys/rotate").status, 403);
}

TEST_F(ServerFixture, ReferenceNumbersAreTheFacilitysOwnAndServeReinquiry) {
    enable(a);
    enable(b);
    std::string hanako = person();
    consent("0110113719", hanako);
    json who{{"insurer_number", "06132013"},
             {"symbol", "123"},
             {"number", "4567"},
             {"branch", "01"},
             {"birthdate", "1940-05-01"}};
    json reg = who;
    reg["reference_number"] = "カルテ-0001";
    EXPECT_EQ(call(a, "POST", "/api/v1/reference-numbers", reg.dump()).status, 201);
    EXPECT_EQ(call(a, "POST", "/api/v1/reference-numbers", reg.dump()).status, 200);  // the same again
    // B holds no consent for her: cannot number her.
    EXPECT_EQ(call(b, "POST", "/api/v1/reference-numbers", reg.dump()).status, 404);
    // The number cannot be given to someone else.
    std::string taro = person("01130012", nullptr, nullptr, "2020-04-01", "777");
    consent("0110113719", taro);
    json other{{"insurer_number", "01130012"},
               {"symbol", "123"},
               {"number", "777"},
               {"branch", "01"},
               {"birthdate", "1940-05-01"},
               {"reference_number", "カルテ-0001"}};
    EXPECT_EQ(call(a, "POST", "/api/v1/reference-numbers", other.dump()).status, 409);
    // Re-inquiry by 照会番号.
    auto r = body(call(a, "POST", "/api/v1/reinquiry", by_reference("カルテ-0001", "2024-06-01")));
    EXPECT_TRUE(r["allowed"].get<bool>()) << r.dump();
    EXPECT_EQ(r["eligibility"]["number"], "4567");
    EXPECT_EQ(r["reference_numbers"][0], "カルテ-0001");
    // Another facility's number means nothing to B.
    auto rb = body(call(b, "POST", "/api/v1/reinquiry", by_reference("カルテ-0001", "2024-06-01")));
    EXPECT_FALSE(rb["allowed"].get<bool>());
    EXPECT_EQ(rb["qualification_validity"], 4);
    // Bulk registration: each row its own result.
    auto bulk = body(call(a, "POST", "/api/v1/reference-numbers",
                          "reference_number,insurer_number,symbol,number,branch,birthdate\n"
                          "カルテ-0002,01130012,123,777,01,1940-05-01\n"
                          "カルテ-0003,06132012,123,4567,01,1940-05-01\n"
                          "too,few\n",
                          "text/csv"));
    EXPECT_EQ(bulk["registered"], 1);
    ASSERT_EQ(bulk["results"].size(), 3u);
    EXPECT_EQ(bulk["results"][1]["field"], "insurer_number");
    EXPECT_TRUE(bulk["results"][2].contains("error"));
    EXPECT_EQ(call(a, "POST", "/api/v1/reference-numbers", R"({"reference_number":""})").status, 400);
}

// The histories come a page at a time (issue 22 item 4: one call returned 136,000 entries): a default page, a
// maximum, a cursor that walks every entry once in time order, ties included, and only the caller's own.
TEST_F(ServerFixture, HistoriesComeAPageAtATimeAndTheCursorWalksEveryEntryOnce) {
    enable(a);
    enable(b);
    int const total = history_page * 2 + 203;
    transaction(*db, [&] {
        for (int i = 0; i < total; ++i)  // three entries a second: equal times are ordered by id
            db->query("INSERT INTO inquiry_log (id, facility_code, at, kind, person_key, allowed, detail_json) VALUES "
                      "($1, $2, $3, '再照会', NULL, 1, '{}')",
                      {new_id(), "0110113719",
                       "2024-05-01T00:" + std::string(i / 3 / 60 < 10 ? "0" : "") + std::to_string(i / 3 / 60) + ":" +
                           std::string(i / 3 % 60 < 10 ? "0" : "") + std::to_string(i / 3 % 60) + ".000000Z"});
        db->query("INSERT INTO inquiry_log (id, facility_code, at, kind, person_key, allowed, detail_json) VALUES ($1, "
                  "$2, $3, '再照会', NULL, 1, '{}')",
                  {new_id(), "2714206386", "2024-05-01T00:00:00.000000Z"});
    });
    std::vector<int> sizes;
    std::set<std::string> seen;
    std::string after, previous;
    for (int pages = 0; pages < 10; ++pages) {
        auto r = call(a, "GET", "/api/v1/history/inquiries" + (after.empty() ? std::string() : "?after=" + after));
        ASSERT_EQ(r.status, 200) << r.body;
        json page = body(r);
        sizes.push_back(int(page["entries"].size()));
        for (auto const& e : page["entries"]) {
            EXPECT_GE(e["at"].get<std::string>(), previous);
            previous = e["at"].get<std::string>();
        }
        if (page["next"].is_null()) break;
        after = page["next"].get<std::string>();
        EXPECT_TRUE(seen.insert(after).second) << "a cursor given twice: " << after;
    }
    EXPECT_EQ(sizes, (std::vector<int>{history_page, history_page, 203}));
    // Every entry once: the ids of all pages, read with the largest page, are as many as the entries.
    auto whole = body(call(a, "GET", "/api/v1/history/inquiries?limit=" + std::to_string(history_page_max)));
    EXPECT_EQ(int(whole["entries"].size()), total);
    EXPECT_TRUE(whole["next"].is_null());
    auto small =
        body(call(a, "GET", "/api/v1/history/inquiries?limit=2&from=2024-05-01T00:00:01&to=2024-05-01T00:00:01"));
    EXPECT_EQ(small["entries"].size(), 2u);
    auto rest = body(call(a, "GET",
                          "/api/v1/history/inquiries?limit=2&from=2024-05-01T00:00:01&to=2024-05-01T00:00:01&after=" +
                              small["next"].get<std::string>()));
    // the three entries of second 1 (`to` to the second includes that second, whole)
    EXPECT_EQ(rest["entries"].size(), 1u);
    EXPECT_TRUE(rest["next"].is_null());
    EXPECT_EQ(body(call(b, "GET", "/api/v1/history/inquiries"))["entries"].size(), 1u);  // B's own only
    for (char const* bad : {"limit=0", "limit=5001", "limit=x", "limit=-1", "limit=99999999999"})
        EXPECT_EQ(body(call(a, "GET", std::string("/api/v1/history/inquiries?") + bad))["field"], "limit") << bad;
    for (char const* bad : {"after=x", "after=2024_zz", "after=2024-05-01T00:00:00.000000Z_0123",
                            "after=%27%20OR%201=1_00000000000000000000000000000000"})
        EXPECT_EQ(body(call(a, "GET", std::string("/api/v1/history/viewings?") + bad))["field"], "after") << bad;
}

// Outsider 24, F4: from/to were compared as text: to=2026-12-06 found nothing of that day (documented inclusive), an
// offset time was compared as written, and from=zzz or 2027-13-45 were taken. They are dates (a day in Japan, whole)
// or date-times (UTC, Z or an offset), parsed; a bad one is a 400 naming it.
// One bad row never stops anyone else's work: a row whose detail_json is not a JSON object — not JSON, or nested far
// deeper than any writer writes (a forged journal line, a hand edit) — is answered as an entry with an error, and
// every other entry of the page is answered as written (it was a 500 for every page holding the row).
TEST_F(ServerFixture, ADamagedHistoryRowIsAnsweredAsSuchNotA500ForThePage) {
    enable(a);
    std::string const deep = std::string(30000, '[') + std::string(30000, ']');
    int n = 0;
    for (std::string const& detail : {std::string(R"({"allowed":true})"), std::string("not json"), deep,
                                      std::string("[1]"), std::string(R"({"allowed":false})")})
        db->query("INSERT INTO inquiry_log (id, facility_code, at, kind, person_key, allowed, detail_json) VALUES "
                  "($1, $2, $3, '再照会', NULL, 1, $4)",
                  {new_id(), "0110113719", "2024-05-01T00:00:0" + std::to_string(n++) + ".000000Z", detail});
    auto const r = call(a, "GET", "/api/v1/history/inquiries");
    ASSERT_EQ(r.status, 200) << r.body.substr(0, 300);
    json const entries = body(r)["entries"];
    ASSERT_EQ(entries.size(), 5u);
    EXPECT_EQ(entries[0]["detail"], json({{"allowed", true}}));
    for (int i : {1, 2, 3}) {
        EXPECT_TRUE(entries[i]["detail"].is_null()) << i;
        EXPECT_TRUE(entries[i]["error"].is_string()) << i;
        EXPECT_EQ(entries[i]["at"], "2024-05-01T00:00:0" + std::to_string(i) + ".000000Z");
    }
    EXPECT_EQ(entries[4]["detail"], json({{"allowed", false}}));
    EXPECT_FALSE(entries[4].contains("error"));
}

TEST_F(ServerFixture, HistoryBoundsAreDatesAndTimesNotText) {
    enable(a);
    for (char const* at : {"2026-12-05T14:59:59.999999Z", "2026-12-05T15:00:00.000000Z", "2026-12-06T01:00:00.000000Z",
                           "2026-12-06T14:59:59.999999Z", "2026-12-06T15:00:00.000000Z"})
        db->query("INSERT INTO inquiry_log (id, facility_code, at, kind, person_key, allowed, detail_json) VALUES ($1, "
                  "'0110113719', $2, '再照会', NULL, 1, '{}')",
                  {new_id(), std::string(at)});
    auto count = [&](std::string const& query) {
        auto r = call(a, "GET", "/api/v1/history/inquiries?" + query);
        EXPECT_EQ(r.status, 200) << query << ": " << r.body;
        return body(r)["entries"].size();
    };
    EXPECT_EQ(count("to=2026-12-06"), 4u);                      // through the end of 12/06 in Japan (14:59:59.999999Z)
    EXPECT_EQ(count("from=2026-12-06&to=2026-12-06"), 3u);      // 12/06 in Japan: 15:00Z on 12/05 … 14:59:59Z on 12/06
    EXPECT_EQ(count("from=2026-12-07"), 1u);
    EXPECT_EQ(count("to=2026-12-06T09:00:00%2B09:00"), 2u);     // 00:00:00Z, that second included: not the 01:00Z entry
    EXPECT_EQ(count("to=2026-12-06T10:00:00%2B09:00"), 3u);     // 01:00:00Z, included
    EXPECT_EQ(count("from=2026-12-06T01:00:00Z&to=2026-12-06T01:00:00.000000"), 1u);
    EXPECT_EQ(count("from=2026-12-06T10:00:00.000001%2B09:00"), 2u);
    EXPECT_EQ(count("from=4048-01-01"), 0u);  // past what the clock can hold (the HTTP fuzzer's find): no overflow
    EXPECT_EQ(count("to=4048-01-01"), 5u);
    EXPECT_EQ(count("to=1900-01-01T00:00:00Z"), 0u);
    for (auto const& [query, field] :
         std::vector<std::pair<std::string, std::string>>{{"from=zzz", "from"},
                                                          {"from=2027-13-45", "from"},
                                                          {"to=2026-02-30", "to"},
                                                          {"to=zzz", "to"},
                                                          {"from=2026-12-06T25:00:00Z", "from"},
                                                          {"from=2026-12-06T10:00:00%2B9", "from"},
                                                          {"to=2026-12-06T10:00:00.1234567Z", "to"},
                                                          {"to=2026-12-06%20", "to"}}) {
        auto r = call(a, "GET", "/api/v1/history/viewings?" + query);
        EXPECT_EQ(r.status, 400) << query << ": " << r.body;
        EXPECT_EQ(body(r).value("field", ""), field) << query;
    }
}

// Outsider 24, F8: the 照会番号 CSV has no quoting: "Q\n1" was read as two rows and registered 1"; a number of blanks
// only, or with a tab, was taken. A quoted line is refused naming its line and field; such numbers on every path.
TEST_F(ServerFixture, ReferenceNumbersAreOneLineOfVisibleTextAndTheCsvHasNoQuoting) {
    enable(a);
    consent("0110113719", person());
    auto csv = body(call(a, "POST", "/api/v1/reference-numbers",
                         "\"Q\n1\",06132013,123,4567,01,1940-05-01\n\"Q,2\",06132013,123,4567,01,1940-05-01\nR-3,"
                         "06132013,123,4567,01,1940-05-01\n",
                         "text/csv"));
    EXPECT_EQ(csv["registered"], 1) << csv.dump();
    ASSERT_EQ(csv["results"].size(), 4u) << csv.dump();
    for (std::size_t i = 0; i < 3; ++i) {
        EXPECT_EQ(csv["results"][i]["line"], i + 1) << csv.dump();
        EXPECT_EQ(csv["results"][i].value("field", ""), "reference_number") << csv.dump();
        EXPECT_NE(csv["results"][i]["error"].get<std::string>().find("引用符"), std::string::npos) << csv.dump();
    }
    EXPECT_EQ(csv["results"][3]["result"], "登録");
    EXPECT_EQ(as_int(db->query("SELECT COUNT(*) FROM reference_numbers")[0][0]), 1);
    for (char const* bad : {"\u3000", " ", " \u3000 ", "A\tB", "A\rB"}) {
        json reg{{"reference_number", bad}, {"insurer_number", "06132013"}, {"symbol", "123"}, {"number", "4567"},
                 {"branch", "01"},          {"birthdate", "1940-05-01"}};
        auto r = call(a, "POST", "/api/v1/reference-numbers", reg.dump());
        EXPECT_EQ(r.status, 400) << r.body;
        EXPECT_EQ(body(r).value("field", ""), "reference_number") << r.body;
    }
    EXPECT_EQ(as_int(db->query("SELECT COUNT(*) FROM reference_numbers")[0][0]), 1);
}

TEST_F(ServerFixture, AUrlHolderLearnsNothingAboutWhetherAPersonExists) {
    enable(a);
    consent("0110113719", person());
    auto url = body(call(a, "GET", "/api/v1/url"))["url"].get<std::string>();
    Caller mobile = mobile_caller(*service, url.substr(url.find("/c/") + 3));
    auto known = call(mobile, "POST", "/api/v1/medical-info", viewing_on("2024-06-01"));
    json nobody = json::parse(viewing_on("2024-06-01"));
    nobody["number"] = "9999";
    auto unknown = call(mobile, "POST", "/api/v1/medical-info", nobody.dump());
    EXPECT_EQ(known.status, unknown.status);
    EXPECT_EQ(known.body, unknown.body);
}

TEST_F(ServerFixture, LossOfEligibilityIsAnsweredWithItsDateAndReason) {
    enable(a);
    json p{{"insurer_number", "06132013"},
           {"symbol", "123"},
           {"number", "4567"},
           {"branch", "01"},
           {"birthdate", "1940-05-01"},
           {"name", "在宅 花子"},
           {"burden_ratio", "010"},
           {"valid_from", "2020-04-01"},
           {"valid_to", "2024-06-30"},
           {"loss_reason", "01"},
           {"card_classification", "03"},
           {"personal_family", "2"}};
    auto r = call(admin, "POST", "/api/v1/admin/insured-persons", p.dump());
    ASSERT_EQ(r.status, 201) << r.body;
    consent("0110113719", body(r)["person_key"]);
    auto lost = body(call(a, "POST", "/api/v1/reinquiry", on("2024-07-10")));
    ASSERT_TRUE(lost["allowed"].get<bool>()) << lost.dump();
    EXPECT_EQ(lost["qualification_validity"], 2);  // 無効
    EXPECT_EQ(lost["eligibility"]["disqualification_date"], "2024-07-01");
    EXPECT_EQ(lost["eligibility"]["loss_reason"], "01");
    auto xml = call(a, "POST", "/api/v1/oqs/OQSsiquc01req", muquc_for("0110113719", "20240710", nullptr)).body;
    EXPECT_NE(xml.find("<QualificationValidity>2</QualificationValidity>"), std::string::npos) << xml;
    EXPECT_NE(xml.find("<DisqualificationDate>20240701</DisqualificationDate>"), std::string::npos) << xml;
    EXPECT_NE(xml.find("<ReasonOfLoss>01</ReasonOfLoss>"), std::string::npos) << xml;
    EXPECT_NE(xml.find("<InsuredCardClassification>03</InsuredCardClassification>"), std::string::npos) << xml;
    EXPECT_NE(xml.find("<PersonalFamilyClassification>2</PersonalFamilyClassification>"), std::string::npos) << xml;
    p["loss_reason"] = "42";
    EXPECT_EQ(body(call(admin, "POST", "/api/v1/admin/insured-persons", p.dump()))["field"], "loss_reason");
}

TEST_F(ServerFixture, AnotherFacilityCannotTellWhetherAPersonExists) {
    enable(a);
    enable(b);
    consent("0110113719", person());
    // B holds no consent: the real person and a made-up one are answered alike, on every eligibility route.
    json nobody = json::parse(on("2024-06-10"));
    nobody["birthdate"] = "1940-05-02";
    auto known = call(b, "POST", "/api/v1/reinquiry", on("2024-06-10"));
    auto unknown = call(b, "POST", "/api/v1/reinquiry", nobody.dump());
    EXPECT_EQ(known.body, unknown.body);
    json view_nobody = json::parse(viewing_on("2024-06-10"));
    view_nobody["birthdate"] = "1940-05-02";
    EXPECT_EQ(call(b, "POST", "/api/v1/medical-info", viewing_on("2024-06-10")).body,
              call(b, "POST", "/api/v1/medical-info", view_nobody.dump()).body);
}

TEST_F(ServerFixture, ADateBeforeTheConsentShowsNoEarlierInsurance) {
    enable(a);
    std::string key = person("06132013", "2024-05-31");
    person("01130012", nullptr, key.c_str(), "2024-06-01", "9999");
    consent("0110113719", key, "訪問診療", "2024-06-10");
    json before = json::parse(on("2024-06-20"));
    before["query_date"] = "2024-05-01";
    auto r = body(call(a, "POST", "/api/v1/reinquiry", before.dump()));
    EXPECT_FALSE(r["allowed"].get<bool>()) << r.dump();
    EXPECT_FALSE(r.contains("eligibility"));
    EXPECT_NE(r["reason"].get<std::string>().find("より前です"), std::string::npos);
}
