// The consent desk: the consent page's facility and files, and the registration of a consent the card verified.
#include "../server_fixture.hpp"

namespace {
std::string slurp_file(std::string const& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}
std::vector<unsigned char> bytes_of(std::string const& s) { return std::vector<unsigned char>(s.begin(), s.end()); }

// A test PKI with a card CA and two cards, made once by the project's script.
struct CardPki {
    std::string dir;
    CardPki() {
        char tmpl[] = "/tmp/kyotaku-cards.XXXXXX";
        dir = mkdtemp(tmpl);
        std::string cmd = std::string(KYOTAKU_SOURCE_DIR "/scripts/make-test-pki ") + dir + " > /dev/null";
        if (std::system(cmd.c_str()) != 0) throw std::runtime_error("make-test-pki failed");
    }
    ~CardPki() { std::system(("rm -rf " + dir).c_str()); }
    std::string der_b64(int card) const {
        std::system(
            ("openssl x509 -in " + dir + "/card-" + std::to_string(card) + ".pem -outform DER -out " + dir + "/c.der")
                .c_str());
        return base64_encode(bytes_of(slurp_file(dir + "/c.der")));
    }
    // What the card returns for COMPUTE DIGITAL SIGNATURE over the challenge: RSA PKCS#1 v1.5 of SHA-256.
    std::string sign_b64(int card, std::string const& challenge_b64) const {
        auto challenge = base64_decode(challenge_b64);
        std::ofstream(dir + "/challenge.bin", std::ios::binary)
            .write(reinterpret_cast<char const*>(challenge->data()), std::streamsize(challenge->size()));
        std::system(("openssl dgst -sha256 -sign " + dir + "/card-" + std::to_string(card) + ".key -out " + dir +
                     "/sig.bin " + dir + "/challenge.bin")
                        .c_str());
        return base64_encode(bytes_of(slurp_file(dir + "/sig.bin")));
    }
};
}  // namespace

class ConsentRegistration : public ServerFixture {
protected:
    static inline CardPki* pki = nullptr;
    static void SetUpTestSuite() { pki = new CardPki(); }
    static void TearDownTestSuite() { delete pki; }
    std::string token;
    void SetUp() override {
        ServerFixture::SetUp();
        service->context.card_ca = pki->dir + "/card-ca.pem";
        enable(a);
        key = person();
        ASSERT_EQ(call(admin, "POST", "/api/v1/admin/cards",
                       json{{"person_key", key}, {"certificate", slurp_file(pki->dir + "/card-1.pem")}}.dump())
                      .status,
                  201);
        auto url = body(call(a, "GET", "/api/v1/url"))["url"].get<std::string>();
        token = url.substr(url.find("/c/") + 3);
    }
    // A challenge issued on `date` (the server's clock; the registration that follows happens the same day).
    json challenge(char const* date = "2024-04-15") {
        today(date);
        auto r = call(Caller{}, "POST", "/api/v1/consent/challenge", json{{"token", token}}.dump());
        EXPECT_EQ(r.status, 201) << r.body;
        return body(r);
    }
    // A registration as the page sends it (the page names no date: the server's clock decides the first visit).
    json registration(json const& ch, int card = 1, int signer = 1, char const* method = "暗証番号") {
        return json{{"token", token},
                    {"challenge_id", ch["challenge_id"]},
                    {"certificate", pki->der_b64(card)},
                    {"signature", pki->sign_b64(signer, ch["challenge"])},
                    {"identity_method", method},
                    {"visit_kind", "訪問診療"},
                    {"items", {"薬剤情報", "診療情報"}}};
    }
    std::string key;
};

