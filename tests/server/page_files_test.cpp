// The consent page's files as a phone on a mobile network gets them (server/static_files.hpp): hashed assets
// cached for a year in the best encoding the client takes, the rules revalidated by ETag, the page with the
// facility's name and data written in, gzip-compressed, and a CSP that allows the inline style by its hash only.
#include "core/card_signature.hpp"
#include "formats/fields.hpp"
#include "http/router.hpp"
#include "http/static_files.hpp"

#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>

using namespace kyotaku;
using namespace kyotaku::server;

namespace {

std::string gunzip(std::string const& data) {
    z_stream z{};
    inflateInit2(&z, 15 + 16);
    std::string out(1 << 20, '\0');
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    z.avail_in = uInt(data.size());
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = uInt(out.size());
    inflate(&z, Z_FINISH);
    out.resize(z.total_out);
    inflateEnd(&z);
    return out;
}

std::string header(HttpResult const& r, std::string const& name) {
    for (auto const& [k, v] : r.headers)
        if (k == name) return v;
    return "";
}

class PageFiles : public ::testing::Test {
protected:
    void SetUp() override {
        root = std::filesystem::temp_directory_path() / ("kyotaku-page-files-" + std::to_string(::getpid()));
        std::filesystem::create_directories(root);
        write("index.html", "<!doctype html><html><head><style>" + style +
                                "</style><script type=\"application/json\" id=\"page-data\">{{page_data}}</script>"
                                "</head><body><p id=\"facility-name\">{{facility_name}}</p></body></html>");
        write("app.0123456789.js", "console.log('app');");
        write("app.0123456789.js.br", "BROTLI");
        write("app.0123456789.js.gz", "GZIP");
        write("old.js", "console.log('old');");
        write("notes.txt", "not served");
        write("manifest.json", R"({"files":{"app.js":"app.0123456789.js"}})");
        pages.emplace(root.string());
        db = open_sqlite(":memory:");
        migrate(*db);
        auto compiled = compile_directory(KYOTAKU_SOURCE_DIR "/rules");
        ASSERT_TRUE(compiled.ok());
        service = std::make_unique<Service>(*db, compiled.program, clock);
        Caller admin;
        admin.kind = Caller::Kind::admin;
        ASSERT_EQ(Router(*service).handle(admin, "POST", "/api/v1/admin/facilities", "application/json",
                                 R"({"code":"0110113719","name":"<さくら> & 在宅","kind":"医科"})").status, 201);
        Caller f;
        f.kind = Caller::Kind::facility;
        f.terminal = "資格確認端末";
        f.facility_code = "0110113719";
        std::string const url = json::parse(Router(*service).handle(f, "GET", "/api/v1/url", "", "").body)["url"];
        page_path = url.substr(url.find("/c/"));
    }
    void TearDown() override {
        std::filesystem::remove_all(root);
    }
    void write(std::string const& name, std::string const& text) {
        std::ofstream(root / name, std::ios::binary) << text;
    }
    HttpResult get(std::string const& path, std::string accept = "", std::string inm = "") {
        auto r = pages->serve(*service, "GET", path, {std::move(accept), std::move(inm)});
        EXPECT_TRUE(r.has_value()) << path;
        return r ? *r : HttpResult{};
    }
    std::filesystem::path root;
    std::optional<kyotaku::server::ConsentPageFiles> pages;
    std::string const style = "body{color:#1a1a1a}";
    TestClock clock{*Date::from_ymd(2024, 11, 5)};
    std::unique_ptr<Database> db;
    std::unique_ptr<Service> service;
    std::string page_path;
};

}  // namespace

TEST_F(PageFiles, HashedAssetsAreCachedForAYearInTheBestEncodingTheClientTakes) {
    auto br = get("/web/app.0123456789.js", "gzip, deflate, br");
    EXPECT_EQ(br.status, 200);
    EXPECT_EQ(br.body, "BROTLI");
    EXPECT_EQ(header(br, "Content-Encoding"), "br");
    EXPECT_EQ(header(br, "Cache-Control"), "public, max-age=31536000, immutable");
    EXPECT_EQ(header(br, "Vary"), "Accept-Encoding");
    EXPECT_EQ(br.content_type, "text/javascript; charset=utf-8");
    auto gz = get("/web/app.0123456789.js", "br;q=0, gzip");
    EXPECT_EQ(gz.body, "GZIP");
    EXPECT_EQ(header(gz, "Content-Encoding"), "gzip");
    auto plain = get("/web/app.0123456789.js");
    EXPECT_EQ(plain.body, "console.log('app');");
    EXPECT_EQ(header(plain, "Content-Encoding"), "");
    EXPECT_NE(header(br, "ETag"), header(plain, "ETag")) << "each encoding its own validator";
    auto again = get("/web/app.0123456789.js", "br", header(br, "ETag"));
    EXPECT_EQ(again.status, 304);
    EXPECT_TRUE(again.body.empty());
    // A file that is not content-hashed is revalidated every time.
    auto old = get("/web/old.js");
    EXPECT_EQ(header(old, "Cache-Control"), "no-cache");
    EXPECT_FALSE(header(old, "ETag").empty());
    for (char const* bad : {"/web/notes.txt", "/web/manifest.json", "/web/index.html", "/web/../x.js",
                            "/web/.hidden.js", "/web/", "/web/a%2Fb.js"})
        EXPECT_EQ(get(bad).status, 404) << bad;
    EXPECT_EQ(pages->serve(*service, "POST", "/web/old.js")->status, 405);
    EXPECT_FALSE(pages->serve(*service, "GET", "/api/v1/url").has_value());
}

