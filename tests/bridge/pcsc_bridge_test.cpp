// End to end through the real PC/SC stack: this process starts pcscd (with a reader.conf of its own for vpcd on
// loopback port 35963) and stops it by its pid; the virtual card connects to vpcd; PC/SC and kyotaku-bridge talk
// to it through pcscd exactly as they would to a reader on a desk. Label `bridge`.
#include "bridge_server.hpp"
#include "pcscd_environment.hpp"
#include "kyotaku/card/jpki.hpp"
#include "kyotaku/card/native.hpp"
#include "kyotaku/card/pcsc.hpp"
#include "kyotaku/card/vpcd.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

using namespace kyotaku;
using card::CardError;
using card::ErrorKind;
using nlohmann::json;
namespace fs = std::filesystem;
namespace net = boost::asio;
namespace websocket = boost::beast::websocket;

namespace {
using kyotaku::test::PcscEnvironment;
using kyotaku::test::pki;
using kyotaku::test::reader0;
[[maybe_unused]] auto* const environment = ::testing::AddGlobalTestEnvironment(new PcscEnvironment);

class Pcsc : public ::testing::Test {
protected:
    void SetUp() override { PcscEnvironment::reset_card(); }
    card::VirtualCard& virtual_card() { return *PcscEnvironment::card; }
    card::VpcdCard& vpcd() { return *PcscEnvironment::vpcd; }
};
}  // namespace

TEST_F(Pcsc, ListsTheVirtualReaderAndReportsTheCardsAtr) {
    card::PcscContext ctx;
    auto readers = ctx.readers();
    ASSERT_FALSE(readers.empty());
    EXPECT_EQ(readers[0], reader0);
    EXPECT_EQ(ctx.wait_for_card("", std::chrono::seconds(5)), reader0);
    auto ch = ctx.connect(reader0);
    EXPECT_EQ(ch->atr(), virtual_card().atr());
}

TEST_F(Pcsc, ReadsTheCertificateCountsTriesAndSignsAChallenge) {
    card::PcscContext ctx;
    auto ch = ctx.connect(ctx.wait_for_card(reader0, std::chrono::seconds(5)));
    card::jpki::Client client(*ch);
    card::Bytes const cert = client.read_certificate();
    EXPECT_EQ(cert, card::load_certificate_der(pki / "card-1.pem"));
    EXPECT_EQ(client.pin_tries_left(), 3);
    try {
        client.verify_pin(card::jpki::Pin::parse("4321"));
        FAIL() << "a wrong PIN was accepted";
    } catch (CardError const& e) {
        EXPECT_EQ(e.kind(), ErrorKind::wrong_pin);
        EXPECT_EQ(e.tries_left(), 2);
    }
    EXPECT_EQ(client.pin_tries_left(), 2);
    card::Bytes const challenge = card::random_bytes(32);
    card::jpki::Signed s = card::jpki::sign_challenge(*ch, card::jpki::Pin::parse("1234"), card::sha256(challenge));
    EXPECT_TRUE(card::verify_signature(s.certificate, challenge, s.signature));
    EXPECT_TRUE(card::verify_chain(s.certificate, card::load_certificate_der(pki / "card-ca.pem")));
    EXPECT_EQ(virtual_card().pin_tries_left(), 3) << "the right PIN resets the counter";
}

TEST_F(Pcsc, LocksAfterThreeWrongPins) {
    card::PcscContext ctx;
    auto ch = ctx.connect(ctx.wait_for_card(reader0, std::chrono::seconds(5)));
    card::jpki::Client client(*ch);
    for (int i = 0; i < 3; ++i) EXPECT_THROW(client.verify_pin(card::jpki::Pin::parse("0000")), CardError);
    EXPECT_EQ(client.pin_tries_left(), 0);
    try {
        card::jpki::sign_challenge(*ch, card::jpki::Pin::parse("1234"), card::sha256(card::Bytes{1}));
        FAIL();
    } catch (CardError const& e) {
        EXPECT_EQ(e.kind(), ErrorKind::locked);
    }
}

