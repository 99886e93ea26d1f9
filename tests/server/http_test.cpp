// http/: the route table and who may call each route, the one error shape, 4xx answers naming the field, the
// caller from its certificate, isolation between facilities on every route.
#include "server_fixture.hpp"

#include "http/api_json.hpp"
#include "http/json_codec.hpp"

#include <iostream>
#include <random>

TEST_F(ServerFixture, AFacilityNeverReachesAnotherFacilitysData) {
    enable(a);
    enable(b);
    consent("0110113719", person());
    // B's re-inquiry of A's patient: no consent of B's, no eligibility disclosed.
    auto r = body(call(b, "POST", "/api/v1/reinquiry", on("2024-05-15")));
    EXPECT_FALSE(r["allowed"].get<bool>());
    EXPECT_FALSE(r.contains("eligibility"));
    // Settings, their audit and the inquiry history are the caller's own.
    ASSERT_EQ(call(a, "PUT", "/api/v1/settings", R"({"viewing_items":{"手術情報":false}})").status, 200);
    EXPECT_TRUE(body(call(b, "GET", "/api/v1/settings"))["viewing_items"]["手術情報"].get<bool>());
    for (auto const& entry : body(call(b, "GET", "/api/v1/settings/audit"))) EXPECT_EQ(entry["actor"], "2714206386");
    call(a, "POST", "/api/v1/reinquiry", on("2024-05-15"));
    auto history_b = body(call(b, "GET", "/api/v1/history/inquiries"))["entries"];
    auto history_a = body(call(a, "GET", "/api/v1/history/inquiries"))["entries"];
    EXPECT_EQ(history_b.size(), 1u);  // only B's own attempt
    EXPECT_EQ(history_a.size(), 1u);
    // A facility cannot post review results at all.
    EXPECT_EQ(call(b, "POST", "/api/v1/admin/claim-reviews",
                   "0110113719,06132013,123,4567,01,1940-05-01,2024-04,2024-06-01\n", "text/csv")
                  .status,
              403);
    // Facility callers cannot use the administrator's routes.
    for (char const* route : {"/api/v1/admin/facilities", "/api/v1/admin/insured-persons", "/api/v1/admin/consents"})
        EXPECT_EQ(call(b, "POST", route, "{}").status, 403) << route;
}

TEST_F(ServerFixture, AnonymousCallersReachNothingButHealth) {
    Caller anon;
    EXPECT_EQ(call(anon, "GET", "/healthz").status, 200);
    for (auto [m, route] : std::vector<std::pair<char const*, char const*>>{{"GET", "/api/v1/settings"},
                                                                           {"PUT", "/api/v1/settings"},
                                                                           {"GET", "/api/v1/settings/audit"},
                                                                           {"POST", "/api/v1/reinquiry"},
                                                                           {"GET", "/api/v1/history/inquiries"},
                                                                           {"POST", "/api/v1/admin/facilities"}})
        EXPECT_EQ(call(anon, m, route, "{}").status, 403)
            << route;
}

