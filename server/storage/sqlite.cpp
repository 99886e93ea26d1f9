// SQLite backend (the small-clinic default; PostgreSQL is for scale): a few connections to one WAL database, so
// that reads never wait for a writer. Statements are prepared once per connection; bound parameters only, never
// string concatenation.
#include "storage/append_queue.hpp"
#include "storage/audit_journal.hpp"
#include "storage/connection_pool.hpp"
#include "storage/database.hpp"
#include "storage/faults.hpp"

#include "core/error.hpp"
#include "core/codes.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cstring>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <iostream>
#include <iterator>
#include <thread>
#include <unordered_map>
#include <utility>

namespace kyotaku::server {

std::string as_text(Value const& v) {
    if (auto const* s = std::get_if<std::string>(&v)) return *s;
    if (auto const* i = std::get_if<std::int64_t>(&v)) return std::to_string(*i);
    return {};
}
std::int64_t as_int(Value const& v) {
    if (auto const* i = std::get_if<std::int64_t>(&v)) return *i;
    if (auto const* s = std::get_if<std::string>(&v)) {
        std::int64_t out = 0;
        std::from_chars(s->data(), s->data() + s->size(), out);
        return out;
    }
    return 0;
}
bool is_null(Value const& v) { return std::holds_alternative<std::nullptr_t>(v); }

RecentCount recent_count(std::vector<Row> const& rows) {
    if (rows.empty() || as_int(rows[0][0]) == 0) return {};
    return {as_int(rows[0][0]), as_text(rows[0][1])};
}

void check_text_params(std::vector<Value> const& params) {
    for (std::size_t i = 0; i < params.size(); ++i)
        if (auto const* s = std::get_if<std::string>(&params[i]);
            s && (!valid_utf8(*s) || s->find('\0') != std::string::npos))
            throw invalid("", "UTF-8 の文字列ではありません (何も保存していません)",
                          "a text is not valid UTF-8 or holds NUL (parameter $" + std::to_string(i + 1) +
                              "; nothing was stored)");
}

void AppendTicket::when_done(std::function<void()> then) {
    {
        std::lock_guard lock(mutex_);
        if (!done_) {
            then_ = std::move(then);
            return;
        }
    }
    then();
}

void AppendTicket::wait() {
    std::mutex m;
    std::condition_variable cv;
    bool done = false;
    when_done([&] {
        std::lock_guard lock(m);
        done = true;
        cv.notify_one();
    });
    std::unique_lock lock(m);
    cv.wait(lock, [&] { return done; });
}

bool AppendTicket::done() const {
    std::lock_guard lock(mutex_);
    return done_;
}

std::exception_ptr AppendTicket::error() const {
    std::lock_guard lock(mutex_);
    return error_;
}

void AppendTicket::finish(std::exception_ptr error) {
    std::function<void()> then;
    {
        std::lock_guard lock(mutex_);
        error_ = std::move(error);
        done_ = true;
        then.swap(then_);
    }
    if (then) then();
}

namespace {
thread_local DeferredAppends* deferred_appends = nullptr;
}
DeferredAppends::DeferredAppends() : outer_(deferred_appends) { deferred_appends = this; }
DeferredAppends::~DeferredAppends() {
    if (watcher) watcher->ended(*this);
    deferred_appends = outer_;
}
DeferredAppends* DeferredAppends::current() { return deferred_appends; }

namespace {
// A database file only its owner reads: made 0600 as soon as SQLite has opened it, before the journal mode creates its
// -wal and -shm files (SQLite gives them the database's mode); an existing set that others could read is made 0600.
// By path only (stat, chmod), never by opening the file: closing any descriptor of a file releases every POSIX lock
// this process holds on it, the other pooled connections' included, and SQLite would then delete the WAL under them.
void make_private(std::string const& path) {
    if (path.empty() || path == ":memory:" || path.rfind("file:", 0) == 0) return;
    for (std::string const& file : {path, path + "-wal", path + "-shm"}) {
        struct stat st {};
        if (::stat(file.c_str(), &st) != 0 || !(st.st_mode & 077)) continue;
        if (::chmod(file.c_str(), st.st_mode & 0700) == 0 && st.st_size > 0)  // (not a database SQLite just created)
            std::cerr
                << "kyotaku: " << file
                << ": 他のユーザが読めたので所有者だけにしました / was open to other users: made owner-only (0600)\n";
    }
}
}  // namespace

namespace {
// One SQLite connection with its prepared statements. Not thread-safe: the pool lends it to one thread at a time.
class Connection {
public:
    // `writer`: the database's one in-process writer lock (see Sqlite).
    Connection(std::string const& path, std::mutex& writer) : writer_(writer) {
        if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                            nullptr) != SQLITE_OK) {
            std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
            sqlite3_close(db_);
            throw DatabaseError("cannot open SQLite database " + path + ": " + msg);
        }
        make_private(path);
        sqlite3_busy_timeout(db_, 10000);
        // WAL: readers never wait for the writer (a batch chunk's write transaction does not hold up a re-inquiry's
        // reads). synchronous=NORMAL outside transactions: a single-statement append (the audit log of a read)
        // survives a process crash and is fsynced with the next transaction. Every transaction — every state
        // change — runs with synchronous=FULL, so its commit is on disk before it is acknowledged.
        script("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;");
    }
    ~Connection() {
        for (auto& [sql, prepared] : cache_) sqlite3_finalize(prepared.stmt);
        sqlite3_close(db_);
    }
    Connection(Connection const&) = delete;
    Connection& operator=(Connection const&) = delete;

