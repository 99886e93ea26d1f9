// 引き継ぎ (hand-off) of the consent page, through the routing table (no network): the phone's choices reach
// the registry unchanged through the staff's device, codes are claimed once, expire, can be taken back, wrong codes
// slow down their claimant only, and strangers with the facility's URL cannot fill its hand-offs (per-client
// budgets, short unclaimed lives, a flood giving way to a patient, the facility's own terminals never held back);
// every route refuses fields it does not document (a PIN-like one included). The server's clock is injected
// (TestClock). The browser side is tested end to end in tests/web/page_test.mjs.
#include "core/card_signature.hpp"
#include "formats/fields.hpp"
#include "http/callers.hpp"
#include "http/router.hpp"
#include "usecases/handoff.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <memory>

using namespace kyotaku;
using namespace kyotaku::server;
using namespace std::chrono_literals;

namespace {

// The test cards of scripts/make-test-pki, made once; the card's answer is computed here with OpenSSL.
struct Cards {
    std::filesystem::path dir;
    Cards() {
        dir = std::filesystem::temp_directory_path() / ("kyotaku-handoff-cards-" + std::to_string(::getpid()));
        std::filesystem::create_directories(dir);
        std::string const cmd =
            std::string(KYOTAKU_SOURCE_DIR "/scripts/make-test-pki ") + dir.string() + " > /dev/null";
        if (std::system(cmd.c_str()) != 0) throw std::runtime_error("make-test-pki failed");
    }
    ~Cards() { std::filesystem::remove_all(dir); }
    std::string pem(int card) const { return file_text(dir / ("card-" + std::to_string(card) + ".pem")); }
    static std::string file_text(std::filesystem::path const& p) {
        std::FILE* f = std::fopen(p.c_str(), "rb");
        std::string out;
        char buf[4096];
        for (std::size_t n; f && (n = std::fread(buf, 1, sizeof buf, f)) > 0;) out.append(buf, n);
        if (f) std::fclose(f);
        return out;
    }
    // The certificate as the card gives it (DER, base64).
    std::string certificate(int card) const {
        std::string const text = pem(card);
        BIO* bio = BIO_new_mem_buf(text.data(), int(text.size()));
        X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
        unsigned char* der = nullptr;
        int const n = i2d_X509(x, &der);
        std::vector<unsigned char> bytes(der, der + n);
        OPENSSL_free(der);
        X509_free(x);
        BIO_free(bio);
        return base64_encode(bytes);
    }
    // COMPUTE DIGITAL SIGNATURE over the challenge after the PIN: RSA PKCS#1 v1.5 of its SHA-256.
    std::string sign(int card, std::string const& challenge_b64) const {
        std::string const key_text = file_text(dir / ("card-" + std::to_string(card) + ".key"));
        BIO* bio = BIO_new_mem_buf(key_text.data(), int(key_text.size()));
        EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
        auto challenge = *base64_decode(challenge_b64);
        EVP_MD_CTX* ctx = EVP_MD_CTX_new();
        std::size_t len = 0;
        EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, key);
        EVP_DigestSign(ctx, nullptr, &len, challenge.data(), challenge.size());
        std::vector<unsigned char> sig(len);
        EVP_DigestSign(ctx, sig.data(), &len, challenge.data(), challenge.size());
        EVP_MD_CTX_free(ctx);
        EVP_PKEY_free(key);
        BIO_free(bio);
        return base64_encode(sig);
    }
};

class Handoff : public ::testing::Test {
protected:
    static inline Cards* cards = nullptr;
    static void SetUpTestSuite() { cards = new Cards(); }
    static void TearDownTestSuite() { delete cards; }

