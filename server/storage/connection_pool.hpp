// The connections of a database backend (SQLite, PostgreSQL): a fixed set lent to one thread at a time, and the
// connection a thread's transaction holds, so that every statement of the transaction runs on it.
#pragma once

#include "storage/database.hpp"

#include <condition_variable>
#include <mutex>
#include <utility>
#include <vector>

namespace kyotaku::server {

template <typename Conn>  // a pointer to one connection
class ConnectionPool {
public:
    // Before any use (not thread-safe): the connections, owned by the backend.
    void add(Conn c) {
        all_.push_back(c);
        free_.push_back(c);
    }
    std::vector<Conn> const& all() const { return all_; }

    Database::PoolStats stats() {
        std::lock_guard lock(mutex_);
        return {int(all_.size()), int(all_.size() - free_.size()), waiting_};
    }

    // A free connection for the lease's lifetime (waits for one).
    struct Lease {
        ConnectionPool& pool;
        Conn conn;
        explicit Lease(ConnectionPool& p) : pool(p) {
            std::unique_lock lock(p.mutex_);
            ++p.waiting_;
            p.available_.wait(lock, [&] { return !p.free_.empty(); });
            --p.waiting_;
            conn = p.free_.back();
            p.free_.pop_back();
        }
        ~Lease() {
            {
                std::lock_guard lock(pool.mutex_);
                pool.free_.push_back(conn);
            }
            pool.available_.notify_one();
        }
        Lease(Lease const&) = delete;
        Lease& operator=(Lease const&) = delete;
    };

    // The connection this thread's transaction holds on this pool (null outside one).
    Conn bound() const { return binding().first == this ? binding().second : Conn{}; }
    void bind(Conn c) const { binding() = {this, c}; }
    void unbind() const { binding() = {nullptr, Conn{}}; }

private:
    static std::pair<ConnectionPool const*, Conn>& binding() {
        thread_local std::pair<ConnectionPool const*, Conn> b{nullptr, Conn{}};
        return b;
    }
    std::mutex mutex_;
    std::condition_variable available_;
    std::vector<Conn> all_, free_;
    int waiting_ = 0;  // threads waiting for a free connection (under mutex_)
};

}  // namespace kyotaku::server
