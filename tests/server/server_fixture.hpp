// What the server's unit tests share (tests/server/*_test.cpp, one file per layer and usecases/ one per desk): a
// fresh database (SQLite in memory, or the PostgreSQL that with_postgres.sh starts), the ServerFixture that answers
// every route through the routing table without a network, and the request files the tests send.
#pragma once

#include <unistd.h>

#include "core/card_signature.hpp"
#include "core/codes.hpp"
#include "core/ids.hpp"
#include "core/url_token.hpp"
#include "csv_upload.hpp"
#include "formats/fields.hpp"
#include "formats/oqs_xml.hpp"
#include "http/callers.hpp"
#include "http/router.hpp"
#include "http/rules_web.hpp"
#include "database_fixture.hpp"
#include "storage/faults.hpp"
#include "xml_lint.hpp"

#include <pugixml.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

using namespace kyotaku;
using namespace kyotaku::server;


class ServerFixture : public ::testing::Test {
protected:
    void SetUp() override {
        db = fresh_database();
        migrate(*db);
        auto c = compile_directory(KYOTAKU_SOURCE_DIR "/rules");
        ASSERT_TRUE(c.ok()) << format_diagnostics(c.diagnostics);
        program = c.program;
        service = std::make_unique<Service>(*db, c.program, clock);
        admin.kind = Caller::Kind::admin;
        admin.subject = "kyotaku-admin";
        ASSERT_EQ(call(admin, "POST", "/api/v1/admin/facilities", R"({"code":"0110113719","name":"A","kind":"医科"})")
                      .status,
                  201);
        ASSERT_EQ(call(admin, "POST", "/api/v1/admin/facilities",
                       R"({"code":"2714206386","name":"B","kind":"訪問看護ステーション"})")
                      .status,
                  201);
        a = facility("0110113719");
        b = facility("2714206386");
    }
    // An office terminal of a facility: its 管理者 (the default here, since most tests change settings) or a 職員.
    static Caller facility(std::string code, Caller::Role role = Caller::Role::manager,
                           char const* terminal = "資格確認端末") {
        Caller c;
        c.kind = Caller::Kind::facility;
        c.role = role;
        c.facility_code = code;
        c.subject = code;
        c.terminal = terminal;
        return c;
    }
    // Sets the server's clock (Japan's calendar day): the only way a test chooses "today".
    void today(char const* date) { clock.set_today(*parse_date(date).date); }
    HttpResult call(Caller const& c, std::string method, std::string target, std::string body = "",
                    std::string type = "application/json") {
        HttpResult r = Router(*service, Site{nullptr, pages ? &*pages : nullptr}).handle(c, method, target, type, body);
        if (r.stream)  // a streamed answer, page by page, as the session would send its chunks
            for (std::string part = r.stream(); !part.empty(); part = r.stream()) r.body += part;
        if (r.content_type.find("xml") != std::string::npos)
            EXPECT_TRUE(testing_xml::well_formed_xml(r.body)) << method << " " << target;
        return r;
    }
    json body(HttpResult const& r) { return json::parse(r.body); }
    std::string person(char const* insurer = "06132013", char const* valid_to = nullptr, char const* key = nullptr,
                       char const* from = "2020-04-01", char const* number = "4567") {
        json p{{"insurer_number", insurer}, {"symbol", "１２３"},  {"number", number},      {"branch", "01"},
               {"birthdate", "1940-05-01"}, {"name", "在宅 花子"}, {"burden_ratio", "010"}, {"valid_from", from}};
        if (valid_to) p["valid_to"] = valid_to;
        if (key) p["person_key"] = key;
        auto r = call(admin, "POST", "/api/v1/admin/insured-persons", p.dump());
        EXPECT_EQ(r.status, 201) << r.body;
        return body(r)["person_key"];
    }
    void consent(std::string const& facility_code, std::string const& key, char const* kind = "訪問診療",
                 char const* first = "2024-04-15", char const* appointment = nullptr) {
        json c{{"facility_code", facility_code}, {"person_key", key}, {"visit_kind", kind}, {"first_visit", first},
               {"identity_method", "暗証番号"}, {"items", {"薬剤情報"}}};
        if (appointment) c["appointment_date"] = appointment;
        auto r = call(admin, "POST", "/api/v1/admin/consents", c.dump());
        ASSERT_EQ(r.status, 201) << r.body;
    }
    void enable(Caller const& c) {
        ASSERT_EQ(call(c, "PUT", "/api/v1/settings", R"({"terms_agreed":true,"home_visit_enabled":true})").status, 200);
    }
    // A re-inquiry of the usual patient, on `date` (the clock is set to it; the body names no date).
    std::string on(char const* date, char const* category = "訪問診療等") {
        today(date);
        return json{{"category", category}, {"insurer_number", "06132013"}, {"symbol", "123"}, {"number", "4567"},
                    {"branch", "01"},       {"birthdate", "1940-05-01"}}
            .dump();
    }
    // A viewing of the usual patient's `item` on `date`.
    std::string viewing_on(char const* date, char const* item = "薬剤情報") {
        today(date);
        return json{{"category", "訪問診療等"}, {"insurer_number", "06132013"}, {"symbol", "123"}, {"number", "4567"},
                    {"branch", "01"},           {"birthdate", "1940-05-01"},    {"item", item}}
            .dump();
    }
    // A re-inquiry by 照会番号 on `date`.
    std::string by_reference(char const* ref, char const* date) {
        today(date);
        return json{{"category", "訪問診療等"}, {"reference_number", ref}}.dump();
    }
    TestClock clock{*Date::from_ymd(2024, 7, 31)};
    std::shared_ptr<Program const> program;
    std::unique_ptr<Database> db;
    std::unique_ptr<Service> service;
    std::optional<ConsentPageFiles> pages;  // the consent page's files, for the tests that open the page
    Caller admin, a, b;
};