    void SetUp() override {
        db = open_sqlite(":memory:");
        migrate(*db);
        auto compiled = compile_directory(KYOTAKU_SOURCE_DIR "/rules");
        ASSERT_TRUE(compiled.ok());
        service = std::make_unique<Service>(*db, compiled.program, clock);
        service->context.card_ca = (cards->dir / "card-ca.pem").string();
        service->context.public_url = "https://kyotaku.example";
        handoffs = &service->handoffs();
        Caller admin;
        admin.kind = Caller::Kind::admin;
        for (auto [code, name] : {std::pair{"0110113719", "札幌在宅クリニック"}, std::pair{"2714206386", "北診療所"}}) {
            ASSERT_EQ(call(admin, "POST", "/api/v1/admin/facilities",
                           json{{"code", code}, {"name", name}, {"kind", "医科"}})
                          .status,
                      201);
            Caller manager;
            manager.kind = Caller::Kind::facility;
            manager.role = Caller::Role::manager;
            manager.terminal = "資格確認端末";
            manager.facility_code = code;
            ASSERT_EQ(call(manager, "PUT", "/api/v1/settings",
                           json{{"terms_agreed", true}, {"home_visit_enabled", true}})
                          .status,
                      200);
            std::string const url = body(call(manager, "GET", "/api/v1/url"))["url"];
            tokens.push_back(url.substr(url.find("/c/") + 3));
        }
        auto person = call(admin, "POST", "/api/v1/admin/insured-persons",
                           json{{"insurer_number", "06132013"},
                                {"symbol", "１２３"},
                                {"number", "４５６７"},
                                {"branch", "01"},
                                {"birthdate", "1940-05-01"},
                                {"name", "在宅 花子"},
                                {"burden_ratio", "010"},
                                {"valid_from", "2020-04-01"}});
        ASSERT_EQ(person.status, 201) << person.body;
        ASSERT_EQ(call(admin, "POST", "/api/v1/admin/cards",
                       json{{"person_key", body(person)["person_key"]}, {"certificate", cards->pem(1)}})
                      .status,
                  201);
    }

    HttpResult call(Caller const& c, std::string const& method, std::string const& target, json const& b = nullptr) {
        return Router(*service).handle(c, method, target, "application/json", b.is_null() ? "" : b.dump());
    }
    HttpResult anyone(std::string const& method, std::string const& target, json const& b = nullptr) {
        return call(Caller{}, method, target, b);
    }
    // A client without a certificate at a network address (Caller::client, as the session sets it).
    static Caller from(std::string const& address) {
        Caller c;
        c.client = client_key(address);
        return c;
    }
    Caller office(int facility = 0) const {
        Caller c;
        c.kind = Caller::Kind::facility;
        c.terminal = "資格確認端末";
        c.facility_code = facility == 0 ? "0110113719" : "2714206386";
        c.client = "192.0.2.50";
        return c;
    }
    static std::string retry_after(HttpResult const& r) {
        for (auto const& [name, value] : r.headers)
            if (name == "Retry-After") return value;
        return "";
    }
    static json body(HttpResult const& r) { return json::parse(r.body); }
    json phone_choices(int facility = 0) {
        return json{{"token", tokens[std::size_t(facility)]},
                    {"visit_kind", "訪問診療"},
                    {"identity_method", "暗証番号"},
                    {"items", {"診療情報", "薬剤情報"}},
                    {"choices", {"診療・薬剤情報"}}};
    }
    json start(int facility = 0) {
        auto r = anyone("POST", "/api/v1/consent/handoff", phone_choices(facility));
        EXPECT_EQ(r.status, 201) << r.body;
        return body(r);
    }
    std::string state(json const& h) {
        return body(anyone("GET", "/api/v1/consent/handoff/" + h["handoff_id"].get<std::string>()))["state"];
    }

    TestClock clock{*Date::from_ymd(2024, 11, 5)};  // the server's day; tests move it forward
    std::unique_ptr<Database> db;
    std::unique_ptr<Service> service;
    Handoffs* handoffs = nullptr;
    std::vector<std::string> tokens;
};

}  // namespace

