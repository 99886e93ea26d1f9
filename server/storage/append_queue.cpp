#include "storage/append_queue.hpp"

namespace kyotaku::server {

namespace {
// The table an audit append writes to ("INSERT INTO inquiry_log (…"), for the log of lines left uncommitted.
std::string table_of(std::string const& sql) {
    std::string const into = "INSERT INTO ";
    std::size_t const at = sql.find(into);
    if (at == std::string::npos) return "?";
    std::size_t const from = at + into.size();
    return sql.substr(from, sql.find_first_of(" (", from) - from);
}
}  // namespace

AppendQueue::AppendQueue(Commit commit, std::chrono::microseconds gather, std::function<void()> interrupt)
    : commit_(std::move(commit)), gather_(gather), interrupt_(std::move(interrupt)), thread_([this] { loop(); }) {}

AppendQueue::~AppendQueue() {
    finish(std::chrono::steady_clock::time_point::max());
    std::lock_guard lock(mutex_);
    for (auto const& [scope, order] : expected_) const_cast<DeferredAppends*>(scope)->watcher = nullptr;
}

std::shared_ptr<PendingAppend> AppendQueue::push(std::string const& sql, std::vector<Value> const& params,
                                                 DeferredAppends* scope) {
    auto line = std::make_shared<PendingAppend>();
    line->sql = sql;
    line->params = params;
    bool wake = false;
    {
        std::lock_guard lock(mutex_);
        // (its line is in: no longer watched, so that the scope's end never calls a queue that may be gone)
        if (scope && expected_.erase(scope) && scope->watcher == this) scope->watcher = nullptr;
        if (closed_) return nullptr;
        queue_.push_back(line);
        // The thread is woken only when it can go on: idle, or gathering and this was the last line it waited for.
        // Committing, it takes the line next anyway; gathering, it would wake for each line only to wait again (a
        // switch of the thread per line, most of its CPU per re-inquiry on PostgreSQL).
        wake = waiting_ || (gathering_ && joined());
    }
    if (wake) ready_.notify_one();
    return line;
}

void AppendQueue::expect(DeferredAppends& scope) {
    if (gather_.count() <= 0) return;
    std::lock_guard lock(mutex_);
    // (A scope another queue watches is left to it: each entry here is erased when its scope ends, or by the
    // destructor.)
    if (closed_ || (scope.watcher && scope.watcher != this) || expected_.count(&scope)) return;
    expected_.emplace(&scope, next_expected_++);
    scope.watcher = this;
}

void AppendQueue::ended(DeferredAppends const& scope) {
    bool wake = false;
    {
        std::lock_guard lock(mutex_);
        wake = expected_.erase(&scope) && gathering_ && joined();
    }
    if (wake) ready_.notify_one();
}

void AppendQueue::loop() {
    std::unique_lock lock(mutex_);
    for (;;) {
        waiting_ = true;
        ready_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        waiting_ = false;
        if (queue_.empty()) {  // stopping, and every line is in
            ended_ = true;
            lock.unlock();
            idle_.notify_all();  // (finish() interrupting the commit in flight stops)
            return;
        }
        if (gather_.count() > 0 && !expected_.empty()) {
            // The requests expected before now (each computing its answer, whose line comes next) join this group:
            // one commit, one wake of this thread and of the database's backend, for their lines together.
            gather_before_ = next_expected_;
            gathering_ = true;
            ready_.wait_until(lock, std::chrono::steady_clock::now() + gather_, [&] { return joined(); });
            gathering_ = false;
        }
        std::vector<std::shared_ptr<PendingAppend>> group;
        group.swap(queue_);
        in_flight_ = group.size();
        lock.unlock();
        commit_(group);
        lock.lock();
        if (closed_)  // (what fails now is not answered: the server is past its drain)
            for (auto const& line : group)
                if (line->error) {
                    if (!left_.lines++) left_.error = describe(line->error);
                    ++left_.tables[table_of(line->sql)];
                }
        // The group is no longer pending before its tickets are told: whoever waits on a ticket then sees it counted
        // out (pending(), /metrics). finish() may return only after this thread has ended (it joins), so every ticket
        // is told before it returns.
        in_flight_ = 0;
        lock.unlock();
        idle_.notify_all();
        for (auto const& line : group) line->ticket->finish(line->error);
        lock.lock();
    }
}

bool AppendQueue::joined() const {
    if (closed_ || queue_.size() >= 256) return true;
    for (auto const& [scope, order] : expected_)
        if (order < gather_before_) return false;
    return true;
}

Database::AppendsLeft AppendQueue::finish(std::chrono::steady_clock::time_point deadline) {
    std::vector<std::shared_ptr<PendingAppend>> never;
    bool gave_up = false;
    {
        std::unique_lock lock(mutex_);
        if (closed_) return left_;  // (finished already)
        closed_ = true;
        auto const done = [&] { return queue_.empty() && in_flight_ == 0; };
        if (deadline == std::chrono::steady_clock::time_point::max()) idle_.wait(lock, done);
        else idle_.wait_until(lock, deadline, done);
        if (!done()) {
            give_up_ = gave_up = true;
            never.swap(queue_);
        }
        stop_ = true;
    }
    ready_.notify_all();
    idle_.notify_all();  // (a pause() under way ends)
    if (!never.empty()) {
        auto const why = std::make_exception_ptr(
            TransientDatabaseError("the server stopped before the audit line was committed (past its drain)"));
        {
            std::lock_guard lock(mutex_);
            if (!left_.lines) left_.error = describe(why);
            left_.lines += never.size();
            for (auto const& line : never) ++left_.tables[table_of(line->sql)];
        }
        for (auto const& line : never) line->ticket->finish(why);
    }
    if (gave_up && interrupt_) {
        // The group in flight may wait for the database (a lock another session holds): interrupted, and again until
        // the thread has ended (an interruption that came before its statement reached the database is lost).
        std::unique_lock lock(mutex_);
        while (!ended_) {
            lock.unlock();
            interrupt_();
            lock.lock();
            idle_.wait_for(lock, std::chrono::milliseconds(100), [&] { return ended_; });
        }
    }
    thread_.join();
    std::lock_guard lock(mutex_);
    return left_;
}

bool AppendQueue::pause(std::chrono::milliseconds how_long) {
    std::unique_lock lock(mutex_);
    return !idle_.wait_for(lock, how_long, [&] { return give_up_; });
}

std::size_t AppendQueue::pending() {
    std::lock_guard lock(mutex_);
    return queue_.size() + in_flight_;
}

bool AppendQueue::giving_up() {
    std::lock_guard lock(mutex_);
    return give_up_;
}

std::string AppendQueue::describe(std::exception_ptr const& error) {
    try {
        std::rethrow_exception(error);
    } catch (std::exception const& e) {
        return e.what();
    } catch (...) {
        return "unknown error";
    }
}

}  // namespace kyotaku::server