TEST_F(Pcsc, CardRemovedMidCommandIsAClearErrorAndTheSessionCanStartAgain) {
    card::PcscContext ctx;
    auto ch = ctx.connect(ctx.wait_for_card(reader0, std::chrono::seconds(5)));
    {
        std::lock_guard lock(vpcd().card_mutex());
        virtual_card().remove_at_command(3);
    }
    try {
        card::jpki::read_certificate_only(*ch);
        FAIL() << "the card was removed, yet the read succeeded";
    } catch (CardError const& e) {
        EXPECT_TRUE(e.kind() == ErrorKind::card_removed || e.kind() == ErrorKind::transport)
            << card::to_string(e.kind()) << ": " << e.what();
    }
    PcscEnvironment::wait_present(false);
    try {
        ctx.wait_for_card(reader0, std::chrono::milliseconds(300));
        FAIL() << "no card is in the reader";
    } catch (CardError const& e) {
        EXPECT_EQ(e.kind(), ErrorKind::timeout);
    }
    EXPECT_THROW(ctx.connect(reader0), CardError);
    vpcd().insert_card();
    card::PcscContext again;
    auto ch2 = again.connect(again.wait_for_card(reader0, std::chrono::seconds(10)));
    EXPECT_EQ(card::jpki::read_certificate_only(*ch2), card::load_certificate_der(pki / "card-1.pem"));
}

TEST_F(Pcsc, ReaderGoneMidSessionIsAClearErrorAndTheSessionCanStartAgain) {
    card::PcscContext ctx;
    auto ch = ctx.connect(ctx.wait_for_card(reader0, std::chrono::seconds(5)));
    EXPECT_EQ(card::jpki::read_certificate_only(*ch), card::load_certificate_der(pki / "card-1.pem"));
    PcscEnvironment::stop_pcscd();  // the reader (and the whole PC/SC service) goes away
    try {
        card::jpki::read_certificate_only(*ch);
        FAIL() << "read from a reader that is gone";
    } catch (CardError const& e) {
        EXPECT_TRUE(e.kind() == ErrorKind::transport || e.kind() == ErrorKind::no_reader ||
                    e.kind() == ErrorKind::card_removed)
            << card::to_string(e.kind()) << ": " << e.what();
        EXPECT_FALSE(std::string(e.what()).empty());
    }
    try {
        card::PcscContext none;
        FAIL() << "pcscd is stopped";
    } catch (CardError const& e) {
        EXPECT_EQ(e.kind(), ErrorKind::transport);
        EXPECT_NE(std::string(e.what()).find("pcscd"), std::string::npos) << e.what();
    }
    PcscEnvironment::start_pcscd();  // plugged in again
    PcscEnvironment::wait_present(true);
    card::PcscContext again;
    auto ch2 = again.connect(again.wait_for_card(reader0, std::chrono::seconds(10)));
    EXPECT_EQ(card::jpki::read_certificate_only(*ch2), card::load_certificate_der(pki / "card-1.pem"));
}

TEST_F(Pcsc, UnknownReaderIsNamed) {
    card::PcscContext ctx;
    try {
        ctx.wait_for_card("No Such Reader", std::chrono::milliseconds(100));
        FAIL();
    } catch (CardError const& e) {
        EXPECT_EQ(e.kind(), ErrorKind::no_reader);
        EXPECT_NE(std::string(e.what()).find("No Such Reader"), std::string::npos);
    }
}

// ---- kyotaku-bridge over the same pcscd ------------------------------------------------------------------

namespace {
std::string const origin = "https://127.0.0.1:8443";
std::string const token = "0123456789abcdef0123456789abcdef";

struct WsClient {
    net::io_context ioc;
    websocket::stream<net::ip::tcp::socket> ws{ioc};
    int next_id = 1;

    WsClient(std::uint16_t port, std::string const& origin_header) {
        net::ip::tcp::endpoint ep(net::ip::make_address("127.0.0.1"), port);
        ws.next_layer().connect(ep);
        ws.set_option(websocket::stream_base::decorator([origin_header](websocket::request_type& req) {
            req.set(boost::beast::http::field::origin, origin_header);
        }));
        ws.handshake("127.0.0.1:" + std::to_string(port), "/");
    }
    json raw(std::string const& text, bool binary = false) {
        ws.binary(binary);
        ws.write(net::buffer(text));
        boost::beast::flat_buffer b;
        ws.read(b);
        return json::parse(boost::beast::buffers_to_string(b.data()));
    }
    json call(json request) {
        request["id"] = next_id++;
        return raw(request.dump());
    }
};

class Bridge : public Pcsc {
protected:
    void SetUp() override {
        Pcsc::SetUp();
        bridge::Options o;
        o.port = 0;
        o.allowed_origins = {origin};
        o.token = token;
        server_ = std::make_unique<bridge::Server>(o, bridge::pcsc_backend(), log_);
        thread_ = std::thread([this] { server_->run(); });
    }
    void TearDown() override {
        server_->stop();
        thread_.join();
        server_.reset();
    }
    std::unique_ptr<WsClient> paired() {
        auto c = std::make_unique<WsClient>(server_->port(), origin);
        json r = c->call({{"op", "hello"}, {"token", token}, {"version", 1}});
        EXPECT_TRUE(r["ok"].get<bool>()) << r.dump();
        return c;
    }
    std::string log() { return log_.str(); }
    std::unique_ptr<bridge::Server> server_;

private:
    std::ostringstream log_;
    std::thread thread_;
};
}  // namespace

