// decision/: the decision path asks the rules, on the server's date, from the server's records — the relationship,
// its window, house calls, the rule contract — and every route that can disclose answers through it.
#include "server_fixture.hpp"

class DecisionPaths : public ServerFixture {
protected:
    std::string hanako;
    // The records every scenario starts from: A uses both functions; Hanako has A's 訪問診療 consent of 2024-04-15
    // (薬剤情報), an online consent booked for 2024-06-10, a 照会番号 and a medication record.
    void records(bool with_consents = true) {
        ASSERT_EQ(call(a, "PUT", "/api/v1/settings",
                       R"({"terms_agreed":true,"home_visit_enabled":true,"online_enabled":true})")
                      .status,
                  200);
        enable(b);
        hanako = person();
        if (with_consents) {
            consent("0110113719", hanako);
            consent("0110113719", hanako, "オンライン診療", "2024-05-20", "2024-06-10");
            today("2024-05-01");
            json reg{{"reference_number", "R-1"},
                     {"insurer_number", "06132013"},
                     {"symbol", "123"},
                     {"number", "4567"},
                     {"branch", "01"},
                     {"birthdate", "1940-05-01"}};
            ASSERT_EQ(call(a, "POST", "/api/v1/reference-numbers", reg.dump()).status, 201);
        }
        ASSERT_EQ(call(admin, "POST", "/api/v1/admin/medical-records",
                       json{{"person_key", hanako},
                            {"item", "薬剤情報"},
                            {"recorded_on", "2024-05-01"},
                            {"content", {{"薬剤", "アムロジピン 5mg"}}}}
                           .dump())
                      .status,
                  201);
    }
    // Every route that can answer with Hanako's eligibility or medical information, driven to its answer.
    struct Probe {
        std::string name;           // for messages
        std::string route;          // "METHOD path" of route_table() whose answer is checked
        std::function<std::string(Caller const&)> run;  // the whole answer, as UTF-8 text
    };
    std::vector<Probe> probes() {
        auto finish_jobs = [this] {
            while (service->batch.process(500) > 0) {
            }
        };
        return {
            {"individual by card", "POST /api/v1/reinquiry",
             [this](Caller const& c) {
                 return call(c, "POST", "/api/v1/reinquiry", on(clock.today().iso().c_str())).body;
             }},
            {"individual, online", "POST /api/v1/reinquiry",
             [this](Caller const& c) {
                 return call(c, "POST", "/api/v1/reinquiry", on(clock.today().iso().c_str(), "オンライン診療等")).body;
             }},
            {"individual by 照会番号", "POST /api/v1/reinquiry",
             [this](Caller const& c) {
                 return call(c, "POST", "/api/v1/reinquiry",
                             json{{"category", "訪問診療等"}, {"reference_number", "R-1"}}.dump())
                     .body;
             }},
            {"medical information", "POST /api/v1/medical-info",
             [this](Caller const& c) {
                 return call(c, "POST", "/api/v1/medical-info", viewing_on(clock.today().iso().c_str())).body;
             }},
            {"CSV batch", "GET /api/v1/batch/reinquiry/{reception_number}/result",
             [this, finish_jobs](Caller const& c) {
                 auto up =
                     call(c, "POST", "/api/v1/batch/reinquiry", "p1,06132013,123,4567,01,1940-05-01\n", "text/csv");
                 if (up.status != 202) return up.body;
                 finish_jobs();
                 return call(c, "GET",
                             "/api/v1/batch/reinquiry/" + body(up)["reception_number"].get<std::string>() + "/result")
                     .body;
             }},
            {"OQSsiquc01req", "POST /api/v1/oqs/OQSsiquc01req",
             [this](Caller const& c) {
                 return call(c, "POST", "/api/v1/oqs/OQSsiquc01req", muquc_for(c.facility_code, "20240601", nullptr))
                     .body;
             }},
            {"OQSmuquc01req → 02req", "POST /api/v1/oqs/OQSmuquc02req",
             [this, finish_jobs](Caller const& c) {
                 auto up =
                     call(c, "POST", "/api/v1/oqs/OQSmuquc01req", muquc_for(c.facility_code, "20240601", nullptr));
                 finish_jobs();
                 return call(c, "POST", "/api/v1/oqs/OQSmuquc02req", download_for(c.facility_code, up.body)).body;
             }},
            {"OQSmuquc01req online → 02req", "POST /api/v1/oqs/OQSmuquc02req",
             [this, finish_jobs](Caller const& c) {
                 auto up = call(c, "POST", "/api/v1/oqs/OQSmuquc01req", muquc_for(c.facility_code, "20240601", "3"));
                 finish_jobs();
                 return call(c, "POST", "/api/v1/oqs/OQSmuquc02req", download_for(c.facility_code, up.body)).body;
             }},
            {"OQSmuhvq01req → 02req", "POST /api/v1/oqs/OQSmuquc02req",
             [this](Caller const& c) {
                 auto up = call(c, "POST", "/api/v1/oqs/OQSmuhvq01req",
                                hvq01req(c.facility_code.c_str(), "2", "20240101", "20241231"));
                 return call(c, "POST", "/api/v1/oqs/OQSmuquc02req", download_for(c.facility_code, up.body)).body;
             }},
            {"OQSmuonq01req → 02req", "POST /api/v1/oqs/OQSmuquc02req",
             [this](Caller const& c) {
                 auto up = call(c, "POST", "/api/v1/oqs/OQSmuonq01req",
                                hvq01req(c.facility_code.c_str(), "3", "20240101", "20241231"));
                 return call(c, "POST", "/api/v1/oqs/OQSmuquc02req", download_for(c.facility_code, up.body)).body;
             }},
            {"同意取消照会", "POST /api/v1/withdrawal/lookup",
             [this](Caller const& c) {
                 return call(c, "POST", "/api/v1/withdrawal/lookup",
                             json{{"insurer_number", "06132013"},
                                  {"symbol", "123"},
                                  {"number", "4567"},
                                  {"branch", "01"},
                                  {"birthdate", "1940-05-01"}}
                                 .dump())
                     .body;
             }},
        };
    }
    // What Hanako's eligibility or medical information would show: her name, kana, burden ratio, her medication.
    static bool discloses(std::string const& answer) {
        return answer.find("在宅 花子") != std::string::npos || answer.find("アムロジピン") != std::string::npos ||
               answer.find("burden_ratio") != std::string::npos ||
               answer.find("InsuredPartialContributionRatio") != std::string::npos;
    }
};

