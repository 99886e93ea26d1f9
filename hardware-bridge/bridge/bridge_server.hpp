// kyotaku-bridge: a WebSocket daemon on loopback through which the consent page reaches a PC/SC card reader.
// Refuses a non-loopback address, a WebSocket whose Origin is not allowed, a client without the pairing token;
// one card session at a time (a second client is told "busy"); never logs a PIN.
#pragma once

#include "kyotaku/card/apdu.hpp"
#include "kyotaku/card/virtual_card.hpp"

#include <atomic>
#include <chrono>
#include <functional>
#include <iosfwd>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace kyotaku::bridge {

/// Where cards come from: PC/SC natively, or an in-process virtual card for demos.
class CardBackend {
public:
    virtual ~CardBackend() = default;
    virtual std::vector<std::string> readers() = 0;
    /// Waits up to `wait` for a card in `reader` (empty: any) and connects to it. `cancelled` is polled.
    virtual std::unique_ptr<card::Channel> open(std::string const& reader, std::chrono::milliseconds wait,
                                                std::function<bool()> const& cancelled) = 0;
};

std::unique_ptr<CardBackend> pcsc_backend();
/// A backend holding one virtual card (shared: the caller may remove/insert it).
std::unique_ptr<CardBackend> virtual_backend(std::shared_ptr<card::VirtualCard> card, std::shared_ptr<std::mutex> mutex);

/// 127.0.0.0/8 or ::1 (a literal address; host names are refused so that nothing resolves elsewhere).
bool is_loopback(std::string const& address);

struct Options {
    std::string address = "127.0.0.1";
    std::uint16_t port = 39211;  ///< 0 picks a free port
    std::vector<std::string> allowed_origins;
    std::string token;  ///< pairing token the page must present in "hello"
    int max_connections = 8;
};

class Server {
public:
    /// Throws std::invalid_argument for a non-loopback address or an empty token, CardError(transport) when
    /// the port cannot be bound.
    Server(Options options, std::unique_ptr<CardBackend> backend, std::ostream& log);
    ~Server();
    std::uint16_t port() const { return port_; }
    void run();   ///< accepts until stop()
    void stop();

private:
    void serve(int fd);
    Options options_;
    std::unique_ptr<CardBackend> backend_;
    std::ostream& log_;
    std::mutex log_mutex_;
    int listen_fd_ = -1;
    std::uint16_t port_ = 0;
    std::atomic<bool> stopping_{false};
    std::atomic<int> connections_{0};
    std::atomic<bool> card_busy_{false};
    void log(std::string const& line);
};

}  // namespace kyotaku::bridge