TEST_F(ServerFixture, BadInputGets4xxNamingTheField) {
    enable(a);
    struct Case {
        char const* method;
        char const* route;
        char const* body;
        int status;
        char const* field;
    };
    std::vector<Case> const cases{
        {"POST", "/api/v1/reinquiry",
         R"({"category":"往診","insurer_number":"06132013","symbol":"1","number":"2","birthdate":"1940-01-01",)"
         R"("query_date":"2024-01-01"})",
         400, "category"},
        {"POST", "/api/v1/reinquiry",
         R"({"category":"訪問診療等","insurer_number":"06132012","symbol":"1","number":"2","birthdate":"1940-01-01",)"
         R"("query_date":"2024-01-01"})",
         400, "insurer_number"},
        {"POST", "/api/v1/reinquiry",
         R"({"category":"訪問診療等","insurer_number":"06132013","symbol":"1","number":"2","birthdate":"1940-02-30",)"
         R"("query_date":"2024-01-01"})",
         400, "birthdate"},
        {"POST", "/api/v1/reinquiry",
         R"({"category":"訪問診療等","insurer_number":"06132013","symbol":"1","number":"2","birthdate":"1940-01-01",)"
         R"("query_date":"2024-02-30"})",
         400, "query_date"},
        {"POST", "/api/v1/reinquiry",
         R"({"category":"訪問診療等","insurer_number":"06132013","symbol":"1","number":"2","birthdate":"1940-01-01",)"
         R"("pin":"1234"})",
         400, "pin"},
        {"POST", "/api/v1/medical-info",
         R"({"category":"訪問診療等","item":"薬剤情報","insurer_number":"06132013","symbol":"1","number":"2",)"
         R"("birthdate":"1940-01-01","terminal":"資格確認端末"})",
         400, "terminal"},
        {"POST", "/api/v1/medical-info",
         R"({"category":"訪問診療等","item":"薬剤情報","insurer_number":"06132013","symbol":"1","number":"2",)"
         R"("birthdate":"1940-01-01","query_date":"2024-07-01"})",
         400, "query_date"},
        {"POST", "/api/v1/reinquiry", R"({"category":1})", 400, "category"},
        {"PUT", "/api/v1/settings", R"({"home_visit_enabled":"yes"})", 400, "home_visit_enabled"},
        {"PUT", "/api/v1/settings", R"({"viewing_items":{"血液型":true}})", 400, "viewing_items.血液型"},
        {"PUT", "/api/v1/settings", R"({"colour":"red"})", 400, "colour"},
    };
    for (auto const& c : cases) {
        auto r = call(a, c.method, c.route, c.body);
        EXPECT_EQ(r.status, c.status) << c.body << " → " << r.body;
        EXPECT_EQ(body(r).value("field", ""), c.field) << c.body;
    }
    EXPECT_EQ(call(a, "POST", "/api/v1/reinquiry", "{not json").status, 400);
    EXPECT_EQ(call(a, "POST", "/api/v1/reinquiry", "[1]").status, 400);
    EXPECT_EQ(call(admin, "POST", "/api/v1/admin/claim-reviews", "x", "application/json").status, 415);
    EXPECT_EQ(call(a, "DELETE", "/api/v1/settings").status, 405);
    EXPECT_EQ(call(a, "GET", "/nowhere").status, 404);
    auto dup = call(admin, "POST", "/api/v1/admin/facilities", R"({"code":"0110113719","name":"A","kind":"医科"})");
    EXPECT_EQ(dup.status, 409);
    auto kind = call(admin, "POST", "/api/v1/admin/facilities", R"({"code":"1310000007","name":"C","kind":"病院"})");
    EXPECT_EQ(kind.status, 400);
}

TEST(ServerApi, DocsListEveryRouteAndNothingElse) {
    std::set<std::string> server, openapi, markdown;
    std::map<std::string, std::string> access, documented_access;
    for (auto const& r : route_table()) {
        server.insert(r.method + " " + r.path);
        access[r.method + " " + r.path] = access_name(r.access);
    }
    std::ifstream oa(KYOTAKU_SOURCE_DIR "/docs/openapi.json");
    json doc = json::parse(oa);
    for (auto const& [path, ops] : doc["paths"].items())
        for (auto const& [method, op] : ops.items()) {
            std::string upper = method;
            for (auto& ch : upper) ch = char(std::toupper(static_cast<unsigned char>(ch)));
            openapi.insert(upper + " " + path);
            documented_access[upper + " " + path] = op.value("x-kyotaku-access", "");
        }
    std::ifstream md(KYOTAKU_SOURCE_DIR "/docs/api.md");
    std::string line;
    std::regex heading(R"(^### (GET|POST|PUT|DELETE) (\S+)$)");
    while (std::getline(md, line)) {
        std::smatch m;
        if (std::regex_match(line, m, heading)) markdown.insert(m[1].str() + " " + m[2].str());
    }
    EXPECT_EQ(openapi, server);
    EXPECT_EQ(markdown, server);
    EXPECT_EQ(documented_access, access);  // who may call each route, as openapi.json's x-kyotaku-access says
}