    // `checked`: the caller has checked the texts already (the journal's lines: journal_line_problem).
    std::vector<Row> query(std::string const& sql, std::vector<Value> const& params, bool checked = false) {
        if (!checked) check_text_params(params);
        // Prepared statements are cached by their text (the application's statements are a fixed set), with where
        // each $n is bound (SQLite numbers named parameters in the order they first appear).
        Prepared fresh;
        Prepared* prepared = nullptr;
        if (auto it = cache_.find(sql); it != cache_.end()) {
            prepared = &it->second;
        } else {
            if (sqlite3_prepare_v2(db_, sql.c_str(), int(sql.size()), &fresh.stmt, nullptr) != SQLITE_OK)
                throw DatabaseError(std::string("SQL error: ") + sqlite3_errmsg(db_));
            // An anonymous "?" takes the value of its own position (insert_rows' statements: a name SQLite looks up
            // in a list, once per parameter as it parses and once as this loop asks, costs the square of their
            // number — some 130 M instructions for the few wide statements a connection prepares for a batch).
            for (int index = 1, n = sqlite3_bind_parameter_count(fresh.stmt); index <= n; ++index) {
                char const* name = sqlite3_bind_parameter_name(fresh.stmt, index);
                std::size_t number = name ? 0 : std::size_t(index);
                if (name && name[0] == '$') std::from_chars(name + 1, name + std::strlen(name), number);
                if (number == 0) continue;
                if (fresh.slot.size() < number) fresh.slot.resize(number, 0);
                fresh.slot[number - 1] = index;
            }
            if (cache_.size() < 256) prepared = &cache_.emplace(sql, std::exchange(fresh, Prepared{})).first->second;
            else prepared = &fresh;
        }
        sqlite3_stmt* const stmt = prepared->stmt;
        bool const cached = prepared != &fresh;
        wrote = !sqlite3_stmt_readonly(stmt);
        // A statement that writes outside a transaction takes the writer lock for its step: SQLite lets one writer in
        // at a time, and a second would sleep in the busy handler (1 ms, then 2, 5, 10 …) instead of waiting just as
        // long as the first one writes. Inside a transaction the lock is held already (Sqlite::in_transaction).
        std::unique_lock<std::mutex> write(writer_, std::defer_lock);
        if (!writing.owns_lock() && wrote) write.lock();
        struct Release {
            sqlite3_stmt* s;
            bool cached;
            ~Release() {
                if (cached) {
                    sqlite3_reset(s);
                    sqlite3_clear_bindings(s);
                } else {
                    sqlite3_finalize(s);
                }
            }
        } release{stmt, cached};
        for (std::size_t i = 0; i < params.size() && i < prepared->slot.size(); ++i) {
            int const index = prepared->slot[i];
            if (index == 0) continue;  // a parameter the statement does not use
            // (the texts outlive the statement's step: bound without a copy)
            int rc = std::visit(
                [&](auto const& v) -> int {
                    using T = std::decay_t<decltype(v)>;
                    if constexpr (std::is_same_v<T, std::nullptr_t>) return sqlite3_bind_null(stmt, index);
                    else if constexpr (std::is_same_v<T, std::int64_t>) return sqlite3_bind_int64(stmt, index, v);
                    else return sqlite3_bind_text(stmt, index, v.data(), int(v.size()), SQLITE_STATIC);
                },
                params[i]);
            if (rc != SQLITE_OK) throw DatabaseError(std::string("SQL bind error: ") + sqlite3_errmsg(db_));
        }
        std::vector<Row> rows;
        int const n = sqlite3_column_count(stmt);
        for (;;) {
            int rc = sqlite3_step(stmt);
            if (rc == SQLITE_DONE) break;
            if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
                throw TransientDatabaseError(std::string("SQL error: ") + sqlite3_errmsg(db_));
            if (rc != SQLITE_ROW) throw DatabaseError(std::string("SQL error: ") + sqlite3_errmsg(db_));
            Row row;
            row.reserve(std::size_t(n));  // (one allocation per row, not one per doubling: PersonRecords' has 18)
            for (int c = 0; c < n; ++c) {
                // The cell's value once, then its type, text and length from it: each sqlite3_column_* call looks the
                // column up and checks for a failed allocation again (three calls a text cell: PersonRecords' 144
                // cells some 14 k instructions of a statement of ~100 k, callgrind). The value is "unprotected"
                // (no mutex of its own): this connection is one thread's at a time (NOMUTEX), and it is read before
                // the next step, as the column calls were. Same conversions: a REAL or BLOB cell is read as its text.
                sqlite3_value* const cell = sqlite3_column_value(stmt, c);
                switch (sqlite3_value_type(cell)) {
                    case SQLITE_NULL: row.emplace_back(nullptr); break;
                    case SQLITE_INTEGER: row.emplace_back(std::int64_t(sqlite3_value_int64(cell))); break;
                    default: {
                        auto const* t = reinterpret_cast<char const*>(sqlite3_value_text(cell));
                        row.emplace_back(std::string(t ? t : "", std::size_t(sqlite3_value_bytes(cell))));
                    }
                }
            }
            rows.push_back(std::move(row));
        }
        return rows;
    }