TEST_F(ServerFixture, ClaimsReviewsExtendTheRelationship) {
    enable(a);
    consent("0110113719", person());
    std::string csv = "facility_code,insurer_number,symbol,number,branch,birthdate,month,reviewed_on\n";
    for (char const* m : {"2024-04", "2024-05", "2024-06", "2024-07"})
        csv += std::string("0110113719,06132013,123,4567,01,1940-05-01,") + m + ",2024-09-01\n";
    today("2024-09-10");
    // Review results come from the review organisations (the operator), never from the facility itself.
    EXPECT_EQ(call(a, "POST", "/api/v1/admin/claim-reviews", csv, "text/csv").status, 403);
    auto r = body(call(admin, "POST", "/api/v1/admin/claim-reviews", csv, "text/csv"));
    EXPECT_EQ(r["imported"], 4);
    // A review dated after today, a month after its review, an unknown facility: each row its own error.
    auto bad = body(call(admin, "POST", "/api/v1/admin/claim-reviews",
                         "0110113719,06132013,123,4567,01,1940-05-01,2024-08,2024-09-11\n"
                         "0110113719,06132013,123,4567,01,1940-05-01,2024-10,2024-09-01\n"
                         "1310000007,06132013,123,4567,01,1940-05-01,2024-08,2024-09-01\n",
                         "text/csv"));
    EXPECT_EQ(bad["imported"], 0);
    ASSERT_EQ(bad["errors"].size(), 3u);
    EXPECT_EQ(bad["errors"][0]["field"], "reviewed_on");
    EXPECT_EQ(bad["errors"][1]["field"], "month");
    EXPECT_EQ(bad["errors"][2]["field"], "facility_code");
    EXPECT_TRUE(body(call(a, "POST", "/api/v1/reinquiry", on("2024-09-10")))["allowed"].get<bool>());
}

