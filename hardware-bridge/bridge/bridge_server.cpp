#include "bridge_server.hpp"

#include "kyotaku/card/jpki.hpp"
#include "kyotaku/card/native.hpp"
#include "kyotaku/card/pcsc.hpp"
#include "protocol.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <openssl/crypto.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <ostream>
#include <stdexcept>
#include <thread>

namespace kyotaku::bridge {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using card::CardError;
using card::ErrorKind;
using tcp = net::ip::tcp;

bool is_loopback(std::string const& address) {
    in_addr v4{};
    if (inet_pton(AF_INET, address.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
    in6_addr v6{};
    if (inet_pton(AF_INET6, address.c_str(), &v6) == 1) return IN6_IS_ADDR_LOOPBACK(&v6);
    return false;
}

ListenAddress parse_listen(std::string const& text) {
    auto const colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0)
        throw std::invalid_argument("--listen は ADDRESS:PORT です / --listen must be ADDRESS:PORT: " + text);
    ListenAddress out;
    out.address = text.substr(0, colon);
    if (out.address.front() == '[') {
        if (out.address.size() < 3 || out.address.back() != ']')
            throw std::invalid_argument("--listen: IPv6 は [::1]:PORT と書きます / write IPv6 as [::1]:PORT: " + text);
        out.address = out.address.substr(1, out.address.size() - 2);
    } else if (out.address.find(':') != std::string::npos) {
        throw std::invalid_argument("--listen: IPv6 は [::1]:PORT と書きます / write IPv6 as [::1]:PORT: " + text);
    }
    std::string const port = text.substr(colon + 1);
    // Decimal digits only and at most 65535: 99999 or 8443x is an error, never another port.
    if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
        std::stoul(port) > 65535)
        throw std::invalid_argument(
            "--listen: ポートは 0 から 65535 の数字です / the port must be a number from 0 to 65535: \"" + port + "\"");
    out.port = std::uint16_t(std::stoul(port));
    return out;
}

std::string new_pairing_code() {
    for (;;) {
        card::Bytes const b = card::random_bytes(4);
        std::uint32_t const v =
            (std::uint32_t(b[0]) << 24) | (std::uint32_t(b[1]) << 16) | (std::uint32_t(b[2]) << 8) | b[3];
        if (v >= 4'294'000'000u) continue;  // a multiple of 10^6 below 2^32: every code equally likely
        std::string code = std::to_string(v % 1'000'000);
        return std::string(6 - code.size(), '0') + code;
    }
}

namespace {

// A PC/SC channel that owns its context (pcsclite contexts are used from the one connection thread).
class OwnedPcscChannel : public card::Channel {
public:
    OwnedPcscChannel(std::unique_ptr<card::PcscContext> context, std::unique_ptr<card::PcscChannel> channel)
        : context_(std::move(context)), channel_(std::move(channel)) {}
    card::Bytes transmit(card::ByteView apdu) override { return channel_->transmit(apdu); }

private:
    std::unique_ptr<card::PcscContext> context_;  // declared first: destroyed last
    std::unique_ptr<card::PcscChannel> channel_;
};

class PcscBackend : public CardBackend {
public:
    std::vector<std::string> readers() override { return card::PcscContext().readers(); }
    std::unique_ptr<card::Channel> open(std::string const& reader, std::chrono::milliseconds wait,
                                        std::function<bool()> const& cancelled) override {
        auto context = std::make_unique<card::PcscContext>();
        std::string const name = context->wait_for_card(reader, wait, cancelled);
        auto channel = context->connect(name);
        return std::make_unique<OwnedPcscChannel>(std::move(context), std::move(channel));
    }
};

class LockedVirtualChannel : public card::Channel {
public:
    LockedVirtualChannel(std::shared_ptr<card::VirtualCard> card, std::shared_ptr<std::mutex> mutex)
        : card_(std::move(card)), mutex_(std::move(mutex)) {}
    card::Bytes transmit(card::ByteView apdu) override {
        std::lock_guard lock(*mutex_);
        return card::InProcessChannel(*card_).transmit(apdu);
    }

private:
    std::shared_ptr<card::VirtualCard> card_;
    std::shared_ptr<std::mutex> mutex_;
};

class VirtualBackend : public CardBackend {
public:
    VirtualBackend(std::shared_ptr<card::VirtualCard> card, std::shared_ptr<std::mutex> mutex)
        : card_(std::move(card)), mutex_(std::move(mutex)) {}
    std::vector<std::string> readers() override { return {"kyotaku virtual card reader"}; }
    std::unique_ptr<card::Channel> open(std::string const& reader, std::chrono::milliseconds wait,
                                        std::function<bool()> const& cancelled) override {
        if (!reader.empty() && reader != readers().front())
            throw CardError(ErrorKind::no_reader,
                            Message{"カードリーダーが見つかりません", "no reader named \"" + reader + "\""});
        auto const deadline = std::chrono::steady_clock::now() + wait;
        while (true) {
            {
                std::lock_guard lock(*mutex_);
                if (card_->present()) {
                    card_->reset();
                    break;
                }
            }
            if (std::chrono::steady_clock::now() >= deadline)
                throw CardError(ErrorKind::timeout,
                                Message{"カードが置かれませんでした", "no card was presented in time"});
            if (cancelled && cancelled())
                throw CardError(ErrorKind::timeout, Message{"キャンセルされました", "cancelled"});
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        return std::make_unique<LockedVirtualChannel>(card_, mutex_);
    }

private:
    std::shared_ptr<card::VirtualCard> card_;
    std::shared_ptr<std::mutex> mutex_;
};

void set_receive_timeout(int fd, int seconds) {
    timeval tv{seconds, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

bool readable(int fd) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, 0) > 0;
}

// The answer to a refused hello: `unauthorized`, why (`reason`), and when to try again (`retry_after_ms`).
std::string refusal(std::optional<std::int64_t> id, std::string const& reason, long long retry_after_ms) {
    Message const message =
        reason == "throttled"
            ? Message{"間違いが続いたため、しばらく待ってからもう一度お試しください",
                      "too many wrong attempts: wait before trying again"}
        : reason == "code_disabled"
            ? Message{"番号の間違いが続いたため、番号での接続を止めました。kyotaku-bridge を起動し直してください",
                      "pairing by code is off after too many wrong codes: restart kyotaku-bridge"}
        : reason == "wrong_code" ? Message{"ペアリング番号が違います", "wrong pairing code"}
                                 : Message{"ペアリングコードが違います", "wrong pairing token"};
    nlohmann::json out = nlohmann::json::parse(error(id, CardError(ErrorKind::unauthorized, message)));
    out["error"]["reason"] = reason;
    if (retry_after_ms > 0) out["error"]["retry_after_ms"] = retry_after_ms;
    return out.dump();
}

bool is_session_fault(ErrorKind k) {
    return k == ErrorKind::card_removed || k == ErrorKind::no_card || k == ErrorKind::transport ||
           k == ErrorKind::no_reader;
}
}  // namespace

std::unique_ptr<CardBackend> pcsc_backend() { return std::make_unique<PcscBackend>(); }
std::unique_ptr<CardBackend> virtual_backend(std::shared_ptr<card::VirtualCard> card,
                                             std::shared_ptr<std::mutex> mutex) {
    return std::make_unique<VirtualBackend>(std::move(card), std::move(mutex));
}

Server::Server(Options options, std::unique_ptr<CardBackend> backend, std::ostream& log)
    : options_(std::move(options)), backend_(std::move(backend)), log_(log) {
    if (!is_loopback(options_.address))
        throw std::invalid_argument("kyotaku-bridge はループバックアドレスでだけ待ち受けます / refusing to listen on " +
                                    options_.address + ": only 127.0.0.0/8 or ::1");
    if (options_.token.size() < 16)
        throw std::invalid_argument(
            "ペアリングトークンが短すぎます / the pairing token must be at least 16 characters");
    if (options_.allowed_origins.empty())
        throw std::invalid_argument("--allow-origin が必要です / at least one allowed Origin is required");
    if (!options_.pairing_code.empty() && (options_.pairing_code.size() != 6 ||
                                           options_.pairing_code.find_first_not_of("0123456789") != std::string::npos))
        throw std::invalid_argument("ペアリング番号は数字6桁です / the pairing code must be 6 digits");
    bool const v6 = options_.address.find(':') != std::string::npos;
    listen_fd_ = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_storage ss{};
    socklen_t len;
    if (v6) {
        auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
        a->sin6_family = AF_INET6;
        inet_pton(AF_INET6, options_.address.c_str(), &a->sin6_addr);
        a->sin6_port = htons(options_.port);
        len = sizeof *a;
    } else {
        auto* a = reinterpret_cast<sockaddr_in*>(&ss);
        a->sin_family = AF_INET;
        inet_pton(AF_INET, options_.address.c_str(), &a->sin_addr);
        a->sin_port = htons(options_.port);
        len = sizeof *a;
    }
    if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&ss), len) != 0 ||
        ::listen(listen_fd_, 16) != 0) {
        std::string const err = std::strerror(errno);
        if (listen_fd_ >= 0) ::close(listen_fd_);
        throw CardError(ErrorKind::transport,
                        Message{"待ち受けできません", "cannot listen on " + options_.address + ":" +
                                                          std::to_string(options_.port) + ": " + err});
    }
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&ss), &len);
    port_ = v6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
               : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