TEST_F(Bridge, RefusesANonLoopbackAddressAnEmptyTokenAndNoOrigins) {
    bridge::Options o;
    o.allowed_origins = {origin};
    o.token = token;
    std::ostringstream sink;
    for (std::string address : {"0.0.0.0", "192.168.1.10", "::", "localhost", "example.org"}) {
        o.address = address;
        EXPECT_THROW(bridge::Server(o, bridge::pcsc_backend(), sink), std::invalid_argument) << address;
    }
    EXPECT_TRUE(bridge::is_loopback("127.0.0.1"));
    EXPECT_TRUE(bridge::is_loopback("127.1.2.3"));
    EXPECT_TRUE(bridge::is_loopback("::1"));
    o.address = "127.0.0.1";
    o.port = 0;
    o.token = "short";
    EXPECT_THROW(bridge::Server(o, bridge::pcsc_backend(), sink), std::invalid_argument);
    o.token = token;
    o.allowed_origins.clear();
    EXPECT_THROW(bridge::Server(o, bridge::pcsc_backend(), sink), std::invalid_argument);
}

TEST_F(Bridge, RefusesAWebSocketFromAnotherOrigin) {
    EXPECT_THROW(WsClient(server_->port(), "https://evil.example"), boost::system::system_error);
    EXPECT_THROW(WsClient(server_->port(), ""), boost::system::system_error);
    EXPECT_NE(log().find("evil.example"), std::string::npos);
}

TEST_F(Bridge, NeedsThePairingTokenFirst) {
    WsClient early(server_->port(), origin);
    json r = early.call({{"op", "readers"}});
    EXPECT_FALSE(r["ok"].get<bool>());
    EXPECT_EQ(r["error"]["kind"], "unauthorized");
    WsClient wrong(server_->port(), origin);
    r = wrong.call({{"op", "hello"}, {"token", "fedcba9876543210fedcba9876543210"}});
    EXPECT_EQ(r["error"]["kind"], "unauthorized");
    EXPECT_THROW(wrong.call({{"op", "readers"}}), boost::system::system_error)
        << "the bridge closes after a wrong token";
}

TEST_F(Bridge, SignsThroughPcscAndNeverLogsThePin) {
    auto c = paired();
    json r = c->call({{"op", "readers"}});
    ASSERT_TRUE(r["ok"].get<bool>()) << r.dump();
    EXPECT_EQ(r["readers"][0], reader0);
    r = c->call({{"op", "open"}, {"reader", reader0}, {"wait_ms", 5000}});
    ASSERT_TRUE(r["ok"].get<bool>()) << r.dump();
    r = c->call({{"op", "pin_tries"}});
    EXPECT_EQ(r["tries_left"], 3);
    r = c->call({{"op", "read_certificate"}});
    EXPECT_EQ(card::base64_decode(r["certificate"].get<std::string>()), card::load_certificate_der(pki / "card-1.pem"));

    card::Bytes const challenge = card::random_bytes(32);
    r = c->call({{"op", "sign"}, {"pin", "5739"}, {"challenge", card::base64(challenge)}});
    EXPECT_FALSE(r["ok"].get<bool>());
    EXPECT_EQ(r["error"]["kind"], "wrong_pin");
    EXPECT_EQ(r["error"]["tries_left"], 2);
    r = c->call({{"op", "sign"}, {"pin", "1234"}, {"challenge", card::base64(challenge)}});
    ASSERT_TRUE(r["ok"].get<bool>()) << r.dump();
    card::Bytes const cert = card::base64_decode(r["certificate"].get<std::string>());
    EXPECT_TRUE(card::verify_signature(cert, challenge, card::base64_decode(r["signature"].get<std::string>())));
    r = c->call({{"op", "close"}});
    EXPECT_TRUE(r["ok"].get<bool>());
    std::string const l = log();
    EXPECT_NE(l.find("op sign: ok"), std::string::npos) << l;
    EXPECT_EQ(l.find("5739"), std::string::npos) << "a PIN reached the log";
    EXPECT_EQ(l.find("1234"), std::string::npos) << "a PIN reached the log";
    std::lock_guard lock(vpcd().card_mutex());
    for (std::uint16_t fid : {card::jpki::ef_sign_certificate, card::jpki::ef_sign_ca, card::jpki::ef_sign_key,
                              card::jpki::ef_sign_password})
        EXPECT_EQ(virtual_card().files_selected().count(fid), 0u)
            << "the consent flow touched 署名用 EF " << std::hex << fid;
    EXPECT_EQ(virtual_card().files_selected().count(card::jpki::ef_auth_key), 1u);
}