TEST_F(PageFiles, TheRulesAreRevalidatedByTheirETag) {
    auto r = get("/web/rules.bundle", "gzip");
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(header(r, "Cache-Control"), "no-cache");
    EXPECT_EQ(header(r, "Content-Encoding"), "gzip");
    auto loaded = load_bundle(gunzip(r.body));
    ASSERT_TRUE(loaded.program) << loaded.describe();
    EXPECT_GE(loaded.program->find_slot("施設の診療区分"), 0);
    EXPECT_EQ(get("/web/rules.bundle", "gzip", header(r, "ETag")).status, 304);
    EXPECT_EQ(get("/web/rules.bundle", "gzip", "\"something-else\"").status, 200);
}

TEST_F(PageFiles, ThePageCarriesTheFacilityAndItsDataAndAllowsOnlyItsOwnInlineStyle) {
    auto page = get(page_path, "gzip, br");
    ASSERT_EQ(page.status, 200);
    EXPECT_EQ(header(page, "Content-Encoding"), "gzip");
    EXPECT_EQ(header(page, "Cache-Control"), "no-store");
    std::string const html = gunzip(page.body);
    EXPECT_NE(html.find("<p id=\"facility-name\">&lt;さくら&gt; &amp; 在宅</p>"), std::string::npos) << html;
    auto const start = html.find("id=\"page-data\">") + 15;
    std::string const data = html.substr(start, html.find("</script>", start) - start);
    EXPECT_EQ(data.find('<'), std::string::npos) << "nothing in the data can close its element";
    json const info = json::parse(data);
    EXPECT_EQ(info["facility_name"], "<さくら> & 在宅");
    EXPECT_EQ(info["facility_kind"], "医科");
    EXPECT_EQ(info["rules"], "/web/rules.bundle");
    EXPECT_EQ(info["today"], "2024-11-05") << "the server's day";
    std::string const csp = header(page, "Content-Security-Policy");
    std::string const hex = sha256_hex(style);
    std::vector<unsigned char> raw;
    for (std::size_t i = 0; i < hex.size(); i += 2)
        raw.push_back(static_cast<unsigned char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    EXPECT_NE(csp.find("style-src 'self' 'sha256-" + base64_encode(raw) + "'"), std::string::npos) << csp;
    EXPECT_EQ(csp.find("'unsafe-inline'"), std::string::npos);
    EXPECT_EQ(csp.find("'unsafe-eval'"), std::string::npos);
    EXPECT_EQ(header(page, "Referrer-Policy"), "no-referrer");
    EXPECT_EQ(get(page_path).body.find("{{"), std::string::npos) << "uncompressed too, every marker filled";
    auto unknown = get("/c/not-a-token");
    EXPECT_EQ(unknown.status, 404);
    EXPECT_NE(unknown.body.find("この URL は使えません"), std::string::npos);
}

TEST_F(PageFiles, TheServersAddressAloneSaysInJapaneseWhereThePageIs) {
    // A patient who types the server's address, or a browser that opens it: before, the API's 404 in English JSON.
    Site site;
    site.pages = &*pages;
    auto home = Router(*service, site).handle(Caller{}, "GET", "/", "", "");
    EXPECT_EQ(home.status, 200);
    EXPECT_EQ(home.content_type, "text/html; charset=utf-8");
    EXPECT_EQ(home.route, "/");
    EXPECT_NE(home.body.find("QRコードを読み取るか"), std::string::npos) << home.body;
    std::string const text = home.body.substr(home.body.find("<main>"));
    EXPECT_EQ(text.find("route"), std::string::npos) << "no English for the patient: " << text;
    EXPECT_EQ(text.find("{"), std::string::npos) << "not JSON: " << text;
}
