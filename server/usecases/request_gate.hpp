// Interactive requests go before the batch worker (a person at a patient's home waits on a re-inquiry; a batch is
// background work), in two ways:
// - Before the worker commits a chunk, it waits until every interactive request that was in flight when the chunk got
//   ready has finished (drain). Requests that arrive later do not hold it up, and no request ever waits behind more
//   than the one chunk write that may already be running. No timing is involved.
// - Between chunks, while interactive requests keep coming, the worker gives way (give_way): it waits until none has
//   been in flight for a quiet moment, or until a deadline the worker sets from the time its last chunk took (so that
//   it keeps a minimum share of the time and a batch always progresses: BatchDesk::batch_share), or until it is told
//   to stop. With no interactive request in flight when it first looks and at most one started since its last chunk
//   began, it does not wait at all: a lone request that came and went during the chunk (a client polling a job's
//   status every 20 ms) does not hold a batch back; a steady interactive load brings many.
#pragma once

#include "core/clock.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
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
        ++entered_;
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
    // How many interactive requests have started so far (give_way's `since`).
    std::uint64_t entered() const {
        std::lock_guard lock(mutex_);
        return entered_;
    }
    // Whether the worker runs alone: none in flight and at most one started since `since` (a count of entered()),
    // the first look of give_way().
    bool alone_since(std::uint64_t since) const {
        std::lock_guard lock(mutex_);
        return in_flight_.empty() && entered_ <= since + 1;
    }
    // Gives way to interactive requests: returns at once when none is in flight and at most one started since `since`
    // (a count of entered()); else waits until, on looking again every `quiet`, none is in flight and none started
    // since the last look, or until `deadline` on clock(), or until `stop` is set (then wake() is called). Returns
    // whether it waited.
    bool give_way(std::uint64_t since, std::chrono::steady_clock::time_point deadline, std::atomic<bool> const& stop,
                  std::chrono::steady_clock::duration quiet = std::chrono::milliseconds(2)) {
        std::unique_lock lock(mutex_);
        std::uint64_t seen = since;
        bool waited = false;
        for (;;) {
            // (the first look: none in flight and at most a lone request since the chunk began; then: quiet since the
            // last look)
            if (stop || (in_flight_.empty() && entered_ <= seen + (waited ? 0 : 1))) return waited;
            auto const now = clock_->now();
            if (now >= deadline) return waited;
            if (!waited && giving_way_hook_) giving_way_hook_();
            waited = true;
            seen = entered_;
            woken_.wait_for(lock, std::min<std::chrono::steady_clock::duration>(quiet, deadline - now));
        }
    }
    // Wakes a worker giving way (it has been told to stop).
    void wake() {
        std::lock_guard lock(mutex_);
        woken_.notify_all();
    }
    PaceClock& clock() const { return *clock_; }
    // Tests: a clock of their own (before the worker runs).
    void set_clock(PaceClock& clock) { clock_ = &clock; }
    // Tests: called (under the gate's lock, so it must not block) when drain() has to wait for a request.
    void on_waiting(void (*hook)()) { waiting_hook_ = hook; }
    // Tests: called (likewise) when give_way() has to wait.
    void on_giving_way(void (*hook)()) { giving_way_hook_ = hook; }

private:
    mutable std::mutex mutex_;
    std::condition_variable drained_, woken_;
    std::uint64_t epoch_ = 0, entered_ = 0;
    std::map<std::uint64_t, int> in_flight_;  // epoch → requests that entered then and are still running
    PaceClock* clock_ = &SteadyPaceClock::instance();
    void (*waiting_hook_)() = nullptr;
    void (*giving_way_hook_)() = nullptr;
};

}  // namespace kyotaku::server
