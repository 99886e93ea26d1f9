// Card commands, the JPKI flow and the virtual card, in process (label `bridge`).
#include "kyotaku/card/apdu.hpp"
#include "kyotaku/card/jpki.hpp"
#include "kyotaku/card/native.hpp"
#include "kyotaku/card/virtual_card.hpp"
#include "kyotaku/card/vpcd.hpp"
#include "protocol.hpp"

#include <gtest/gtest.h>

#include <deque>
#include <filesystem>

using namespace kyotaku::card;
namespace fs = std::filesystem;

namespace {
fs::path const pki = KYOTAKU_BRIDGE_PKI;

std::unique_ptr<VirtualCard> test_card(VirtualCardOptions o = {}) {
    return make_virtual_card(VirtualCardFiles::test_card(pki, 1), std::move(o));
}

Bytes bytes(std::string_view hex) { return from_hex(hex); }

// A channel that replays scripted responses and records what was sent (for the transmit() chaining logic).
struct ScriptedChannel : Channel {
    std::deque<Bytes> responses;
    std::vector<Bytes> sent;
    Bytes transmit(ByteView apdu) override {
        sent.emplace_back(apdu.begin(), apdu.end());
        if (responses.empty()) throw CardError(ErrorKind::transport, "script ended");
        Bytes r = responses.front();
        responses.pop_front();
        return r;
    }
};
}  // namespace

TEST(Apdu, EncodesEveryCase) {
    EXPECT_EQ(to_hex(encode(Command{0x00, 0xA4, 0x04, 0x0C, {}, std::nullopt})), "00A4040C");           // case 1
    EXPECT_EQ(to_hex(encode(Command{0x00, 0xB0, 0x00, 0x00, {}, 256u})), "00B0000000");                  // 2S, Le=00
    EXPECT_EQ(to_hex(encode(Command{0x00, 0xB0, 0x00, 0x00, {}, 4u})), "00B0000004");
    EXPECT_EQ(to_hex(encode(jpki::select_ef(0x000A))), "00A4020C02000A");                                 // 3S
    EXPECT_EQ(to_hex(encode(jpki::select_jpki())), "00A4040C0AD392F000260100000001");
    EXPECT_EQ(to_hex(encode(Command{0x80, 0x2A, 0x00, 0x80, bytes("0102"), 256u})), "802A0080020102" "00");  // 4S
    EXPECT_EQ(to_hex(encode(Command{0x00, 0xB0, 0x00, 0x00, {}, 65536u})), "00B00000000000");            // 2E
    EXPECT_EQ(to_hex(encode(Command{0x00, 0xB0, 0x00, 0x00, {}, 300u})), "00B0000000012C");
    Bytes big(300, 0xAB);
    Bytes e3 = encode(Command{0x00, 0xD6, 0x00, 0x00, big, std::nullopt});                               // 3E
    EXPECT_EQ(to_hex(ByteView(e3).first(7)), "00D6000000012C");
    EXPECT_EQ(e3.size(), 7u + 300u);
    Bytes e4 = encode(Command{0x00, 0x2A, 0x00, 0x80, big, 65536u});                                      // 4E
    EXPECT_EQ(to_hex(ByteView(e4).last(2)), "0000");
    EXPECT_THROW(encode(Command{0, 0, 0, 0, {}, 0u}), CardError);
    EXPECT_THROW(encode(Command{0, 0, 0, 0, Bytes(70000), std::nullopt}), CardError);
}

TEST(Apdu, ParsesWhatItEncodes) {
    std::vector<Command> commands = {
        {0x00, 0xA4, 0x04, 0x0C, {}, std::nullopt},      {0x00, 0xB0, 0x01, 0x02, {}, 1u},
        {0x00, 0xB0, 0x01, 0x02, {}, 256u},              {0x00, 0x20, 0x00, 0x80, bytes("31323334"), std::nullopt},
        {0x80, 0x2A, 0x00, 0x80, Bytes(51, 7), 256u},    {0x00, 0xB0, 0x00, 0x00, {}, 65536u},
        {0x00, 0xB0, 0x00, 0x00, {}, 257u},              {0x00, 0xD6, 0x00, 0x00, Bytes(256, 1), std::nullopt},
        {0x00, 0x2A, 0x00, 0x80, Bytes(1000, 2), 65536u}, {0x00, 0x2A, 0x00, 0x80, Bytes(255, 3), 256u}};
    for (auto const& c : commands) EXPECT_EQ(parse_command(encode(c)), c) << to_hex(encode(c));
}