TEST_F(ServerFixture, RolesComeFromTheCertificate) {
    enable(a);
    Caller staff = facility("0110113719", Caller::Role::staff);
    // 管理者 only: 環境設定, its audit, URL change, the device ledger (通知 別添1 names the 管理者 for 環境設定).
    EXPECT_EQ(call(staff, "PUT", "/api/v1/settings", R"({"online_enabled":true})").status, 403);
    EXPECT_EQ(call(staff, "GET", "/api/v1/settings/audit").status, 403);
    EXPECT_EQ(call(staff, "POST", "/api/v1/url/change").status, 403);
    EXPECT_EQ(call(staff, "POST", "/api/v1/devices",
                   R"({"name":"x","kind":"タブレット","ownership":"施設所有","permitted_staff":["a"]})")
                  .status,
              403);
    // 職員 does the daily work, withdrawals included (同意取消照会 is on 資格確認端末等, no role: issue 24 item 6).
    // the route is open; the body is wrong
    EXPECT_EQ(call(staff, "POST", "/api/v1/withdrawal/lookup", "{}").status, 400);
    EXPECT_EQ(call(staff, "POST", "/api/v1/withdrawal", "{}").status, 400);
    EXPECT_EQ(call(staff, "GET", "/api/v1/settings").status, 200);
    EXPECT_EQ(call(staff, "GET", "/api/v1/url").status, 200);
    EXPECT_EQ(call(staff, "POST", "/api/v1/visual-passcode").status, 201);
    EXPECT_EQ(call(staff, "POST", "/api/v1/reinquiry", on("2024-07-01")).status, 200);
    // What the certificate makes the caller, as the server sees it.
    auto me = body(call(staff, "GET", "/api/v1/whoami"));
    EXPECT_EQ(me["role"], "職員");
    EXPECT_EQ(me["terminal"], "資格確認端末");
    EXPECT_EQ(me["facility_name"], "A");
    EXPECT_EQ(body(call(a, "GET", "/api/v1/whoami"))["role"], "管理者");
    EXPECT_EQ(call(admin, "GET", "/api/v1/whoami").status, 403);
    // The mapping from a certificate's subject (CN, OU, title).
    auto who = [&](char const* cn, char const* ou, char const* title) {
        return caller_from_subject(*service, cn, ou, title);
    };
    EXPECT_EQ(who("0110113719", "管理者", "").role, Caller::Role::manager);
    // An unlabelled certificate is the least (issue 24 item 11): 職員, and a モバイル端末, which the rules never let
    // view medical information and which cannot obtain a 目視確認 passcode.
    EXPECT_EQ(who("0110113719", "", "").role, Caller::Role::staff);
    EXPECT_EQ(who("0110113719", "", "").terminal, "モバイル端末");
    EXPECT_EQ(who("0110113719", "管理者", "").terminal, "モバイル端末");
    EXPECT_EQ(who("0110113719", "", "資格確認端末").terminal, "資格確認端末");
    Caller const unlabelled = who("0110113719", "", "");
    EXPECT_EQ(call(unlabelled, "POST", "/api/v1/visual-passcode").status, 403);
    EXPECT_EQ(call(unlabelled, "POST", "/api/v1/reinquiry", on("2024-07-01")).status, 200);
    EXPECT_EQ(who("0110113719", "職員", "電子カルテ端末").terminal, "電子カルテ端末");
    EXPECT_EQ(who("0110113719", "院長", "").kind, Caller::Kind::anonymous);  // an unknown role is nobody
    EXPECT_EQ(who("0110113719", "職員", "スマホ").kind, Caller::Kind::anonymous);
    EXPECT_EQ(who("1310000007", "管理者", "").kind, Caller::Kind::anonymous);  // not a registered facility
    EXPECT_EQ(who("kyotaku-admin", "", "").kind, Caller::Kind::admin);
}