TEST_F(ServerFixture, OnlineCareIsQueriedOnTheAppointmentDayOnlyAndTheCategoryMustMatchTheConsent) {
    ASSERT_EQ(call(a, "PUT", "/api/v1/settings", R"({"terms_agreed":true,"online_enabled":true})").status, 200);
    consent("0110113719", person(), "オンライン診療", "2024-04-10", "2024-04-20");
    // 別添3③: before the online visit, on the 診療予約日, the eligibility is queried with 診療区分 オンライン診療等.
    auto r = body(call(a, "POST", "/api/v1/reinquiry", on("2024-04-20", "オンライン診療等")));
    EXPECT_TRUE(r["allowed"].get<bool>()) << r.dump();
    EXPECT_EQ(r["eligibility"]["name"], "在宅 花子");
    auto later = body(call(a, "POST", "/api/v1/reinquiry", on("2024-04-21", "オンライン診療等")));
    EXPECT_FALSE(later["allowed"].get<bool>());
    EXPECT_FALSE(later.contains("eligibility"));
    EXPECT_NE(later["reason"].get<std::string>().find("診療予約日 2024-04-20"), std::string::npos) << later.dump();
    auto other = body(call(a, "POST", "/api/v1/reinquiry", on("2024-04-20")));
    EXPECT_NE(other["reason"].get<std::string>().find("同意がありません"), std::string::npos);
}

TEST_F(DecisionPaths, EveryRouteThatCanDiscloseIsProbedAndRefusesWhenTheRulesSayNo) {
    // The probes cover every route the table marks as disclosing, and nothing else.
    std::set<std::string> marked, probed;
    for (auto const& r : route_table())
        if (r.discloses) marked.insert(r.method + " " + r.path);
    for (auto const& p : probes()) probed.insert(p.route);
    EXPECT_EQ(marked, probed);

    Caller mobile;
    struct Scenario {
        char const* name;
        char const* day;
        std::function<void()> set_up;
        std::function<Caller()> caller;
        std::set<std::string> still_allowed;  // probes a scenario does not concern (they may disclose)
    };
    auto a_caller = [this] { return a; };
    std::vector<Scenario> const scenarios{
        {"訪問診療等機能 and オンライン診療等機能 off",
         "2024-06-10",
         [this] {
             ASSERT_EQ(call(a, "PUT", "/api/v1/settings", R"({"home_visit_enabled":false,"online_enabled":false})")
                           .status,
                       200);
         },
         a_caller,
         {"同意取消照会"}},
        {"window over, no continuity, not the appointment day", "2024-08-05", [] {}, a_caller, {"同意取消照会"}},
        {"consent withdrawn",
         "2024-06-10",
         [this] {
             json who{{"insurer_number", "06132013"}, {"symbol", "123"},  {"number", "4567"}, {"branch", "01"},
                      {"birthdate", "1940-05-01"},    {"confirmed", true}};
             ASSERT_EQ(call(a, "POST", "/api/v1/withdrawal", who.dump()).status, 200);
         },
         a_caller,
         {}},
        {"another facility", "2024-06-10", [] {}, [this] { return b; }, {}},
        {"a モバイル端末 session (the URL only)",
         "2024-06-10",
         [this, &mobile] {
             auto url = body(call(a, "GET", "/api/v1/url"))["url"].get<std::string>();
             mobile = mobile_caller(*service, url.substr(url.find("/c/") + 3));
         },
         [&mobile] { return mobile; },
         {}},
        // It re-inquires one patient (at the patient's home); batches and bulk downloads are an office terminal's.
        {"a certificate of a モバイル端末",
         "2024-06-10",
         [] {},
         [] { return facility("0110113719", Caller::Role::staff, "モバイル端末"); },
         {"individual by card", "individual, online", "individual by 照会番号", "OQSsiquc01req"}},
        {"薬剤情報 not enabled in 環境設定",
         "2024-06-10",
         [this] {
             ASSERT_EQ(call(a, "PUT", "/api/v1/settings", R"({"viewing_items":{"薬剤情報":false}})").status, 200);
         },
         a_caller,
         {"individual by card", "individual, online", "individual by 照会番号", "CSV batch", "OQSsiquc01req",
          "OQSmuquc01req → 02req", "OQSmuquc01req online → 02req", "OQSmuhvq01req → 02req", "OQSmuonq01req → 02req",
          "同意取消照会"}},
    };
    // The positive control: on a day the rules allow, every probe does disclose (so a refusal below means something).
    SetUp();
    records();
    today("2024-06-10");
    for (auto const& p : probes()) EXPECT_TRUE(discloses(p.run(a))) << "allowed day, " << p.name;
    for (auto const& sc : scenarios) {
        SetUp();
        records();
        today(sc.day);
        sc.set_up();
        today(sc.day);
        Caller const c = sc.caller();
        for (auto const& p : probes()) {
            if (sc.still_allowed.count(p.name)) continue;
            today(sc.day);
            std::string answer = p.run(c);
            EXPECT_FALSE(discloses(answer)) << sc.name << ", " << p.name << ": " << answer.substr(0, 600);
        }
    }
    // Not consented at all: nothing for anyone.
    SetUp();
    records(false);
    today("2024-06-10");
    for (auto const& p : probes()) EXPECT_FALSE(discloses(p.run(a))) << "not consented, " << p.name;
}