// A web root with a page and one script, for the routes that serve the consent page.
inline std::string test_web_root() {
    static std::string dir = [] {
        auto d = std::filesystem::temp_directory_path() / ("kyotaku-web-" + std::to_string(::getpid()));
        std::filesystem::create_directories(d);
        std::ofstream(d / "index.html")
            << "<!doctype html><title>マイナ在宅受付Web</title><script src=\"/web/app.js\"></script>";
        std::ofstream(d / "app.js") << "console.log('app');";
        std::ofstream(d / "secret.txt") << "not served";
        return d.string();
    }();
    return dir;
}

inline std::string muquc01req(char const* facility, char const* encoding) {
    std::string xml =
        std::string("<?xml version=\"1.0\" encoding=\"") + encoding +
        "\" standalone=\"no\"?>\n"
        "<XmlMsg><MessageHeader><QualificationConfirmationDate>20240701</QualificationConfirmationDate>"
        "<MedicalInstitutionCode>" +
        facility +
        "</MedicalInstitutionCode><ArbitraryFileIdentifier>ファイル1</ArbitraryFileIdentifier></MessageHeader>"
        "<MessageBody>"
        "<QualificationConfirmSearchInfo><InsurerNumber>06132013</InsurerNumber><InsuredCardSymbol>１２３</"
        "InsuredCardSymbol>"
        "<InsuredIdentificationNumber>４５６７</InsuredIdentificationNumber><InsuredBranchNumber>01</"
        "InsuredBranchNumber><Birthdate>19400501</Birthdate>"
        "<LimitApplicationCertificateRelatedConsFlg>0</"
        "LimitApplicationCertificateRelatedConsFlg><ArbitraryIdentifier>患者A</ArbitraryIdentifier></"
        "QualificationConfirmSearchInfo>"
        "<QualificationConfirmSearchInfo><InsurerNumber>06132012</InsurerNumber><InsuredCardSymbol>1</"
        "InsuredCardSymbol>"
        "<InsuredIdentificationNumber>2</InsuredIdentificationNumber><InsuredBranchNumber>01</"
        "InsuredBranchNumber><Birthdate>19400501</Birthdate>"
        "<LimitApplicationCertificateRelatedConsFlg>0</"
        "LimitApplicationCertificateRelatedConsFlg><ArbitraryIdentifier>患者B</ArbitraryIdentifier></"
        "QualificationConfirmSearchInfo>"
        "</MessageBody></XmlMsg>\n";
    return std::string(encoding) == "UTF-8" ? xml : from_utf8(xml, encoding);
}

