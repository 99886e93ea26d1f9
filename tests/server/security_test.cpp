// Issue 10, hostile input and faults: one test per finding (Item1 … Item8 name the issue's numbering), each of which
// failed on the code before its fix. Through the routing table, on SQLite or — with KYOTAKU_TEST_PG
// (tests/server/with_postgres.sh) — PostgreSQL. The session's own limits (timeouts, the connection cap on a real
// socket, spooling) are in tests/server/security_e2e.sh; the HTTP request path is fuzzed by tests/fuzz.
#include "core/card_signature.hpp"
#include "formats/fields.hpp"
#include "csv_upload.hpp"
#include "storage/facility_urls.hpp"
#include "usecases/consent_limits.hpp"
#include "usecases/desk_util.hpp"
#include "usecases/handoff.hpp"
#include "http/idempotency.hpp"
#include "http/router.hpp"
#include "storage/idempotent_answers.hpp"
#include "ops/config.hpp"
#include "http/limits.hpp"
#include "formats/oqs_xml.hpp"
#include "xml_lint.hpp"
#include "core/secrets.hpp"
#include "core/url_token.hpp"

#include <arpa/inet.h>
#include <cstdio>
#include <netinet/in.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>
#include <latch>
#include <map>
#include <set>
#include <streambuf>
#include <thread>
#include <vector>

using namespace kyotaku;
using namespace kyotaku::server;
namespace fs = std::filesystem;