TEST_F(ServerFixture, TheCallersDateNeverOpensAGate) {
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
    // Today (2026-11-29) the relationship of 2024 is long over: naming a day inside its window changes nothing.
    today("2026-11-29");
    json past = json::parse(on("2026-11-29"));
    past["query_date"] = "2024-06-10";
    auto r = body(call(a, "POST", "/api/v1/reinquiry", past.dump()));
    EXPECT_FALSE(r["allowed"].get<bool>());
    EXPECT_FALSE(r.contains("eligibility"));
    auto v = body(call(a, "POST", "/api/v1/medical-info", viewing_on("2026-11-29")));
    EXPECT_FALSE(v["allowed"].get<bool>());
    EXPECT_FALSE(v.contains("records"));
    // Inside the window a 資格確認日 before today picks the insurance period; tomorrow (the evening before a round) is
    // decided on tomorrow; a later one is refused by the rules (param 資格確認日を先にできる日数).
    today("2024-06-10");
    past["query_date"] = "2024-05-01";
    EXPECT_EQ(body(call(a, "POST", "/api/v1/reinquiry", past.dump()))["query_date"], "2024-05-01");
    past["query_date"] = "2024-06-11";
    EXPECT_TRUE(body(call(a, "POST", "/api/v1/reinquiry", past.dump()))["allowed"].get<bool>());
    past["query_date"] = "2024-06-12";
    auto ahead = body(call(a, "POST", "/api/v1/reinquiry", past.dump()));
    EXPECT_FALSE(ahead["allowed"].get<bool>());
    EXPECT_FALSE(ahead.contains("eligibility"));
    // Medical records are those recorded up to today, never later entries (recorded while the clock was later:
    // the operator cannot date one after today).
    today("2024-07-01");
    ASSERT_EQ(call(admin, "POST", "/api/v1/admin/medical-records",
                   json{{"person_key", key},
                        {"item", "薬剤情報"},
                        {"recorded_on", "2024-07-01"},
                        {"content", {{"薬剤", "later"}}}}
                       .dump())
                  .status,
              201);
    today("2024-06-10");
    auto records = body(call(a, "POST", "/api/v1/medical-info", viewing_on("2024-06-10")))["records"];
    ASSERT_EQ(records.size(), 1u);
    EXPECT_EQ(records[0]["content"]["薬剤"], "x");
}

TEST_F(ServerFixture, AHouseCallInsideTheRelationshipNeitherEndsItNorStartsANewWindow) {
    enable(a);
    std::string key = person();
    consent("0110113719", key, "訪問診療", "2024-04-15");
    consent("0110113719", key, "往診", "2024-06-20");
    // The relationship of 2024-04-15 still answers (window to 2024-07-31), with its own window.
    auto r = body(call(a, "POST", "/api/v1/reinquiry", on("2024-07-10")));
    EXPECT_TRUE(r["allowed"].get<bool>()) << r.dump();
    EXPECT_EQ(r["visit_kind"], "訪問診療");
    EXPECT_EQ(r["window_end"], "2024-07-31");
    // A window from the 往診 would run to 2024-09-30: it does not exist.
    auto after = body(call(a, "POST", "/api/v1/reinquiry", on("2024-08-05")));
    EXPECT_FALSE(after["allowed"].get<bool>()) << after.dump();
    // Viewing on the house-call day works through the relationship (continuing_home_care derived, not asserted).
    EXPECT_TRUE(body(call(a, "POST", "/api/v1/medical-info", viewing_on("2024-06-20")))["allowed"].get<bool>());
    // With monthly claims the relationship continues, and so does the house call's re-inquiry.
    std::string csv;
    for (char const* m : {"2024-04", "2024-05", "2024-06", "2024-07"})
        csv += std::string("0110113719,06132013,123,4567,01,1940-05-01,") + m + ",2024-09-01\n";
    today("2024-09-10");
    ASSERT_EQ(body(call(admin, "POST", "/api/v1/admin/claim-reviews", csv, "text/csv"))["imported"], 4);
    EXPECT_TRUE(body(call(a, "POST", "/api/v1/reinquiry", on("2024-09-10")))["allowed"].get<bool>());
}