TEST_F(Handoff, ThePhonesChoicesReachTheRegistryThroughTheStaffsDeviceUnchanged) {
    json const h = start();
    std::string const code = h["code"];
    EXPECT_EQ(code.size(), 6u);
    EXPECT_EQ(code.find_first_not_of("0123456789"), std::string::npos);
    // The QR code is a PNG of one pixel per module: the answer stays small for a phone's network.
    std::string const qr = h["qr"];
    ASSERT_EQ(qr.rfind("data:image/png;base64,", 0), 0u);
    auto const png = *base64_decode(qr.substr(qr.find(',') + 1));
    EXPECT_EQ(std::string(png.begin() + 1, png.begin() + 4), "PNG");
    EXPECT_LT(h.dump().size(), 1500u) << h.dump();
    EXPECT_EQ(state(h), "waiting");
    // The staff's device types the code as people do: full-width digits, a space.
    std::string typed;
    for (char ch : code) typed += std::string("０１２３４５６７８９").substr(std::size_t(ch - '0') * 3, 3);
    typed.insert(9, " ");
    auto claimed = anyone("POST", "/api/v1/consent/handoff/claim", json{{"token", tokens[0]}, {"code", typed}});
    ASSERT_EQ(claimed.status, 200) << claimed.body;
    json const claim = body(claimed);
    EXPECT_EQ(claim["choices"]["visit_kind"], "訪問診療");
    EXPECT_EQ(claim["choices"]["choices"], json({"診療・薬剤情報"}));
    EXPECT_EQ(state(h), "claimed");
    EXPECT_EQ(anyone("POST", "/api/v1/consent/handoff/claim", json{{"token", tokens[0]}, {"code", code}}).status, 409)
        << "claimed once";
    auto ch =
        anyone("POST", "/api/v1/consent/handoff/challenge", json{{"token", tokens[0]}, {"claim", claim["claim"]}});
    ASSERT_EQ(ch.status, 201) << ch.body;
    json const card{{"token", tokens[0]}, {"claim", claim["claim"]}, {"challenge_id", body(ch)["challenge_id"]},
                    {"certificate", cards->certificate(1)}, {"signature", cards->sign(1, body(ch)["challenge"])}};
    // The staff's device cannot change what the patient chose: the route has no field for it.
    json changed = card;
    changed["items"] = {"手術情報"};
    auto refused = anyone("POST", "/api/v1/consent/handoff/register", changed);
    EXPECT_EQ(refused.status, 400);
    EXPECT_EQ(body(refused)["field"], "items");
    auto registered = anyone("POST", "/api/v1/consent/handoff/register", card);
    ASSERT_EQ(registered.status, 201) << registered.body;
    // The phone learns it is done, with the consent as registered.
    auto status = body(anyone("GET", "/api/v1/consent/handoff/" + h["handoff_id"].get<std::string>()));
    EXPECT_EQ(status["state"], "done");
    EXPECT_EQ(status["consent"]["consent_id"], body(registered)["consent_id"]);
    EXPECT_EQ(status["consent"]["items"], json({"診療情報", "薬剤情報"}));
    EXPECT_FALSE(status["consent"]["first_visit"].get<std::string>().empty());
    Caller admin;
    admin.kind = Caller::Kind::admin;
    std::string const consents = call(admin, "GET", "/api/v1/admin/consents?facility_code=0110113719").body;
    EXPECT_NE(consents.find("訪問診療"), std::string::npos) << consents;
    EXPECT_NE(consents.find("薬剤情報"), std::string::npos) << consents;
    EXPECT_EQ(anyone("POST", "/api/v1/consent/handoff/challenge", json{{"token", tokens[0]}, {"claim", claim["claim"]}})
                  .status,
              409)
        << "done";
}