namespace {

bool on_postgres() { return std::getenv("KYOTAKU_TEST_PG") != nullptr; }

// A body with the usual patient's card fields.
json with_card(json j) {
    j.update(json::parse(
        R"({"insurer_number":"06132013","symbol":"123","number":"4567","branch":"01","birthdate":"1940-05-01"})"));
    return j;
}

// A scratch folder removed at the end of the test.
struct Scratch {
    fs::path dir;
    Scratch() {
        char tmpl[] = "/tmp/kyotaku-security.XXXXXX";
        dir = ::mkdtemp(tmpl);
    }
    ~Scratch() {
        std::error_code ec;
        fs::permissions(dir, fs::perms::owner_all, ec);
        fs::remove_all(dir, ec);
    }
};

unsigned mode_of(fs::path const& p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0 ? st.st_mode & 07777 : 0xFFFF;
}

// Waits (bounded) until `done` holds.
template <typename F>
bool eventually(F done, std::chrono::seconds limit = std::chrono::seconds(10)) {
    auto const until = std::chrono::steady_clock::now() + limit;
    while (!done()) {
        if (std::chrono::steady_clock::now() > until) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
}

class Hostile : public ::testing::Test {
protected:
    void SetUp() override {
        if (on_postgres()) {
            db = open_postgres(std::getenv("KYOTAKU_TEST_PG"));
            db->script("DROP SCHEMA public CASCADE; CREATE SCHEMA public;");
        } else {
            db = open_sqlite(":memory:");
        }
        migrate(*db);
        auto rules = compile_directory(KYOTAKU_SOURCE_DIR "/rules");
        ASSERT_TRUE(rules.ok());
        service = std::make_unique<Service>(*db, rules.program, clock);
        root.kind = Caller::Kind::admin;
        root.subject = "kyotaku-admin";
        a = office("0110113719");
        b = office("2714206386");
        ASSERT_EQ(send(root, "POST", "/api/v1/admin/facilities",
                       json{{"code", a.facility_code}, {"name", "A"}, {"kind", "医科"}})
                      .status,
                  201);
        ASSERT_EQ(send(root, "POST", "/api/v1/admin/facilities",
                       json{{"code", b.facility_code}, {"name", "B"}, {"kind", "医科"}})
                      .status,
                  201);
        for (auto* c : {&a, &b})
            ASSERT_EQ(send(*c, "PUT", "/api/v1/settings", json{{"terms_agreed", true}, {"home_visit_enabled", true}})
                          .status,
                      200);
        auto p = send(root, "POST", "/api/v1/admin/insured-persons",
                      with_card({{"name", "在宅 花子"}, {"burden_ratio", "010"}, {"valid_from", "2020-04-01"}}));
        ASSERT_EQ(p.status, 201) << p.body;
        person = json::parse(p.body)["person_key"];
        ASSERT_EQ(send(root, "POST", "/api/v1/admin/consents",
                       json{{"facility_code", a.facility_code},
                            {"person_key", person},
                            {"visit_kind", "訪問診療"},
                            {"first_visit", "2024-06-03"},
                            {"identity_method", "暗証番号"},
                            {"items", {"薬剤情報"}}})
                      .status,
                  201);
    }
    static Caller office(std::string code) {
        Caller c;
        c.kind = Caller::Kind::facility;
        c.role = Caller::Role::manager;
        c.facility_code = c.subject = std::move(code);
        c.terminal = "資格確認端末";
        return c;
    }
    HttpResult send(Caller const& c, std::string const& method, std::string const& target, std::string const& body,
                    std::string const& type = "application/json") {
        HttpResult r = Router(*service).handle(c, method, target, type, body);
        if (r.content_type.find("xml") != std::string::npos)
            EXPECT_TRUE(testing_xml::well_formed_xml(r.body)) << target;
        return r;
    }
    HttpResult send(Caller const& c, std::string const& method, std::string const& target, char const* body,
                    std::string const& type = "application/json") {
        return send(c, method, target, std::string(body), type);
    }
    HttpResult send(Caller const& c, std::string const& method, std::string const& target, json const& body) {
        return send(c, method, target, body.dump());
    }
    std::string url_token(Caller const& c) {
        std::string url = json::parse(send(c, "GET", "/api/v1/url", "").body)["url"];
        return url.substr(url.find("/c/") + 3);
    }
    std::int64_t count(std::string const& table) { return as_int(db->query("SELECT COUNT(*) FROM " + table)[0][0]); }
    // Every text of every table of the schema.
    std::vector<std::string> stored_texts() {
        std::vector<std::string> out;
        for (char const* t : {"facilities",        "facility_settings",
                              "settings_audit",    "insured_persons",
                              "consents",          "claim_reviews",
                              "inquiry_log",       "medical_records",
                              "viewing_log",       "url_keys",
                              "facility_url",      "challenges",
                              "visual_passcodes",  "card_certificates",
                              "batch_jobs",        "batch_rows",
                              "batch_chunks",      "batch_results",
                              "reference_numbers", "devices",
                              "device_checks",     "fallback_verifications"})
            for (auto const& row : db->query(std::string("SELECT * FROM ") + t))
                for (auto const& v : row) out.push_back(as_text(v));
        return out;
    }

    static constexpr char const* card_json =
        R"({"insurer_number":"06132013","symbol":"123","number":"4567","branch":"01","birthdate":"1940-05-01"})";
    TestClock clock{*Date::from_ymd(2024, 7, 31)};
    std::unique_ptr<Database> db;
    std::unique_ptr<Service> service;
    Caller root, a, b;
    std::string person;
};


// The routes that read a JSON body, each with a body it accepts (or refuses for a reason of its own), and the routes
// that read no JSON body. Every POST or PUT route of the table is in one of them (checked), so a new route is too.
std::map<std::string, json> json_route_bodies(std::string const& token, std::string const& person) {
    return {
        {"POST /api/v1/admin/facilities", json{{"code", "0110113719"}, {"name", "A"}, {"kind", "医科"}}},
        {"POST /api/v1/admin/insured-persons",
         with_card({{"name", "在宅 次郎"}, {"burden_ratio", "030"}, {"valid_from", "2021-04-01"}})},
        {"POST /api/v1/admin/consents", json{{"facility_code", "0110113719"},
                                             {"person_key", person},
                                             {"visit_kind", "訪問診療"},
                                             {"first_visit", "2024-06-10"},
                                             {"identity_method", "暗証番号"},
                                             {"items", {"薬剤情報"}}}},
        {"POST /api/v1/admin/medical-records",
         json{{"person_key", person}, {"item", "薬剤情報"}, {"recorded_on", "2024-06-01"}, {"content", {{"薬", "A"}}}}},
        {"POST /api/v1/admin/cards", json{{"person_key", person}, {"certificate", "not a certificate"}}},
        {"POST /api/v1/admin/clock", json{{"today", "2024-07-31"}}},
        {"POST /api/v1/admin/rules/prove", json{{"files", {{{"path", "a.rules"}, {"text", "fact k : bool\n"}}}}}},
        {"POST /api/v1/consent/challenge", json{{"token", token}}},
        {"POST /api/v1/consent/register", json{{"token", token},
                                               {"challenge_id", "0"},
                                               {"certificate", "AAAA"},
                                               {"identity_method", "目視確認"},
                                               {"visit_kind", "訪問診療"},
                                               {"items", {"薬剤情報"}},
                                               {"visual_passcode", "12345678"}}},
        {"POST /api/v1/consent/handoff",
         json{{"token", token}, {"visit_kind", "訪問診療"}, {"items", {"薬剤情報"}}, {"identity_method", "暗証番号"}}},
        {"POST /api/v1/consent/handoff/claim", json{{"token", token}, {"code", "123456"}}},
        {"POST /api/v1/consent/handoff/challenge", json{{"token", token}, {"claim", "0"}}},
        {"POST /api/v1/consent/handoff/register",
         json{{"token", token}, {"claim", "0"}, {"challenge_id", "0"}, {"certificate", "AAAA"}}},
        {"PUT /api/v1/settings", json{{"terms_agreed", true}, {"home_visit_enabled", true}}},
        {"POST /api/v1/reinquiry", with_card({{"category", "訪問診療等"}})},
        {"POST /api/v1/medical-info", with_card({{"category", "訪問診療等"}, {"item", "薬剤情報"}})},
        {"POST /api/v1/withdrawal/lookup", with_card({})},
        {"POST /api/v1/withdrawal", with_card({{"confirmed", false}})},
        {"POST /api/v1/reference-numbers", with_card({{"reference_number", "R-9"}})},
        {"POST /api/v1/fallback-verifications", with_card({{"method", "マイナポータル"},
                                                           {"reason", "停電"},
                                                           {"verified_on", "2024-07-30"},
                                                           {"burden_ratio", "010"}})},
        {"POST /api/v1/devices", json{{"name", "端末1"},
                                      {"kind", "タブレット"},
                                      {"ownership", "施設所有"},
                                      {"permitted_staff", {"看護 師子"}}}},
        {"POST /api/v1/devices/{device_id}/checks", json{{"checked_on", "2024-07-30"},
                                                         {"checker", "管理 者"},
                                                         {"checks",
                                                          {{"os_updated", true},
                                                           {"antivirus", true},
                                                           {"screen_lock", true},
                                                           {"ledger_reviewed", true},
                                                           {"staff_trained", true}}}}},
    };
}
std::set<std::string> const routes_without_a_json_body{"POST /api/v1/admin/url-keys/rotate",
                                                       "POST /api/v1/visual-passcode",
                                                       "POST /api/v1/url/change",
                                                       "POST /api/v1/admin/claim-reviews",
                                                       "POST /api/v1/consent/handoff/{handoff_id}/cancel",
                                                       "POST /api/v1/batch/reinquiry",
                                                       "POST /api/v1/oqs/OQSmuquc01req",
                                                       "POST /api/v1/oqs/OQSmuhvq01req",
                                                       "POST /api/v1/oqs/OQSmuonq01req",
                                                       "POST /api/v1/oqs/OQSsiquc01req",
                                                       "POST /api/v1/oqs/OQSsiimm01req",
                                                       "POST /api/v1/oqs/OQSmuimm01req",
                                                       "POST /api/v1/oqs/OQSmuquc02req"};

}  // namespace

// 1. A 30,000-deep JSON body overflowed the stack in a recursive PIN check. Bodies are parsed with a depth limit and
// no code walks them recursively: any depth is a 400, on every route that reads JSON.
TEST_F(Hostile, Item1_AnyNestingDepthOnAnyJsonRouteIsA400) {
    std::string const token = url_token(a);
    auto bodies = json_route_bodies(token, person);
    std::string const deep_array = std::string(1'000'000, '[') + std::string(1'000'000, ']');
    std::string deep_object;  // built below
    for (int i = 0; i < 100'000; ++i) deep_object += R"({"token":)";
    deep_object += "1" + std::string(100'000, '}');
    std::string const deep_in_a_field = R"({"token":)" + std::string(30'000, '[') + std::string(30'000, ']') + "}";
    for (auto const& r : route_table()) {
        std::string const key = r.method + " " + r.path;
        if (r.method == "GET" || routes_without_a_json_body.count(key)) continue;
        ASSERT_TRUE(bodies.count(key)) << key << " reads a JSON body: add it to json_route_bodies";
        Caller const who = r.access == Access::anyone ? Caller{} : r.access == Access::operator_ ? root : a;
        std::string path = r.path;
        if (auto at = path.find("{device_id}"); at != std::string::npos) path.replace(at, 11, "d");
        for (std::string const* body : std::vector<std::string const*>{&deep_array, &deep_object, &deep_in_a_field}) {
            auto res = send(who, r.method, path, *body);
            EXPECT_EQ(res.status, 400) << key;
            EXPECT_NE(res.body.find("nested too deeply"), std::string::npos) << key << ": " << res.body;
        }
    }
}

// Issue 22 (an outsider's findings): a route without a body ignored one (POST …/cancel with {"x":1} answered 200), a
// key given twice was taken with the last one winning, and a JSON route took text/plain. Each is refused, naming it,
// on every route of the table.
TEST_F(Hostile, Item22_EachRouteTakesOnlyItsDocumentedBody) {
    std::string const token = url_token(a);
    auto const bodies = json_route_bodies(token, person);
    auto who_for = [&](RouteInfo const& r) {
        return r.access == Access::anyone ? Caller{} : r.access == Access::operator_ ? root : a;
    };
    auto path_of = [](std::string path) {
        if (auto at = path.find("{device_id}"); at != std::string::npos) path.replace(at, 11, "d");
        if (auto at = path.find("{handoff_id}"); at != std::string::npos) path.replace(at, 12, std::string(32, '0'));
        if (auto at = path.find("{reception_number}"); at != std::string::npos) path.replace(at, 18, "1");
        return path;
    };
    std::set<std::string> const bodyless_posts{"POST /api/v1/admin/url-keys/rotate", "POST /api/v1/visual-passcode",
                                               "POST /api/v1/url/change",
                                               "POST /api/v1/consent/handoff/{handoff_id}/cancel"};
    int bodyless = 0, json_routes = 0;
    for (auto const& r : route_table()) {
        std::string const key = r.method + " " + r.path;
        if (r.path.rfind("/api/v1/", 0) != 0) continue;  // the page's files answer every method themselves
        if (r.method == "GET" || bodyless_posts.count(key)) {
            ++bodyless;
            auto refused = send(who_for(r), r.method, path_of(r.path), R"({"x":1})");
            EXPECT_EQ(refused.status, 400) << key << ": " << refused.body;
            EXPECT_EQ(json::parse(refused.body).value("field", ""), "body") << key;
            EXPECT_NE(refused.body.find(key), std::string::npos) << "the message names the route: " << refused.body;
            for (char const* none : {"", "{}", " { } "}) {
                auto taken = send(who_for(r), r.method, path_of(r.path), none);
                EXPECT_EQ(taken.body.find(R"("field":"body")"), std::string::npos) << key << " with '" << none << "'";
            }
            continue;
        }
        if (!bodies.count(key)) continue;
        ++json_routes;
        json const& body = bodies.at(key);
        // A key given twice — the first of the body's own, again, at the end — is refused naming it.
        std::string const first = body.begin().key();
        std::string twice = body.dump();
        twice.pop_back();
        twice += ",\"" + first + "\":" + body.begin()->dump() + "}";
        auto duplicate = send(who_for(r), r.method, path_of(r.path), twice);
        EXPECT_EQ(duplicate.status, 400) << key << ": " << duplicate.body;
        EXPECT_EQ(json::parse(duplicate.body).value("field", ""), first) << key << ": " << duplicate.body;
        EXPECT_NE(duplicate.body.find("appears twice"), std::string::npos) << key << ": " << duplicate.body;
        // Not JSON's type: 415 naming the type sent.
        for (std::string const type : {"text/plain", "application/x-www-form-urlencoded", ""}) {
            auto wrong = send(who_for(r), r.method, path_of(r.path), body.dump(), type);
            EXPECT_EQ(wrong.status, 415) << key << " as '" << type << "': " << wrong.body;
            EXPECT_EQ(json::parse(wrong.body).value("field", ""), "Content-Type") << key;
            if (!type.empty()) EXPECT_NE(wrong.body.find("Content-Type: " + type), std::string::npos) << wrong.body;
        }
    }
    EXPECT_GE(bodyless, 4 + 10);
    EXPECT_EQ(json_routes, int(bodies.size()));
    // A duplicate deeper in the body too, and a type with parameters is JSON's.
    auto nested =
        send(a, "POST", "/api/v1/devices/d/checks",
             R"({"checked_on":"2024-07-30","checker":"管理 者","checks":{"os_updated":true,"os_updated":false}})");
    EXPECT_EQ(json::parse(nested.body).value("field", ""), "os_updated") << nested.body;
    EXPECT_EQ(send(Caller{}, "POST", "/api/v1/consent/challenge", json{{"token", url_token(a)}}.dump(),
                   "Application/JSON; charset=utf-8")
                  .status,
              201)
        << "(the URL was changed and its keys rotated above, taking no body)";
    // The outsider's own cases.
    auto handoff = send(Caller{}, "POST", "/api/v1/consent/handoff", bodies.at("POST /api/v1/consent/handoff").dump(),
                        "text/plain");
    EXPECT_EQ(handoff.status, 415) << handoff.body;
    auto cancel = send(Caller{}, "POST", "/api/v1/consent/handoff/" + std::string(32, '0') + "/cancel", R"({"x":1})");
    EXPECT_EQ(cancel.status, 400) << cancel.body;
    EXPECT_EQ(send(a, "POST", "/api/v1/visual-passcode", R"({"x":1})").status, 400);
    EXPECT_EQ(send(a, "POST", "/api/v1/visual-passcode", "").status, 201);
}

// 4. The PIN filter was a list of names: pinCode, ｐｉｎ, 暗証番号（4桁） … passed and were stored with the whole
// request body. Now every route accepts only its documented fields (an unknown one is a 400 naming it) and the
// logs keep the fields a record needs. Every JSON route, with a body it otherwise takes, under every name.
TEST_F(Hostile, Item4_APinUnderAnyNameIsRefusedOnEveryRouteAndStoredNowhere) {
    std::string const token = url_token(a);
    auto device = send(a, "POST", "/api/v1/devices", json_route_bodies(token, person)["POST /api/v1/devices"]);
    ASSERT_EQ(device.status, 201);
    std::string const device_id = json::parse(device.body)["id"];
    std::string const pin = "pin-value-9513";
    std::vector<std::string> const names{"pin",    "PIN",      "pinCode",         "pincode",  "pin-code",
                                         "ｐｉｎ", "暗証番号", "暗証番号（4桁）", "card_pin", "password"};
    for (auto const& [key, good] : json_route_bodies(token, person)) {
        std::string const method = key.substr(0, key.find(' '));
        std::string path = key.substr(key.find(' ') + 1);
        if (auto at = path.find("{device_id}"); at != std::string::npos) path.replace(at, 11, device_id);
        Caller const who = path.find("/consent/") != std::string::npos ? Caller{}
                           : path.find("/admin/") != std::string::npos ? root
                                                                       : a;
        for (auto const& name : names) {
            json body = good;
            body[name] = pin;
            auto refused = send(who, method, path, body);
            EXPECT_EQ(refused.status, 400) << key << " " << name << ": " << refused.body;
            EXPECT_EQ(json::parse(refused.body).value("field", ""), name) << key;
            EXPECT_EQ(refused.body.find(pin), std::string::npos) << key;
        }
        // The same body without it is not refused for that reason (the route takes it, or refuses it for another).
        auto const accepted = json::parse(send(who, method, path, good).body);
        EXPECT_TRUE(std::find(names.begin(), names.end(), accepted.value("field", "")) == names.end()) << key;
    }
    // Nested in an object a route reads: refused too.
    EXPECT_EQ(send(a, "PUT", "/api/v1/settings", json{{"viewing_items", {{"pinCode", pin}}}}).status, 400);
    json checks = json_route_bodies(token, person)["POST /api/v1/devices/{device_id}/checks"];
    checks["checks"]["pin"] = pin;
    EXPECT_EQ(send(a, "POST", "/api/v1/devices/" + device_id + "/checks", checks).status, 400);
    // In a file: an element the layout does not name refuses the file, naming it.
    std::string xml = "<?xml version=\"1.0\" "
                      "encoding=\"UTF-8\"?><XmlMsg><MessageHeader><QualificationConfirmationDate>20240731</"
                      "QualificationConfirmationDate>"
                      "<MedicalInstitutionCode>0110113719</MedicalInstitutionCode><ArbitraryFileIdentifier>f</"
                      "ArbitraryFileIdentifier></MessageHeader>"
                      "<MessageBody><QualificationConfirmSearchInfo><InsurerNumber>06132013</"
                      "InsurerNumber><InsuredIdentificationNumber>4567</InsuredIdentificationNumber>"
                      "<Birthdate>19400501</Birthdate><PinCode>" +
                      pin + "</PinCode></QualificationConfirmSearchInfo></MessageBody></XmlMsg>";
    auto file = send(a, "POST", "/api/v1/oqs/OQSmuquc01req", xml, "application/xml");
    EXPECT_EQ(file.status, 400);
    EXPECT_NE(file.body.find("PinCode"), std::string::npos) << file.body;
    EXPECT_EQ(file.body.find(pin), std::string::npos);
    for (auto const& text : stored_texts()) EXPECT_EQ(text.find(pin), std::string::npos) << text;

    // 資格確認履歴 keeps a few fields of each check, never the request: of the body only the patient as the route named
    // them, canonical and validated (the card fields or the 照会番号, issue 24 item 12), and the 資格確認日.
    ASSERT_EQ(send(a, "POST", "/api/v1/reinquiry", json_route_bodies(token, person)["POST /api/v1/reinquiry"]).status,
              200);
    std::set<std::string> const kept{"category",
                                     "by",
                                     "allowed",
                                     "qualification_validity",
                                     "reason",
                                     "consent_id",
                                     "reception_number",
                                     "rows",
                                     "verification_id",
                                     "verified_on",
                                     "patient",
                                     "query_date",
                                     "row",
                                     "consents"};
    for (auto const& row : db->query("SELECT detail_json FROM inquiry_log")) {
        json const detail = json::parse(as_text(row[0]));
        for (auto const& [k, v] : detail.items()) EXPECT_TRUE(kept.count(k)) << "inquiry_log keeps " << k;
    }
}

// 3 (text). An invalid-UTF-8 reference number was committed and turned the patient's re-inquiry into a 500; an
// OQSsiimm01req in Shift_JIS without a declaration was taken as UTF-8; invalid uploads answered 500. Now every text is
// checked before anything is committed — what the bytes hold and what XML character references make — and the
// database itself refuses a text that is not UTF-8 or holds NUL.
TEST_F(Hostile, Item3_TextThatIsNotUtf8IsA400AndNothingIsCommitted) {
    auto const before = stored_texts().size();
    // JSON: bytes that are not UTF-8, a lone surrogate escape, NUL and control characters.
    for (std::string const ref :
         {std::string("R\xff"), std::string("R\\ud800"), std::string("R\\u0000X"), std::string("R\\u0001")}) {
        auto r = send(a, "POST", "/api/v1/reference-numbers",
                      "{\"reference_number\":\"" + ref + "\"," + std::string(card_json).substr(1));
        EXPECT_EQ(r.status, 400) << ref << ": " << r.body;
    }
    // CSV: a bad byte in any row refuses the whole file.
    auto csv = send(a, "POST", "/api/v1/reference-numbers",
                    "R-1,06132013,123,4567,01,1940-05-01\nR-\xfe,06132013,123,4567,01,1940-05-01\n", "text/csv");
    EXPECT_EQ(csv.status, 400);
    auto batch_csv = send(a, "POST", "/api/v1/batch/reinquiry",
                          "r1,06132013,123,4567,01,1940-05-01\nr\xff,06132013,123,4567,01,1940-05-01\n", "text/csv");
    EXPECT_EQ(batch_csv.status, 400);
    EXPECT_EQ(json::parse(batch_csv.body)["field"], "line 2");
    // XML: character references that decode to a surrogate or a control character, in the fields that are stored
    // (a 500 before: the echo could not be written as JSON).
    auto search = [](std::string const& identifier, std::string const& file_identifier) {
        return "<?xml version=\"1.0\" "
               "encoding=\"UTF-8\"?><XmlMsg><MessageHeader><QualificationConfirmationDate>20240731</"
               "QualificationConfirmationDate>"
               "<MedicalInstitutionCode>0110113719</MedicalInstitutionCode><ArbitraryFileIdentifier>" +
               file_identifier +
               "</ArbitraryFileIdentifier></"
               "MessageHeader><MessageBody><QualificationConfirmSearchInfo><InsurerNumber>06132013</InsurerNumber>"
               "<InsuredIdentificationNumber>4567</InsuredIdentificationNumber><Birthdate>19400501</"
               "Birthdate><ArbitraryIdentifier>" +
               identifier + "</ArbitraryIdentifier></QualificationConfirmSearchInfo></MessageBody></XmlMsg>";
    };
    for (auto const& file :
         {search("&#xD800;", "f"), search("a&#1;b", "f"), search("p", "&#xDFFF;"), search("p", "&#0;")}) {
        auto r = send(a, "POST", "/api/v1/oqs/OQSmuquc01req", file, "application/xml");
        EXPECT_EQ(r.status, 400) << file << "\n" << r.body;
        EXPECT_NE(r.body.find("EKY0901"), std::string::npos);
    }
    auto imm = send(a, "POST", "/api/v1/oqs/OQSsiimm01req",
                    "<XmlMsg><MessageHeader><MedicalInstitutionCode>0110113719</MedicalInstitutionCode></"
                    "MessageHeader><MessageBody>"
                    "<ReferenceNumberRegistrationInfo><ReferenceNumber>&#xDBFF;</"
                    "ReferenceNumber><InsurerNumber>06132013</InsurerNumber>"
                    "<InsuredIdentificationNumber>4567</InsuredIdentificationNumber></"
                    "ReferenceNumberRegistrationInfo></MessageBody></XmlMsg>",
                    "application/xml");
    EXPECT_EQ(imm.status, 400) << imm.body;
    // A malformed CSV line is echoed cut at a character, not inside one (a 500 before: the cut was not UTF-8).
    std::string line;
    for (int i = 0; i < 80; ++i) line += "壊";
    std::istringstream batch("arbitrary_identifier,insurer_number,symbol,number,branch,birthdate\n" + line + "\n");
    EXPECT_NO_THROW(upload_csv(service->batch, a, "訪問診療等", "", "f", batch));
    EXPECT_EQ(count("batch_jobs"), 1);
    // Nothing of the refused ones was stored (the one job above is the only change).
    EXPECT_EQ(count("reference_numbers"), 0);
    auto const job_columns = db->query("SELECT * FROM batch_jobs").at(0).size(),
               row_columns = db->query("SELECT * FROM batch_rows").at(0).size();
    EXPECT_EQ(db->query("SELECT * FROM batch_rows").size(), 1u);
    EXPECT_EQ(stored_texts().size(), before + job_columns + row_columns);  // the job's columns, its one row's
    // Whoever asks, the database takes no such text.
    for (std::string const bad : {std::string("\xff"), std::string("a\0b", 3), std::string("\xed\xa0\x80")})
        EXPECT_THROW(db->query("INSERT INTO reference_numbers (facility_code, reference_number, person_key, "
                               "registered_at) VALUES ($1, $2, $3, $4)",
                               {a.facility_code, bad, person, std::string("now")}),
                     Error);
    EXPECT_EQ(count("reference_numbers"), 0);
}

TEST_F(Hostile, Item3_ShiftJisWithoutADeclarationIsReadAsShiftJis) {
    std::string const file = from_utf8(
        "<XmlMsg><MessageHeader><MedicalInstitutionCode>0110113719</MedicalInstitutionCode>"
        "<ArbitraryFileIdentifier>照会番号</ArbitraryFileIdentifier></MessageHeader><MessageBody>"
        "<ReferenceNumberRegistrationInfo><ReferenceNumber>患者-７</ReferenceNumber><InsurerNumber>06132013</"
        "InsurerNumber>"
        "<InsuredCardSymbol>１２３</InsuredCardSymbol><InsuredIdentificationNumber>4567</InsuredIdentificationNumber>"
        "<InsuredBranchNumber>01</InsuredBranchNumber></ReferenceNumberRegistrationInfo></MessageBody></XmlMsg>",
        "SHIFT_JIS");
    ASSERT_FALSE(valid_utf8(file));
    auto r = send(a, "POST", "/api/v1/oqs/OQSsiimm01req", file, "application/xml");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_NE(to_utf8(r.body, "SHIFT_JIS").find("<ProcessingResultStatus>1</ProcessingResultStatus>"),
              std::string::npos);
    auto stored = db->query("SELECT reference_number FROM reference_numbers");
    ASSERT_EQ(stored.size(), 1u);
    EXPECT_EQ(as_text(stored[0][0]), "患者-７");
    auto again =
        send(a, "POST", "/api/v1/reinquiry", json{{"category", "訪問診療等"}, {"reference_number", "患者-７"}});
    EXPECT_EQ(again.status, 200);
    EXPECT_TRUE(json::parse(again.body)["allowed"].get<bool>());
}

// A database written before issue 10 may hold such a text already (SQLite stores what it is given): the patient's
// re-inquiry is answered (the bad bytes as U+FFFD), not a 500.
TEST_F(Hostile, Item3_ABrokenTextAlreadyStoredIsAnsweredNotA500) {
    if (on_postgres()) GTEST_SKIP() << "PostgreSQL never stored a text that is not UTF-8";
    db->script("INSERT INTO reference_numbers (facility_code, reference_number, person_key, registered_at) VALUES "
               "('0110113719', CAST(X'52FF' AS TEXT), '" +
               person + "', 'then')");
    auto r = send(a, "POST", "/api/v1/reinquiry", with_card({{"category", "訪問診療等"}}));
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(json::parse(r.body)["reference_numbers"][0], "R\xEF\xBF\xBD");
}

namespace {
// An endless line: counts the bytes a reader pulls from it.
struct EndlessLine : std::streambuf {
    std::size_t pulled = 0, limit;
    std::string chunk = std::string(4096, 'x');
    explicit EndlessLine(std::size_t limit) : limit(limit) {}
    int_type underflow() override {
        if (pulled >= limit) return traits_type::eof();
        pulled += chunk.size();
        setg(chunk.data(), chunk.data(), chunk.data() + chunk.size());
        return traits_type::to_int_type(chunk[0]);
    }
};
}  // namespace

// 5. Memory: a 300 MB CSV line was read whole and echoed back; XML echoes were unbounded; a client without a
// certificate could make the server spool 1 GiB; spool files survived a SIGKILL.
TEST_F(Hostile, Item5_ACsvLineIsReadUpToItsBoundNeverWhole) {
    EndlessLine endless(64u << 20);
    std::istream in(&endless);
    try {
        upload_csv(service->batch, a, "訪問診療等", "", "f", in);
        ADD_FAILURE() << "a 64 MB line was taken";
    } catch (Error const& e) {
        EXPECT_EQ(e.kind, Error::Kind::invalid);
        EXPECT_EQ(e.field, "line 1");
    }
    EXPECT_LT(endless.pulled, 64u * 1024) << "bytes read of the line";
    EXPECT_EQ(count("batch_jobs"), 0);
}

TEST_F(Hostile, Item5_AnXmlFileEchoesOnlyItsLayoutAndIsBoundedBeforeItIsRead) {
    std::string info = "<QualificationConfirmSearchInfo><InsurerNumber>06132013</"
                       "InsurerNumber><InsuredIdentificationNumber>4567</InsuredIdentificationNumber>"
                       "<Birthdate>19400501</Birthdate>";
    for (int i = 0; i < 20000; ++i) info += "<Extra>0123456789</Extra>";
    info += "</QualificationConfirmSearchInfo>";
    auto r = send(a, "POST", "/api/v1/oqs/OQSmuquc01req",
                  "<XmlMsg><MessageHeader><QualificationConfirmationDate>20240731</"
                  "QualificationConfirmationDate><MedicalInstitutionCode>0110113719"
                  "</MedicalInstitutionCode></MessageHeader><MessageBody>" +
                      info + "</MessageBody></XmlMsg>",
                  "application/xml");
    EXPECT_EQ(r.status, 400);
    EXPECT_NE(r.body.find("Extra"), std::string::npos);
    EXPECT_EQ(count("batch_rows"), 0);
    // A long text in a field is refused too (each is a few dozen characters at most).
    auto long_text = send(a, "POST", "/api/v1/oqs/OQSmuquc01req",
                          "<XmlMsg><MessageHeader><ArbitraryFileIdentifier>" + std::string(5000, 'x') +
                              "</ArbitraryFileIdentifier></MessageHeader></XmlMsg>",
                          "application/xml");
    EXPECT_EQ(long_text.status, 400);
    // The file's size is bounded before a byte of it is read (the session refuses a larger one with 413).
    ConnectionLimits const limits;
    auto plan = plan_body(a, "POST", "/api/v1/oqs/OQSmuquc01req", limits);
    EXPECT_EQ(plan.limit, limits.xml_body);
    EXPECT_LE(limits.xml_body, 16u << 20);
    EXPECT_FALSE(plan.spool);
}

TEST_F(Hostile, Item5_ACallerARouteRefusesIsRefusedBeforeItsBodyAndNothingIsSpooled) {
    ConnectionLimits const limits;
    Caller const nobody;
    for (auto const& r : route_table()) {
        if (r.method == "GET") continue;
        std::string path = r.path;
        if (auto at = path.find('{'); at != std::string::npos) path.replace(at, path.find('}') - at + 1, "x");
        auto plan = plan_body(nobody, r.method, path, limits);
        EXPECT_FALSE(plan.spool) << path;
        EXPECT_LE(plan.limit, 64u * 1024) << path;
        EXPECT_EQ(plan.refusal.has_value(), r.access != Access::anyone) << path;
        if (plan.refusal) EXPECT_EQ(plan.refusal->status, 403);
    }
    // A モバイル端末 session gets the small limit too; an office terminal its route's.
    Caller mobile;
    mobile.kind = Caller::Kind::mobile;
    mobile.facility_code = a.facility_code;
    EXPECT_EQ(plan_body(mobile, "POST", "/api/v1/medical-info", limits).limit, limits.anonymous_body);
    EXPECT_TRUE(plan_body(mobile, "POST", "/api/v1/batch/reinquiry", limits).refusal);
    auto upload = plan_body(a, "POST", "/api/v1/batch/reinquiry?category=x", limits);
    EXPECT_TRUE(upload.spool);
    EXPECT_EQ(upload.limit, limits.spooled_body);
    EXPECT_EQ(plan_body(a, "POST", "/api/v1/reinquiry", limits).limit, limits.memory_body);
}

// Issue 22 item 4: large uploads take their size from budgets all connections share, a facility at most so many at
// once; each grant gives everything back when dropped (security.connections_uploads tries it with real connections).
// Issue 22 (noticed): the spool budget is disk. A spooled upload is refused (503) when the spool directory's disk has
// less free than the spooled uploads under way may still write, this one included; memory uploads are not asked.
TEST(UploadBudgetTest, ASpooledUploadNeedsTheDiskToHoldItAndTheOthersUnderWay) {
    using Store = UploadBudget::Store;
    using Refusal = UploadBudget::Refusal;
    UploadBudget budget(100, 1000, 2);
    std::optional<std::uint64_t> free = 500;
    int asked = 0;
    budget.spool_free = [&] {
        ++asked;
        return free;
    };
    auto [a, why_a] = budget.reserve(Store::spool, 300, "A");
    ASSERT_TRUE(a) << "500 free, 300 asked";
    // 300 are taken by A (not yet written: counted whole), so 201 more do not fit in 500.
    auto [b, why_b] = budget.reserve(Store::spool, 201, "B");
    EXPECT_FALSE(b);
    EXPECT_EQ(why_b, Refusal::disk);
    EXPECT_EQ(budget.refused_disk.load(), 1);
    auto [c, why_c] = budget.reserve(Store::spool, 200, "B");
    EXPECT_TRUE(c);
    // Memory uploads do not ask the disk; an unreadable disk is not a refusal.
    int const before = asked;
    auto [m, why_m] = budget.reserve(Store::memory, 50, "C");
    EXPECT_TRUE(m);
    EXPECT_EQ(asked, before);
    a.reset();
    c.reset();
    free.reset();
    auto [d, why_d] = budget.reserve(Store::spool, 900, "D");
    EXPECT_TRUE(d);
    // Within the budget but beyond a fuller disk: refused, and nothing is taken.
    d.reset();
    free = 100;
    auto [e, why_e] = budget.reserve(Store::spool, 101, "E");
    EXPECT_EQ(why_e, Refusal::disk);
    EXPECT_EQ(budget.in_use(Store::spool), 0u);
    EXPECT_EQ(budget.uploads(), 1);  // C's memory upload
}

TEST(UploadBudgetTest, BudgetsAndTheFacilityCapRefuseAndGrantsGiveEverythingBack) {
    using Store = UploadBudget::Store;
    using Refusal = UploadBudget::Refusal;
    UploadBudget budget(100, 1000, 2);
    auto [a1, why_a1] = budget.reserve(Store::memory, 60, "A");
    ASSERT_TRUE(a1);
    EXPECT_EQ(why_a1, Refusal::none);
    auto [a2, why_a2] = budget.reserve(Store::spool, 900, "A");
    ASSERT_TRUE(a2);
    // A third upload of A: the facility's cap, although the memory budget has room.
    auto [a3, why_a3] = budget.reserve(Store::memory, 1, "A");
    EXPECT_FALSE(a3);
    EXPECT_EQ(why_a3, Refusal::facility);
    // B: the memory budget has 40 left, the spool 100.
    auto [b1, why_b1] = budget.reserve(Store::memory, 41, "B");
    EXPECT_FALSE(b1);
    EXPECT_EQ(why_b1, Refusal::budget);
    auto [b2, why_b2] = budget.reserve(Store::memory, 40, "B");
    EXPECT_TRUE(b2);
    auto [b3, why_b3] = budget.reserve(Store::spool, 101, "B");
    EXPECT_EQ(why_b3, Refusal::budget);
    EXPECT_EQ(budget.in_use(Store::memory), 100u);
    EXPECT_EQ(budget.in_use(Store::spool), 900u);
    EXPECT_EQ(budget.uploads(), 3);
    EXPECT_EQ(budget.refused_budget.load(), 2);
    EXPECT_EQ(budget.refused_facility.load(), 1);
    // Dropped: the bytes and A's place are back.
    a1.reset();
    EXPECT_EQ(budget.in_use(Store::memory), 40u);
    auto [a4, why_a4] = budget.reserve(Store::memory, 60, "A");
    EXPECT_TRUE(a4);
    a2.reset();
    a4.reset();
    b2.reset();
    EXPECT_EQ(budget.in_use(Store::memory), 0u);
    EXPECT_EQ(budget.in_use(Store::spool), 0u);
    EXPECT_EQ(budget.uploads(), 0);
    // Many threads at once never take more than the budget, and give all of it back.
    std::atomic<int> granted{0}, most{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < 2000; ++i) {
                auto [g, why] = budget.reserve(Store::memory, 30, "F" + std::to_string(t % 3));
                if (!g) continue;
                ++granted;
                int const now = int(budget.in_use(Store::memory));
                for (int seen = most.load(); now > seen && !most.compare_exchange_weak(seen, now);) {
                }
            }
        });
    for (auto& t : threads) t.join();
    EXPECT_GT(granted.load(), 0);
    EXPECT_LE(most.load(), 90);  // three grants of 30 fit in 100
    EXPECT_EQ(budget.in_use(Store::memory), 0u);
    EXPECT_EQ(budget.uploads(), 0);
}

TEST(Spool, Item5_SpooledUploadsLeaveNothingBehindInAPrivateDirectory) {
    Scratch s;
    std::string const dir = (s.dir / "spool").string();
    ASSERT_EQ(prepare_spool_dir(dir), "");
    EXPECT_EQ(mode_of(dir), 0700u);
    {
        SpoolFile f(dir);
        ASSERT_TRUE(f.ok());
        ASSERT_EQ(::write(f.fd, "row\n", 4), 4);
        EXPECT_TRUE(fs::is_empty(dir)) << "the upload has no name: a SIGKILL leaves nothing";
        std::ifstream again(f.path);
        std::string line;
        EXPECT_TRUE(std::getline(again, line));
        EXPECT_EQ(line, "row");
    }
    // What a killed server left is removed at start; a directory others can use, or a symlink, is refused.
    std::ofstream(fs::path(dir) / "upload-left");
    ASSERT_EQ(prepare_spool_dir(dir), "");
    EXPECT_TRUE(fs::is_empty(dir));
    fs::permissions(dir, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec);
    EXPECT_NE(prepare_spool_dir(dir), "");
    fs::create_directory_symlink(s.dir, s.dir / "link");
    EXPECT_NE(prepare_spool_dir((s.dir / "link").string()), "");
    EXPECT_NE(default_spool_dir("/var/lib/kyotaku/k.sqlite"), default_spool_dir("postgresql://x"));
}

// 2. At the descriptor limit the accept loop ended and the process never accepted again; there was no cap.
TEST(AcceptLoop, Item2_SurvivesDescriptorExhaustionAndCapsConnections) {
    namespace net = boost::asio;
    using tcp = net::ip::tcp;
    // A small descriptor limit for this test process, so that exhausting it is quick.
    rlimit old{};
    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &old), 0);
    rlimit small = old;
    small.rlim_cur = std::min<rlim_t>(old.rlim_cur, 256);
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &small), 0);

    net::io_context io;
    tcp::acceptor acceptor(io, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    ConnectionCounter counter;
    AcceptStats stats;
    std::mutex held_mutex;
    std::vector<std::pair<tcp::socket, ConnectionCounter::Slot>> held;
    net::co_spawn(io, accept_loop(acceptor, 2, counter, stats, [&](tcp::socket s, ConnectionCounter::Slot slot) {
                      std::lock_guard lock(held_mutex);
                      held.emplace_back(std::move(s), std::move(slot));
                  }),
                  net::detached);
    std::thread runner([&] { io.run(); });
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(acceptor.local_endpoint().port());
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    auto client = [] { return ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0); };
    auto connect_to = [&](int fd) {
        return ::connect(fd, reinterpret_cast<sockaddr const*>(&address), sizeof address) == 0;
    };

    // Out of descriptors: the connection waits in the backlog, accept fails, the loop goes on.
    testing::internal::CaptureStdout();
    int first = client();
    std::vector<int> hoard;
    for (int fd; (fd = ::dup(0)) >= 0;) hoard.push_back(fd);
    ASSERT_TRUE(connect_to(first));
    EXPECT_TRUE(eventually([&] { return stats.errors > 0; })) << "accept never failed";
    for (int fd : hoard) ::close(fd);
    EXPECT_TRUE(eventually([&] { return stats.accepted == 1; })) << "the loop stopped accepting";
    // The failure is one JSON log line (a serving server prints nothing else on stdout), not a plain text line.
    std::string const log = testing::internal::GetCapturedStdout();
    std::istringstream lines(log);
    int failures = 0;
    for (std::string line; std::getline(lines, line);) {
        auto const entry = nlohmann::json::parse(line);  // throws on a line that is not JSON
        if (entry.value("event", "") == "accept_failed") {
            ++failures;
            EXPECT_EQ(entry.value("level", ""), "warning");
            EXPECT_FALSE(entry.value("error", "").empty());
        }
    }
    EXPECT_EQ(failures, 1) << log;

    // The cap (2 here): the third connection is closed at once; when one closes, a place is free again.
    int second = client(), third = client();
    ASSERT_TRUE(connect_to(second));
    EXPECT_TRUE(eventually([&] { return stats.accepted == 2; }));
    ASSERT_TRUE(connect_to(third));
    EXPECT_TRUE(eventually([&] { return stats.refused_at_cap == 1; }));
    char byte;
    EXPECT_EQ(::recv(third, &byte, 1, 0), 0) << "closed by the server";
    EXPECT_EQ(counter.open(), 2);
    {
        std::lock_guard lock(held_mutex);
        held.erase(held.begin());
    }
    int fourth = client();
    ASSERT_TRUE(connect_to(fourth));
    EXPECT_TRUE(eventually([&] { return stats.accepted == 3; }));
    acceptor.close();
    io.stop();
    runner.join();
    for (int fd : {first, second, third, fourth}) ::close(fd);
    ::setrlimit(RLIMIT_NOFILE, &old);
    EXPECT_GE(effective_max_connections(1'000'000), 1);
}