TEST(Apdu, RefusesMalformedCommandsNamingTheProblem) {
    auto message = [](std::string_view hex) {
        try {
            parse_command(from_hex(hex));
        } catch (CardError const& e) {
            EXPECT_EQ(e.kind(), ErrorKind::malformed);
            return std::string(e.what());
        }
        return std::string("accepted");
    };
    EXPECT_NE(message("00A404").find("shorter than the 4-byte header"), std::string::npos);
    EXPECT_NE(message("00A4040C05D392").find("Lc=5 but 2 bytes follow"), std::string::npos);
    EXPECT_NE(message("00A4040C00").find("accepted"), std::string::npos) << "case 2S with Le=00 (256)";
    EXPECT_NE(message("00B0000000FF").find("extended length marker"), std::string::npos);
    EXPECT_NE(message("00D60000000005AABB").find("extended Lc=5 but 2 bytes"), std::string::npos);
    EXPECT_NE(message("00D600000000000000").find("extended Lc of 0"), std::string::npos);
    EXPECT_NE(message("FFA4040C").find("CLA FF"), std::string::npos);
    EXPECT_THROW(parse_response(bytes("90")), CardError);
    EXPECT_THROW(from_hex("0G"), CardError);
    EXPECT_THROW(from_hex("012"), CardError);
}

TEST(Apdu, StatusWordsBecomeClearErrors) {
    auto kind = [](std::uint16_t sw) {
        try {
            check_status(Response{{}, sw}, "TEST");
        } catch (CardError const& e) {
            return e.kind();
        }
        return ErrorKind::busy;  // "no error" marker for the test
    };
    EXPECT_EQ(kind(0x9000), ErrorKind::busy);
    EXPECT_EQ(kind(0x6282), ErrorKind::busy);
    EXPECT_EQ(kind(0x6982), ErrorKind::security_status);
    EXPECT_EQ(kind(0x6984), ErrorKind::locked);
    EXPECT_EQ(kind(0x63C2), ErrorKind::wrong_pin);
    EXPECT_EQ(kind(0x63C0), ErrorKind::locked);
    EXPECT_EQ(kind(0x6A82), ErrorKind::not_found);
    EXPECT_EQ(kind(0x6700), ErrorKind::wrong_length);
    EXPECT_EQ(kind(0x6D00), ErrorKind::not_supported);
    EXPECT_EQ(kind(0x6FFF), ErrorKind::card_error);
    try {
        check_status(Response{{}, 0x63C1}, "VERIFY");
        FAIL();
    } catch (CardError const& e) {
        EXPECT_EQ(e.tries_left(), 1);
        EXPECT_NE(std::string(e.what()).find("残り1回"), std::string::npos);
        EXPECT_NE(std::string(e.what()).find("VERIFY: 63C1"), std::string::npos);
    }
}

// Errors as data: the Japanese and the English apart, from a status word to the bridge's answer.
TEST(Apdu, AnErrorKeepsItsJapaneseAndEnglishApartUpToTheBridgesAnswer) {
    try {
        check_status(Response{{}, 0x63C2}, "VERIFY");
        FAIL();
    } catch (CardError const& e) {
        EXPECT_EQ(e.message().ja, "VERIFY: 63C2: 暗証番号が違います（残り2回）");
        EXPECT_EQ(e.message().en, "VERIFY: 63C2: wrong PIN, 2 tries left");
        EXPECT_EQ(std::string(e.what()), e.message().text()) << "what() is the one-line text of both";
        auto const answer = nlohmann::json::parse(kyotaku::bridge::error(7, e));
        EXPECT_EQ(answer["id"], 7);
        EXPECT_EQ(answer["error"]["kind"], "wrong_pin");
        EXPECT_EQ(answer["error"]["tries_left"], 2);
        EXPECT_EQ(answer["error"]["message_ja"], e.message().ja);
        EXPECT_EQ(answer["error"]["message_en"], e.message().en);
        EXPECT_EQ(answer["error"]["message"], e.what()) << "message stays, for pages and integrators that read it";
    }
    try {
        (void)from_hex("0G");
        FAIL();
    } catch (CardError const& e) {
        EXPECT_EQ(e.message().ja, "16進数ではありません");
        EXPECT_EQ(e.message().en, "not hex at position 1");
    }
    CardError const english_only(ErrorKind::transport, "USB transfer larger than the buffer");
    EXPECT_EQ(english_only.message().ja, "") << "a developer's detail has no Japanese of its own";
    EXPECT_EQ(std::string(english_only.what()), "USB transfer larger than the buffer");
    auto const answer = nlohmann::json::parse(kyotaku::bridge::error(std::nullopt, english_only));
    EXPECT_EQ(answer["error"]["message_ja"], "");
    EXPECT_EQ(answer["error"]["message_en"], "USB transfer larger than the buffer");
    EXPECT_TRUE(answer["id"].is_null());
}