TEST_F(Handoff, AFailedCardStepLeavesTheHandoffOpenForAnotherTry) {
    json const h = start();
    json const claim =
        body(anyone("POST", "/api/v1/consent/handoff/claim", json{{"token", tokens[0]}, {"code", h["code"]}}));
    auto ch = body(
        anyone("POST", "/api/v1/consent/handoff/challenge", json{{"token", tokens[0]}, {"claim", claim["claim"]}}));
    json card{{"token", tokens[0]},
              {"claim", claim["claim"]},
              {"challenge_id", ch["challenge_id"]},
              {"certificate", cards->certificate(1)},
              {"signature", cards->sign(2, ch["challenge"])}};  // another card's key
    EXPECT_EQ(anyone("POST", "/api/v1/consent/handoff/register", card).status, 400);
    EXPECT_EQ(state(h), "claimed") << "nothing of the failed registration was kept";
    card["challenge_id"] = "0123456789abcdef0123456789abcdef";
    EXPECT_EQ(body(anyone("POST", "/api/v1/consent/handoff/register", card))["field"], "challenge_id")
        << "only the hand-off's own challenge";
    card["challenge_id"] = ch["challenge_id"];
    card["signature"] = cards->sign(1, ch["challenge"]);
    ASSERT_EQ(anyone("POST", "/api/v1/consent/handoff/register", card).status, 201);
    EXPECT_EQ(state(h), "done");
}

TEST_F(Handoff, WrongCodesSlowDownTheirClaimantOnlyNeverTheFacility) {
    json const h = start();
    std::string const wrong = h["code"] == "000000" ? "000001" : "000000";
    Caller const stranger = from("203.0.113.7");
    for (int i = 0; i < handoffs->max_failures; ++i) {
        auto r = call(stranger, "POST", "/api/v1/consent/handoff/claim", json{{"token", tokens[0]}, {"code", wrong}});
        EXPECT_EQ(r.status, 404);
        EXPECT_EQ(body(r)["field"], "code") << "the page says the code is wrong";
        clock.advance(30s);
    }
    auto r = call(stranger, "POST", "/api/v1/consent/handoff/claim", json{{"token", tokens[0]}, {"code", h["code"]}});
    EXPECT_EQ(r.status, 429) << "after 5 wrong codes even the right one waits, for this claimant";
    // Until the first wrong code leaves the 10 minutes: 450 s (less the real time this test took, at most a few s).
    EXPECT_GE(std::stoi(retry_after(r)), 440);
    EXPECT_LE(std::stoi(retry_after(r)), 450);
    EXPECT_NE(body(r)["message_ja"].get<std::string>().find("8分ほど待って"), std::string::npos)
        << body(r)["message_ja"];
    // The staff's device elsewhere (another address) is not held back by the stranger: before, the whole facility
    // waited.
    auto staff = call(from("198.51.100.20"), "POST", "/api/v1/consent/handoff/claim",
                      json{{"token", tokens[0]}, {"code", h["code"]}});
    EXPECT_EQ(staff.status, 200) << staff.body;
    // Nor the facility's own office terminal, even at the stranger's address, nor the stranger at another facility.
    json const second = start();
    Caller terminal = office();
    terminal.client = stranger.client;
    EXPECT_EQ(call(terminal, "POST", "/api/v1/consent/handoff/claim",
                   json{{"token", tokens[0]}, {"code", second["code"]}})
                  .status,
              200);
    json const other = start(1);
    EXPECT_EQ(call(stranger, "POST", "/api/v1/consent/handoff/claim",
                   json{{"token", tokens[1]}, {"code", other["code"]}})
                  .status,
              200)
        << "another facility is not slowed down";
    // IPv6: the budget is the /64's, not one address's.
    Caller const v6a = from("2001:db8:1:2::1"), v6b = from("2001:db8:1:2:ffff::9");
    for (int i = 0; i < handoffs->max_failures; ++i)
        call(v6a, "POST", "/api/v1/consent/handoff/claim", json{{"token", tokens[0]}, {"code", wrong}});
    EXPECT_EQ(call(v6b, "POST", "/api/v1/consent/handoff/claim", json{{"token", tokens[0]}, {"code", wrong}}).status,
              429);
    clock.advance(handoffs->failure_window);
    json const third = start();
    EXPECT_EQ(call(stranger, "POST", "/api/v1/consent/handoff/claim",
                   json{{"token", tokens[0]}, {"code", third["code"]}})
                  .status,
              200);
    EXPECT_EQ(anyone("POST", "/api/v1/consent/handoff/claim", json{{"token", tokens[0]}, {"code", "12345"}}).status,
              400)
        << "6 digits";
}