Server::~Server() {
    stop();
    while (connections_ > 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (listen_fd_ >= 0) ::close(listen_fd_);
}

void Server::stop() { stopping_ = true; }

void Server::log(std::string const& line) {
    std::lock_guard lock(log_mutex_);
    log_ << "kyotaku-bridge: " << line << std::endl;
}

namespace {
std::string peer_address(int fd) {
    sockaddr_storage peer{};
    socklen_t len = sizeof peer;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0) return "?";
    char text[INET6_ADDRSTRLEN] = {};
    if (peer.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&peer)->sin6_addr, text, sizeof text);
    else inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&peer)->sin_addr, text, sizeof text);
    return text;
}
}  // namespace

// A connection that has not paired by its deadline is shut down, however it trickles its bytes (a receive
// timeout alone would restart with every byte).
void Server::close_late_connections() {
    auto const now = options_.clock();
    std::lock_guard lock(connections_mutex_);
    for (auto it = unpaired_.begin(); it != unpaired_.end();) {
        if (it->second > now) {
            ++it;
            continue;
        }
        log("closed a connection that did not pair in time");
        ::shutdown(it->first, SHUT_RDWR);
        it = unpaired_.erase(it);
    }
}

void Server::run() {
    while (!stopping_) {
        close_late_connections();
        pollfd p{listen_fd_, POLLIN, 0};
        if (::poll(&p, 1, 100) <= 0) continue;
        int const fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) continue;
        std::string const peer = peer_address(fd);
        {
            std::lock_guard lock(connections_mutex_);
            char const* refusal = connections_ >= options_.max_connections ? "too many clients"
                                  : per_peer_[peer] >= options_.max_per_peer ? "too many connections from one address"
                                                                             : nullptr;
            if (refusal) {
                if (per_peer_[peer] == 0) per_peer_.erase(peer);
                log(std::string("refused a connection from ") + peer + ": " + refusal);
                ::close(fd);
                continue;
            }
            ++connections_;
            ++per_peer_[peer];
            unpaired_[fd] = options_.clock() + options_.auth_deadline;
        }
        std::thread([this, fd, peer] {
            try {
                serve(fd, peer);
            } catch (std::exception const& e) {
                log(std::string("connection ended: ") + e.what());
            }
            std::lock_guard lock(connections_mutex_);
            if (--per_peer_[peer] == 0) per_peer_.erase(peer);
            --connections_;
        }).detach();
    }
}