inline std::string hvq01req(char const* facility, char const* flag, char const* from, char const* to) {
    return std::string("<?xml version=\"1.0\" "
                       "encoding=\"UTF-8\"?><XmlMsg><MessageHeader><QualificationConfirmationDate>20240601</"
                       "QualificationConfirmationDate>"
                       "<MedicalInstitutionCode>") +
           facility +
           "</MedicalInstitutionCode><ArbitraryFileIdentifier>hvq</ArbitraryFileIdentifier></MessageHeader>"
           "<MessageBody><MedicalTreatmentFlag>" +
           flag + "</MedicalTreatmentFlag><ConsentDateFrom>" + from + "</ConsentDateFrom><ConsentDateTo>" + to +
           "</ConsentDateTo></MessageBody></XmlMsg>";
}

inline std::string muquc_for(std::string const& facility, char const* date, char const* flag) {
    std::string xml =
        std::string(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><XmlMsg><MessageHeader><QualificationConfirmationDate>") +
        date + "</QualificationConfirmationDate><MedicalInstitutionCode>" + facility +
        "</MedicalInstitutionCode><ArbitraryFileIdentifier>probe</ArbitraryFileIdentifier>" +
        (flag ? std::string("<MedicalTreatmentFlag>") + flag + "</MedicalTreatmentFlag>" : std::string()) +
        "</MessageHeader><MessageBody><QualificationConfirmSearchInfo><InsurerNumber>06132013</InsurerNumber>"
        "<InsuredCardSymbol>123</InsuredCardSymbol><InsuredIdentificationNumber>4567</InsuredIdentificationNumber>"
        "<InsuredBranchNumber>01</InsuredBranchNumber><Birthdate>19400501</Birthdate><ArbitraryIdentifier>x</"
        "ArbitraryIdentifier>"
        "</QualificationConfirmSearchInfo></MessageBody></XmlMsg>";
    return xml;
}
inline std::string download_for(std::string const& facility, std::string const& upload_result) {
    auto at = upload_result.find("<ReceptionNumber>");
    std::string rn = at == std::string::npos ? "" : upload_result.substr(at + 17, 20);
    return "<XmlMsg><MessageHeader><MedicalInstitutionCode>" + facility +
           "</MedicalInstitutionCode></MessageHeader><MessageBody><ReceptionNumber>" + rn +
           "</ReceptionNumber></MessageBody></XmlMsg>";
}

inline std::string csv_rows(int n, char const* prefix = "r") {
    std::string csv;
    for (int i = 1; i <= n; ++i) csv += std::string(prefix) + std::to_string(i) + ",06132013,123,4567,01,1940-05-01\n";
    return csv;
}

// An OQSsiquc01req for the person with `number` (insurer 06132013, symbol 123, branch 01, born 1940-05-01).
inline std::string siquc_in(char const* encoding, char const* number) {
    std::string xml =
        std::string("<?xml version=\"1.0\" encoding=\"") + encoding +
        "\"?><XmlMsg><MessageHeader><QualificationConfirmationDate>20240701</QualificationConfirmationDate>"
        "<MedicalInstitutionCode>0110113719</MedicalInstitutionCode><ArbitraryFileIdentifier>gaiji</"
        "ArbitraryFileIdentifier>"
        "</MessageHeader><MessageBody><QualificationConfirmSearchInfo><InsurerNumber>06132013</InsurerNumber>"
        "<InsuredCardSymbol>123</InsuredCardSymbol><InsuredIdentificationNumber>" +
        number +
        "</InsuredIdentificationNumber><InsuredBranchNumber>01</InsuredBranchNumber><Birthdate>19400501</Birthdate>"
        "<ArbitraryIdentifier>患者</ArbitraryIdentifier></QualificationConfirmSearchInfo></MessageBody></XmlMsg>";
    return std::string(encoding) == "UTF-8" ? xml : from_utf8(xml, encoding);
}
inline std::string element(std::string const& xml, char const* name) {
    auto at = xml.find(std::string("<") + name + ">");
    if (at == std::string::npos) return "(no " + std::string(name) + ")";
    at += std::strlen(name) + 2;
    return xml.substr(at, xml.find('<', at) - at);
}