TEST(Apdu, FollowsGetResponseAndWrongLe) {
    ScriptedChannel ch;
    ch.responses = {bytes("0102 6103"), bytes("030405 9000")};
    Response r = transmit(ch, Command{0x00, 0xCA, 0x00, 0x00, {}, 256u});
    EXPECT_EQ(to_hex(r.data), "0102030405");
    EXPECT_EQ(r.sw, 0x9000);
    ASSERT_EQ(ch.sent.size(), 2u);
    EXPECT_EQ(to_hex(ch.sent[1]), "00C0000003");

    ScriptedChannel wrong_le;
    wrong_le.responses = {bytes("6C02"), bytes("AABB9000")};
    r = transmit(wrong_le, Command{0x00, 0xCA, 0x00, 0x00, {}, 256u});
    EXPECT_EQ(to_hex(r.data), "AABB");
    EXPECT_EQ(to_hex(wrong_le.sent[1]), "00CA000002");

    // A card that never ends its chain is cut off, not followed forever.
    struct Endless : Channel {
        Bytes transmit(ByteView) override { return from_hex("00 6101"); }
    } endless;
    EXPECT_THROW(transmit(endless, Command{0x00, 0xCA, 0x00, 0x00, {}, 256u}), CardError);
}

TEST(Jpki, DigestInfoAndDerHeader) {
    Bytes digest(32, 0x11);
    Bytes di = jpki::digest_info_sha256(digest);
    EXPECT_EQ(di.size(), 51u);
    EXPECT_EQ(to_hex(ByteView(di).first(19)), "3031300D060960864801650304020105000420");
    EXPECT_THROW(jpki::digest_info_sha256(Bytes(20)), CardError);
    EXPECT_EQ(jpki::der_total_length(bytes("308203 45")), 4u + 0x345);  // only the needed bytes are read
    EXPECT_EQ(jpki::der_total_length(bytes("3010")), 18u);
    EXPECT_EQ(jpki::der_total_length(bytes("308120")), 3u + 0x20);
    EXPECT_THROW(jpki::der_total_length(bytes("3180")), CardError);         // not a SEQUENCE
    EXPECT_THROW(jpki::der_total_length(bytes("3080")), CardError);         // indefinite
    EXPECT_THROW(jpki::der_total_length(bytes("3084FFFFFFFF")), CardError); // too many length bytes
    EXPECT_THROW(jpki::der_total_length(bytes("30827FFF")), CardError);     // larger than the limit
    EXPECT_THROW(jpki::der_total_length(bytes("3082")), CardError);         // cut short
}

TEST(Jpki, PinIsFourDigitsAndNeverEchoed) {
    EXPECT_NO_THROW(jpki::Pin::parse("0000"));
    for (std::string bad : {"123", "12345", "12a4", "１２３４", " 123"}) {
        try {
            jpki::Pin::parse(bad);
            FAIL() << bad;
        } catch (CardError const& e) {
            EXPECT_EQ(std::string(e.what()).find(bad), std::string::npos) << "the message must not repeat the input";
        }
    }
}

TEST(VirtualCard, ReadsTheCertificateSizedFromItsHeader) {
    auto card = test_card();
    InProcessChannel ch(*card);
    Bytes cert = jpki::read_certificate_only(ch);
    EXPECT_EQ(cert, load_certificate_der(pki / "card-1.pem"));
    EXPECT_TRUE(verify_chain(cert, load_certificate_der(pki / "card-ca.pem")));
    EXPECT_FALSE(verify_chain(cert, load_certificate_der(pki / "ca.pem"))) << "another CA must not vouch for it";
    jpki::Client client(ch);
    EXPECT_EQ(client.read_certificate(jpki::ef_auth_ca), load_certificate_der(pki / "card-ca.pem"));
}