    void script(std::string const& sql) {
        char* err = nullptr;
        if (int const rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err); rc != SQLITE_OK) {
            std::string msg = err ? err : "unknown error";
            sqlite3_free(err);
            if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) throw TransientDatabaseError("SQL error: " + msg);
            throw DatabaseError("SQL error: " + msg);
        }
    }

    sqlite3* handle() const { return db_; }

    int depth = 0;  // transaction nesting (savepoints below the first)
    bool wrote = false;  // the last statement query() ran may write (SQLite's own answer, from the prepared statement)
    std::unique_lock<std::mutex> writing;  // the writer lock, held from BEGIN IMMEDIATE to COMMIT or ROLLBACK

private:
    struct Prepared {
        sqlite3_stmt* stmt = nullptr;
        std::vector<int> slot;  // slot[n - 1]: the index $n is bound at (0: the statement does not use it)
    };
    std::mutex& writer_;
    sqlite3* db_ = nullptr;
    std::unordered_map<std::string, Prepared> cache_;
};

// The statement journal kept in memory (see Sqlite's constructor): a batch chunk's statements need a few hundred KiB;
// a statement that changes more (a job's purge) goes on to a temporary file past it.
constexpr int statement_journal_bytes = 4 << 20;

// A small pool of connections to one database file (WAL). A transaction binds one connection to the calling
// thread until it ends; any other statement borrows a free one, so reads run beside a writer. SQLite itself
// serialises the writers (BEGIN IMMEDIATE waits for the write lock). ":memory:" is one connection (each
// connection to it would be a database of its own).
class Sqlite final : public Database {
public:
    Sqlite(std::string const& path, std::size_t connections) : path_(path) {
        // SQLite's memory statistics take a global mutex around every allocation it makes (sqlite3_config; before its
        // first use in the process, else a harmless SQLITE_MISUSE): the server never reads them.
        static int const no_memory_statistics = sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
        (void)no_memory_statistics;
        // A statement inside a transaction keeps the pages it changes that were there before it in a statement
        // journal (to undo that statement alone), in memory up to this size, beyond it in a temporary file (created,
        // written and removed again by every transaction that passes it). SQLite's default, 64 KiB, is passed by
        // the multi-row inserts of a batch chunk (insert_rows): its writes made a file in /var/tmp each (strace).
        static int const statement_journal_in_memory =
            sqlite3_config(SQLITE_CONFIG_STMTJRNL_SPILL, statement_journal_bytes);
        (void)statement_journal_in_memory;
        bool const memory = path == ":memory:" || path.empty();
        std::size_t const size = memory ? 1 : std::max<std::size_t>(connections, 1);
        for (std::size_t i = 0; i < size; ++i) {
            owned_.push_back(std::make_unique<Connection>(path, writer_));
            pool_.add(owned_.back().get());
        }
        if (memory) return;
        // The audit appends of reads (append()) go in on a connection of their own, several at one commit (see
        // append()).
        appender_ = std::make_unique<Connection>(path, writer_);
        // Checkpoints off the request path. SQLite runs one inside whichever commit takes the WAL past 1,000 pages:
        // an fdatasync of the WAL and one of the database in, say, a re-inquiry's audit append, while every other
        // writer waits. Here the connections only report their commits (a WAL hook replaces the automatic
        // checkpoint), and a thread with a connection of its own copies the WAL back into the database (PASSIVE: it
        // neither waits for readers and writers nor holds them up).
        checkpointer_ = std::make_unique<Connection>(path, writer_);
        for (auto& c : owned_) sqlite3_wal_hook(c->handle(), &Sqlite::on_commit, this);
        sqlite3_wal_hook(appender_->handle(), &Sqlite::on_commit, this);
        checkpoints_ = std::thread([this] { checkpoint_loop(); });
        // Its busy wait (another process holding the file) is SQLite's own, but ends when a stopping server gives up.
        sqlite3_busy_handler(appender_->handle(), &Sqlite::appender_busy, this);
        appends_ = std::make_unique<AppendQueue>([this](auto const& group) { commit_group(group); });
    }
    ~Sqlite() override {
        // The journal's thread first (it applies on journaler_ and truncates journal_): what it can apply now it does;
        // a line the database refuses stays in the journal, for the next start.
        if (jthread_.joinable()) {
            {
                std::lock_guard lock(jmutex_);
                jclosed_ = jstop_ = true;
            }
            jready_.notify_all();
            jthread_.join();
        }
        // Every queued line committed first (its thread still finds appends_: not reset() here).
        if (appends_) appends_->finish(std::chrono::steady_clock::time_point::max());
        if (checkpoints_.joinable()) {
            {
                std::lock_guard lock(checkpoint_mutex_);
                stop_ = true;
            }
            checkpoint_due_cv_.notify_all();
            checkpoints_.join();
        }
    }
    Sqlite(Sqlite const&) = delete;
    Sqlite& operator=(Sqlite const&) = delete;