// Wrong tokens and codes, from every connection together: each doubles the wait before the next attempt is
// compared at all, so parallel connections guess no faster than one.
struct Server::Verdict {
    bool ok = false;
    std::string reason;  // wrong_token, wrong_code, code_disabled, throttled
    long long retry_after_ms = 0;
};

Server::Verdict Server::authenticate(std::string const& token, std::string const& code) {
    auto const now = options_.clock();
    std::lock_guard lock(auth_mutex_);
    if (now < next_attempt_)
        return {false, "throttled",
                std::chrono::duration_cast<std::chrono::milliseconds>(next_attempt_ - now).count() + 1};
    bool const by_code = !code.empty();
    if (by_code && (options_.pairing_code.empty() || code_failures_ >= options_.max_code_failures))
        return {false, "code_disabled", 0};
    std::string const& expected = by_code ? options_.pairing_code : options_.token;
    std::string const& given = by_code ? code : token;
    if (given.size() == expected.size() && CRYPTO_memcmp(given.data(), expected.data(), given.size()) == 0) {
        consecutive_failures_ = 0;
        return {true, "", 0};
    }
    ++consecutive_failures_;
    if (by_code) ++code_failures_;
    auto delay = options_.failure_delay * (std::int64_t(1) << std::min(consecutive_failures_ - 1, 20));
    delay = std::min(delay, options_.max_failure_delay);
    next_attempt_ = now + delay;
    if (by_code && code_failures_ >= options_.max_code_failures) return {false, "code_disabled", 0};
    return {false, by_code ? "wrong_code" : "wrong_token", delay.count()};
}