TEST_F(ServerFixture, TheConsentPageLearnsItsFacilityAndGetsItsFilesAndTheServersRules) {
    pages.emplace(test_web_root());
    auto url = body(call(b, "GET", "/api/v1/url"))["url"].get<std::string>();
    std::string token = url.substr(url.find("/c/") + 3);
    auto info = call(Caller{}, "GET", "/api/v1/consent/page?token=" + token);
    ASSERT_EQ(info.status, 200) << info.body;
    EXPECT_EQ(body(info)["facility_name"], "B");
    EXPECT_EQ(body(info)["facility_kind"], "訪問看護ステーション");
    EXPECT_EQ(body(info)["home_care_feature"], false);
    // Today is the server's clock (Japan's calendar day), never the page's.
    EXPECT_EQ(body(info)["today"], "2024-07-31");
    today("2024-12-03");
    EXPECT_EQ(body(call(Caller{}, "GET", "/api/v1/consent/page?token=" + token))["today"], "2024-12-03");
    enable(b);
    EXPECT_EQ(body(call(Caller{}, "GET", "/api/v1/consent/page?token=" + token))["home_care_feature"], true);
    EXPECT_EQ(call(Caller{}, "GET", "/api/v1/consent/page?token=garbage").status, 404);
    EXPECT_EQ(call(Caller{}, "GET", "/api/v1/consent/page").status, 400);
    // Files: plain names with a known type only; the page and its assets say not to leak the token.
    auto js = call(Caller{}, "GET", "/web/app.js");
    EXPECT_EQ(js.status, 200);
    EXPECT_EQ(js.content_type, "text/javascript; charset=utf-8");
    bool referrer = false, csp = false;
    for (auto const& [k, v] : js.headers) {
        referrer = referrer || (k == "Referrer-Policy" && v == "no-referrer");
        if (k == "Content-Security-Policy")
            csp = v.find("default-src 'self'") != std::string::npos && v.find("'unsafe-eval'") == std::string::npos &&
                  v.find("'unsafe-inline'") == std::string::npos;
    }
    EXPECT_TRUE(referrer);
    EXPECT_TRUE(csp) << "own origin only, no eval, no inline script";
    for (char const* bad :
         {"/web/secret.txt", "/web/../service_test.cpp", "/web/.hidden.js", "/web/nope.js", "/web/a%2Fb.js", "/web/"})
        EXPECT_EQ(call(Caller{}, "GET", bad).status, 404) << bad;
    EXPECT_EQ(call(Caller{}, "POST", "/web/app.js").status, 405);
    // The bundle is the server's own rules.
    auto bundle = call(Caller{}, "GET", "/web/rules.bundle");
    ASSERT_EQ(bundle.status, 200);
    auto loaded = load_bundle(bundle.body);
    ASSERT_TRUE(loaded.program) << loaded.describe();
    EXPECT_GE(loaded.program->find_slot("同意の選択肢一覧"), 0);
}

TEST_F(ConsentRegistration, TheCardsSignatureRegistersAConsentThatAllowsReinquiry) {
    auto ch = challenge();
    auto r = call(Caller{}, "POST", "/api/v1/consent/register", registration(ch).dump());
    ASSERT_EQ(r.status, 201) << r.body;
    EXPECT_TRUE(body(call(a, "POST", "/api/v1/reinquiry", on("2024-07-31")))["allowed"].get<bool>());
}

TEST_F(ConsentRegistration, RetryIsIdempotentAndReplayIsRefused) {
    auto ch = challenge();
    json req = registration(ch);
    auto first = call(Caller{}, "POST", "/api/v1/consent/register", req.dump());
    ASSERT_EQ(first.status, 201) << first.body;
    auto again = call(Caller{}, "POST", "/api/v1/consent/register", req.dump());
    EXPECT_EQ(again.status, 200);
    EXPECT_EQ(body(again)["consent_id"], body(first)["consent_id"]);
    json other = req;
    other["items"] = {"手術情報"};
    EXPECT_EQ(call(Caller{}, "POST", "/api/v1/consent/register", other.dump()).status, 409);
    EXPECT_EQ(body(call(admin, "GET", "/api/v1/admin/consents?facility_code=0110113719")).size(), 1u);
}