// Outsider 24, F1 and F2: a 管理者 certificate of a モバイル端末 did every 管理者 action, and an unlabelled one (職員
// on a モバイル端末, "the least") downloaded every consented patient's eligibility, read the facility's histories, the
// ledger and the URL. docs/api.md: it re-inquires one patient, registers 照会番号 and reads settings — nothing more.
TEST_F(ServerFixture, AMobileCertificateDoesWhatTheDocsListAndNothingFacilityWide) {
    enable(a);
    consent("0110113719", person());
    auto who = [&](char const* ou, char const* title) {
        return caller_from_subject(*service, "0110113719", ou, title);
    };
    std::set<std::string> const documented{"GET /api/v1/whoami",
                                           "GET /api/v1/settings",
                                           "POST /api/v1/reinquiry",
                                           "POST /api/v1/medical-info",
                                           "POST /api/v1/reference-numbers",
                                           "POST /api/v1/oqs/OQSsiquc01req",
                                           "POST /api/v1/oqs/OQSsiimm01req"};
    for (Caller const& mobile :
         {who("", ""), who("職員", "モバイル端末"), who("管理者", "モバイル端末"), who("管理者", "")}) {
        ASSERT_EQ(mobile.terminal, "モバイル端末");
        std::set<std::string> reached;
        for (auto const& r : route_table())
            if (r.access != Access::anyone && allowed(r.access, mobile)) reached.insert(r.method + " " + r.path);
        EXPECT_EQ(reached, documented) << mobile.subject;
        // Through the routes: the 管理者's actions, the bulk download, the history, the ledger, the URL.
        EXPECT_EQ(call(mobile, "PUT", "/api/v1/settings", R"({"viewing_items":{"薬剤情報":false}})").status, 403)
            << mobile.subject;
        EXPECT_EQ(call(mobile, "POST", "/api/v1/url/change").status, 403);
        EXPECT_EQ(call(mobile, "POST", "/api/v1/devices",
                       R"({"name":"x","kind":"スマートフォン","ownership":"個人所有","permitted_staff":["a"]})")
                      .status,
                  403);
        EXPECT_EQ(call(mobile, "POST", "/api/v1/oqs/OQSmuhvq01req", hvq01req("0110113719", "2", "20200101", "20261231"))
                      .status,
                  403);
        EXPECT_EQ(call(mobile, "POST", "/api/v1/batch/reinquiry", "p1,06132013,123,4567,01,1940-05-01\n", "text/csv")
                      .status,
                  403);
        EXPECT_EQ(call(mobile, "GET", "/api/v1/history/inquiries").status, 403);
        EXPECT_EQ(call(mobile, "GET", "/api/v1/devices").status, 403);
        EXPECT_EQ(call(mobile, "GET", "/api/v1/url").status, 403);
        auto refused = body(call(mobile, "GET", "/api/v1/history/viewings"));
        EXPECT_NE(refused["message_ja"].get<std::string>().find("院内・事業所の端末"), std::string::npos)
            << refused.dump();
        // What it may do: re-inquire one patient, read the settings.
        EXPECT_EQ(call(mobile, "POST", "/api/v1/reinquiry", on("2024-07-01")).status, 200);
        EXPECT_EQ(call(mobile, "GET", "/api/v1/settings").status, 200);
    }
    // An office terminal's 管理者 still does its work; the settings are unchanged by the refused PUTs.
    EXPECT_EQ(call(who("管理者", "資格確認端末"), "PUT", "/api/v1/settings", R"({"viewing_items":{"薬剤情報":true}})")
                  .status,
              200);
    EXPECT_TRUE(body(call(a, "GET", "/api/v1/settings"))["viewing_items"]["薬剤情報"].get<bool>());
}

// Outsider 24: the audit kept only the certificate's subject, so two staff terminals of a facility could not be told
// apart. Every record keeps the subject with the first 16 hex digits of the certificate's SHA-256 fingerprint.
TEST_F(ServerFixture, TwoTerminalsWithOneSubjectAreToldApartInTheAudit) {
    enable(a);
    consent("0110113719", person());
    std::string const one(64, 'a'), two = "b" + std::string(63, '0');
    Caller const first = caller_from_subject(*service, "0110113719", "職員", "資格確認端末", one);
    Caller const second = caller_from_subject(*service, "0110113719", "職員", "資格確認端末", two);
    EXPECT_EQ(first.certificate, one);
    EXPECT_EQ(first.subject, "0110113719 職員 資格確認端末 SHA256:aaaaaaaaaaaaaaaa");
    EXPECT_EQ(second.subject, "0110113719 職員 資格確認端末 SHA256:b000000000000000");
    EXPECT_EQ(call(first, "POST", "/api/v1/reinquiry", on("2024-06-01")).status, 200);
    EXPECT_EQ(call(second, "POST", "/api/v1/reinquiry", on("2024-06-01")).status, 200);
    std::set<std::string> actors;
    auto const history = call(a, "GET", "/api/v1/history/inquiries");
    ASSERT_EQ(history.status, 200) << history.body;
    json const entries = body(history)["entries"];
    for (auto const& e : entries) actors.insert(e["actor"].get<std::string>());
    EXPECT_EQ(actors, (std::set<std::string>{first.subject, second.subject}));
    json who{{"insurer_number", "06132013"}, {"symbol", "123"},  {"number", "4567"}, {"branch", "01"},
             {"birthdate", "1940-05-01"},    {"confirmed", true}};
    auto done = call(second, "POST", "/api/v1/withdrawal", who.dump());
    ASSERT_EQ(done.status, 200) << done.body;
    EXPECT_EQ(body(done)["withdrawn_by"], second.subject);
}