    // An audit append outside a transaction is committed by a thread of its own, with every append queued meanwhile
    // (group commit): one transaction on the appender connection (synchronous=NORMAL, as a lone append: durable
    // against a crash of the server). The caller returns once the commit that holds its line is over — or at once
    // under a DeferredAppends, which then holds the line's ticket. One commit per group instead of one per request:
    // every commit makes the pooled connections drop their page cache at their next read (the WAL changed), writes
    // the pages it changed to the WAL (the same pages for a group's lines) and takes the writer lock.
    std::vector<Row> append(std::string const& sql, std::vector<Value> const& params) override {
        if (Connection* c = pool_.bound(); c || !appends_) return query(sql, params);
        // (the journal's encoding checks the texts as check_text_params does: a line it refuses goes on below)
        if (journal_ && DeferredAppends::current() && sql == inquiry_log_insert && journaled(params)) {
            ++write_ledger().committed;  // (durable in the journal: never run again)
            return {};
        }
        check_text_params(params);
        auto const me = appends_->push(sql, params);
        if (!me) return query(sql, params);  // (a stopping server: finish_appends)
        if (DeferredAppends* deferred = DeferredAppends::current()) {
            deferred->tickets.push_back(me->ticket);
            ++write_ledger().committed;  // (committed, or the request answered with its error: never run again)
            return {};
        }
        me->ticket->wait();
        if (auto e = me->ticket->error()) std::rethrow_exception(e);
        ++write_ledger().committed;
        return std::move(me->rows);
    }

    AppendsLeft finish_appends(std::chrono::steady_clock::time_point deadline) override {
        // The journal's lines were answered already: what is not applied by the deadline stays in the journal and is
        // applied at the next start (counted apart: not lines given up). Lines from now on go to the group commit.
        std::size_t in_journal = 0;
        if (jthread_.joinable()) {
            {
                std::unique_lock lock(jmutex_);
                jclosed_ = true;
                jready_.notify_all();  // (no gathering from now on)
                auto const all_in = [&] { return japplied_ == jwritten_; };
                if (deadline == std::chrono::steady_clock::time_point::max()) japplied_cv_.wait(lock, all_in);
                else japplied_cv_.wait_until(lock, deadline, all_in);
                jstop_ = true;  // (its busy wait ends: a line it is applying now fails and stays in the journal)
            }
            jready_.notify_all();
            jthread_.join();
            std::lock_guard lock(jmutex_);
            in_journal = std::size_t(jwritten_ - japplied_);
        }
        AppendsLeft left = appends_ ? appends_->finish(deadline) : AppendsLeft{};
        left.in_journal = in_journal;
        return left;
    }

    JournalOpened open_audit_journal(JournalLimits const& limits) override {
        if (!appender_ || journal_ || path_.rfind("file:", 0) == 0) return {};  // (":memory:", a URI: no file beside)
        journaler_ = std::make_unique<Connection>(path_, writer_);
        sqlite3_wal_hook(journaler_->handle(), &Sqlite::on_commit, this);
        sqlite3_busy_handler(journaler_->handle(), &Sqlite::journal_busy, this);
        JournalReplay replay;
        journal_ = AuditJournal::open(
            path_ + "-audit", [&](std::vector<std::vector<Value>> const& group) { apply_journal(group); }, replay);
        if (!journal_) {
            journaler_.reset();
            return {};
        }
        jlimits_ = limits;
        jlimits_.bytes = std::min(limits.bytes, audit_journal_most_bytes);  // (what a reader reads: JournalReader)
        jthread_ = std::thread([this] { journal_loop(); });
        return {true, journal_->path(), replay.lines, replay.set_aside, replay.damaged_at, replay.damaged};
    }

    std::size_t apply_journal_lines(std::vector<std::vector<Value>> const& lines) override {
        if (pool_.bound()) throw DatabaseError("apply_journal_lines inside a transaction");
        Pool::Lease lease(pool_);
        // Synced (synchronous=FULL): the file they come from may be removed once this returns.
        lease.conn->script("PRAGMA synchronous=FULL");
        struct Normal {
            Connection& c;
            ~Normal() {
                try {
                    c.script("PRAGMA synchronous=NORMAL");
                } catch (...) {
                }
            }
        } normal{*lease.conn};
        return apply_journal_on(*lease.conn, lines);
    }

    std::vector<Row> query(std::string const& sql, std::vector<Value> const& params) override {
        if (Connection* c = pool_.bound()) return c->query(sql, params);
        if (journal_ && reads_journaled(sql)) see_journal();
        Pool::Lease lease(pool_);
        auto rows = lease.conn->query(sql, params);
        // (SQLite's answer, not reads_only's scan of the text: PersonRecords' WITH of some 1,750 characters cost
        // 17–41 µs of the server's CPU per re-inquiry even after the scan was made one pass; docs/performance.md)
        if (lease.conn->wrote) ++write_ledger().committed;
        return rows;
    }