// A 往診 at 23:50 is fetched at the office the next morning: its own verification may be fetched until the end
// of the next day (rules/30_reinquiry.rules, param 訪問の資格情報を照会できる日数), not after (issue 24 item 5).
TEST_F(ServerFixture, AHouseCallAloneGetsItsEligibilityUntilTheEndOfTheNextDay) {
    enable(a);
    consent("0110113719", person(), "往診", "2024-06-20");
    auto same_day = body(call(a, "POST", "/api/v1/reinquiry", on("2024-06-20")));
    EXPECT_TRUE(same_day["allowed"].get<bool>()) << same_day.dump();
    EXPECT_EQ(same_day["eligibility"]["name"], "在宅 花子");
    auto next_morning = body(call(a, "POST", "/api/v1/reinquiry", on("2024-06-21")));
    EXPECT_TRUE(next_morning["allowed"].get<bool>()) << next_morning.dump();
    EXPECT_NE(next_morning["reason"].get<std::string>().find("2024-06-21 まで照会できます"), std::string::npos)
        << next_morning.dump();
    auto day_after = body(call(a, "POST", "/api/v1/reinquiry", on("2024-06-22")));
    EXPECT_FALSE(day_after["allowed"].get<bool>());
    EXPECT_FALSE(day_after.contains("eligibility"));
    EXPECT_NE(day_after["reason"].get<std::string>().find("往診は毎回資格確認"), std::string::npos) << day_after.dump();
}

TEST_F(ServerFixture, ANewHomeCareConsentRestartsTheRelationship) {
    enable(a);
    std::string key = person();
    consent("0110113719", key, "訪問診療", "2024-01-15");
    consent("0110113719", key, "訪問看護", "2024-06-03");
    auto r = body(call(a, "POST", "/api/v1/reinquiry", on("2024-09-20")));
    EXPECT_TRUE(r["allowed"].get<bool>()) << r.dump();
    EXPECT_EQ(r["first_visit"], "2024-06-03");
    EXPECT_EQ(r["window_end"], "2024-09-30");
}

TEST(RuleContract, ARuleSetThatLacksWhatTheServerAsksIsRefusedAtStartNamingIt) {
    auto db = fresh_database();
    migrate(*db);
    std::vector<Diagnostic> read_errors;
    auto sources = read_rule_sources(KYOTAKU_SOURCE_DIR "/rules", read_errors);
    for (auto& f : sources) {
        // Rename the decision the server asks for re-inquiries: the rule set still compiles on its own.
        for (std::size_t at; (at = f.text.find("reinquiry_allowed")) != std::string::npos;)
            f.text.replace(at, 17, "reinquiry_ok_xyz");
        for (std::size_t at; (at = f.text.find("eligibility_available")) != std::string::npos;)
            f.text.replace(at, 21, "eligibility_xyz_ok_a");
    }
    auto broken = compile(sources);
    ASSERT_TRUE(broken.ok()) << format_diagnostics(broken.diagnostics);
    TestClock clock(*Date::from_ymd(2024, 7, 1));
    try {
        Service s(*db, broken.program, clock);
        ADD_FAILURE() << "a rule set without reinquiry_allowed was accepted";
    } catch (std::runtime_error const& e) {
        EXPECT_NE(std::string(e.what()).find("reinquiry_allowed"), std::string::npos) << e.what();
    }
    // A reload with such rules is refused and the rules in force stay.
    auto good = compile_directory(KYOTAKU_SOURCE_DIR "/rules");
    Service s(*db, good.program, clock);
    auto error = s.replace_rules(broken.program);
    ASSERT_TRUE(error);
    EXPECT_NE(error->find("reinquiry_allowed"), std::string::npos);
    EXPECT_EQ(s.context.rules()->program, good.program);
}

