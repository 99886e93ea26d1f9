// libFuzzer target: the server's request path. The input is one HTTP request as bytes, after a first byte that picks
// the caller (nobody, a facility's 職員 or 管理者, another facility, the operator). Beast parses it as the session
// does (header and body limits); a caller without a certificate that sends X-Kyotaku-Url-Token becomes a モバイル端末
// session as in the session; plan_body decides the body limit; the route's validation runs (Router::handle) on a
// server with an in-memory SQLite database holding two facilities, a patient and a consent. "@TOKEN@" in the
// input stands for facility A's URL token, so that the consent page's routes are reached. Any crash, sanitizer
// report or hang fails; so does a 500 (a hostile request is the client's mistake: 4xx) and a JSON answer that is not
// JSON.
#include "formats/fields.hpp"
#include "http/callers.hpp"
#include "http/router.hpp"

#include <boost/beast/http.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>

using namespace kyotaku;
using namespace kyotaku::server;
namespace http = boost::beast::http;

namespace {
struct World {
    TestClock clock{*Date::from_ymd(2024, 7, 31)};
    std::unique_ptr<Database> db = open_sqlite(":memory:");
    std::unique_ptr<Service> service;
    std::optional<ConsentPageFiles> pages;  // the consent page's files (a web root with an index.html)
    Caller callers[6];
    std::string token;

    World() {
        migrate(*db);
        auto rules = compile_directory(KYOTAKU_FUZZ_RULES);
        if (!rules.ok()) __builtin_trap();
        service = std::make_unique<Service>(*db, rules.program, clock);
        auto web = std::filesystem::temp_directory_path() / "kyotaku-fuzz-web";
        std::filesystem::create_directories(web);
        std::ofstream(web / "index.html") << "<!doctype html><title>page</title>";
        pages.emplace(web.string());
        callers[1].kind = Caller::Kind::admin;
        for (int i : {2, 3, 4}) {
            callers[i].kind = Caller::Kind::facility;
            callers[i].facility_code = i == 4 ? "2714206386" : "0110113719";
            callers[i].role = i == 3 ? Caller::Role::manager : Caller::Role::staff;
            callers[i].terminal = i == 2 ? "電子カルテ端末" : "資格確認端末";
        }
        callers[5] = callers[3];
        callers[5].facility_code = "2714206386";
        auto must = [&](Caller const& c, char const* method, char const* target, std::string const& body) {
            auto r = Router(*service).handle(c, method, target, "application/json", body);
            if (r.status >= 300) __builtin_trap();
            return nlohmann::json::parse(r.body);
        };
        must(callers[1], "POST", "/api/v1/admin/facilities", R"({"code":"0110113719","name":"A","kind":"医科"})");
        must(callers[1], "POST", "/api/v1/admin/facilities",
             R"({"code":"2714206386","name":"B","kind":"訪問看護ステーション"})");
        must(callers[3], "PUT", "/api/v1/settings", R"({"terms_agreed":true,"home_visit_enabled":true})");
        std::string person =
            must(callers[1], "POST", "/api/v1/admin/insured-persons",
                 R"({"insurer_number":"06132013","symbol":"123","number":"4567","branch":"01","birthdate":"1940-05-01",
                                      "name":"在宅 花子","burden_ratio":"010","valid_from":"2020-04-01"})")
                ["person_key"];
        must(
            callers[1], "POST", "/api/v1/admin/consents",
            R"({"facility_code":"0110113719","person_key":")" + person +
                R"(","visit_kind":"訪問診療","first_visit":"2024-06-03","identity_method":"暗証番号",)"
                R"("items":["薬剤情報"]})");
        std::string url = must(callers[3], "GET", "/api/v1/url", "")["url"];
        token = url.substr(url.find("/c/") + 3);
    }
};

World& world() {
    static World w;
    return w;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
    if (size < 1) return 0;
    World& w = world();
    std::string text(reinterpret_cast<char const*>(data) + 1, size - 1);
    for (auto at = text.find("@TOKEN@"); at != std::string::npos; at = text.find("@TOKEN@", at))
        text.replace(at, 7, w.token);

    http::request_parser<http::string_body> parser;
    parser.header_limit(16 * 1024);
    parser.body_limit(256 * 1024);
    parser.eager(true);
    boost::beast::error_code ec;
    std::size_t used = parser.put(boost::asio::buffer(text), ec);
    (void)used;
    if (!ec && !parser.is_done()) parser.put_eof(ec);
    if (ec || !parser.is_done()) return 0;
    auto const& req = parser.get();
    std::string const method(req.method_string()), target(req.target());

    Caller who = w.callers[data[0] % 6];
    if (who.kind == Caller::Kind::anonymous && req.count("X-Kyotaku-Url-Token"))
        who = mobile_caller(*w.service, std::string(req["X-Kyotaku-Url-Token"]));
    BodyPlan plan = plan_body(who, method, target, ConnectionLimits{});
    // the session answers 413 (or the route's refusal) without reading it
    if (req.body().size() > plan.limit) return 0;

    HttpResult r = Router(*w.service, Site{nullptr, &*w.pages})
                       .handle(who, method, target, std::string(req[http::field::content_type]), req.body());
    std::string body = r.body;
    if (r.stream)
        for (int pages = 0; pages < 100; ++pages) {
            std::string part = r.stream();
            if (part.empty()) break;
            body += part;
        }
    if (r.status == 500) {
        std::fprintf(stderr, "500 for %s %s: %s\n", method.c_str(), target.c_str(), body.c_str());
        __builtin_trap();
    }
    if (r.content_type.rfind("application/json", 0) == 0 && !nlohmann::json::accept(body)) __builtin_trap();
    return 0;
}