TEST_F(Handoff, StrangersWithTheURLCannotFillTheFacilitysHandoffs) {
    // One client: at most max_open_per_client open at a facility; 429 with Retry-After and a plain Japanese next step.
    json choices = phone_choices();
    Caller const stranger = from("203.0.113.7");
    for (int i = 0; i < handoffs->max_open_per_client; ++i) {
        ASSERT_EQ(call(stranger, "POST", "/api/v1/consent/handoff", choices).status, 201);
        clock.advance(10s);
    }
    auto r = call(stranger, "POST", "/api/v1/consent/handoff", choices);
    ASSERT_EQ(r.status, 429) << r.body;
    // When its first one ends: claim_within less the 50 s gone (and the real time this test took, at most a few s).
    long const first_ends = long(std::chrono::seconds(handoffs->claim_within).count()) - 50;
    EXPECT_GE(std::stol(retry_after(r)), first_ends - 10);
    EXPECT_LE(std::stol(retry_after(r)), first_ends);
    EXPECT_NE(body(r)["message_ja"].get<std::string>().find("5分ほど待って"), std::string::npos)
        << body(r)["message_ja"];
    EXPECT_EQ(call(from("198.51.100.20"), "POST", "/api/v1/consent/handoff", choices).status, 201)
        << "a patient elsewhere is not held back";
    EXPECT_EQ(call(stranger, "POST", "/api/v1/consent/handoff", phone_choices(1)).status, 201)
        << "nor the same client at another facility";
    // Unclaimed, a code lives claim_within: the stranger's are gone within minutes, and its budget is back.
    clock.advance(handoffs->claim_within);
    EXPECT_EQ(call(stranger, "POST", "/api/v1/consent/handoff", choices).status, 201);

    // The facility's cap of unclaimed hand-offs: a flood from clients holding several gives way to a patient's.
    handoffs->max_open = 8;
    clock.advance(handoffs->claim_within + 1s);
    std::vector<json> flood;
    for (int i = 0; i < 8; ++i) {
        flood.push_back(
            body(call(from("203.0.113." + std::to_string(10 + i % 2)), "POST", "/api/v1/consent/handoff", choices)));
        clock.advance(1s);
    }
    auto patient = call(from("198.51.100.30"), "POST", "/api/v1/consent/handoff", choices);
    ASSERT_EQ(patient.status, 201) << patient.body;
    EXPECT_EQ(state(flood[0]), "cancelled") << "the flood's oldest made room";
    EXPECT_EQ(state(body(patient)), "waiting");
    for (int i = 0; i < 20; ++i)
        call(from("203.0.113." + std::to_string(10 + i % 2)), "POST", "/api/v1/consent/handoff", choices);
    EXPECT_EQ(state(body(patient)), "waiting") << "the flood churns among itself; the patient's single hand-off stays";
    // Clients with one each fill the cap only with as many addresses as places: then 429, and the office still starts
    // one.
    clock.advance(handoffs->claim_within + 1s);
    for (int i = 0; i < 8; ++i)
        ASSERT_EQ(call(from("192.0.2." + std::to_string(100 + i)), "POST", "/api/v1/consent/handoff", choices).status,
                  201);
    auto full = call(from("198.51.100.31"), "POST", "/api/v1/consent/handoff", choices);
    EXPECT_EQ(full.status, 429);
    EXPECT_FALSE(retry_after(full).empty());
    EXPECT_EQ(call(office(), "POST", "/api/v1/consent/handoff", choices).status, 201)
        << "the facility's own terminal is never locked out";
}

