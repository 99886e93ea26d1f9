// The audit appends of reads (Database::append) committed in groups by a thread of their own: the mechanism both
// backends share. A backend queues each line and gives the queue the commit of one group; the thread takes every line
// queued meanwhile, commits them together and finishes their tickets (AppendTicket, database.hpp).
#pragma once

#include "storage/database.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace kyotaku::server {

struct PendingAppend {
    std::string sql;
    std::vector<Value> params;
    std::vector<Row> rows;      // what the statement returned (for a caller that waits)
    std::exception_ptr error;   // why it was not committed (null: it was)
    std::shared_ptr<AppendTicket> ticket = std::make_shared<AppendTicket>();
};

class AppendQueue final : public DeferredAppends::Watcher {
public:
    // Commits one group, setting each line's rows or error (never throws). It may call pause() while the database is
    // busy, and should give up when that returns false.
    using Commit = std::function<void(std::vector<std::shared_ptr<PendingAppend>> const&)>;
    // Starts the committing thread; `commit` runs on it only. `gather` (zero: none): how long at most the thread,
    // finding lines queued, first waits for the requests expected to append one (expect()) when it looked — each until
    // it appends or ends — so that their lines share the group's commit. `interrupt` (optional): once finish() has
    // given up on the lines in flight, called every 100 ms until the committing thread has ended, from finish()'s
    // thread — for a backend whose commit waits for the database without pause() (PostgreSQL cancels the statement).
    explicit AppendQueue(Commit commit, std::chrono::microseconds gather = {}, std::function<void()> interrupt = {});
    ~AppendQueue();  // every line queued by then is committed first (finish() with no deadline)
    AppendQueue(AppendQueue const&) = delete;
    AppendQueue& operator=(AppendQueue const&) = delete;

    // Queues a line (its ticket is finished by the committing thread); null once finish() has begun: the caller then
    // runs the statement itself. `scope`: the request it comes from, expected no more.
    std::shared_ptr<PendingAppend> push(std::string const& sql, std::vector<Value> const& params,
                                        DeferredAppends* scope = nullptr);
    // A request that has begun reading under `scope` will likely append a line (a re-inquiry's 資格確認履歴): with
    // `gather`, a group waits for it (until it appends or ends) when it was expected before the group was looked at.
    void expect(DeferredAppends& scope);
    void ended(DeferredAppends const& scope) override;  // (the scope's end: expected no more)

    // Waits, until `deadline` at most, for every line queued to be committed (or failed); then stops the thread, so
    // that no ticket is finished after this returns. A line still queued at the deadline is not committed and one
    // being committed gives up waiting for the database (pause() returns false; `interrupt`): each such ticket is
    // finished with an error (its request is not answered) and counted in the result, by table, for the log.
    Database::AppendsLeft finish(std::chrono::steady_clock::time_point deadline);

    // The backend's wait while the database is busy (another process holds its write lock): false at once, and
    // without waiting, once finish() has given up on the lines in flight.
    bool pause(std::chrono::milliseconds how_long);
    bool giving_up();  // whether finish() has given up on the lines in flight (no second attempt then)
    std::size_t pending();  // lines queued or being committed

private:
    void loop();
    bool joined() const;  // the group being gathered may go (under mutex_)
    static std::string describe(std::exception_ptr const& error);

    Commit commit_;
    std::mutex mutex_;
    std::condition_variable ready_;  // lines queued, or stopping
    std::condition_variable idle_;   // the queue empty and no group in flight; or giving up (ends a pause)
    std::vector<std::shared_ptr<PendingAppend>> queue_;  // waiting for the next group (under mutex_)
    std::size_t in_flight_ = 0;  // the lines of the group being committed (under mutex_)
    bool closed_ = false;     // finish() has begun: no more lines (under mutex_)
    bool stop_ = false;       // the thread ends once the queue is empty (under mutex_)
    bool give_up_ = false;    // the deadline passed: lines in flight stop waiting for the database (under mutex_)
    Database::AppendsLeft left_;  // (under mutex_)
    std::chrono::microseconds const gather_;
    std::map<DeferredAppends const*, std::uint64_t> expected_;  // requests expected to append, by arrival (mutex_)
    std::uint64_t next_expected_ = 0;                            // (under mutex_)
    bool gathering_ = false;  // the thread waits for expected requests (under mutex_)
    std::uint64_t gather_before_ = 0;  // while gathering: the requests expected before this join the group (mutex_)
    bool waiting_ = false;    // the thread waits for lines (under mutex_)
    bool ended_ = false;      // the thread's loop has returned (under mutex_)
    std::function<void()> const interrupt_;
    std::thread thread_;  // last: started once the rest exists
};

}  // namespace kyotaku::server