TEST_F(ConsentRegistration, ForgedSignaturesAndUnknownCardsAreRefused) {
    auto ch = challenge();
    auto wrong_key = call(Caller{}, "POST", "/api/v1/consent/register", registration(ch, 1, 2).dump());
    EXPECT_EQ(wrong_key.status, 400);
    EXPECT_EQ(body(wrong_key)["field"], "signature");
    auto unknown_card = call(Caller{}, "POST", "/api/v1/consent/register", registration(challenge(), 2, 2).dump());
    EXPECT_EQ(unknown_card.status, 400);
    EXPECT_EQ(body(unknown_card)["field"], "certificate");
    json not_a_card = registration(challenge());
    not_a_card["certificate"] = base64_encode(bytes_of("not a certificate"));
    EXPECT_EQ(body(call(Caller{}, "POST", "/api/v1/consent/register", not_a_card.dump()))["field"], "certificate");
    json other_challenge = registration(ch);
    other_challenge["challenge_id"] = "0000";
    EXPECT_EQ(body(call(Caller{}, "POST", "/api/v1/consent/register", other_challenge.dump()))["field"],
              "challenge_id");
    EXPECT_EQ(body(call(admin, "GET", "/api/v1/admin/consents?facility_code=0110113719")).size(), 0u);
}

TEST_F(ConsentRegistration, VisualCheckNeedsTheDateAndAOneTimePasscode) {
    // Before 2024-10-01 the rules allow 暗証番号 only.
    auto early = call(Caller{}, "POST", "/api/v1/consent/register",
                      registration(challenge("2024-09-30"), 1, 1, "目視確認").dump());
    EXPECT_EQ(early.status, 400);
    EXPECT_EQ(body(early)["field"], "identity_method");
    // From 2024-10-01, with a passcode an office terminal obtained; once only.
    json req = registration(challenge("2024-10-01"), 1, 1, "目視確認");
    EXPECT_EQ(body(call(Caller{}, "POST", "/api/v1/consent/register", req.dump()))["field"], "visual_passcode");
    auto passcode = body(call(a, "POST", "/api/v1/visual-passcode"))["passcode"].get<std::string>();
    EXPECT_EQ(call(Caller{}, "POST", "/api/v1/visual-passcode").status, 403);  // the page itself cannot get one
    req = registration(challenge("2024-10-01"), 1, 1, "目視確認");
    req["visual_passcode"] = passcode;
    auto ok = call(Caller{}, "POST", "/api/v1/consent/register", req.dump());
    EXPECT_EQ(ok.status, 201) << ok.body;
    json reuse = registration(challenge("2024-10-01"), 1, 1, "目視確認");
    reuse["visual_passcode"] = passcode;
    EXPECT_EQ(body(call(Caller{}, "POST", "/api/v1/consent/register", reuse.dump()))["field"], "visual_passcode");
    // Another facility's passcode does not work here.
    auto other = body(call(b, "POST", "/api/v1/visual-passcode"))["passcode"].get<std::string>();
    json foreign = registration(challenge("2024-10-01"), 1, 1, "目視確認");
    foreign["visual_passcode"] = other;
    EXPECT_EQ(body(call(Caller{}, "POST", "/api/v1/consent/register", foreign.dump()))["field"], "visual_passcode");
}

TEST_F(ConsentRegistration, VisualCheckNeedsNoSignatureButThePinDoes) {
    // 目視確認 reads the certificate only (no PIN, so the card cannot sign): certificate + passcode register.
    json req = registration(challenge("2024-10-02"), 1, 1, "目視確認");
    req.erase("signature");
    req["visual_passcode"] = body(call(a, "POST", "/api/v1/visual-passcode"))["passcode"];
    auto ok = call(Caller{}, "POST", "/api/v1/consent/register", req.dump());
    EXPECT_EQ(ok.status, 201) << ok.body;
    // A certificate that does not chain to the card CA is refused even so.
    json forged = registration(challenge("2024-10-02"), 1, 1, "目視確認");
    forged.erase("signature");
    forged["certificate"] = "MIIB";
    forged["visual_passcode"] = body(call(a, "POST", "/api/v1/visual-passcode"))["passcode"];
    EXPECT_EQ(body(call(Caller{}, "POST", "/api/v1/consent/register", forged.dump()))["field"], "certificate");
    // 暗証番号 without the card's signature is refused, naming the field.
    json pin = registration(challenge("2024-10-02"), 1, 1, "暗証番号");
    pin.erase("signature");
    auto refused = call(Caller{}, "POST", "/api/v1/consent/register", pin.dump());
    EXPECT_EQ(refused.status, 400);
    EXPECT_EQ(body(refused)["field"], "signature");
}