TEST(VirtualCard, SignsAfterTheRightPinAndTheSignatureVerifies) {
    auto card = test_card();
    InProcessChannel ch(*card);
    Bytes const challenge = random_bytes(32);
    auto pin = jpki::Pin::parse("1234");
    jpki::Signed s = jpki::sign_challenge(ch, pin, sha256(challenge));
    EXPECT_EQ(s.signature.size(), 256u);
    EXPECT_TRUE(verify_signature(s.certificate, challenge, s.signature));
    Bytes other = challenge;
    other[0] ^= 1;
    EXPECT_FALSE(verify_signature(s.certificate, other, s.signature));
    EXPECT_EQ(card->pin_tries_left(), 3);
}

TEST(VirtualCard, ChainsLongAnswersWithGetResponse) {
    VirtualCardOptions o;
    o.max_response = 100;  // the 256-byte signature comes in three parts
    auto card = test_card(o);
    InProcessChannel ch(*card);
    std::size_t const before = card->commands_seen();
    jpki::Signed s = jpki::sign_challenge(ch, jpki::Pin::parse("1234"), sha256(Bytes{1, 2, 3}));
    EXPECT_TRUE(verify_signature(s.certificate, Bytes{1, 2, 3}, s.signature));
    EXPECT_GT(card->commands_seen() - before, 8u);
}

TEST(VirtualCard, WrongPinCountsDownAndLocksAfterThree) {
    auto card = test_card();
    InProcessChannel ch(*card);
    jpki::Client client(ch);
    EXPECT_EQ(client.pin_tries_left(), 3);
    EXPECT_EQ(client.pin_tries_left(), 3) << "reading the counter consumes no try";
    for (int expected = 2; expected >= 1; --expected) {
        try {
            client.verify_pin(jpki::Pin::parse("0000"));
            FAIL();
        } catch (CardError const& e) {
            EXPECT_EQ(e.kind(), ErrorKind::wrong_pin);
            EXPECT_EQ(e.tries_left(), expected);
        }
        EXPECT_EQ(client.pin_tries_left(), expected);
    }
    // The right PIN resets the counter.
    client.verify_pin(jpki::Pin::parse("1234"));
    card->reset();  // power cycle: a new session must select the application again
    EXPECT_THROW(client.pin_tries_left(), CardError) << "after a reset nothing is selected";
    client = jpki::Client(ch);
    EXPECT_EQ(client.pin_tries_left(), 3);
    for (int i = 0; i < 3; ++i) EXPECT_THROW(client.verify_pin(jpki::Pin::parse("9999")), CardError);
    try {
        client.verify_pin(jpki::Pin::parse("1234"));
        FAIL() << "a locked PIN must stay locked even when right";
    } catch (CardError const& e) {
        EXPECT_EQ(e.kind(), ErrorKind::locked);
    }
    EXPECT_EQ(client.pin_tries_left(), 0);
    Command sign = jpki::compute_signature(jpki::digest_info_sha256(Bytes(32)));
    EXPECT_EQ(parse_response(card->process(encode(jpki::select_ef(jpki::ef_auth_key)))).sw, 0x9000);
    EXPECT_EQ(parse_response(card->process(encode(sign))).sw, 0x6984);
}