    void script(std::string const& sql) override {
        if (Connection* c = pool_.bound()) return c->script(sql);
        Pool::Lease lease(pool_);
        lease.conn->script(sql);
    }

    std::string backend() const override { return "sqlite"; }

    PoolStats pool_stats() override {
        PoolStats stats = pool_.stats();
        if (appends_) stats.appends_pending = appends_->pending();
        if (journal_) {
            std::lock_guard lock(jmutex_);
            stats.appends_pending += std::size_t(jwritten_ - japplied_);
        }
        return stats;
    }

    void insert_rows(std::string const& table, std::vector<std::string> const& columns,
                     std::function<bool(Row&)> const& next) override {
        // Rows go in `group` at a time by one multi-row INSERT (one statement step per group: SQLite's per-statement
        // work is paid once), the rest by INSERTs of a power of two rows each, the largest first (not one by one: a
        // batch chunk of 500 rows left 234 answers and 60 資格確認履歴 entries to single-row steps); a table's
        // statements are a few fixed texts, each prepared once per connection.
        std::size_t const width = columns.size(),
                          group = std::max<std::size_t>(1, 800 / std::max<std::size_t>(width, 1));
        auto statement = [&](std::size_t rows) {
            std::string sql = "INSERT INTO " + table + " (";
            for (std::size_t i = 0; i < width; ++i) sql += (i ? ", " : "") + columns[i];
            sql += ") VALUES ";
            for (std::size_t r = 0; r < rows; ++r) {
                sql += r ? ", (" : "(";
                for (std::size_t i = 0; i < width; ++i) sql += i ? ", ?" : "?";  // (bound in order: see query)
                sql += ")";
            }
            return sql;
        };
        std::string const many = statement(group);
        transaction(*this, [&] {
            std::vector<Value> params;
            params.reserve(group * width);
            std::size_t held = 0;
            for (Row row; next(row);) {
                if (row.size() != width)
                    throw DatabaseError("insert_rows: a row of " + std::to_string(row.size()) + " values for " +
                                        std::to_string(width) + " columns");
                for (auto& v : row) params.push_back(std::move(v));
                if (++held == group) {
                    query(many, params);
                    params.clear();
                    held = 0;
                }
            }
            std::size_t done = 0;
            for (std::size_t rows = std::bit_floor(group); held > 0; rows /= 2) {
                if (held < rows) continue;
                auto const from = params.begin() + std::ptrdiff_t(done * width),
                           to = from + std::ptrdiff_t(rows * width);
                query(statement(rows), std::vector<Value>(std::make_move_iterator(from), std::make_move_iterator(to)));
                done += rows;
                held -= rows;
            }
        });
    }

    void in_transaction(std::function<void()> const& body) override { run_transaction(body, true); }
    void in_transaction_unsynced(std::function<void()> const& body) override { run_transaction(body, false); }

private:
    // `synced`: the commit waits for the disk (synchronous=FULL: the WAL is synced, and with it every commit before);
    // otherwise it is written to the WAL (synchronous=NORMAL, as the connections' lone statements) and reaches the
    // disk with the next synced commit or checkpoint.
    void run_transaction(std::function<void()> const& body, bool synced) {
        Connection* c = pool_.bound();
        std::optional<Pool::Lease> lease;
        if (!c) {
            lease.emplace(pool_);
            c = lease->conn;
            pool_.bind(c);
        }
        struct Unbind {
            Pool const& pool;
            bool owner;
            ~Unbind() {
                if (owner) pool.unbind();
            }
        } unbind{pool_, lease.has_value()};
        std::string sp = "sp" + std::to_string(c->depth);
        if (c->depth == 0) c->writing = std::unique_lock<std::mutex>(writer_);  // after the lease: see writer_
        struct Release {
            Connection& c;
            ~Release() {
                if (c.depth == 0 && c.writing.owns_lock()) c.writing.unlock();
            }
        } release{*c};
        bool const outer = c->depth == 0;
        synced = synced && outer;
        c->script(outer ? (synced ? "PRAGMA synchronous=FULL; BEGIN IMMEDIATE" : "BEGIN IMMEDIATE")
                        : "SAVEPOINT " + sp);
        ++c->depth;
        try {
            body();
        } catch (...) {
            --c->depth;
            try {
                c->script(c->depth == 0 ? (synced ? "ROLLBACK; PRAGMA synchronous=NORMAL" : "ROLLBACK")
                                        : "ROLLBACK TO " + sp + "; RELEASE " + sp);
            } catch (...) {
            }
            throw;
        }
        --c->depth;
        if (c->depth == 0) {
            try {
                c->script("COMMIT");
            } catch (...) {
                try {
                    c->script("ROLLBACK");
                } catch (...) {
                }
                if (synced) c->script("PRAGMA synchronous=NORMAL");
                throw;
            }
            ++write_ledger().committed;
            if (synced) c->script("PRAGMA synchronous=NORMAL");
        } else {
            c->script("RELEASE " + sp);
        }
    }

