// What `kyotaku serve` grants one connection (issue 10): how many connections at once, how long each phase of a
// request may take, how large a body may be — decided before the body is read — and where large uploads are
// spooled. The accept loop survives every error (descriptor exhaustion included). docs/security.md.
#pragma once

#include <utility>  // before Boost 1.74's awaitable.hpp, which uses std::exchange without it

#include <boost/asio.hpp>

#include "ops/connection_limits.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

namespace kyotaku::server {

// The connection cap the descriptor limit allows: each connection may hold a socket and a spool file, and a few
// descriptors stay for the database, the listener and the rules. Raises the soft limit to the hard one first.
int effective_max_connections(int wanted);
// The caps of the two listeners (listen, patient_listen), each as asked when both fit the descriptor limit together;
// else the places it allows, shared in proportion (each at least 1).
std::pair<int, int> effective_max_connections(int main, int patients);

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

// Connections still in their TLS handshake have budgets of their own (issue 22 item 5), so that connections that never
// finish one — raw TCP that sends nothing, or TLS trickled a byte at a time — cannot hold the places certified clients
// need. Two stages, each with a budget of `max` connections (session.hpp): waiting for the client's first record (its
// ClientHello, which a real client sends at once, whole) and the rest of the handshake. A new connection beyond a
// budget evicts one already in it: the oldest of those that have sent nothing yet (the socket's own count of unread
// bytes, when `fd` is given), else the oldest — the one nearest its deadline. So a flood of silent or trickling
// connections churns among itself while a real client, whose ClientHello is already waiting when it is accepted and
// whose handshake takes milliseconds, gets through beside it. Thread-safe; `evict` is called at most once, outside the
// lock.
class HandshakeBudget {
public:
    struct Entry;
    using Ticket = std::shared_ptr<Entry>;
    Ticket enter(int max, std::function<void()> evict, int fd = -1);
    void leave(Ticket const& ticket);  // the stage ended (done or failed)
    int size() const;
    std::atomic<long> evicted{0};

private:
    mutable std::mutex mutex_;
    std::list<Ticket> waiting_;  // oldest first
};

// Large uploads (issue 22 item 4): a body beyond anonymous_body — only an office terminal or the operator may send
// one — takes its size (its Content-Length; the route's limit when it comes chunked) from a budget all connections
// share, memory for bodies held whole and disk for spooled ones, before a byte of it is read, and gives it back once
// its answer is computed. One facility (the operator counts as one) has at most `per_facility` large uploads at once,
// so that it cannot take the whole budget from the others. Thread-safe; a grant may outlive the budget.
class UploadBudget {
public:
    enum class Store { memory, spool };
    enum class Refusal { none, budget, facility, disk };
    using Grant = std::shared_ptr<void>;  // gives the bytes and the facility's place back when dropped

    UploadBudget(std::uint64_t memory_bytes, std::uint64_t spool_bytes, int per_facility);
    // A grant; or nullptr and why: the facility has `per_facility` uploads under way, the store has not `bytes` left,
    // or — spooled, when `spool_free` is set — the spool directory's disk has less free than the spooled uploads under
    // way may still write, this one included (each counted at its whole size: a full disk would fail them halfway).
    std::pair<Grant, Refusal> reserve(Store store, std::uint64_t bytes, std::string const& facility);
    std::uint64_t capacity(Store store) const { return capacity_[int(store)]; }
    std::uint64_t in_use(Store store) const;
    int uploads() const;  // large uploads under way
    int per_facility() const { return per_facility_; }
    std::atomic<long> refused_budget{0}, refused_facility{0}, refused_disk{0};
    // The bytes free on the spool directory's disk now (free_disk_bytes); unset or nullopt: not checked.
    std::function<std::optional<std::uint64_t>()> spool_free;

private:
    struct State;
    std::uint64_t capacity_[2];
    int per_facility_;
    std::shared_ptr<State> state_;
};

struct AcceptStats {
    std::atomic<long> accepted{0}, refused_at_cap{0}, errors{0};
};

// Accepts until the acceptor is closed. An accept error (EMFILE, ENFILE, ENOBUFS, a connection reset before it was
// accepted …) is counted and retried after a short pause instead of ending the loop; at the cap a connection is
// closed at once. Each accepted socket is handed to `start` with its slot, on a strand of its own (its connection's
// operations, deadlines and evictions never run at once).
boost::asio::awaitable<void> accept_loop(
    boost::asio::ip::tcp::acceptor& acceptor, int max_connections, ConnectionCounter& counter, AcceptStats& stats,
    std::function<void(boost::asio::ip::tcp::socket, ConnectionCounter::Slot)> start);

// The private directory of spooled uploads: created 0700 when missing, refused when it is a symlink, someone
// else's, or open to others; files left by a killed server are removed. Returns an error message, or "".
std::string prepare_spool_dir(std::string const& dir);

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