TEST_F(ServerFixture, TheTerminalComesFromTheCertificate) {
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
    EXPECT_TRUE(body(call(facility("0110113719", Caller::Role::staff, "電子カルテ端末"), "POST", "/api/v1/medical-info",
                          viewing_on("2024-06-01")))["allowed"]
                    .get<bool>());
    EXPECT_FALSE(body(call(facility("0110113719", Caller::Role::staff, "モバイル端末"), "POST", "/api/v1/medical-info",
                           viewing_on("2024-06-01")))["allowed"]
                     .get<bool>());
    // A certificate that names no terminal views nothing (issue 24 item 11: the least, a モバイル端末).
    auto unlabelled = body(call(caller_from_subject(*service, "0110113719", "", ""), "POST", "/api/v1/medical-info",
                                viewing_on("2024-06-01")));
    EXPECT_FALSE(unlabelled["allowed"].get<bool>()) << unlabelled.dump();
    EXPECT_FALSE(unlabelled.contains("records"));
    auto history = body(call(a, "GET", "/api/v1/history/viewings"))["entries"];
    ASSERT_EQ(history.size(), 3u);
    EXPECT_EQ(history[0]["terminal"], "電子カルテ端末");
    EXPECT_EQ(history[1]["terminal"], "モバイル端末");
    EXPECT_EQ(history[2]["terminal"], "モバイル端末");
}

// Outsider 24 (lower findings): the workbench's rules.json named the rule folder by its absolute path on the
// server's disk; PUT /settings answered without available_features (GET has them); an operator's medical record took
// U+FFFE, U+202E and BEL in its content; U+2028 in a batch row's text split line-based readers of the NDJSON result.
TEST_F(ServerFixture, NoServerPathsNoBrokenTextAndThePutAnswersLikeTheGet) {
    RulesWeb const web{{}, "", KYOTAKU_SOURCE_DIR "/rules/"};
    auto sources = rules_web_route(web, admin, "GET", "/admin/workbench/rules.json");
    ASSERT_TRUE(sources);
    ASSERT_EQ(sources->status, 200) << sources->body;
    EXPECT_EQ(body(*sources)["rules"], "rules");
    EXPECT_EQ(sources->body.find(KYOTAKU_SOURCE_DIR), std::string::npos);

    auto put = body(call(a, "PUT", "/api/v1/settings", R"({"terms_agreed":true,"home_visit_enabled":true})"));
    EXPECT_EQ(put["available_features"], body(call(a, "GET", "/api/v1/settings"))["available_features"]) << put.dump();
    EXPECT_FALSE(put["available_features"].empty());

    std::string const key = person();
    for (char const* bad : {"\xEF\xBF\xBE", "\xE2\x80\xAE", "\x07"}) {
        json nested = json::object();
        nested["list"] = json::array({json{{"a", json::array({std::string(bad)})}}});
        json in_value = json::object(), in_key = json::object();
        in_value["薬剤"] = std::string("x") + bad;
        in_key[std::string("薬剤") + bad] = "x";
        for (json const& content : {in_value, in_key, nested}) {
            auto r = call(admin, "POST", "/api/v1/admin/medical-records",
                          json{{"person_key", key},
                               {"item", "薬剤情報"},
                               {"recorded_on", "2024-05-01"},
                               {"content", content}}
                              .dump());
            EXPECT_EQ(r.status, 400) << content.dump();
            EXPECT_EQ(body(r).value("field", ""), "content") << r.body;
        }
    }
    EXPECT_EQ(as_int(db->query("SELECT COUNT(*) FROM medical_records")[0][0]), 0);

    consent("0110113719", key);
    today("2024-07-01");
    auto up = call(a, "POST", "/api/v1/batch/reinquiry?category=%E8%A8%AA%E5%95%8F%E8%A8%BA%E7%99%82%E7%AD%89",
                   "p\xE2\x80\xA8q,06132013,123,4567,01,1940-05-01\n", "text/csv");
    ASSERT_EQ(up.status, 202) << up.body;
    while (service->batch.process(100) > 0) {
    }
    std::string const result =
        call(a, "GET", "/api/v1/batch/reinquiry/" + body(up)["reception_number"].get<std::string>() + "/result").body;
    EXPECT_EQ(result.find("\xE2\x80\xA8"), std::string::npos) << result;
    EXPECT_NE(result.find("p\\u2028q"), std::string::npos) << result;
    EXPECT_EQ(json::parse(result)["arbitrary_identifier"], "p\xE2\x80\xA8q");
}