TEST_F(Bridge, OneCardSessionAtATime) {
    auto a = paired();
    auto b = paired();
    EXPECT_TRUE(a->call({{"op", "open"}})["ok"].get<bool>());
    json r = b->call({{"op", "open"}, {"wait_ms", 0}});
    EXPECT_EQ(r["error"]["kind"], "busy");
    EXPECT_TRUE(a->call({{"op", "close"}})["ok"].get<bool>());
    EXPECT_TRUE(b->call({{"op", "open"}})["ok"].get<bool>());
    b.reset();  // a client that disconnects releases the card too
    for (int i = 0; i < 50; ++i) {
        r = a->call({{"op", "open"}, {"wait_ms", 0}});
        if (r["ok"].get<bool>()) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_TRUE(r["ok"].get<bool>()) << r.dump();
}

TEST_F(Bridge, CardRemovedDuringSigningThenOpenAgain) {
    auto c = paired();
    ASSERT_TRUE(c->call({{"op", "open"}})["ok"].get<bool>());
    {
        std::lock_guard lock(vpcd().card_mutex());
        virtual_card().remove_at_command(5);
    }
    json r = c->call({{"op", "sign"}, {"pin", "1234"}, {"challenge", card::base64(card::Bytes{1, 2, 3})}});
    EXPECT_FALSE(r["ok"].get<bool>());
    std::string const kind = r["error"]["kind"];
    EXPECT_TRUE(kind == "card_removed" || kind == "transport") << r.dump();
    r = c->call({{"op", "read_certificate"}});
    EXPECT_EQ(r["error"]["kind"], "no_card") << "the session must be opened again";
    PcscEnvironment::wait_present(false);
    r = c->call({{"op", "open"}, {"wait_ms", 300}});
    EXPECT_EQ(r["error"]["kind"], "timeout") << r.dump();
    vpcd().insert_card();
    r = c->call({{"op", "open"}, {"wait_ms", 10000}});
    ASSERT_TRUE(r["ok"].get<bool>()) << r.dump();
    r = c->call({{"op", "sign"}, {"pin", "1234"}, {"challenge", card::base64(card::Bytes{1, 2, 3})}});
    EXPECT_TRUE(r["ok"].get<bool>()) << r.dump();
}

TEST_F(Bridge, BadMessagesGetClearErrorsWithTheirId) {
    auto c = paired();
    json r = c->raw("{not json");
    EXPECT_EQ(r["error"]["kind"], "malformed");
    EXPECT_TRUE(r["id"].is_null());
    r = c->raw(R"({"id":7,"op":"format_card"})");
    EXPECT_EQ(r["id"], 7);
    EXPECT_NE(r["error"]["message"].get<std::string>().find("\"op\""), std::string::npos);
    r = c->raw(R"({"id":8,"op":"sign","challenge":"AAAA"})");
    EXPECT_NE(r["error"]["message"].get<std::string>().find("\"pin\" is missing"), std::string::npos);
    r = c->raw(R"({"id":9,"op":"sign","pin":"12345","challenge":"AAAA"})");
    std::string const msg = r["error"]["message"];
    EXPECT_NE(msg.find("4 digits"), std::string::npos);
    EXPECT_EQ(msg.find("12345"), std::string::npos) << "the PIN must not be echoed";
    r = c->raw(R"({"id":10,"op":"sign","pin":"1234","challenge":"%%%"})");
    EXPECT_EQ(r["error"]["kind"], "malformed");
    r = c->raw(R"({"id":11,"op":"open","wait_ms":999999})");
    EXPECT_NE(r["error"]["message"].get<std::string>().find("wait_ms"), std::string::npos);
    r = c->raw(R"({"id":12,"op":"readers","extra":1})");
    EXPECT_NE(r["error"]["message"].get<std::string>().find("\"extra\""), std::string::npos);
    r = c->raw(R"({"id":13,"op":"readers"})", true);
    EXPECT_EQ(r["error"]["kind"], "malformed");
    r = c->call({{"op", "read_certificate"}});
    EXPECT_EQ(r["error"]["kind"], "no_card");
    EXPECT_TRUE(c->call({{"op", "readers"}})["ok"].get<bool>()) << "the connection survives bad messages";
}