    // One transaction for the group. Should it fail, each append is tried alone, so that one bad row fails only its
    // own request; one that meets a passing fault (another process holding the file past the busy timeout) is tried
    // once more, as the request it belongs to would have been.
    void commit_group(std::vector<std::shared_ptr<PendingAppend>> const& group) {
        Connection& c = *appender_;
        WriterHold const hold(c, writer_);
        auto alone = [&](PendingAppend& p) {
            for (int attempt = 0;; ++attempt) {
                p.rows.clear();
                try {
                    p.rows = c.query(p.sql, p.params);
                    p.error = nullptr;
                    return;
                } catch (TransientDatabaseError const&) {
                    p.error = std::current_exception();
                    if (attempt == 1 || appends_->giving_up()) return;
                } catch (...) {
                    p.error = std::current_exception();
                    return;
                }
            }
        };
        if (group.size() == 1) return alone(*group.front());
        try {
            c.script("BEGIN IMMEDIATE");
            for (auto const& p : group) p->rows = c.query(p->sql, p->params);
            c.script("COMMIT");
            return;
        } catch (...) {
            try {
                c.script("ROLLBACK");
            } catch (...) {
            }
        }
        for (auto const& p : group) alone(*p);
    }

    // The writer lock held on `c` for a scope of its own (commit_group, apply_journal: their transactions), given back
    // when the scope ends, thrown out of or not.
    struct WriterHold {
        Connection& c;
        WriterHold(Connection& connection, std::mutex& writer) : c(connection) {
            c.writing = std::unique_lock<std::mutex>(writer);
        }
        ~WriterHold() { c.writing.unlock(); }
        WriterHold(WriterHold const&) = delete;
        WriterHold& operator=(WriterHold const&) = delete;
    };

    // SQLite's own busy handler (sqliteDefaultBusyCallback: its delays, 10 s in all as the connections' busy timeout),
    // its sleeps a wait that a stopping server ends (AppendQueue::pause): then the statement fails with SQLITE_BUSY.
    static int busy_delay(int count) {  // SQLite's sqliteDefaultBusyCallback: ms to wait, 0 past 10 s in all
        static constexpr int delays[] = {1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100};
        static constexpr int totals[] = {0, 1, 3, 8, 18, 33, 53, 78, 103, 128, 178, 228};
        constexpr int timeout = 10000, known = int(std::size(delays));
        int delay = count < known ? delays[count] : delays[known - 1];
        int const prior = count < known ? totals[count] : totals[known - 1] + delay * (count - (known - 1));
        if (prior + delay > timeout) delay = timeout - prior;
        return std::max(delay, 0);
    }
    static int appender_busy(void* self, int count) {
        int const delay = busy_delay(count);
        if (delay <= 0) return 0;
        return static_cast<Sqlite*>(self)->appends_->pause(std::chrono::milliseconds(delay)) ? 1 : 0;
    }
    // The journal's thread waits likewise, until the server stops (then the group fails and stays in the journal).
    static int journal_busy(void* self, int count) {
        int const delay = busy_delay(count);
        if (delay <= 0) return 0;
        auto* db = static_cast<Sqlite*>(self);
        std::unique_lock lock(db->jmutex_);
        return db->jready_.wait_for(lock, std::chrono::milliseconds(delay), [&] { return db->jstop_; }) ? 0 : 1;
    }

    // ---- The audit journal (storage/audit_journal.hpp) ----

    // Writes the line to the journal (true: the request is answered at once), or leaves it to the group commit
    // (false): a line not of the journal's form, a stopping server, or the bound reached — lines written and not yet
    // applied (jlimits_.lines) or the file's size (jlimits_.bytes; it is emptied only when every line is applied, so
    // the group commit's turn lets the journal's thread catch up). Throws TransientDatabaseError — the request is
    // answered 503, nothing disclosed — while a line the database refused is not applied yet (jblocked_), and when
    // the write fails.
    bool journaled(std::vector<Value> const& params) {
        std::string record;
        try {
            record = encode_journal_record(params);
        } catch (std::invalid_argument const&) {
            return false;
        }
        bool wake = false;
        {
            std::lock_guard lock(jmutex_);
            if (jblocked_)
                throw TransientDatabaseError("audit lines the database refused are not applied yet (" + jblocked_why_ +
                                             "): the answer is not given");
            if (jclosed_ || jwritten_ - japplied_ >= jlimits_.lines ||
                journal_->size() + record.size() > jlimits_.bytes)
                return false;
            journal_->write(record);
            jqueue_.push_back(params);
            ++jwritten_;
            // The journal's thread is woken when it is idle (the first line after a pause) or has gathered enough, not
            // by every line: a wake-up per line cost more CPU than the group commit saved.
            wake = jwaiting_ || jqueue_.size() == gather_lines;
            jwaiting_ = false;
        }
        if (wake) jready_.notify_one();
        return true;
    }