// The review's case: raising the patients' cap must not squeeze the office terminals' cap to nothing.
TEST(ConnectionCaps, TheMainListenerKeepsHalfThePlacesWhateverThePatientsCapAsks) {
    EXPECT_EQ(split_connection_caps(496, 256, 100'000), std::pair(248, 248));  // ulimit -n 1024: half each
    EXPECT_EQ(split_connection_caps(300, 256, 100'000), std::pair(150, 150));
    EXPECT_EQ(split_connection_caps(300, 100'000, 100'000), std::pair(150, 150));
    EXPECT_EQ(split_connection_caps(300, 100'000, 20), std::pair(280, 20));  // a small patients' cap kept as asked
    EXPECT_EQ(split_connection_caps(1, 256, 256), std::pair(1, 1));
    for (int total : {2, 3, 17, 495, 32'752})
        for (int main : {1, 20, 256, 100'000})
            for (int patients : {1, 20, 256, 100'000}) {
                if (total >= main + patients) continue;
                auto const [m, p] = split_connection_caps(total, main, patients);
                EXPECT_LE(m + p, total) << total << " " << main << " " << patients;
                EXPECT_GE(m, std::min(main, total / 2));
                EXPECT_LE(m, main);
                EXPECT_LE(p, patients);
                EXPECT_GE(p, 1);
            }
}

namespace {
// The DER of test card 1 as the consent page sends it (base64), from a test PKI made by the project's script.
struct TestCard {
    Scratch scratch;
    std::string ca, der_b64;
    TestCard() {
        std::string cmd =
            std::string(KYOTAKU_SOURCE_DIR "/scripts/make-test-pki ") + scratch.dir.string() + " > /dev/null";
        if (std::system(cmd.c_str()) != 0) throw std::runtime_error("make-test-pki failed");
        ca = (scratch.dir / "card-ca.pem").string();
        FILE* f = std::fopen((scratch.dir / "card-1.pem").c_str(), "r");
        X509* cert = f ? PEM_read_X509(f, nullptr, nullptr, nullptr) : nullptr;
        if (f) std::fclose(f);
        if (!cert) throw std::runtime_error("card-1.pem");
        unsigned char* der = nullptr;
        int n = i2d_X509(cert, &der);
        der_b64 = base64_encode(std::vector<unsigned char>(der, der + n));
        OPENSSL_free(der);
        X509_free(cert);
    }
};
}  // namespace

// 6. 目視確認 passcodes had no attempt limit (a failed guess rolled back) and their unkeyed SHA-256 fell to an
// offline search in under a minute. Issue 22 item 6: then 5 wrong ones from anyone invalidated the facility's live
// passcodes; now they hold back the client that sent them, and only many, from many clients, stop the passcodes.
TEST_F(Hostile, Item6_WrongPasscodesHoldBackTheirClientAndManyStopThePasscodes) {
    static TestCard card;
    service->context.card_ca = card.ca;
    ASSERT_EQ(send(root, "POST", "/api/v1/admin/cards", json{{"person_key", person}, {"certificate", card.der_b64}})
                  .status,
              201);
    clock.set_today(*Date::from_ymd(2024, 10, 2));  // 目視確認 is allowed from 2024-10-01
    std::string const token = url_token(a);
    auto at = [](std::string const& address) {
        Caller c;
        c.client = address;
        return c;
    };
    auto registration = [&](Caller const& from, std::string const& passcode) {
        auto ch = send(from, "POST", "/api/v1/consent/challenge", json{{"token", token}});
        EXPECT_EQ(ch.status, 201) << ch.body;
        return send(from, "POST", "/api/v1/consent/register",
                    json{{"token", token},
                         {"challenge_id", json::parse(ch.body)["challenge_id"]},
                         {"certificate", card.der_b64},
                         {"identity_method", "目視確認"},
                         {"visit_kind", "訪問診療"},
                         {"items", {"薬剤情報"}},
                         {"visual_passcode", passcode}});
    };
    auto passcode = [&] {
        return json::parse(send(a, "POST", "/api/v1/visual-passcode", "").body)["passcode"].get<std::string>();
    };
    auto wrong_of = [](std::string code, int n) {
        code[0] = char('0' + (code[0] - '0' + 1 + n % 9) % 10);
        code[1] = char('0' + (code[1] - '0' + n / 9) % 10);
        return code;
    };
    std::string const right = passcode();
    for (int i = 0; i < passcode_attempts; ++i) {
        auto r = registration(at("192.0.2.66"), wrong_of(right, i));
        EXPECT_EQ(r.status, 400) << r.body;
        EXPECT_EQ(json::parse(r.body)["field"], "visual_passcode");
    }
    // The guesser waits — with the right passcode too, which is not compared — and is told how long.
    auto held = registration(at("192.0.2.66"), right);
    EXPECT_EQ(held.status, 429) << held.body;
    EXPECT_EQ(json::parse(held.body)["field"], "visual_passcode");
    EXPECT_NE(held.body.find("分ほど待って"), std::string::npos) << held.body;
    EXPECT_NE(std::find_if(held.headers.begin(), held.headers.end(),
                           [](auto const& h) { return h.first == "Retry-After" && h.second == "900"; }),
              held.headers.end());
    // The patient's registration, from another address, goes through with the right passcode.
    auto patient = registration(at("198.51.100.7"), right);
    EXPECT_EQ(patient.status, 201) << patient.body;
    // The guesser's wait ends 15 minutes after its first wrong passcode.
    clock.advance(passcode_window);
    EXPECT_EQ(registration(at("192.0.2.66"), wrong_of(right, 0)).status, 400);
    // Many clients: `passcode_guesses` wrong ones in all make the live passcodes stop working (a guess's chance stays
    // below live passcodes × 10^-6); another facility's passcodes are not touched; a new one works.
    std::string const next = passcode();
    for (int n = 0; n < passcode_guesses; ++n)
        ASSERT_EQ(registration(at("203.0.113." + std::to_string(n / passcode_attempts)), wrong_of(next, n)).status,
                  400);
    auto spent = registration(at("198.51.100.8"), next);
    EXPECT_EQ(spent.status, 400) << "the right passcode after " << passcode_guesses << " wrong ones";
    EXPECT_EQ(as_int(db->query("SELECT MAX(failed_attempts) FROM visual_passcodes WHERE facility_code = $1",
                               {b.facility_code})[0][0]),
              0);
    EXPECT_EQ(registration(at("198.51.100.8"), passcode()).status, 201);
    // The facility's own office terminal is never held back.
    for (int i = 0; i <= passcode_attempts; ++i) EXPECT_EQ(registration(a, wrong_of(right, i)).status, 400);
}

TEST_F(Hostile, Item6_PasscodesAreStoredAsAHashKeyedByTheKeyFile) {
    std::string const code = json::parse(send(a, "POST", "/api/v1/visual-passcode", "").body)["passcode"];
    auto stored = as_text(db->query("SELECT passcode_hash FROM visual_passcodes")[0][0]);
    EXPECT_NE(stored, sha256_hex(a.facility_code + ":" + code)) << "an unkeyed hash falls to a search of 10^8 codes";
    EXPECT_EQ(stored, service->context.secrets->passcode_hash(a.facility_code, code));
    EXPECT_NE(stored, Secrets::ephemeral()->passcode_hash(a.facility_code, code));
    EXPECT_EQ(stored.find(code), std::string::npos);
}

// 8. The database and its WAL were created 0644 while holding the URL keys in plain text; challenges were created
// by anyone at 5,700/s and never purged.
TEST(AtRest, Item8_DatabaseFilesAreTheOwnersOnly) {
    Scratch s;
    auto const path = s.dir / "k.sqlite";
    mode_t const old_mask = ::umask(022);
    {
        auto db = open_sqlite(path.string());
        migrate(*db);
        db->query("INSERT INTO url_keys (version, key_hex, created_at) VALUES (1, '', 'now')");
        for (char const* suffix : {"", "-wal", "-shm"}) EXPECT_EQ(mode_of(path.string() + suffix), 0600u) << suffix;
    }
    // A database made by an earlier version, readable by others, is made the owner's alone.
    ::chmod(path.c_str(), 0644);
    open_sqlite(path.string());
    EXPECT_EQ(mode_of(path), 0600u);
    ::umask(old_mask);
}

// Making the files private must not break SQLite's locks: closing any descriptor of the database file releases
// every POSIX lock the process holds on it. The pool's connections then held no lock the OS knew of, and the
// sqlite3 command (an operator's query, an online backup) took the exclusive lock on closing and deleted the WAL
// under the server: from then on no other process saw the server's writes. Here the other process is Debian's
// sqlite3 command, run twice with a write of the server's in between.
TEST(AtRest, Item8_PrivateFilesKeepTheWalShared) {
    Scratch s;
    auto const path = s.dir / "k.sqlite";
    auto db = open_sqlite(path.string());
    migrate(*db);
    auto count_elsewhere = [&] {
        std::string out;
        if (FILE* p = ::popen(("sqlite3 '" + path.string() + "' 'SELECT COUNT(*) FROM url_keys' 2>&1").c_str(), "r")) {
            char buf[256];
            while (std::fgets(buf, sizeof buf, p)) out += buf;
            ::pclose(p);
        }
        return out;
    };
    db->query("INSERT INTO url_keys (version, key_hex, created_at) VALUES (1, 'a', 'now')");
    EXPECT_EQ(count_elsewhere(), "1\n");
    db->query("INSERT INTO url_keys (version, key_hex, created_at) VALUES (2, 'b', 'now')");
    EXPECT_EQ(count_elsewhere(), "2\n");
    EXPECT_TRUE(std::filesystem::exists(path.string() + "-wal"));
}

TEST(AtRest, Item8_TheKeyFileIsMade0600AndRefusedWhenOthersCanReadIt) {
    Scratch s;
    auto const path = (s.dir / "kyotaku.key").string();
    bool created = false;
    auto first = Secrets::from_key_file(path, created);
    EXPECT_TRUE(created);
    EXPECT_EQ(mode_of(path), 0600u);
    auto again = Secrets::from_key_file(path, created);
    EXPECT_FALSE(created);
    EXPECT_EQ(again->passcode_hash("0110113719", "12345678"), first->passcode_hash("0110113719", "12345678"));
    ::chmod(path.c_str(), 0640);
    EXPECT_THROW(Secrets::from_key_file(path, created), std::runtime_error);
    ::chmod(path.c_str(), 0600);
    fs::create_symlink(path, s.dir / "link.key");
    EXPECT_THROW(Secrets::from_key_file((s.dir / "link.key").string(), created), std::runtime_error);
    std::ofstream(s.dir / "bad.key") << "not a key\n";
    ::chmod((s.dir / "bad.key").c_str(), 0600);
    EXPECT_THROW(Secrets::from_key_file((s.dir / "bad.key").string(), created), std::runtime_error);
}

TEST_F(Hostile, Item8_UrlKeysAreStoredSealedAndPlainOnesAreSealedAtStart) {
    std::string const token = url_token(a);
    auto rows = db->query("SELECT version, key_hex, key_sealed FROM url_keys");
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_EQ(as_text(rows[0][1]), "");
    EXPECT_EQ(as_text(rows[0][2]).rfind("v1:", 0), 0u);
    // Nothing stored opens the token; the key file's key does.
    for (auto const& v : rows[0])
        for (std::string const text : {as_text(v), as_text(v).substr(as_text(v).find(':') + 1)})
            EXPECT_FALSE(open_url_token(from_hex(text), token)) << text;
    EXPECT_TRUE(service->settings.check_token(token).facility_code);
    // Another key file opens nothing.
    service->context.secrets = Secrets::ephemeral();
    EXPECT_FALSE(service->settings.check_token(token).facility_code);
    EXPECT_THROW(seal_plain_url_keys(*db, *service->context.secrets), std::runtime_error);

    // A database from before: its plain key is sealed at start, and the URLs it made still open.
    auto legacy = Hostile::office("2714206386");
    db->query("DELETE FROM url_keys");
    std::vector<unsigned char> key(32, 7);
    std::string hex;
    for (auto byte : key) hex += "07";
    db->query("INSERT INTO url_keys (version, key_hex, created_at) VALUES (3, $1, 'then')", {hex});
    std::string const old_token = seal_url_token(key, 3, UrlClaims{legacy.facility_code, 1});
    db->query("INSERT INTO facility_url (facility_code, generation, changed_at) VALUES ($1, 1, 'then') ON CONFLICT "
              "(facility_code) DO NOTHING",
              {legacy.facility_code});
    EXPECT_EQ(seal_plain_url_keys(*db, *service->context.secrets), 1);
    EXPECT_EQ(seal_plain_url_keys(*db, *service->context.secrets), 0);
    EXPECT_EQ(as_text(db->query("SELECT key_hex FROM url_keys")[0][0]), "");
    EXPECT_EQ(service->settings.check_token(old_token).facility_code, legacy.facility_code);
}

TEST_F(Hostile, Item8_ChallengesAreBoundedPerClientAndPurgedOnceExpired) {
    std::string const token = url_token(a);
    Caller stranger, patient;
    stranger.client = "192.0.2.66";
    patient.client = "198.51.100.7";
    for (int i = 0; i < challenges_per_minute; ++i)
        ASSERT_EQ(send(stranger, "POST", "/api/v1/consent/challenge", json{{"token", token}}).status, 201) << i;
    clock.advance(std::chrono::seconds(20));
    auto refused = send(stranger, "POST", "/api/v1/consent/challenge", json{{"token", token}});
    EXPECT_EQ(refused.status, 429);
    EXPECT_NE(refused.body.find("分ほど待って"), std::string::npos) << "the next step, in Japanese";
    EXPECT_NE(std::find_if(refused.headers.begin(), refused.headers.end(),
                           [](auto const& h) { return h.first == "Retry-After" && h.second == "40"; }),
              refused.headers.end())
        << "until the first of the minute's challenges is a minute old";
    // Issue 22 item 6: another client of the same URL is not held back (the budget was the facility URL's), nor the
    // facility's own office terminal, nor another facility's URL; a minute later the stranger gets challenges again.
    EXPECT_EQ(send(patient, "POST", "/api/v1/consent/challenge", json{{"token", token}}).status, 201);
    EXPECT_EQ(send(a, "POST", "/api/v1/consent/challenge", json{{"token", token}}).status, 201);
    EXPECT_EQ(send(stranger, "POST", "/api/v1/consent/challenge", json{{"token", url_token(b)}}).status, 201);
    clock.advance(std::chrono::seconds(41));
    EXPECT_EQ(send(stranger, "POST", "/api/v1/consent/challenge", json{{"token", token}}).status, 201);
    // Expired ones (5 minutes) are purged when the next is made.
    EXPECT_EQ(count("challenges"), challenges_per_minute + 4);
    clock.advance(std::chrono::seconds(301));
    EXPECT_EQ(send(stranger, "POST", "/api/v1/consent/challenge", json{{"token", token}}).status, 201);
    EXPECT_EQ(count("challenges"), 1);
}

// Issue 21 items 4 and 5: limits, and Idempotency-Key answers, that hold however many servers ask at once. On
// PostgreSQL three servers — each its own connection pool and desks over the one database — race with 8 threads
// each; on SQLite the three share the test's database (one writer at a time: exact there before too).
class Race : public Hostile {
protected:
    struct Server {
        std::unique_ptr<Database> own;
        std::unique_ptr<Service> service;
    };
    std::vector<Server> servers;
    static constexpr int threads_per_server = 8;
    void start_servers(std::string const& card_ca = {}) {
        auto rules = compile_directory(KYOTAKU_SOURCE_DIR "/rules");
        ASSERT_TRUE(rules.ok());
        for (int i = 0; i < 3; ++i) {
            Server s;
            if (on_postgres()) s.own = open_postgres(std::getenv("KYOTAKU_TEST_PG"));
            s.service = std::make_unique<Service>(s.own ? *s.own : *db, rules.program, clock);
            s.service->context.secrets = service->context.secrets;  // one key file per deployment
            s.service->context.card_ca = card_ca;
            servers.push_back(std::move(s));
        }
    }
    int clients() const { return int(servers.size()) * threads_per_server; }
    // Runs request(server, n) `per_thread` times on each of the servers' threads, all let go at once (n counts the
    // requests from 0); returns how many answers had each status. No answer may be a 500.
    std::map<int, int> race(int per_thread, std::function<HttpResult(Service&, int)> const& request) {
        std::mutex mutex;
        std::map<int, int> statuses;
        std::atomic<int> next{0};
        std::latch start(clients());
        std::vector<std::thread> threads;
        for (auto& s : servers)
            for (int t = 0; t < threads_per_server; ++t)
                threads.emplace_back([&, service = s.service.get()] {
                    start.arrive_and_wait();
                    for (int i = 0; i < per_thread; ++i) {
                        HttpResult r = request(*service, next++);
                        std::lock_guard lock(mutex);
                        ++statuses[r.status];
                        EXPECT_LT(r.status, 500) << r.body;
                    }
                });
        for (auto& t : threads) t.join();
        return statuses;
    }
    static HttpResult post(Service& s, std::string const& target, json const& body, std::string const& client = "") {
        Caller from;
        from.client = client;
        return Router(s).handle(from, "POST", target, "application/json", body.dump());
    }
};

TEST_F(Race, Item21_4_ChallengesHandOffsAndWrongCodesAreCountedExactly) {
    start_servers();
    std::string const token = url_token(a);
    // Challenges: 30 a minute per client and facility URL (3 servers × 4 threads made 33 of 30 per facility URL).
    auto challenges = race(3, [&](Service& s, int) {
        return post(s, "/api/v1/consent/challenge", json{{"token", token}});
    });
    EXPECT_EQ(challenges[201], challenges_per_minute);
    EXPECT_EQ(challenges[429], 3 * clients() - challenges_per_minute);
    EXPECT_EQ(count("challenges"), challenges_per_minute);
    // Three clients at once, each at every server: 30 each, whatever the others do (issue 22 item 6).
    auto three = race(4, [&](Service& s, int n) {
        return post(s, "/api/v1/consent/challenge", json{{"token", token}}, "192.0.2." + std::to_string(n % 3));
    });
    EXPECT_EQ(three[201], 3 * challenges_per_minute);
    EXPECT_EQ(three[429], 4 * clients() - 3 * challenges_per_minute);
    for (int c = 0; c < 3; ++c)
        EXPECT_EQ(as_int(db->query("SELECT COUNT(*) FROM challenges WHERE client = $1",
                                   {"192.0.2." + std::to_string(c)})[0][0]),
                  challenges_per_minute);
    // Open hand-offs: 5 per client and facility (issue 25; these all come from one client, 3 per thread).
    json const handoff{{"token", token},
                       {"visit_kind", "訪問診療"},
                       {"items", {"薬剤情報"}},
                       {"identity_method", "暗証番号"}};
    auto opened = race(3, [&](Service& s, int) { return post(s, "/api/v1/consent/handoff", handoff); });
    int const per_client = service->handoffs().max_open_per_client;
    ASSERT_GT(per_client, 0);
    EXPECT_EQ(opened[201], per_client);
    EXPECT_EQ(opened[429], 3 * clients() - per_client);
    EXPECT_EQ(count("consent_handoffs"), per_client);
    // Wrong codes: 5 per claimant in 10 minutes are compared (one per thread, all from one client); then its claims
    // wait.
    std::set<std::string> open_codes;
    for (auto const& r : db->query("SELECT code FROM consent_handoffs")) open_codes.insert(as_text(r[0]));
    std::string wrong;
    for (int n = 0; wrong.empty() || open_codes.count(wrong); ++n) wrong = std::to_string(100000 + n);
    auto claims = race(1, [&](Service& s, int) {
        return post(s, "/api/v1/consent/handoff/claim", json{{"token", token}, {"code", wrong}});
    });
    int const max_failures = service->handoffs().max_failures;
    EXPECT_EQ(claims[404], max_failures);
    EXPECT_EQ(claims[429], clients() - max_failures);
    EXPECT_EQ(count("consent_handoff_failures"), max_failures);
}

TEST_F(Race, Item21_4_TheRightPasscodeIsNeverTakenAfterTheWrongGuessesSpentIt) {
    static TestCard card;
    start_servers(card.ca);
    service->context.card_ca = card.ca;
    ASSERT_EQ(send(root, "POST", "/api/v1/admin/cards", json{{"person_key", person}, {"certificate", card.der_b64}})
                  .status,
              201);
    clock.set_today(*Date::from_ymd(2024, 10, 2));  // 目視確認 is allowed from 2024-10-01
    std::string const token = url_token(b);
    auto wrong_of = [](std::string guess, int n) {
        guess[7] = char('0' + (guess[7] - '0' + 1 + n % 9) % 10);
        return guess;
    };
    // Guesses `per_client` at a time from clients `client(n)`, all let go at once, one of them right (at `right_at`);
    // returns the answers and whether the right one was taken.
    auto burst = [&](int per_thread, std::function<std::string(int)> const& client, int right_at,
                     std::string const& right) {
        std::vector<std::string> challenge_ids;
        for (int n = 0; n < per_thread * clients(); ++n) {
            Caller from;
            from.client = client(n);
            auto ch = send(from, "POST", "/api/v1/consent/challenge", json{{"token", token}});
            EXPECT_EQ(ch.status, 201) << ch.body;
            challenge_ids.push_back(json::parse(ch.body)["challenge_id"]);
        }
        std::vector<HttpResult> answers(challenge_ids.size());
        race(per_thread, [&](Service& s, int n) {
            answers[n] = post(s, "/api/v1/consent/register",
                              json{{"token", token},
                                   {"challenge_id", challenge_ids[n]},
                                   {"certificate", card.der_b64},
                                   {"identity_method", "目視確認"},
                                   {"visit_kind", "訪問診療"},
                                   {"items", {"薬剤情報"}},
                                   {"visual_passcode", n == right_at ? right : wrong_of(right, n)}},
                              client(n));
            return answers[n];
        });
        return answers;
    };
    auto stored = [&](std::string const& right) {
        auto row = db->query(
            "SELECT used_at, failed_attempts FROM visual_passcodes WHERE facility_code = $1 AND passcode_hash = $2",
            {b.facility_code, service->context.secrets->passcode_hash(b.facility_code, right)});
        EXPECT_EQ(row.size(), 1u);
        return std::pair<bool, std::int64_t>(!is_null(row[0][0]), as_int(row[0][1]));
    };
    // One client (issue 21: 20 parallel guesses had the right one accepted after up to 14 wrong ones): its wrong
    // passcodes are compared one at a time; after `passcode_attempts` of them it waits, the right guess included.
    int accepted = 0;
    for (int round = 0; round < 4; ++round) {
        clock.advance(passcode_window);  // the client's wrong passcodes of the last round are forgotten
        std::string const right = json::parse(send(b, "POST", "/api/v1/visual-passcode", "").body)["passcode"];
        int const right_at = (round * 7) % clients();
        auto answers = burst(1, [](int) { return std::string("192.0.2.66"); }, right_at, right);
        std::map<int, int> statuses;
        for (int n = 0; n < clients(); ++n) {
            ++statuses[answers[n].status];
            if (answers[n].status != 201)
                EXPECT_EQ(json::parse(answers[n].body).value("field", ""), "visual_passcode") << answers[n].body;
        }
        auto const [taken, failed] = stored(right);
        accepted += taken;
        EXPECT_EQ(statuses[201], taken ? 1 : 0);
        EXPECT_EQ(statuses[400], passcode_attempts) << "round " << round;
        EXPECT_EQ(statuses[429], clients() - passcode_attempts - statuses[201]) << "round " << round;
        // Taken: fewer wrong guesses than the limit were compared before it. Refused: the limit's, one at a time.
        if (taken) EXPECT_LT(failed, passcode_attempts) << "round " << round;
        else EXPECT_EQ(failed, passcode_attempts) << "round " << round;
    }
    std::cout << "one client: the right passcode was taken in " << accepted << " of 4 bursts of " << clients()
              << " guesses\n";
    // Many clients, `passcode_attempts` guesses each (none held back): no more than `passcode_guesses` wrong ones in
    // all are compared while the passcode works, however many servers answer.
    clock.advance(passcode_window);
    std::string const right = json::parse(send(b, "POST", "/api/v1/visual-passcode", "").body)["passcode"];
    int const per_thread = passcode_attempts;
    int const right_at = per_thread * clients() - 3;  // among the last to be let go
    auto answers = burst(
        per_thread, [](int n) { return "203.0.113." + std::to_string(n / passcode_attempts); }, right_at, right);
    std::map<int, int> statuses;
    for (auto const& r : answers) ++statuses[r.status];
    auto const [taken, failed] = stored(right);
    EXPECT_EQ(statuses[201], taken ? 1 : 0);
    EXPECT_EQ(statuses[400], per_thread * clients() - statuses[201]);
    if (taken) EXPECT_LT(failed, passcode_guesses);
    else EXPECT_EQ(failed, per_thread * clients());  // the right one too, compared once the passcode was spent
    std::cout << "many clients: " << per_thread * clients() << " guesses, the right one "
              << (taken ? "taken" : "refused") << " after " << failed << " wrong ones were compared\n";
}

TEST_F(Race, Item21_5_OneIdempotencyKeyAtOnceIsAnsweredOnceAndScopedByRoute) {
    start_servers();
    std::atomic<int> version{100000};
    std::string const key = "race-key-0123456789";
    auto upload = [&](Service& s, std::string const& route) {
        IdempotentAnswers store(s.context.db);
        return answer_once(store, clock, a, route, key, "<XmlMsg/>", [&] {
            int const v = version++;
            s.context.db.query("INSERT INTO url_keys (version, key_hex, created_at) VALUES ($1, 'k', 'race')",
                               {std::int64_t(v)});
            HttpResult r{200, "application/xml", "<answer " + std::to_string(v) + "/>"};
            r.route = route;
            return r;
        });
    };
    auto made = [&] { return as_int(db->query("SELECT COUNT(*) FROM url_keys WHERE created_at = 'race'")[0][0]); };
    // two routes that make a job
    std::string const bulk = "/api/v1/oqs/OQSmuquc01req", single = "/api/v1/oqs/OQSmuhvq01req";
    std::mutex mutex;
    std::set<std::string> bodies;
    int replayed = 0;
    auto statuses = race(1, [&](Service& s, int) {
        HttpResult r = upload(s, bulk);
        std::lock_guard lock(mutex);
        bodies.insert(r.body);
        replayed += !r.headers.empty();
        return r;
    });
    EXPECT_EQ(statuses[200], clients()) << "2 of 12 were a 500 (duplicate key)";
    EXPECT_EQ(made(), 1) << "one job";
    EXPECT_EQ(bodies.size(), 1u) << "one answer, given to all";
    EXPECT_EQ(replayed, clients() - 1);
    // The same key on another route is another request (it had the first route's answer); the first route's stays.
    HttpResult other = upload(*servers[1].service, single);
    EXPECT_EQ(other.status, 200);
    EXPECT_TRUE(other.headers.empty()) << "not a replay";
    EXPECT_EQ(made(), 2);
    EXPECT_NE(other.body, *bodies.begin());
    HttpResult again = upload(*servers[2].service, bulk);
    EXPECT_EQ(again.body, *bodies.begin());
    EXPECT_EQ(upload(*servers[0].service, single).body, other.body);
    EXPECT_EQ(made(), 2);
}
