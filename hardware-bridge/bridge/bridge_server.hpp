// kyotaku-bridge: a WebSocket daemon on loopback through which the consent page reaches a PC/SC card reader.
// Refuses a non-loopback address, a WebSocket whose Origin is not allowed, a client without the pairing token
// or the pairing code; one card session at a time (a second client is told "busy"); never logs a PIN.
// Local processes are not trusted either: a connection must pair within a total deadline (however slowly it
// trickles bytes), one address holds at most a few connections, and wrong tokens or codes are slowed down
// (each one doubles the wait before the next attempt is even compared; too many wrong codes end pairing by
// code until the bridge restarts).
#pragma once

#include "kyotaku/card/apdu.hpp"
#include "kyotaku/card/virtual_card.hpp"

#include <atomic>
#include <chrono>
#include <functional>
#include <iosfwd>
#include <map>
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
std::unique_ptr<CardBackend> virtual_backend(std::shared_ptr<card::VirtualCard> card,
                                             std::shared_ptr<std::mutex> mutex);

/// 127.0.0.0/8 or ::1 (a literal address; host names are refused so that nothing resolves elsewhere).
bool is_loopback(std::string const& address);

/// `--listen ADDRESS:PORT` (`[::1]:PORT` for IPv6), strictly: the port is 0–65535 in decimal digits only
/// (0 picks a free port). Throws std::invalid_argument naming what is wrong.
struct ListenAddress {
    std::string address;
    std::uint16_t port = 0;
};
ListenAddress parse_listen(std::string const& text);

/// A fresh 6-digit pairing code (uniformly random).
std::string new_pairing_code();

struct Options {
    std::string address = "127.0.0.1";
    std::uint16_t port = 39211;  ///< 0 picks a free port
    std::vector<std::string> allowed_origins;
    std::string token;         ///< pairing token the page must present in "hello" (or receives for the code)
    std::string pairing_code;  ///< 6 digits a person types into the page instead of the token ("" = token only)
    int max_connections = 8;
    int max_per_peer = 4;      ///< connections from one source address
    std::chrono::milliseconds auth_deadline{10'000};      ///< from accept to a successful hello, in total
    std::chrono::milliseconds failure_delay{500};         ///< after a wrong token or code; doubles with each one …
    std::chrono::milliseconds max_failure_delay{30'000};  ///< … up to this
    int max_code_failures = 10;  ///< wrong codes before pairing by code stops (until the bridge restarts)
    std::function<std::chrono::steady_clock::time_point()> clock = std::chrono::steady_clock::now;  ///< tests set it
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
    struct Verdict;
    void serve(int fd, std::string const& peer);
    Verdict authenticate(std::string const& token, std::string const& code);
    void close_late_connections();
    Options options_;
    std::unique_ptr<CardBackend> backend_;
    std::ostream& log_;
    std::mutex log_mutex_;
    int listen_fd_ = -1;
    std::uint16_t port_ = 0;
    std::atomic<bool> stopping_{false};
    std::atomic<int> connections_{0};
    std::atomic<bool> card_busy_{false};
    std::mutex connections_mutex_;
    std::map<std::string, int> per_peer_;                                  // open connections by source address
    std::map<int, std::chrono::steady_clock::time_point> unpaired_;        // socket → its pairing deadline
    std::mutex auth_mutex_;
    int consecutive_failures_ = 0, code_failures_ = 0;
    std::chrono::steady_clock::time_point next_attempt_{};
    void log(std::string const& line);
};

}  // namespace kyotaku::bridge