    // The journal's thread: applies every line written meanwhile in one transaction; empties the file whenever every
    // line written is applied. A group the database refuses is kept (never dropped) and tried again every
    // jlimits_.retry, and until it is applied no line is journaled and no disclosure answered (journaled()).
    void journal_loop() {
        std::unique_lock lock(jmutex_);
        for (;;) {
            if (jretry_.empty()) {
                jwaiting_ = true;
                jready_.wait(lock, [&] { return jstop_ || !jqueue_.empty(); });
                jwaiting_ = false;
                if (jqueue_.empty()) return;  // stopping, every line applied
                // Gathers the lines of the next gather_time (or gather_lines of them) into one group, unless a read
                // of the history, a drain or a stop waits for them.
                jready_.wait_for(lock, gather_time,
                                 [&] { return jstop_ || jclosed_ || jwanted_ > 0 || jqueue_.size() >= gather_lines; });
            } else if (jready_.wait_for(lock, jlimits_.retry, [&] { return jstop_; })) {
                return;  // stopping: the refused lines (and any after them) stay in the journal
            }
            std::vector<std::vector<Value>> group;
            group.swap(jretry_);
            for (auto& line : jqueue_) group.push_back(std::move(line));
            jqueue_.clear();
            lock.unlock();
            std::string failed;
            try {
                apply_journal(group);
            } catch (std::exception const& e) {
                failed = e.what();
                if (failed.empty()) failed = "unknown error";
            } catch (...) {
                failed = "unknown error";
            }
            lock.lock();
            if (failed.empty()) {
                japplied_ += group.size();
                if (jblocked_)
                    std::cerr << "kyotaku: " << journal_->path()
                              << ": 監査ジャーナルの行をデータベースに書き込めました。開示を再開します / the audit "
                                 "lines refused before are applied: answering again\n";
                jblocked_ = false;
                if (japplied_ == jwritten_) journal_->truncate();
            } else {
                if (!jblocked_)
                    std::cerr << "kyotaku: " << journal_->path() << ": データベースが監査ジャーナルの行 "
                              << group.size()
                              << " 件を受け付けません。書き込めるまで照会に答えません / the database refused "
                              << group.size() << " audit line(s): kept in the journal, retried, and no disclosure "
                              << "answered until they are applied: " << failed << "\n";
                jblocked_ = true;
                jblocked_why_ = failed;
                jretry_ = std::move(group);
            }
            japplied_cv_.notify_all();
        }
    }

    // The lines in one transaction on the journal's connection, through the one fixed statement.
    // Its lines were checked when they were encoded (journaled) or read back (AuditJournal's replay): their texts are
    // not checked again. BEGIN and COMMIT are prepared once, as the INSERT.
    void apply_journal(std::vector<std::vector<Value>> const& group) { apply_journal_on(*journaler_, group, true); }
    // The same on any connection (a set-aside journal's lines: apply_journal_lines); how many were not in the table.
    std::size_t apply_journal_on(Connection& c, std::vector<std::vector<Value>> const& group, bool checked = false) {
        WriterHold const hold(c, writer_);
        std::size_t inserted = 0;
        try {
            c.query("BEGIN IMMEDIATE", {});
            for (auto const& line : group) {
                c.query(inquiry_log_replay, line, checked);
                inserted += std::size_t(sqlite3_changes(c.handle()));
            }
            c.query("COMMIT", {});
            return inserted;
        } catch (...) {
            try {
                c.script("ROLLBACK");
            } catch (...) {
            }
            throw;
        }
    }

    // A statement that reads inquiry_log (the history) sees the lines answered before it: it waits until they are
    // applied (a read inside a transaction does not: it holds the writer lock the journal's thread needs; none does).
    static bool reads_journaled(std::string const& sql) {
        return sql.find("inquiry_log") != std::string::npos && sql.rfind("INSERT", 0) != 0;
    }
    void see_journal() {
        std::unique_lock lock(jmutex_);
        std::uint64_t const target = jwritten_;
        if (japplied_ >= target) return;
        ++jwanted_;  // (the journal's thread does not gather meanwhile)
        jready_.notify_all();
        japplied_cv_.wait_for(lock, std::chrono::seconds(10),
                              [&] { return japplied_ >= target || jblocked_ || jstop_; });
        --jwanted_;
        if (japplied_ < target)
            throw TransientDatabaseError("the audit lines answered before this read are not in the database yet");
    }

    static constexpr int checkpoint_pages = 1000;  // SQLite's own default for its automatic checkpoint

    static int on_commit(void* self, sqlite3*, char const*, int wal_pages) {
        if (wal_pages >= checkpoint_pages) {
            auto* db = static_cast<Sqlite*>(self);
            {
                std::lock_guard lock(db->checkpoint_mutex_);
                db->checkpoint_due_ = true;
            }
            db->checkpoint_due_cv_.notify_one();
        }
        return SQLITE_OK;
    }

    void checkpoint_loop() {
        std::unique_lock lock(checkpoint_mutex_);
        for (;;) {
            checkpoint_due_cv_.wait(lock, [&] { return stop_ || checkpoint_due_; });
            if (stop_) return;
            checkpoint_due_ = false;
            lock.unlock();
            int wal = 0, copied = 0;
            sqlite3_wal_checkpoint_v2(checkpointer_->handle(), nullptr, SQLITE_CHECKPOINT_PASSIVE, &wal, &copied);
            lock.lock();
        }
    }