// Outsider 24, F2: a certificate of a モバイル端末 (or an unlabelled one) was never held back, as if it were the
// office. It is counted by its address like anyone; only the facility's office terminals are exempt.
TEST_F(Handoff, AMobileCertificateHasTheBudgetOfItsAddress) {
    json const choices = phone_choices();
    Caller mobile = office();
    mobile.terminal = "モバイル端末";
    mobile.client = "203.0.113.9";
    for (int i = 0; i < handoffs->max_open_per_client; ++i)
        ASSERT_EQ(call(mobile, "POST", "/api/v1/consent/handoff", choices).status, 201);
    EXPECT_EQ(call(mobile, "POST", "/api/v1/consent/handoff", choices).status, 429);
    Caller terminal = office();
    terminal.client = mobile.client;  // the office at the same address is not held back
    EXPECT_EQ(call(terminal, "POST", "/api/v1/consent/handoff", choices).status, 201);
}

TEST_F(Handoff, AHandoffTheRulesWouldRefuseIsNeverStarted) {
    // Online care while the facility's 環境設定 has it off: refused by the rules' service decision, as the
    // registration would be, before any code is given out.
    json online = phone_choices();
    online["visit_kind"] = "オンライン診療";
    online["appointment_date"] = "2024-11-06";
    online["to"] = "computer";
    auto off = anyone("POST", "/api/v1/consent/handoff", online);
    EXPECT_EQ(off.status, 409) << off.body;
    EXPECT_EQ(body(off)["field"], "visit_kind");
    Caller manager = office();
    manager.role = Caller::Role::manager;
    ASSERT_EQ(call(manager, "PUT", "/api/v1/settings",
                   json{{"terms_agreed", true}, {"home_visit_enabled", true}, {"online_enabled", true}})
                  .status,
              200);
    auto on = anyone("POST", "/api/v1/consent/handoff", online);
    EXPECT_EQ(on.status, 201) << on.body;
    // To the staff's device only when the rules have staff there (let 職員がいる: 訪問診療等, not online care).
    online["to"] = "staff";
    auto nobody = anyone("POST", "/api/v1/consent/handoff", online);
    EXPECT_EQ(nobody.status, 409) << nobody.body;
    EXPECT_EQ(body(nobody)["field"], "to");
    // The rules' 診療予約日 too: online care needs one, within the days the rules accept.
    online["to"] = "computer";
    online.erase("appointment_date");
    EXPECT_EQ(body(anyone("POST", "/api/v1/consent/handoff", online))["field"], "appointment_date");
}