// The HTTP layer's own refusals (no such route, wrong method, a missing page file, the workbench for someone else)
// have the one error shape: Japanese and English apart, and joined in `error`.
TEST_F(ServerFixture, TheHttpLayersOwnErrorsHaveTheOneShape) {
    Caller anon;
    for (auto const& [r, status] :
         {std::pair{call(a, "GET", "/nowhere"), 404}, std::pair{call(a, "DELETE", "/api/v1/settings"), 405},
          std::pair{call(anon, "GET", "/web/no-such-file.js"), 404}, std::pair{call(anon, "POST", "/web/app.js"), 405},
          std::pair{call(a, "GET", "/admin/workbench/"), 403}}) {
        EXPECT_EQ(r.status, status) << r.body;
        json const b = body(r);
        std::string const ja = b.value("message_ja", ""), en = b.value("message_en", "");
        EXPECT_FALSE(ja.empty()) << r.body;
        EXPECT_FALSE(en.empty()) << r.body;
        EXPECT_EQ(b["error"], ja + " / " + en);
        EXPECT_TRUE(std::all_of(en.begin(), en.end(), [](unsigned char ch) { return ch < 0x80; })) << en;  // English
    }
}

// Text that breaks XML (item 3): a non-character, a bidirectional control or a C1 control is refused at the door with a
// 400 naming the field, on the JSON routes and in the files; so every later XML answer stays well-formed (each
// answer of these tests goes through xmllint).
TEST_F(ServerFixture, TextThatBreaksXmlIsRefusedAtTheDoorNamingTheField) {
    enable(a);
    consent("0110113719", person());
    today("2024-07-01");
    auto reference = [&](std::string const& ref) {
        return call(a, "POST", "/api/v1/reference-numbers",
                    json{{"reference_number", ref},
                         {"insurer_number", "06132013"},
                         {"symbol", "123"},
                         {"number", "4567"},
                         {"branch", "01"},
                         {"birthdate", "1940-05-01"}}
                        .dump());
    };
    for (std::string const bad : {"A\xEF\xBF\xBE", "A\xEF\xBF\xBF", "A\xEF\xB7\x90",
                                  "\xE2\x80\xAE"
                                  "42",
                                  "A\xC2\x85", "A\x7F", "A\xF4\x8F\xBF\xBE"}) {
        auto r = reference(bad);
        EXPECT_EQ(r.status, 400) << r.body;
        EXPECT_EQ(body(r)["field"], "reference_number") << r.body;
    }
    EXPECT_NE(body(reference("A\xEF\xBF\xBE"))["message_ja"].get<std::string>().find("U+FFFE (非文字)"),
              std::string::npos);
    EXPECT_NE(body(reference("\xE2\x80\xAE"
                             "42"))["message_en"]
                  .get<std::string>()
                  .find("U+202E (a bidirectional control)"),
              std::string::npos);
    EXPECT_EQ(reference("患者-42").status, 201);
    // In the files: a character reference decodes to what the bytes did not hold.
    auto imm = call(
        a, "POST", "/api/v1/oqs/OQSsiimm01req",
        "<?xml version=\"1.0\" "
        "encoding=\"UTF-8\"?><XmlMsg><MessageHeader><MedicalInstitutionCode>0110113719</MedicalInstitutionCode>"
        "</MessageHeader><MessageBody><ReferenceNumberRegistrationInfo><ReferenceNumber>A&#xFFFE;</ReferenceNumber>"
        "<InsurerNumber>06132013</InsurerNumber><InsuredCardSymbol>123</"
        "InsuredCardSymbol><InsuredIdentificationNumber>4567"
        "</InsuredIdentificationNumber><InsuredBranchNumber>01</InsuredBranchNumber></"
        "ReferenceNumberRegistrationInfo></MessageBody></XmlMsg>",
        "application/xml");
    EXPECT_EQ(imm.status, 400);
    EXPECT_NE(imm.body.find("ReferenceNumber"), std::string::npos) << imm.body;
    EXPECT_NE(imm.body.find("U+FFFE"), std::string::npos) << imm.body;
    std::string bidi = muquc_for("0110113719", "20240701", nullptr);
    bidi.replace(bidi.find("<ArbitraryIdentifier>x"), 22, "<ArbitraryIdentifier>&#x202E;x");
    auto up = call(a, "POST", "/api/v1/oqs/OQSmuquc01req", bidi, "application/xml");
    EXPECT_EQ(up.status, 400);
    EXPECT_NE(up.body.find("ArbitraryIdentifier"), std::string::npos) << up.body;
    // The operator's test data too.
    json p{{"insurer_number", "01130012"},
           {"symbol", "1"},
           {"number", "2"},
           {"branch", "01"},
           {"birthdate", "1940-05-01"},
           {"name", "在宅\xEF\xBF\xBE"},
           {"burden_ratio", "010"},
           {"valid_from", "2020-04-01"}};
    auto person_r = call(admin, "POST", "/api/v1/admin/insured-persons", p.dump());
    EXPECT_EQ(person_r.status, 400);
    EXPECT_EQ(body(person_r)["field"], "name");
    // Every later answer for the patient is well-formed XML, in both encodings.
    EXPECT_EQ(call(a, "POST", "/api/v1/oqs/OQSsiquc01req", siquc_in("UTF-8", "4567"), "application/xml").status, 200);
    EXPECT_EQ(call(a, "POST", "/api/v1/oqs/OQSsiquc01req", siquc_in("Shift_JIS", "4567"), "application/xml").status,
              200);
}