TEST(VirtualCard, RefusesToSignWithoutThePinAndProtectsItsKey) {
    auto card = test_card();
    InProcessChannel ch(*card);
    jpki::Client client(ch);
    client.select_application();
    try {
        client.sign_digest_info(jpki::digest_info_sha256(Bytes(32)));
        FAIL();
    } catch (CardError const& e) {
        EXPECT_EQ(e.kind(), ErrorKind::security_status);
    }
    auto sw = [&](std::string_view hex) { return parse_response(card->process(from_hex(hex))).sw; };
    EXPECT_EQ(sw("00A4020C020017"), 0x9000);
    EXPECT_EQ(sw("00B0000000"), 0x6981) << "the private key is not readable";
    EXPECT_EQ(sw("00A4040C0AD392F000260100000002"), 0x6A82) << "unknown AID";
    EXPECT_EQ(sw("00A4020C020099"), 0x6A82);
    EXPECT_EQ(sw("00CA000000"), 0x6D00);
    EXPECT_EQ(sw("10A4040C"), 0x6E00);
    EXPECT_EQ(sw("00A4"), 0x6700) << "malformed bytes get a status word, not a crash";
    EXPECT_EQ(sw("00A4020C020000AABB"), 0x6700);
    // Selecting another application drops the verified state.
    client.verify_pin(jpki::Pin::parse("1234"));
    EXPECT_EQ(sw("00A4040C0AD3921000310001010408"), 0x9000);
    EXPECT_EQ(sw("00A4040C0AD392F000260100000001"), 0x9000);
    EXPECT_EQ(sw("00A4020C020017"), 0x9000);
    EXPECT_EQ(parse_response(card->process(encode(jpki::compute_signature(jpki::digest_info_sha256(Bytes(32)))))).sw,
              0x6982);
}

// The application as a real card presents it (docs/card.md: each behaviour and its source).
namespace {
struct Apdu {
    VirtualCard& card;
    Response operator()(std::string_view hex) { return parse_response(card.process(from_hex(hex))); }
    Response operator()(Command const& c) { return parse_response(card.process(encode(c))); }
};
Command verify(std::string_view secret) {
    return {0x00, 0x20, 0x00, 0x80, Bytes(secret.begin(), secret.end()), std::nullopt};
}
Command sign_command() { return jpki::compute_signature(jpki::digest_info_sha256(sha256(Bytes{'k'}))); }
bool touched_signature_side(VirtualCard const& card) {
    for (std::uint16_t fid : {jpki::ef_sign_certificate, jpki::ef_sign_ca, jpki::ef_sign_key, jpki::ef_sign_password})
        if (card.files_selected().count(fid)) return true;
    return false;
}
}  // namespace

TEST(VirtualCard, PresentsBothSidesAndTheTokenOfAMyNumberCard) {
    auto card = test_card();
    ASSERT_TRUE(card->has_signature_side());
    Apdu apdu{*card};
    EXPECT_EQ(apdu(jpki::select_jpki()).sw, 0x9000);
    for (std::uint16_t fid : {0x0006, 0x000A, 0x000B, 0x0017, 0x0018, 0x0001, 0x0002, 0x001A, 0x001B})
        EXPECT_EQ(apdu(jpki::select_ef(fid)).sw, 0x9000) << std::hex << fid;
    EXPECT_EQ(apdu(jpki::select_ef(0x0003)).sw, 0x6A82);
    EXPECT_EQ(apdu(jpki::select_ef(jpki::ef_token)).sw, 0x9000);
    Response token = apdu(jpki::read_binary(0, 32));
    EXPECT_EQ(token.sw, 0x9000);
    EXPECT_EQ(std::string(token.data.begin(), token.data.end()), "JPKIAPICCTOKEN2                 ");
    // The 署名用 CA certificate is public, as is the 利用者証明用 side's.
    InProcessChannel ch(*card);
    jpki::Client client(ch);
    EXPECT_EQ(client.read_certificate(jpki::ef_sign_ca), load_certificate_der(pki / "card-sign-ca.pem"));
    EXPECT_TRUE(
        verify_chain(load_certificate_der(pki / "card-1-sign.pem"), load_certificate_der(pki / "card-sign-ca.pem")));
    EXPECT_FALSE(
        verify_chain(load_certificate_der(pki / "card-1-sign.pem"), load_certificate_der(pki / "card-ca.pem")));
}

TEST(VirtualCard, ShowsTheSignatureCertificateOnlyAfterThePassword) {
    auto card = test_card();
    Apdu apdu{*card};
    InProcessChannel ch(*card);
    jpki::Client client(ch);
    try {
        client.read_certificate(jpki::ef_sign_certificate);
        FAIL() << "the 署名用電子証明書 was read without the password";
    } catch (CardError const& e) {
        EXPECT_EQ(e.status_word(), 0x6982);
    }
    // The 利用者証明用 PIN does not open it.
    EXPECT_EQ(apdu(jpki::select_ef(jpki::ef_auth_pin)).sw, 0x9000);
    EXPECT_EQ(apdu(verify("1234")).sw, 0x9000);
    EXPECT_EQ(apdu(jpki::select_ef(jpki::ef_sign_certificate)).sw, 0x9000);
    EXPECT_EQ(apdu(jpki::read_binary(0, 4)).sw, 0x6982);
    EXPECT_EQ(apdu(jpki::select_ef(jpki::ef_sign_password)).sw, 0x9000);
    EXPECT_EQ(apdu(verify("KYOTAKU1")).sw, 0x9000);
    EXPECT_EQ(client.read_certificate(jpki::ef_sign_certificate), load_certificate_der(pki / "card-1-sign.pem"));
    card->reset();  // a power cycle closes it again
    jpki::Client again(ch);
    EXPECT_THROW(again.read_certificate(jpki::ef_sign_certificate), CardError);
}

