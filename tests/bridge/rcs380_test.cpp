// The RC-S380 (Port-100) reader protocol, ISO 14443-B activation and ISO-DEP, natively: the same C++ that runs
// in the browser over WebUSB, here against the simulated reader holding the virtual card. Label `bridge`.
#include "kyotaku/card/isodep.hpp"
#include "kyotaku/card/jpki.hpp"
#include "kyotaku/card/native.hpp"
#include "kyotaku/card/port100.hpp"

#include <gtest/gtest.h>

#include <filesystem>

using namespace kyotaku::card;
namespace fs = std::filesystem;

namespace {
fs::path const pki = KYOTAKU_BRIDGE_PKI;

std::unique_ptr<VirtualCard> test_card() {
    return make_virtual_card(VirtualCardFiles::test_card(pki, 2));
}

std::string error_of(auto&& f) {
    try {
        f();
    } catch (CardError const& e) {
        return e.what();
    }
    return "no error";
}
}  // namespace

TEST(Port100, FramesAndChecksums) {
    EXPECT_EQ(to_hex(port100::encode(0xD6, 0x2A, Bytes{0x01})), "0000FFFFFF0300FDD62A01FF00");
    EXPECT_EQ(to_hex(port100::encode(0xD6, 0x20, {})), "0000FFFFFF0200FED6200A00");
    EXPECT_EQ(to_hex(port100::ack_frame()), "0000FF00FF00");
    port100::Frame f = port100::parse(port100::encode(0xD7, 0x05, from_hex("0000000000AABB")));
    EXPECT_FALSE(f.ack);
    EXPECT_EQ(f.direction, 0xD7);
    EXPECT_EQ(f.command, 0x05);
    EXPECT_EQ(to_hex(f.payload), "0000000000AABB");
    EXPECT_TRUE(port100::parse(port100::ack_frame()).ack);
    Bytes big(port100::max_payload, 0x42);
    EXPECT_EQ(port100::parse(port100::encode(0xD6, 0x04, big)).payload, big);
}

TEST(Port100, MalformedFramesAreNamed) {
    Bytes good = port100::encode(0xD7, 0x2B, Bytes{0x00});
    auto with = [&](std::size_t i, std::uint8_t v) {
        Bytes b = good;
        b[i] = v;
        return b;
    };
    EXPECT_NE(error_of([&] { port100::parse(with(2, 0xFE)); }).find("start of frame"), std::string::npos);
    EXPECT_NE(error_of([&] { port100::parse(with(7, 0x00)); }).find("length checksum"), std::string::npos);
    EXPECT_NE(error_of([&] { port100::parse(with(10, 0x01)); }).find("data checksum"), std::string::npos);
    EXPECT_NE(error_of([&] { port100::parse(with(good.size() - 1, 0x01)); }).find("postamble"), std::string::npos);
    EXPECT_NE(error_of([&] { port100::parse(from_hex("0000FF03FD D42A01 00")); }).find("normal frames"),
              std::string::npos);
    Bytes cut(good.begin(), good.end() - 1);
    EXPECT_NE(error_of([&] { port100::parse(cut); }).find("for a data length"), std::string::npos);
    EXPECT_NE(error_of([&] { port100::parse(port100::encode(0xD5, 0x2B, {})); }).find("direction"), std::string::npos);
    EXPECT_NE(error_of([&] { port100::parse(from_hex("0000FF")); }).find("shorter than an ACK"), std::string::npos);
    EXPECT_NE(error_of([&] { port100::parse(from_hex("0000FF00FF0000")); }).find("ACK frame with trailing"),
              std::string::npos);
}

TEST(TypeB, AtqbAndAttrib) {
    port100::Atqb a = port100::parse_atqb(from_hex("50 01020304 00000000 0081 70"));
    EXPECT_EQ(to_hex(a.pupi), "01020304");
    EXPECT_EQ(a.fsc, 256u);
    EXPECT_EQ(a.fwi, 7);
    EXPECT_EQ(to_hex(port100::attrib(a.pupi)), "1D0102030400080100");
    EXPECT_THROW(port100::parse_atqb(from_hex("51 01020304 00000000 0081 70")), CardError);
    EXPECT_THROW(port100::parse_atqb(from_hex("50 0102")), CardError);
    try {
        port100::parse_atqb(from_hex("50 01020304 00000000 0080 70"));
        FAIL();
    } catch (CardError const& e) {
        EXPECT_EQ(e.kind(), ErrorKind::not_supported) << "a card without ISO 14443-4 cannot carry APDUs";
    }
}

TEST(IsoDep, BlocksEncodeAndParse) {
    using isodep::Block;
    using isodep::BlockType;
    std::vector<std::pair<Block, std::string>> cases = {
        {Block{BlockType::i, false, 0, from_hex("00A4"), 0}, "0200A4"},
        {Block{BlockType::i, true, 1, from_hex("01"), 0}, "1301"},
        {Block{BlockType::r_ack, false, 1, {}, 0}, "A3"},
        {Block{BlockType::r_nak, false, 0, {}, 0}, "B2"},
        {Block{BlockType::s_wtx, false, 0, {}, 5}, "F205"},
        {Block{BlockType::s_deselect, false, 0, {}, 0}, "C2"},
    };
    for (auto const& [block, hex] : cases) {
        EXPECT_EQ(to_hex(isodep::encode(block)), hex);
        EXPECT_EQ(isodep::parse(from_hex(hex)), block) << hex;
    }
    for (std::string bad : {"", "0A00", "0600", "00", "22", "A200", "A6", "F200", "F23C", "F2", "D2", "E2", "4200"})
        EXPECT_THROW(isodep::parse(from_hex(bad)), CardError) << bad;
    EXPECT_EQ(isodep::frame_size(0), 16u);
    EXPECT_EQ(isodep::frame_size(8), 256u);
}