// The router's media types (outsider's F5, F7): compared without case, parameters apart; a charset other than
// UTF-8 is refused (the body would be read as UTF-8 all the same); a 415 names Content-Type and the type sent; a
// 405 says which methods the path has (Allow, RFC 9110 15.5.6).
TEST_F(ServerFixture, MediaTypesAreComparedAsMediaTypesAndA405SaysWhatIsAllowed) {
    std::string const csv =
        "reference_number,insurer_number,symbol,number,branch,birthdate\nカルテ-0009,06132013,123,4567,01,1940-05-01\n";
    auto upper = call(a, "POST", "/api/v1/reference-numbers", csv, "TEXT/CSV");
    EXPECT_EQ(upper.status, 200) << upper.body;  // read as CSV, not as JSON
    EXPECT_EQ(body(upper)["results"][0].value("line", 0), 2) << upper.body;  // a CSV row's answer
    for (std::string const type : {"text/csvfoo", "text/csv-schema", "text/csv; charset=shift_jis"}) {
        auto r = call(a, "POST", "/api/v1/batch/reinquiry?query_date=2024-07-01&file_identifier=f", csv, type);
        EXPECT_EQ(r.status, 415) << type << ": " << r.body;
        EXPECT_EQ(body(r).value("field", ""), "Content-Type") << r.body;
        EXPECT_NE(r.body.find(type), std::string::npos) << "names the type sent: " << r.body;
    }
    auto batch =
        call(a, "POST", "/api/v1/batch/reinquiry?query_date=2024-07-01&file_identifier=f",
             "arbitrary_identifier,insurer_number,symbol,number,branch,birthdate\nr1,06132013,123,4567,01,1940-05-01\n",
             "Text/CSV; charset=\"UTF-8\"");
    EXPECT_EQ(batch.status, 202) << batch.body;
    std::string const query =
        R"({"category":"訪問診療等","insurer_number":"06132013","symbol":"123","number":"4567","branch":"01",)"
        R"("birthdate":"1940-05-01"})";
    for (std::string const type : {"application/json; charset=utf-16", "application/json;charset=Shift_JIS"})
        EXPECT_EQ(call(a, "POST", "/api/v1/reinquiry", query, type).status, 415) << type;
    for (std::string const type :
         {"application/json; charset=UTF-8", "Application/JSON; charset=\"utf-8\"", "application/json; charset=utf8"})
        EXPECT_NE(call(a, "POST", "/api/v1/reinquiry", query, type).status, 415) << type;
    auto allow = [](HttpResult const& r) {
        for (auto const& [name, value] : r.headers)
            if (name == "Allow") return value;
        return std::string("(none)");
    };
    auto settings = call(a, "DELETE", "/api/v1/settings");
    EXPECT_EQ(settings.status, 405);
    EXPECT_EQ(allow(settings), "GET, PUT");
    EXPECT_EQ(allow(call(Caller{}, "POST", "/web/app.js")), "GET");
}

