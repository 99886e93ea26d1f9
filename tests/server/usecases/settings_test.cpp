// The settings desk: 環境設定 and its audit, the facility URL.
#include "../server_fixture.hpp"

TEST_F(ServerFixture, SettingsChangesAreAuditedWithBeforeAndAfter) {
    enable(a);
    ASSERT_EQ(call(a, "PUT", "/api/v1/settings", R"({"viewing_items":{"特定健診情報":false}})").status, 200);
    auto audit = body(call(a, "GET", "/api/v1/settings/audit"));
    ASSERT_EQ(audit.size(), 2u);
    EXPECT_EQ(audit[1]["actor"], "0110113719");
    EXPECT_TRUE(audit[1]["before"]["viewing_items"]["特定健診情報"].get<bool>());
    EXPECT_FALSE(audit[1]["after"]["viewing_items"]["特定健診情報"].get<bool>());
    EXPECT_FALSE(audit[0]["before"]["home_visit_enabled"].get<bool>());
    EXPECT_TRUE(audit[0]["after"]["home_visit_enabled"].get<bool>());
}

TEST_F(ServerFixture, FacilityUrlOpensThePageUntilItIsChangedOrItsKeyRetired) {
    pages.emplace(test_web_root());
    auto url = body(call(a, "GET", "/api/v1/url"))["url"].get<std::string>();
    std::string path = url.substr(url.find("/c/"));
    auto page = call(Caller{}, "GET", path);
    EXPECT_EQ(page.status, 200);
    EXPECT_NE(page.body.find("<title>マイナ在宅受付Web</title>"), std::string::npos);
    // 変更: the old URL now gets a clear page, the new one works.
    auto changed = body(call(a, "POST", "/api/v1/url/change"))["url"].get<std::string>();
    auto old_page = call(Caller{}, "GET", path);
    EXPECT_EQ(old_page.status, 404);
    EXPECT_NE(old_page.body.find("この URL は変更されました"), std::string::npos);
    auto const said = [](std::string const& text, std::string const& words) {
        int n = 0;
        for (auto at = text.find(words); at != std::string::npos; at = text.find(words, at + 1)) ++n;
        return n;
    };
    EXPECT_EQ(said(old_page.body, "受け取ってください"), 1) << "the next step once, not twice: " << old_page.body;
    EXPECT_EQ(call(Caller{}, "GET", changed.substr(changed.find("/c/"))).status, 200);
    // Retiring the server key revokes every URL sealed with it.
    EXPECT_EQ(call(a, "POST", "/api/v1/admin/url-keys/rotate").status, 403);
    EXPECT_EQ(call(admin, "POST", "/api/v1/admin/url-keys/rotate").status, 200);
    auto revoked = call(Caller{}, "GET", changed.substr(changed.find("/c/")));
    EXPECT_EQ(revoked.status, 404);
    EXPECT_NE(revoked.body.find("使えなくなりました"), std::string::npos);
    EXPECT_EQ(revoked.body.find("鍵"), std::string::npos) << "no jargon for patients: " << revoked.body;
    auto fresh = body(call(a, "GET", "/api/v1/url"))["url"].get<std::string>();
    EXPECT_EQ(call(Caller{}, "GET", fresh.substr(fresh.find("/c/"))).status, 200);
    // Garbage and another facility's URL are just that.
    EXPECT_EQ(call(Caller{}, "GET", "/c/not-a-token").status, 404);
    auto url_b = body(call(b, "GET", "/api/v1/url"))["url"].get<std::string>();
    EXPECT_NE(url_b, fresh);
    EXPECT_EQ(call(a, "GET", "/api/v1/url/qr.png").content_type, "image/png");
    EXPECT_EQ(call(Caller{}, "GET", "/api/v1/url").status, 403);
}

// 環境設定 offers only the switches the facility's kind can use (item 1): a 訪問看護ステーション offers 訪問看護 only,
// which uses 訪問診療等機能; it cannot switch on オンライン診療等機能 (409 naming the switch), and its settings say so.
TEST_F(ServerFixture, SettingsOfferOnlyTheSwitchesTheFacilityKindUses) {
    auto station = body(call(b, "GET", "/api/v1/settings"));
    EXPECT_EQ(station["available_features"], json({"訪問診療等機能"}));
    EXPECT_EQ(body(call(a, "GET", "/api/v1/settings"))["available_features"],
              json({"訪問診療等機能", "オンライン診療等機能"}));
    auto online = call(b, "PUT", "/api/v1/settings", R"({"terms_agreed":true,"online_enabled":true})");
    EXPECT_EQ(online.status, 409) << online.body;
    EXPECT_EQ(body(online)["field"], "online_enabled");
    EXPECT_NE(body(online)["message_ja"].get<std::string>().find("オンライン診療等機能 を使いません"),
              std::string::npos);
    EXPECT_FALSE(body(call(b, "GET", "/api/v1/settings"))["online_enabled"].get<bool>());
    EXPECT_EQ(call(b, "PUT", "/api/v1/settings", R"({"terms_agreed":true,"home_visit_enabled":true})").status, 200);
    // A switch turned on before this rule can still be turned off.
    db->query("UPDATE facility_settings SET online_enabled = 1 WHERE facility_code = '2714206386'");
    EXPECT_EQ(call(b, "PUT", "/api/v1/settings", R"({"online_enabled":false})").status, 200);
}