TEST(VirtualCard, SignatureKeyNeedsThePasswordAndSignsWithItsOwnKey) {
    auto card = test_card();
    Apdu apdu{*card};
    apdu(jpki::select_jpki());
    apdu(jpki::select_ef(jpki::ef_auth_pin));
    EXPECT_EQ(apdu(verify("1234")).sw, 0x9000);
    EXPECT_EQ(apdu(jpki::select_ef(jpki::ef_sign_key)).sw, 0x9000);
    EXPECT_EQ(apdu(sign_command()).sw, 0x6982) << "the 利用者証明用 PIN does not open the 署名用 key";
    apdu(jpki::select_ef(jpki::ef_sign_password));
    EXPECT_EQ(apdu(verify("KYOTAKU1")).sw, 0x9000);
    apdu(jpki::select_ef(jpki::ef_sign_key));
    Bytes const message{'k'};
    Response r = apdu(jpki::compute_signature(jpki::digest_info_sha256(sha256(message))));
    ASSERT_EQ(r.sw, 0x9000);
    EXPECT_TRUE(verify_signature(load_certificate_der(pki / "card-1-sign.pem"), message, r.data));
    EXPECT_FALSE(verify_signature(load_certificate_der(pki / "card-1.pem"), message, r.data));
    // And the 利用者証明用 key still signs with its own.
    apdu(jpki::select_ef(jpki::ef_auth_key));
    r = apdu(jpki::compute_signature(jpki::digest_info_sha256(sha256(message))));
    ASSERT_EQ(r.sw, 0x9000);
    EXPECT_TRUE(verify_signature(load_certificate_der(pki / "card-1.pem"), message, r.data));
    EXPECT_EQ(apdu(jpki::select_ef(jpki::ef_sign_key)).sw, 0x9000);
    EXPECT_EQ(apdu("00B0000004").sw, 0x6981) << "the private key is not readable";
}

TEST(VirtualCard, PasswordCountsFiveTriesAndTheStatusAlwaysGivesTheCount) {
    auto card = test_card();
    Apdu apdu{*card};
    apdu(jpki::select_jpki());
    apdu(jpki::select_ef(jpki::ef_sign_password));
    EXPECT_EQ(apdu(jpki::verify_pin_status()).sw, 0x63C5);
    EXPECT_EQ(apdu(verify("kyotaku1")).sw, 0x63C4) << "the card compares bytes: lower case is another password";
    EXPECT_EQ(apdu(verify("KYOTAK")).sw, 0x63C3);
    EXPECT_EQ(apdu(verify("ABCDE")).sw, 0x6700) << "shorter than 6: refused without counting";
    EXPECT_EQ(apdu(verify("ABCDEFGHIJKLMNOPQ")).sw, 0x6700) << "longer than 16";
    EXPECT_EQ(apdu(jpki::verify_pin_status()).sw, 0x63C3);
    EXPECT_EQ(apdu(verify("KYOTAKU1")).sw, 0x9000);
    EXPECT_EQ(apdu(jpki::verify_pin_status()).sw, 0x63C5) << "verified, and still the count (not 9000)";
    apdu(jpki::select_ef(jpki::ef_auth_pin));
    EXPECT_EQ(apdu(jpki::verify_pin_status()).sw, 0x63C3) << "the PIN has its own counter";
    EXPECT_EQ(apdu(verify("1234")).sw, 0x9000);
    EXPECT_EQ(apdu(jpki::verify_pin_status()).sw, 0x63C3);
    apdu(jpki::select_ef(jpki::ef_sign_password));
    for (int left = 4; left >= 0; --left) EXPECT_EQ(apdu(verify("WRONG1")).sw, std::uint16_t(0x63C0 | left));
    EXPECT_EQ(apdu(jpki::verify_pin_status()).sw, 0x63C0) << "locked: the count is 0";
    EXPECT_EQ(apdu(verify("KYOTAKU1")).sw, 0x6984) << "a locked password stays locked";
    EXPECT_EQ(card->sign_password_tries_left(), 0);
    EXPECT_EQ(card->pin_tries_left(), 3);
    EXPECT_EQ(apdu(jpki::select_ef(jpki::ef_sign_key)).sw, 0x9000);
    EXPECT_EQ(apdu(sign_command()).sw, 0x6984);
}