// The body's parse (json_codec.hpp): the SAX handler that builds the common body takes exactly what the checked
// parse takes, the same tree, and leaves every refusal — a key twice, too deep, not JSON, not an object — to it, so
// the words are the same. Edge cases, then 200,000 mutations of the re-inquiry's body (fixed seed); then the
// re-inquiry's own refusals through the route's reading of the body (a key twice, an unknown field, a wrong type).
TEST(JsonBody, TheFastParseTakesWhatTheCheckedOneTakesAndLeavesItEveryRefusal) {
    using nlohmann::json;
    auto outcome = [](auto parse, std::string const& body) -> std::string {
        try {
            return "taken " + parse(body).dump();
        } catch (Error const& e) {
            return "refused " + e.field + " | " + e.message.ja + " | " + e.message.en;
        }
    };
    auto fast = [](std::string const& b) { return parse_json_body(b); };
    auto checked = [](std::string const& b) { return parse_json_body_checked(b); };
    std::string const plain = R"({"category":"訪問診療等","insurer_number":"06132013","symbol":"123",)"
                              R"("number":"4567","branch":"01","birthdate":"1940-05-01"})";
    auto nest = [](int levels, std::string const& inner) {
        std::string s;
        for (int i = 0; i < levels; ++i) s += R"({"a":)";
        return s + inner + std::string(levels, '}');
    };
    std::vector<std::string> bodies{plain, "{}", "[]", "1", "\"x\"", "", " ", "{", "{}}", "{} x", "{\"a\":1,}",
                                    R"({"a":1,"a":1})", R"({"a":{"b":1,"b":2}})", R"({"a":[{"b":1},{"b":1,"b":1}]})",
                                    R"({"a":1,"b":{"a":1},"c":[{"a":1,"c":2}]})",
                                    R"({"a":1,"a":[[[[[[[[[[1]]]]]]]]]]})",
                                    R"({"a":1,"a":2,)", R"({"\u0061":1,"a":2})", "{\"a\":1e999}", "{\"a\":-0.0}",
                                    std::string("{\"a\":\"\xff\"}"), "\xEF\xBB\xBF{}", "{\"a\":/**/1}"};
    for (int levels = 6; levels <= 11; ++levels) {
        bodies.push_back(nest(levels, "1"));
        bodies.push_back(nest(levels, "{}"));
        bodies.push_back(nest(levels, "[]"));
        bodies.push_back(nest(levels, "[1]"));
        bodies.push_back(nest(levels, R"({"b":1,"b":2})"));
        bodies.push_back(std::string(levels, '[') + std::string(levels, ']'));
    }
    std::mt19937 random(20261207);
    std::string const alphabet = R"({}[]":,01a\ e-)";
    for (int i = 0; i < 200'000; ++i) {
        std::string b = i % 2 ? plain : R"({"category":"x","reference_number":{"a":[1,{"b":2}]},"symbol":"1"})";
        int const edits = 1 + static_cast<int>(random() % 3);
        for (int e = 0; e < edits && !b.empty(); ++e) {
            std::size_t const at = random() % b.size();
            switch (random() % 4) {
                case 0: b[at] = alphabet[random() % alphabet.size()]; break;
                case 1: b.erase(at, 1); break;
                case 2: b.insert(at, 1, alphabet[random() % alphabet.size()]); break;
                default: {  // a stretch copied elsewhere: keys given twice, values nested deeper
                    std::size_t const len = 1 + random() % 24;
                    b.insert(random() % b.size(), b.substr(at, len));
                }
            }
        }
        bodies.push_back(std::move(b));
    }
    std::map<std::string, int> kinds;
    for (auto const& b : bodies) {
        std::string const want = outcome(checked, b);
        ASSERT_EQ(outcome(fast, b), want) << b;
        kinds[want.substr(0, want.find(' ')) + (want.find("appears twice") != std::string::npos ? " twice"
                                                : want.find("too deeply") != std::string::npos  ? " deep"
                                                                                                 : "")]++;
    }
    for (auto const& [kind, n] : kinds) std::cout << kind << ": " << n << "\n";
    EXPECT_GE(kinds["taken"], 1000);
    EXPECT_GE(kinds["refused twice"], 500);
    EXPECT_GE(kinds["refused deep"], 10);
    EXPECT_GE(kinds["refused"], 1000);
    // The words themselves, through the re-inquiry's reading of the body.
    auto reinquiry = [](std::string const& b) {
        api_json::eligibility_query(parse_json_body(b));
        return json("read");
    };
    std::string twice = plain;
    twice.insert(twice.size() - 1, R"(,"symbol":"124")");
    EXPECT_EQ(outcome(reinquiry, twice),
              "refused symbol | 本文に \"symbol\" が2回あります。1回だけにしてください | "
              "the key \"symbol\" appears twice in the body");
    std::string unknown = plain;
    unknown.insert(unknown.size() - 1, R"(,"pin":"1234")");
    EXPECT_EQ(outcome(reinquiry, unknown),
              "refused pin | この API では使えない項目です: pin | unknown field: pin");
    std::string wrong = plain;
    wrong.replace(wrong.find(R"("123")"), 5, "123");
    EXPECT_EQ(outcome(reinquiry, wrong),
              "refused symbol | 項目 symbol は文字列です | field symbol must be a string");
    EXPECT_EQ(outcome(reinquiry, nest(9, "1")),
              "refused  | 本文の入れ子が深すぎます | the body is nested too deeply");
}