TEST(IsoDep, ChainsBothWaysAndHonoursWaitingTimeExtensions) {
    std::size_t commands = 0;
    isodep::Target target([&](ByteView apdu) {
        ++commands;
        Bytes r(apdu.begin(), apdu.end());  // echo twice, so the answer is longer than the command
        r.insert(r.end(), apdu.begin(), apdu.end());
        return r;
    }, 32);
    int blocks = 0;
    isodep::Initiator reader([&](ByteView block, int) {
        ++blocks;
        auto answer = target.on_block(block);
        if (!answer) throw CardError(ErrorKind::timeout, "silent");
        return *answer;
    }, 24);
    Bytes apdu(100);
    for (std::size_t i = 0; i < apdu.size(); ++i) apdu[i] = std::uint8_t(i);
    Bytes expected = apdu;
    expected.insert(expected.end(), apdu.begin(), apdu.end());
    EXPECT_EQ(reader.exchange(apdu), expected);
    EXPECT_GT(blocks, 10) << "100 bytes in 21-byte pieces and 200 back in 29-byte pieces";
    target.request_wtx(2);
    EXPECT_EQ(reader.exchange(from_hex("0102")), from_hex("01020102"));
    EXPECT_EQ(reader.exchange(from_hex("03")), from_hex("0303")) << "block numbers stay in step";
    EXPECT_EQ(commands, 3u);
}

TEST(IsoDep, ALostAnswerIsRecoveredOnce) {
    isodep::Target target([](ByteView apdu) { return Bytes(apdu.begin(), apdu.end()); }, 256);
    int drop = 1;
    isodep::Initiator reader([&](ByteView block, int) {
        auto answer = target.on_block(block);
        if (drop-- == 1) throw CardError(ErrorKind::timeout, "lost");
        return *answer;
    }, 256);
    EXPECT_EQ(reader.exchange(from_hex("AABBCC")), from_hex("AABBCC"));
    isodep::Initiator silent([](ByteView, int) -> Bytes { throw CardError(ErrorKind::timeout, "gone"); }, 256);
    try {
        silent.exchange(from_hex("00"));
        FAIL();
    } catch (CardError const& e) {
        EXPECT_EQ(e.kind(), ErrorKind::card_removed);
    }
}

TEST(Rcs380, ReadsAndSignsThroughTheSimulatedReader) {
    auto card = test_card();
    Rcs380Simulator reader(card.get());
    Rcs380Channel channel(reader);
    channel.connect(1000);
    EXPECT_EQ(channel.firmware_version(), 0x0111);
    Bytes const challenge = random_bytes(32);
    jpki::Signed s = jpki::sign_challenge(channel, jpki::Pin::parse("1234"), sha256(challenge));
    EXPECT_EQ(s.certificate, load_certificate_der(pki / "card-2.pem"));
    EXPECT_TRUE(verify_signature(s.certificate, challenge, s.signature));
    EXPECT_GT(reader.frames_seen(), 20u);
    channel.disconnect();
}

TEST(Rcs380, WrongPinAndWaitingTimeExtensionDuringSigning) {
    auto card = test_card();
    Rcs380Simulator reader(card.get());
    Rcs380Channel channel(reader);
    channel.connect(1000);
    jpki::Client client(channel);
    EXPECT_EQ(client.pin_tries_left(), 3);
    try {
        client.verify_pin(jpki::Pin::parse("1111"));
        FAIL();
    } catch (CardError const& e) {
        EXPECT_EQ(e.tries_left(), 2);
    }
    reader.request_wtx(3);  // the card takes its time over the signature
    jpki::Signed s = jpki::sign_challenge(channel, jpki::Pin::parse("1234"), sha256(Bytes{9}));
    EXPECT_TRUE(verify_signature(s.certificate, Bytes{9}, s.signature));
}

TEST(Rcs380, NoCardRemovedCardAndUnpluggedReaderAreClearErrors) {
    auto card = test_card();
    Rcs380Simulator reader(nullptr);
    Rcs380Channel channel(reader);
    try {
        channel.connect(100);
        FAIL();
    } catch (CardError const& e) {
        EXPECT_EQ(e.kind(), ErrorKind::no_card);
    }
    reader.place_card(card.get());
    channel.connect(100);
    card->remove_at_command(3);
    try {
        jpki::read_certificate_only(channel);
        FAIL();
    } catch (CardError const& e) {
        EXPECT_EQ(e.kind(), ErrorKind::card_removed) << e.what();
    }
    card->insert();  // the card comes back: a new session works
    channel.connect(100);
    EXPECT_EQ(jpki::read_certificate_only(channel), load_certificate_der(pki / "card-2.pem"));
    reader.unplug();
    try {
        jpki::read_certificate_only(channel);
        FAIL();
    } catch (CardError const& e) {
        EXPECT_EQ(e.kind(), ErrorKind::transport);
        EXPECT_NE(std::string(e.what()).find("unplugged"), std::string::npos);
    }
}