TEST(HandoffClients, AClientIsItsIPv4AddressOrItsIPv6Slash64) {
    EXPECT_EQ(client_key("192.0.2.1"), "192.0.2.1");
    EXPECT_EQ(client_key("::ffff:192.0.2.1"), "192.0.2.1");
    EXPECT_EQ(client_key("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
    EXPECT_EQ(client_key("2001:db8:1:2:ffff::"), client_key("2001:db8:1:2::1"));
    EXPECT_NE(client_key("2001:db8:1:3::1"), client_key("2001:db8:1:2::1"));
}

TEST(HandoffClients, APROXYHeaderFromABalancerNamesTheClient) {
    EXPECT_EQ(proxy_v1_source("PROXY TCP4 203.0.113.7 10.0.0.11 56324 443\r\n"), "203.0.113.7");
    EXPECT_EQ(proxy_v1_source("PROXY TCP6 2001:db8::1 2001:db8::2 56324 443\r\n"), "2001:db8::1");
    EXPECT_EQ(proxy_v1_source("PROXY UNKNOWN\r\n"), "") << "the balancer's own check: its address stands";
    EXPECT_EQ(proxy_v1_source("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"), "");
    for (char const* bad :
         {"PROXY TCP4 203.0.113.7 10.0.0.11 56324 443\n", "PROXY TCP4 not-an-address 10.0.0.11 1 2\r\n",
          "PROXY TCP4 2001:db8::1 10.0.0.11 1 2\r\n", "PROXY TCP5 203.0.113.7 10.0.0.11 1 2\r\n",
          "PROXY TCP4 203.0.113.7\r\n", "GET / HTTP/1.1\r\n", "\x16\x03\x01\x02\x00\r\n"})
        EXPECT_EQ(proxy_v1_source(bad), std::nullopt) << bad;
    EXPECT_EQ(proxy_v1_source("PROXY TCP4 203.0.113.7 10.0.0.11 56324 443" + std::string(80, ' ') + "\r\n"),
              std::nullopt)
        << "107 bytes at most";
}

TEST_F(Handoff, CodesExpireAndThePhoneCanTakeItsHandoffBack) {
    json const old = start();
    clock.advance(handoffs->claim_within + 1s);
    EXPECT_EQ(state(old), "expired");
    EXPECT_EQ(anyone("POST", "/api/v1/consent/handoff/claim", json{{"token", tokens[0]}, {"code", old["code"]}}).status,
              404);
    json const h = start();
    EXPECT_EQ(body(anyone("POST", "/api/v1/consent/handoff/" + h["handoff_id"].get<std::string>() + "/cancel",
                          json::object()))["state"],
              "cancelled");
    EXPECT_EQ(anyone("POST", "/api/v1/consent/handoff/claim", json{{"token", tokens[0]}, {"code", h["code"]}}).status,
              404);
    EXPECT_EQ(anyone("GET", "/api/v1/consent/handoff/0123456789abcdef0123456789abcdef").status, 404);
    // A code is the facility's: another facility's URL does not find it.
    json const mine = start();
    EXPECT_EQ(anyone("POST", "/api/v1/consent/handoff/claim", json{{"token", tokens[1]}, {"code", mine["code"]}})
                  .status,
              404);
}

TEST_F(Handoff, ACodeMustBeClaimedSoonAndTheClaimGivesTheCardStepItsOwnTime) {
    // To the staff: claimed within claim_within, then lifetime from the claim.
    json const staff = start();
    clock.advance(handoffs->claim_within - 1s);
    auto claimed = anyone("POST", "/api/v1/consent/handoff/claim", json{{"token", tokens[0]}, {"code", staff["code"]}});
    ASSERT_EQ(claimed.status, 200) << claimed.body;
    clock.advance(handoffs->lifetime - 2s);
    EXPECT_EQ(state(staff), "claimed") << "the card step's time runs from the claim, past the unclaimed life";
    clock.advance(3s);
    EXPECT_EQ(state(staff), "expired");
    // To a computer: longer to claim (the computer may be in another house), and longer for the card step.
    json choices = phone_choices();
    choices["to"] = "computer";
    auto r = anyone("POST", "/api/v1/consent/handoff", choices);
    ASSERT_EQ(r.status, 201) << r.body;
    json const h = body(r);
    clock.advance(handoffs->claim_within + 1s);
    EXPECT_EQ(state(h), "waiting") << "a staff hand-off would have expired by now";
    clock.advance(handoffs->computer_claim_within - handoffs->claim_within - 2s);
    claimed = anyone("POST", "/api/v1/consent/handoff/claim", json{{"token", tokens[0]}, {"code", h["code"]}});
    ASSERT_EQ(claimed.status, 200) << claimed.body;
    EXPECT_EQ(body(claimed)["choices"]["visit_kind"], "訪問診療");
    clock.advance(handoffs->computer_lifetime - 1s);
    EXPECT_EQ(state(h), "claimed");
    clock.advance(2s);
    EXPECT_EQ(state(h), "expired");
    json const unclaimed = body(anyone("POST", "/api/v1/consent/handoff", choices));
    clock.advance(handoffs->computer_claim_within + 1s);
    EXPECT_EQ(state(unclaimed), "expired") << "an unclaimed continuation does not live its 2 hours";
    choices["to"] = "tablet";
    auto refused = anyone("POST", "/api/v1/consent/handoff", choices);
    EXPECT_EQ(refused.status, 400);
    EXPECT_EQ(body(refused)["field"], "to");
    choices["to"] = "staff";
    json const explicit_staff = body(anyone("POST", "/api/v1/consent/handoff", choices));
    clock.advance(handoffs->claim_within + 1s);
    EXPECT_EQ(state(explicit_staff), "expired") << "\"staff\" is the default's lifetime";
}

TEST_F(Handoff, EveryRouteTakesItsDocumentedFieldsOnly) {
    json with_pin = phone_choices();
    with_pin["pinCode"] = "1234";
    auto r = anyone("POST", "/api/v1/consent/handoff", with_pin);
    EXPECT_EQ(r.status, 400);
    EXPECT_EQ(r.body.find("1234"), std::string::npos) << "a PIN is never echoed";
    json dated = phone_choices();
    dated["visit_date"] = "2099-01-01";
    EXPECT_EQ(body(anyone("POST", "/api/v1/consent/handoff", dated))["field"], "visit_date")
        << "the server dates the consent itself";
    json odd = phone_choices();
    odd["visit_kind"] = "散歩";
    EXPECT_EQ(body(anyone("POST", "/api/v1/consent/handoff", odd))["field"], "visit_kind");
    odd = phone_choices();
    odd["items"] = {"暗証番号"};
    EXPECT_EQ(body(anyone("POST", "/api/v1/consent/handoff", odd))["field"], "items");
    odd = phone_choices();
    odd["token"] = "not-a-token";
    EXPECT_EQ(anyone("POST", "/api/v1/consent/handoff", odd).status, 404);
    EXPECT_EQ(body(anyone("POST", "/api/v1/consent/handoff/claim",
                          json{{"token", tokens[0]}, {"code", "123456"}, {"pin", "1234"}}))["field"],
              "pin");
}

// Issue 24 item 1: the hand-off path asks the rules what the facility's kind offers, like every registration path:
// a 医科's URL cannot register a 歯科訪問診療 consent, whatever the phone sent (409 naming visit_kind, the rule's
// reason). Item 7: the staff's device answers whether it was a preparatory visit, and the registry records it.
TEST_F(Handoff, TheStaffsDeviceRegistersOnlyWhatTheFacilityKindOffersAndSaysWhetherItWasAPreparatoryVisit) {
    json choices = phone_choices();
    choices["visit_kind"] = "歯科訪問診療";
    // Refused when the hand-off is started (issue 25: the hand-off asks the rules what registration would), with the
    // rule's reason; the phone never gets a number for it.
    auto refused = anyone("POST", "/api/v1/consent/handoff", choices);
    EXPECT_EQ(refused.status, 409) << refused.body;
    EXPECT_EQ(body(refused)["field"], "visit_kind");
    EXPECT_NE(body(refused)["message_ja"].get<std::string>().find("医科 は 歯科訪問診療 を行う施設区分ではありません"),
              std::string::npos)
        << refused.body;
    EXPECT_FALSE(body(refused)["message_en"].get<std::string>().empty()) << refused.body;
    EXPECT_FALSE(body(refused).contains("code"));

    json const h2 = start();
    auto claim2 =
        body(anyone("POST", "/api/v1/consent/handoff/claim", json{{"token", tokens[0]}, {"code", h2["code"]}}));
    auto ch2 = body(
        anyone("POST", "/api/v1/consent/handoff/challenge", json{{"token", tokens[0]}, {"claim", claim2["claim"]}}));
    json card2{{"token", tokens[0]},
               {"claim", claim2["claim"]},
               {"challenge_id", ch2["challenge_id"]},
               {"certificate", cards->certificate(1)},
               {"signature", cards->sign(1, ch2["challenge"])},
               {"preparatory_visit", true}};
    auto registered = anyone("POST", "/api/v1/consent/handoff/register", card2);
    ASSERT_EQ(registered.status, 201) << registered.body;
    Caller admin;
    admin.kind = Caller::Kind::admin;
    auto consents = body(call(admin, "GET", "/api/v1/admin/consents?facility_code=0110113719"));
    ASSERT_EQ(consents.size(), 1u);
    EXPECT_EQ(consents[0]["preparatory_visit"], true);
}