void Server::serve(int fd, std::string const& peer) {
    net::io_context ioc;
    tcp::socket socket(ioc);
    sockaddr_storage local{};
    socklen_t local_len = sizeof local;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len);
    socket.assign(local.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), fd);
    // Forgets the pairing deadline before the socket (declared first) closes its descriptor.
    struct Unpaired {
        Server& server;
        int fd;
        void paired() {
            std::lock_guard lock(server.connections_mutex_);
            server.unpaired_.erase(fd);
        }
        ~Unpaired() { paired(); }
    } unpaired{*this, fd};
    set_receive_timeout(fd, 10);  // the handshake must come quickly

    beast::flat_buffer buffer;
    http::request_parser<http::empty_body> parser;
    parser.header_limit(8192);
    beast::error_code ec;
    http::read(socket, buffer, parser, ec);
    if (ec) return;
    auto const& request = parser.get();
    auto reply = [&](http::status status, std::string body) {
        http::response<http::string_body> res{status, request.version()};
        res.set(http::field::content_type, "text/plain; charset=utf-8");
        res.set(http::field::server, "kyotaku-bridge");
        res.body() = std::move(body);
        res.prepare_payload();
        http::write(socket, res, ec);
    };
    if (!websocket::is_upgrade(request)) {
        reply(http::status::upgrade_required, "kyotaku-bridge: WebSocket のみ / WebSocket only\n");
        return;
    }
    std::string const origin(request[http::field::origin]);
    bool allowed = false;
    for (auto const& o : options_.allowed_origins) allowed = allowed || o == origin;
    if (!allowed) {
        log("refused a WebSocket from Origin \"" + origin.substr(0, 200) + "\" (not on the allow-list)");
        reply(http::status::forbidden, "kyotaku-bridge: この Origin は許可されていません / Origin not allowed\n");
        return;
    }
    websocket::stream<tcp::socket&> ws(socket);
    ws.read_message_max(max_frame_size);  // up to this a message is answered (malformed if over max_message_size)
    ws.set_option(websocket::stream_base::decorator([](websocket::response_type& res) {
        res.set(http::field::server, "kyotaku-bridge");
    }));
    ws.accept(request, ec);
    if (ec) return;
    set_receive_timeout(fd, 600);  // an idle page is dropped after 10 minutes

    bool paired = false, holds_card = false;
    std::unique_ptr<card::Channel> channel;
    auto release = [&] {
        channel.reset();
        if (holds_card) card_busy_ = false;
        holds_card = false;
    };
    auto send = [&](std::string const& text) {
        ws.text(true);
        ws.write(net::buffer(text), ec);
    };
    log("client connected from " + peer + " (Origin " + origin + ")");
    while (!stopping_ && !ec) {
        beast::flat_buffer message;
        ws.read(message, ec);
        if (ec) break;
        std::string text = beast::buffers_to_string(message.data());
        card::secure_wipe(message.data().data(), message.data().size());
        std::optional<std::int64_t> id;
        try {
            if (!ws.got_text()) {
                card::secure_wipe(text.data(), text.size());
                throw CardError(ErrorKind::malformed, Message{"テキストメッセージではありません",
                                                              "binary messages are not part of the protocol"});
            }
            Request req = parse_request(text, id);
            if (!paired && req.op != Op::hello)
                throw CardError(ErrorKind::unauthorized, Message{"最初に hello でペアリングしてください",
                                                                 "send hello with the pairing token first"});
            switch (req.op) {
                case Op::hello: {
                    Verdict const v = authenticate(req.token, req.code);
                    if (!v.ok) {
                        log("refused a client: " + v.reason);
                        send(refusal(id, v.reason, v.retry_after_ms));
                        ws.close(websocket::close_code::policy_error, ec);
                        release();
                        return;
                    }
                    paired = true;
                    unpaired.paired();
                    nlohmann::json answer{{"bridge", "kyotaku-bridge"}, {"version", protocol_version}};
                    // the page keeps it: the code is typed once
                    if (!req.code.empty()) answer["token"] = options_.token;
                    send(ok(req.id, answer));
                    break;
                }
                case Op::readers: send(ok(req.id, {{"readers", backend_->readers()}})); break;
                case Op::open: {
                    if (!holds_card) {
                        bool expected = false;
                        if (!card_busy_.compare_exchange_strong(expected, true))
                            throw CardError(ErrorKind::busy,
                                            Message{"別の画面がカードを使用中です",
                                                    "another client is using the card; try again when it is done"});
                        holds_card = true;
                    }
                    channel.reset();
                    try {
                        channel = backend_->open(req.reader, std::chrono::milliseconds(req.wait_ms),
                                                 [fd] { return readable(fd); });
                    } catch (...) {
                        release();
                        throw;
                    }
                    send(ok(req.id));
                    break;
                }
                case Op::read_certificate:
                case Op::pin_tries:
                case Op::sign: {
                    if (!channel)
                        throw CardError(ErrorKind::no_card,
                                        Message{"先に open でカードを開いてください", "open a card first"});
                    try {
                        if (req.op == Op::read_certificate) {
                            card::Bytes cert = card::jpki::read_certificate_only(*channel);
                            send(ok(req.id, {{"certificate", card::base64(cert)}}));
                        } else if (req.op == Op::pin_tries) {
                            card::jpki::Client client(*channel);
                            send(ok(req.id, {{"tries_left", client.pin_tries_left()}}));
                        } else {
                            card::Bytes const digest = card::sha256(req.challenge);
                            card::jpki::Signed s = card::jpki::sign_challenge(*channel, *req.pin, digest);
                            req.pin.reset();
                            send(ok(req.id, {{"certificate", card::base64(s.certificate)},
                                             {"signature", card::base64(s.signature)}}));
                        }
                    } catch (CardError const& e) {
                        if (is_session_fault(e.kind())) channel.reset();  // the page opens again
                        throw;
                    }
                    break;
                }
                case Op::cancel: send(ok(req.id)); break;
                case Op::close:
                    release();
                    send(ok(req.id));
                    break;
            }
            log(std::string("op ") + to_string(req.op) + ": ok");
        } catch (CardError const& e) {
            log(std::string("op failed: ") + card::to_string(e.kind()));
            send(error(id, e));
            if (e.kind() == ErrorKind::unauthorized) break;
        } catch (std::exception const& e) {
            log(std::string("op failed: ") + e.what());
            send(error(id, CardError(ErrorKind::transport,
                                     Message{"内部エラー", std::string("internal error: ") + e.what()})));
        }
    }
    release();
    if (ec == websocket::error::message_too_big)
        log("closed a connection: a message over " + std::to_string(max_frame_size / 1024) + " KB");
    if (!ec) ws.close(websocket::close_code::normal, ec);
    log("client disconnected");
}

}  // namespace kyotaku::bridge