TEST_F(ConsentRegistration, APinIsRefusedAndNeverStored) {
    json req = registration(challenge());
    req["pin"] = "1234";
    auto r = call(Caller{}, "POST", "/api/v1/consent/register", req.dump());
    EXPECT_EQ(r.status, 400);
    EXPECT_EQ(body(r)["field"], "pin");
    EXPECT_EQ(r.body.find("1234"), std::string::npos);
    json nested = json::parse(on("2024-05-01"));
    nested["extra"] = {{"card_pin", "1234"}};
    EXPECT_EQ(call(a, "POST", "/api/v1/reinquiry", nested.dump()).status, 400);
    // Nothing anywhere holds it.
    for (char const* table : {"consents", "inquiry_log", "challenges", "settings_audit", "viewing_log"})
        for (auto const& row : db->query(std::string("SELECT * FROM ") + table))
            for (auto const& v : row) {
                std::string t = as_text(v);
                bool random_id = t.size() >= 32 && t.find_first_not_of("0123456789abcdef") == std::string::npos;
                if (!random_id) EXPECT_EQ(t.find("1234"), std::string::npos) << table << ": " << t;
                EXPECT_EQ(t.find("\"pin\""), std::string::npos) << table;
            }
}

TEST_F(ConsentRegistration, AChangedUrlCannotRegister) {
    auto ch = challenge();
    call(a, "POST", "/api/v1/url/change");
    auto r = call(Caller{}, "POST", "/api/v1/consent/register", registration(ch).dump());
    EXPECT_EQ(r.status, 404);
    EXPECT_EQ(body(r)["field"], "token");
}

TEST_F(ConsentRegistration, TheFirstVisitIsTheServersDateAndTheAppointmentIsBoundedByTheRules) {
    // The page names no date: a visit_date is an unknown field.
    json with_date = registration(challenge("2024-05-07"), 1, 1, "暗証番号");
    with_date["visit_date"] = "2099-01-01";
    auto refused = call(Caller{}, "POST", "/api/v1/consent/register", with_date.dump());
    EXPECT_EQ(refused.status, 400);
    EXPECT_EQ(body(refused)["field"], "visit_date");
    json continuing = registration(challenge("2024-05-07"), 1, 1, "暗証番号");
    continuing["continuing_home_care"] = true;
    EXPECT_EQ(body(call(Caller{}, "POST", "/api/v1/consent/register", continuing.dump()))["field"],
              "continuing_home_care");
    auto ok = call(Caller{}, "POST", "/api/v1/consent/register",
                   registration(challenge("2024-05-07"), 1, 1, "暗証番号").dump());
    ASSERT_EQ(ok.status, 201) << ok.body;
    EXPECT_EQ(body(ok)["first_visit"], "2024-05-07");
    EXPECT_EQ(body(call(admin, "GET", "/api/v1/admin/consents?facility_code=0110113719"))[0]["first_visit"],
              "2024-05-07");
    // Online care: the 診療予約日 is required, today or later, and not beyond the rules' 90 days.
    ASSERT_EQ(call(a, "PUT", "/api/v1/settings", R"({"online_enabled":true})").status, 200);
    auto online = [&](char const* appointment) {
        json r = registration(challenge("2024-05-07"), 1, 1, "暗証番号");
        r["visit_kind"] = "オンライン診療";
        if (appointment) r["appointment_date"] = appointment;
        return call(Caller{}, "POST", "/api/v1/consent/register", r.dump());
    };
    EXPECT_EQ(body(online(nullptr))["field"], "appointment_date");
    EXPECT_EQ(body(online("2024-05-06"))["field"], "appointment_date");
    auto far = online("2024-08-06");
    EXPECT_EQ(body(far)["field"], "appointment_date");
    EXPECT_NE(body(far)["error"].get<std::string>().find("90 日より先"), std::string::npos) << far.body;
    EXPECT_EQ(online("2024-08-05").status, 201);
    // A 診療予約日 on a kind that has none is refused too.
    json home = registration(challenge("2024-05-07"), 1, 1, "暗証番号");
    home["appointment_date"] = "2024-05-10";
    EXPECT_EQ(body(call(Caller{}, "POST", "/api/v1/consent/register", home.dump()))["field"], "appointment_date");
}

