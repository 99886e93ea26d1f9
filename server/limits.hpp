// What `kyotaku serve` grants one connection (issue 10): how many connections at once, how long each phase of a
// request may take, how large a body may be — decided before the body is read — and where large uploads are
// spooled. The accept loop survives every error (descriptor exhaustion included). docs/security.md.
#pragma once

#include <utility>  // before Boost 1.74's awaitable.hpp, which uses std::exchange without it

#include <boost/asio.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace kyotaku::server {

struct ConnectionLimits {
    int max_connections = 256;                 // open at once; beyond, a connection is accepted and closed at once
    std::chrono::seconds handshake{10};        // the TLS handshake
    std::chrono::seconds idle{30};             // waiting for the first byte of a request (keep-alive)
    std::chrono::seconds header{10};           // from a request's first byte to the end of its header
    std::chrono::seconds body{60};             // a body held in memory
    std::chrono::seconds upload{600};          // a spooled upload (the batch CSV)
    std::uint64_t header_bytes = 16 * 1024;
    std::uint64_t anonymous_body = 64 * 1024;  // routes anyone may call (health, the consent page's) and mobile sessions
    std::uint64_t memory_body = 64 << 20;      // a JSON or CSV body of an office terminal, held in memory
    std::uint64_t xml_body = 16 << 20;         // an OQS*.xml file (parsed whole: the documented file limit)
    std::uint64_t spooled_body = 1ull << 30;   // the batch CSV upload, spooled to a file and streamed
};

// The connection cap the descriptor limit allows: each connection may hold a socket and a spool file, and a few
// descriptors stay for the database, the listener and the rules. Raises the soft limit to the hard one first.
int effective_max_connections(int wanted);

// Counts the open connections; a Slot is held by each connection and frees its place when dropped.
class ConnectionCounter {
public:
    using Slot = std::shared_ptr<void>;
    // A slot, or nullptr when `max` connections are open.
    Slot try_acquire(int max);
    int open() const { return count_->load(); }

private:
    std::shared_ptr<std::atomic<int>> count_ = std::make_shared<std::atomic<int>>(0);
};

struct AcceptStats {
    std::atomic<long> accepted{0}, refused_at_cap{0}, errors{0};
};

// Accepts until the acceptor is closed. An accept error (EMFILE, ENFILE, ENOBUFS, a connection reset before it was
// accepted …) is counted and retried after a short pause instead of ending the loop; at the cap a connection is
// closed at once. Each accepted socket is handed to `start` with its slot.
boost::asio::awaitable<void> accept_loop(boost::asio::ip::tcp::acceptor& acceptor, int max_connections, ConnectionCounter& counter,
                                         AcceptStats& stats,
                                         std::function<void(boost::asio::ip::tcp::socket, ConnectionCounter::Slot)> start);

// The private directory of spooled uploads: created 0700 when missing, refused when it is a symlink, someone
// else's, or open to others; files left by a killed server are removed. Returns an error message, or "".
std::string prepare_spool_dir(std::string const& dir);
// The default: beside a SQLite database (DB.spool), else kyotaku-spool-UID in the system's temporary directory.
std::string default_spool_dir(std::string const& db);

// One spooled upload: a file created in the spool directory and unlinked at once, so that nothing of it remains
// after the request — nor after a SIGKILL. `path` (/proc/self/fd/N) opens it again; `fd` is the descriptor.
class SpoolFile {
public:
    explicit SpoolFile(std::string const& dir);
    ~SpoolFile();
    SpoolFile(SpoolFile const&) = delete;
    SpoolFile& operator=(SpoolFile const&) = delete;
    bool ok() const { return fd >= 0; }
    int fd = -1;
    std::string path;
};

}  // namespace kyotaku::server