    using Pool = ConnectionPool<Connection*>;
    // The writers of this process take turns here rather than in SQLite's busy handler, which polls with sleeps.
    // Always taken after a connection is leased, and a thread that holds it leases no other connection (its
    // transaction's statements run on the connection bound to it; the appender's group is on a connection of its
    // own), so it cannot wait for a connection held by a thread that waits for it. Other processes on the same file
    // are still met by the busy timeout.
    std::mutex writer_;
    std::vector<std::unique_ptr<Connection>> owned_;
    Pool pool_;
    std::unique_ptr<Connection> appender_, checkpointer_;
    std::string path_;
    // The audit journal (open_audit_journal): the file, the connection its lines are applied on, and its thread's
    // state (under jmutex_): lines written and not yet taken (jqueue_), a group the database refused (jretry_).
    std::unique_ptr<AuditJournal> journal_;
    std::unique_ptr<Connection> journaler_;
    JournalLimits jlimits_;
    std::mutex jmutex_;
    std::condition_variable jready_, japplied_cv_;
    std::vector<std::vector<Value>> jqueue_, jretry_;
    std::uint64_t jwritten_ = 0, japplied_ = 0;
    bool jwaiting_ = false, jclosed_ = false, jstop_ = false, jblocked_ = false;
    int jwanted_ = 0;  // reads of the history waiting for the lines applied
    static constexpr std::size_t gather_lines = 256;
    // 5 ms (2 before): fewer commits, each writing the table's and its three indexes' pages once for more lines; the
    // answers never wait for it (a read of the history, a drain or a stop wakes it at once).
    static constexpr std::chrono::microseconds gather_time{5000};
    std::string jblocked_why_;
    std::thread jthread_;  // started once the rest exists, joined first
    std::mutex checkpoint_mutex_;
    std::condition_variable checkpoint_due_cv_;
    bool checkpoint_due_ = false, stop_ = false;
    std::thread checkpoints_;  // started when everything it uses exists, joined before any of it goes
    std::unique_ptr<AppendQueue> appends_;  // last, likewise (its thread commits on appender_)
};
}  // namespace

std::unique_ptr<Database> open_sqlite(std::string const& path, std::size_t connections) {
    return std::make_unique<Sqlite>(path, connections);
}

namespace {
// Whether a migration is one of `backend`'s (Database::backend()): all are portable SQL but those named
// "*.postgresql.sql", PostgreSQL's own (113: the triggers that keep person_lines), which SQLite neither applies nor
// counts as pending.
bool migration_applies(Migration const& m, std::string const& backend) {
    return !std::string_view(m.name).ends_with(".postgresql.sql") || backend == "postgresql";
}
}  // namespace

SchemaState schema_state(Database& db) {
    SchemaState s;
    std::vector<Row> rows;
    try {
        rows = db.query("SELECT name FROM schema_migrations ORDER BY name");
    } catch (DatabaseError const&) {  // a new database: no table yet
    }
    for (auto const& r : rows) s.applied.push_back(as_text(r[0]));
    for (auto const& m : migrations())
        if (migration_applies(m, db.backend()) &&
            std::find(s.applied.begin(), s.applied.end(), m.name) == s.applied.end())
            s.pending.push_back(m.name);
    for (auto const& name : s.applied)
        if (std::none_of(migrations().begin(), migrations().end(), [&](Migration const& m) { return name == m.name; }))
            s.unknown.push_back(name);
    return s;
}

std::string schema_too_new_message(SchemaState const& s) {
    std::string names;
    for (auto const& n : s.unknown) names += (names.empty() ? "" : ", ") + n;
    return "データベースのスキーマがこの kyotaku より新しい (" + names +
           ")。新しい kyotaku で動かしてください / the database schema is newer than this "
           "kyotaku (it has " +
           names + "): run a kyotaku at least as new as the one that upgraded it";
}

int migrate(Database& db, std::vector<std::string>* applied_names) {
    // Several servers may start at once on one database: each migration is applied under a lock, and whether it
    // is already applied is asked again under that lock.
    transaction(db, [&] {
        if (char const* lock = db.migration_lock()) db.query(lock);
        db.script("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)");
    });
    if (SchemaState s = schema_state(db); !s.unknown.empty()) throw DatabaseError(schema_too_new_message(s));
    int applied = 0;
    for (auto const& m : migrations()) {
        if (!migration_applies(m, db.backend())) continue;
        if (!db.query("SELECT 1 FROM schema_migrations WHERE name = $1", {std::string(m.name)}).empty()) continue;
        // by this server (another may have applied it meanwhile); set by the attempt that committed
        bool applied_here = false;
        transaction(db, [&] {
            applied_here = false;
            if (char const* lock = db.migration_lock()) db.query(lock);
            if (!db.query("SELECT 1 FROM schema_migrations WHERE name = $1", {std::string(m.name)}).empty()) return;
            db.script(m.sql);
            db.query("INSERT INTO schema_migrations (name, applied_at) VALUES ($1, CAST(CURRENT_TIMESTAMP AS TEXT))",
                     {std::string(m.name)});
            applied_here = true;
        });
        if (!applied_here) continue;
        ++applied;
        if (applied_names) applied_names->emplace_back(m.name);
    }
    return applied;
}

}  // namespace kyotaku::server