// What a facility kind offers (item 1): the card path asks the rules (service_available, which asks 施設の診療区分) and
// refuses a 診療区分 the kind does not offer with the rule's reason, before anything about the card is looked up.
TEST_F(ConsentRegistration, AVisitKindTheFacilityKindDoesNotOfferIsRefusedWithTheRulesReason) {
    ASSERT_EQ(call(b, "PUT", "/api/v1/settings", R"({"terms_agreed":true,"home_visit_enabled":true})").status, 200);
    auto url = body(call(b, "GET", "/api/v1/url"))["url"].get<std::string>();
    std::string const station = url.substr(url.find("/c/") + 3);
    for (char const* kind : {"訪問診療", "往診", "歯科訪問診療"}) {
        json req = registration(challenge("2024-07-01"));
        auto ch = call(Caller{}, "POST", "/api/v1/consent/challenge", json{{"token", station}}.dump());
        ASSERT_EQ(ch.status, 201);
        req["token"] = station;
        req["challenge_id"] = body(ch)["challenge_id"];
        req["signature"] = pki->sign_b64(1, body(ch)["challenge"]);
        req["visit_kind"] = kind;
        auto r = call(Caller{}, "POST", "/api/v1/consent/register", req.dump());
        EXPECT_EQ(r.status, 409) << kind << r.body;
        EXPECT_EQ(body(r)["field"], "visit_kind");
        EXPECT_NE(body(r)["message_ja"].get<std::string>().find(std::string("訪問看護ステーション は ") + kind +
                                                                " を行う施設区分ではありません"),
                  std::string::npos)
            << r.body;
    }
    EXPECT_EQ(body(call(admin, "GET", "/api/v1/admin/consents?facility_code=2714206386")).size(), 0u);
    // The station's own kind registers.
    auto ch = call(Caller{}, "POST", "/api/v1/consent/challenge", json{{"token", station}}.dump());
    json req = registration(body(ch));
    req["token"] = station;
    req["signature"] = pki->sign_b64(1, body(ch)["challenge"]);
    req["visit_kind"] = "訪問看護";
    EXPECT_EQ(call(Caller{}, "POST", "/api/v1/consent/register", req.dump()).status, 201);
}

// The consent page learns for which kinds the staff are asked (its page data), and the card path records the answer.
TEST_F(ConsentRegistration, TheStaffSayWhetherItWasAPreparatoryVisit) {
    auto page = body(call(Caller{}, "GET", "/api/v1/consent/page?token=" + token));
    EXPECT_NE(std::find(page["preparatory_kinds"].begin(), page["preparatory_kinds"].end(), "訪問診療"),
              page["preparatory_kinds"].end());
    EXPECT_EQ(std::find(page["preparatory_kinds"].begin(), page["preparatory_kinds"].end(), "往診"),
              page["preparatory_kinds"].end());
    json req = registration(challenge("2024-07-01"));
    req["preparatory_visit"] = true;
    ASSERT_EQ(call(Caller{}, "POST", "/api/v1/consent/register", req.dump()).status, 201);
    auto consents = body(call(admin, "GET", "/api/v1/admin/consents?facility_code=0110113719"));
    ASSERT_EQ(consents.size(), 1u);
    EXPECT_EQ(consents[0]["preparatory_visit"], true);
    json house_call = registration(challenge("2024-07-02"));
    house_call["visit_kind"] = "往診";
    house_call["preparatory_visit"] = true;
    auto refused = call(Caller{}, "POST", "/api/v1/consent/register", house_call.dump());
    EXPECT_EQ(refused.status, 400) << refused.body;
    EXPECT_EQ(body(refused)["field"], "preparatory_visit");
}