TEST(VirtualCard, RefusesBadSecretsWhenMade) {
    VirtualCardOptions o;
    o.sign_password = "kyotaku1";
    EXPECT_THROW(test_card(o), CardError);
    o.sign_password = "ABC12";
    EXPECT_THROW(test_card(o), CardError);
    o.sign_password = "ABCDEFGHIJ123456";
    EXPECT_NO_THROW(test_card(o));
    o.pin_tries = 16;
    EXPECT_THROW(test_card(o), CardError) << "63Cx holds 0-15";
}

TEST(VirtualCard, TheConsentFlowNeverTouchesTheSignatureSide) {
    auto card = test_card();
    InProcessChannel ch(*card);
    EXPECT_EQ(jpki::read_certificate_only(ch), load_certificate_der(pki / "card-1.pem"));
    EXPECT_EQ(jpki::Client(ch).pin_tries_left(), 3);
    EXPECT_THROW(jpki::sign_challenge(ch, jpki::Pin::parse("0000"), sha256(Bytes{1})), CardError);
    jpki::Signed s = jpki::sign_challenge(ch, jpki::Pin::parse("1234"), sha256(Bytes{1}));
    EXPECT_TRUE(verify_signature(s.certificate, Bytes{1}, s.signature));
    EXPECT_FALSE(touched_signature_side(*card)) << "selected: " << card->files_selected().size() << " files";
    EXPECT_EQ(card->sign_password_tries_left(), 5);
    // The instrument sees a touch when there is one.
    InProcessChannel other(*card);
    jpki::Client(other).read_certificate(jpki::ef_sign_ca);
    EXPECT_TRUE(touched_signature_side(*card));
}

TEST(VirtualCard, RemovedCardAndRemovalMidCommand) {
    auto card = test_card();
    InProcessChannel ch(*card);
    card->remove();
    try {
        jpki::read_certificate_only(ch);
        FAIL();
    } catch (CardError const& e) {
        EXPECT_EQ(e.kind(), ErrorKind::no_card);
    }
    card->insert();
    card->remove_at_command(4);  // SELECT, SELECT EF, READ (header), READ ← removed here
    try {
        jpki::read_certificate_only(ch);
        FAIL();
    } catch (CardError const& e) {
        EXPECT_EQ(e.kind(), ErrorKind::card_removed);
    }
    EXPECT_FALSE(card->present());
    card->insert();  // the session can start again
    EXPECT_EQ(jpki::read_certificate_only(ch), load_certificate_der(pki / "card-1.pem"));
}

TEST(Vpcd, FramesAreParsedStrictly) {
    EXPECT_EQ(parse_vpcd_frame(Bytes{0x04}).kind, VpcdFrame::Kind::atr);
    EXPECT_EQ(parse_vpcd_frame(Bytes{0x01}).kind, VpcdFrame::Kind::power_on);
    EXPECT_EQ(parse_vpcd_frame(from_hex("00A4040C")).kind, VpcdFrame::Kind::apdu);
    EXPECT_THROW(parse_vpcd_frame(Bytes{}), CardError);
    EXPECT_THROW(parse_vpcd_frame(Bytes{0x03}), CardError);
}

TEST(VirtualCard, AtrIsWellFormed) {
    auto card = test_card();
    Bytes const& atr = card->atr();
    ASSERT_GE(atr.size(), 5u);
    EXPECT_EQ(atr[0], 0x3B);
    std::uint8_t x = 0;
    for (std::size_t i = 1; i < atr.size(); ++i) x ^= atr[i];
    EXPECT_EQ(x, 0) << "TCK makes the XOR of T0..TCK zero";
}
