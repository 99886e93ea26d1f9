// Interactive requests go before the batch worker, by construction: the worker commits a chunk only once every
// interactive request that was in flight when it got ready has finished. Requests that arrive later do not hold
// it up (so the batch always progresses), and no request ever waits behind more than the one chunk write that
// may already be running. No timing is involved.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>

namespace kyotaku::server {

class RequestGate {
public:
    // An interactive request starts; pass the ticket to leave() when it ends.
    std::uint64_t enter() {
        std::lock_guard lock(mutex_);
        ++in_flight_[epoch_];
        return epoch_;
    }
    void leave(std::uint64_t ticket) {
        std::lock_guard lock(mutex_);
        auto it = in_flight_.find(ticket);
        if (it != in_flight_.end() && --it->second == 0) {
            in_flight_.erase(it);
            drained_.notify_all();
        }
    }
    // Waits until the requests in flight now have all finished (the worker, before it commits a chunk).
    void drain() {
        std::unique_lock lock(mutex_);
        std::uint64_t const before = epoch_++;
        if (waiting_hook_ && !in_flight_.empty() && in_flight_.begin()->first <= before) waiting_hook_();
        drained_.wait(lock, [&] { return in_flight_.empty() || in_flight_.begin()->first > before; });
    }
    bool busy() const {
        std::lock_guard lock(mutex_);
        return !in_flight_.empty();
    }
    // Tests: called (under the gate's lock, so it must not block) when drain() has to wait for a request.
    void on_waiting(void (*hook)()) { waiting_hook_ = hook; }

private:
    mutable std::mutex mutex_;
    std::condition_variable drained_;
    std::uint64_t epoch_ = 0;
    std::map<std::uint64_t, int> in_flight_;  // epoch → requests that entered then and are still running
    void (*waiting_hook_)() = nullptr;
};

}  // namespace kyotaku::server