TEST_F(ServerFixture, AHouseCallConsentDoesNotWidenTheRelationshipsViewing) {
    enable(a);
    std::string key = person();
    consent("0110113719", key, "訪問診療", "2024-04-15");  // 薬剤情報 only
    json oushin{{"facility_code", "0110113719"}, {"person_key", key},
                {"visit_kind", "往診"},          {"first_visit", "2024-05-20"},
                {"identity_method", "暗証番号"}, {"items", {"手術情報"}}};
    ASSERT_EQ(call(admin, "POST", "/api/v1/admin/consents", oushin.dump()).status, 201);
    ASSERT_EQ(call(admin, "POST", "/api/v1/admin/medical-records",
                   json{{"person_key", key},
                        {"item", "手術情報"},
                        {"recorded_on", "2024-05-01"},
                        {"content", {{"手術", "x"}}}}
                       .dump())
                  .status,
              201);
    EXPECT_TRUE(body(call(a, "POST", "/api/v1/medical-info", viewing_on("2024-05-20", "手術情報")))["allowed"]
                    .get<bool>());  // its day
    EXPECT_FALSE(
        body(call(a, "POST", "/api/v1/medical-info", viewing_on("2024-05-25", "手術情報")))["allowed"].get<bool>());
    EXPECT_TRUE(
        body(call(a, "POST", "/api/v1/medical-info", viewing_on("2024-05-25", "薬剤情報")))["allowed"].get<bool>());
}

// ---- The batch worker: leases, turns between facilities, a job that cannot be answered, interactive first. ----

// A preparatory visit is a recorded fact (item 7): the audit's case — first visit 12/31 with care, no December claim,
// claims for January and February — is not confirmed on 4/1; the same dates recorded as a preparatory visit are.
TEST_F(ServerFixture, AFirstMonthWithoutAClaimIsForgivenOnlyForARecordedPreparatoryVisit) {
    enable(a);
    today("2025-04-01");
    std::string const cared = person(), prepared = person("01130012", nullptr, nullptr, "2020-04-01", "777");
    consent("0110113719", cared, "訪問診療", "2024-12-31");
    json c{{"facility_code", "0110113719"}, {"person_key", prepared},        {"visit_kind", "訪問診療"},
           {"first_visit", "2024-12-31"},   {"identity_method", "暗証番号"}, {"items", {"薬剤情報"}},
           {"preparatory_visit", true}};
    ASSERT_EQ(call(admin, "POST", "/api/v1/admin/consents", c.dump()).status, 201);
    std::string csv;
    for (auto const& [insurer, number] : {std::pair{"06132013", "4567"}, std::pair{"01130012", "777"}})
        for (char const* m : {"2025-01", "2025-02"})
            csv += std::string("0110113719,") + insurer + ",123," + number + ",01,1940-05-01," + m + ",2025-03-25\n";
    ASSERT_EQ(body(call(admin, "POST", "/api/v1/admin/claim-reviews", csv, "text/csv"))["imported"], 4);
    auto late = body(call(a, "POST", "/api/v1/reinquiry", on("2025-04-01")));
    EXPECT_FALSE(late["allowed"].get<bool>()) << late.dump();
    EXPECT_NE(late["reason"].get<std::string>().find("2024-12 の審査済みレセプトがありません"), std::string::npos)
        << late.dump();
    json other = json::parse(on("2025-04-01"));
    other["insurer_number"] = "01130012";
    other["number"] = "777";
    auto forgiven = body(call(a, "POST", "/api/v1/reinquiry", other.dump()));
    EXPECT_TRUE(forgiven["allowed"].get<bool>()) << forgiven.dump();
    // Only a kind that starts a relationship records a preparatory visit (the rules' 事前の訪問を尋ねる).
    c["visit_kind"] = "往診";
    auto house_call = call(admin, "POST", "/api/v1/admin/consents", c.dump());
    EXPECT_EQ(house_call.status, 400);
    EXPECT_EQ(body(house_call)["field"], "preparatory_visit");
}

// A 往診 answer after the relationship lapsed shows no window (item 8): the window is the relationship's, shown only
// when the answer rests on it.
TEST_F(ServerFixture, AHouseCallAfterTheRelationshipLapsedShowsNoWindow) {
    enable(a);
    std::string const key = person();
    today("2024-08-20");
    consent("0110113719", key, "訪問診療", "2024-04-15");  // window to 7/31, no claims
    consent("0110113719", key, "往診", "2024-08-20");
    auto r = body(call(a, "POST", "/api/v1/reinquiry", on("2024-08-20")));
    EXPECT_TRUE(r["allowed"].get<bool>()) << r.dump();
    EXPECT_EQ(r["visit_kind"], "往診");
    EXPECT_FALSE(r.contains("window_end")) << r.dump();
    // Inside the relationship the 往診's answer carries its window.
    auto inside = body(call(a, "POST", "/api/v1/reinquiry", on("2024-07-20")));
    EXPECT_EQ(inside["window_end"], "2024-07-31");
}
