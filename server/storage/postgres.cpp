// PostgreSQL backend (libpq), selected by a postgresql:// connection URL. The same migrations and the same
// $n-parameterised statements as SQLite, prepared once per connection; a pool of connections, a transaction held
// whole on one of them; bulk inserts by COPY.
#include "storage/append_queue.hpp"
#include "storage/connection_pool.hpp"
#include "storage/database.hpp"
#include "storage/faults.hpp"

#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace kyotaku::server {

namespace {
// Type OIDs of integer columns (pg_type.h): int8, int2, int4.
constexpr Oid int8_oid = 20, int2_oid = 21, int4_oid = 23;

// A connection with the defaults a server needs, which the URL may override: a connect that gives up after 5 s
// (a database behind a failover or an unreachable address must not hold a request for minutes), TCP keepalives
// (a peer gone without a word is noticed in about 25 s), the primary only (a standby refuses writes:
// target_session_attrs), and a name that operators see in pg_stat_activity.
PGconn* connect(std::string const& url) {
    char const* const keys[] = {"connect_timeout",
                                "keepalives_idle",
                                "keepalives_interval",
                                "keepalives_count",
                                "target_session_attrs",
                                "application_name",
                                "dbname",
                                nullptr};
    char const* const values[] = {"5", "10", "5", "3", "read-write", "kyotaku", url.c_str(), nullptr};
    return PQconnectdbParams(keys, values, 1);  // 1: dbname is the URL, whose parameters win over those before it
}

// SQLSTATEs of faults that pass (PostgreSQL's errcodes.txt): connection exceptions (08…), serialization failure,
// deadlock, admin/crash shutdown, cannot connect now (starting up), too many connections, a read-only transaction
// (a standby: the primary moved), a lock not available.
bool transient_state(std::string_view state) {
    return state.substr(0, 2) == "08" || state == "40001" || state == "40P01" || state == "57P01" || state == "57P02" ||
           state == "57P03" || state == "53300" || state == "25006" || state == "55P03";
}

// What a session told this process outside a statement's result: a WARNING while a statement ran. A COMMIT warns
// only when PostgreSQL ends the session while the commit waits for the synchronous standby ("canceling the wait for
// synchronous replication … the transaction has already committed locally").
struct SessionNotes {
    bool warned = false;
};
void note_warning(void* notes, PGresult const* notice) {
    char const* severity = PQresultErrorField(notice, PG_DIAG_SEVERITY_NONLOCALIZED);
    if (severity && std::string_view(severity) == "WARNING") static_cast<SessionNotes*>(notes)->warned = true;
}

// Throws the failure of a statement on `conn` (`res` null when there is no result): LockTimeout, a
// TransientDatabaseError, or a DatabaseError. A fault that passes may have committed (maybe_committed) when the
// database did not answer, or warned before it ended the session; its own error answer means nothing was.
[[noreturn]] void raise(PGconn* conn, PGresult const* res, char const* what, SessionNotes const& notes) {
    char const* text = res && *PQresultErrorMessage(res) ? PQresultErrorMessage(res) : PQerrorMessage(conn);
    std::string const message = std::string(what) + text;
    char const* state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
    if (state && std::string_view(state) == "55P03") throw LockTimeout(message);
    // the database's own answer
    if (state && transient_state(state)) throw TransientDatabaseError(message, notes.warned);
    if (PQstatus(conn) != CONNECTION_OK) throw TransientDatabaseError(message, true);        // no answer at all
    throw DatabaseError(message);
}

// A small pool of connections. A transaction binds one connection to the calling thread until it ends;
// any other statement takes a free connection. Every commit waits for the disk and the synchronous standby
// (synchronous_commit on), a lone write's too (it runs as a transaction of its own); only the audit appends of reads
// (append()) and the transactions nobody is told of (in_transaction_unsynced: a batch chunk's lease and answers)
// commit with synchronous_commit off, durable against a server crash. The audit appends of requests (under a
// DeferredAppends) are committed in groups on a connection of their own (see append()).
class Postgres final : public Database {
public:
    Postgres(std::string const& url, std::size_t size) : url_(url) {
        for (std::size_t i = 0; i < size; ++i) {
            PGconn* c = connect(url);
            if (!c || PQstatus(c) != CONNECTION_OK) {
                std::string msg = c ? PQerrorMessage(c) : "out of memory";
                PQfinish(c);
                for (auto* open : pool_.all()) PQfinish(open);
                throw DatabaseError("cannot connect to PostgreSQL: " + msg);
            }
            pool_.add(c);
            notes_[c] = std::make_unique<SessionNotes>();
            PQsetNoticeReceiver(c, note_warning, notes_[c].get());  // (kept across PQreset)
            configure(c);
        }
        // A group waits up to a millisecond for the re-inquiries being answered, whose lines come next (see
        // AppendQueue::expect): fewer, larger groups, each a commit and a wake of the appender's thread and backend.
        // A stopping server that gave up on the group in flight (finish_appends' deadline) cancels its statement,
        // which may wait for a lock another session holds: the server stops at its bound, not when the lock goes.
        appends_ = std::make_unique<AppendQueue>([this](auto const& group) { commit_group(group); },
                                                 std::chrono::microseconds(1000), [this] { cancel_appender(); });
    }
    ~Postgres() override {
        appends_->finish(std::chrono::steady_clock::time_point::max());  // (every queued line committed first)
        for (auto* c : pool_.all()) PQfinish(c);
        if (appender_) PQfinish(appender_);
        if (appender_cancel_) PQfreeCancel(appender_cancel_);
    }

    std::vector<Row> query(std::string const& sql, std::vector<Value> const& params) override {
        check_text_params(params);  // libpq would cut a text at NUL; PostgreSQL refuses invalid UTF-8 with a 500
        if (PGconn* c = pool_.bound()) return exec(c, sql, params);
        if (DeferredAppends* deferred = DeferredAppends::current()) appends_->expect(*deferred);
        if (!read_statement(sql, !params.empty())) {  // a write: a transaction of its own, as durable as any
            std::vector<Row> rows;
            in_transaction([&] { rows = exec(pool_.bound(), sql, params); });
            return rows;
        }
        Pool::Lease lease(pool_);
        try {
            return exec(usable(lease.conn), sql, params);
        } catch (TransientDatabaseError const&) {
        }
        ++retries;  // a read that met an ended connection or lost a race: once more, on a connection that is alive
        return exec(usable(lease.conn), sql, params);
    }

    // Under a DeferredAppends (a request being answered) the line is queued for the appender connection, which
    // commits every line queued meanwhile in one round trip and one transaction (pipeline mode: see commit_group()),
    // and append() returns at once, with no rows, adding the line's ticket there; otherwise it is a lone statement on
    // a pooled connection, as durable as the session's synchronous_commit (off) makes it either way.
    std::vector<Row> append(std::string const& sql, std::vector<Value> const& params) override {
        check_text_params(params);
        if (PGconn* c = pool_.bound()) return exec(c, sql, params);
        if (DeferredAppends* deferred = DeferredAppends::current())
            if (auto const line = appends_->push(sql, params, deferred)) {
                deferred->tickets.push_back(line->ticket);
                ++write_ledger().committed;  // (committed, or the request answered with its error: never run again)
                return {};
            }
        Pool::Lease lease(pool_);
        try {
            auto rows = exec(usable(lease.conn), sql, params);  // the session's synchronous_commit off
            ++write_ledger().committed;
            return rows;
        } catch (TransientDatabaseError const& e) {
            if (e.maybe_committed) write_ledger().in_doubt = true;
            throw;
        }
    }

    void script(std::string const& sql) override { query(sql, {}); }

    AppendsLeft finish_appends(std::chrono::steady_clock::time_point deadline) override {
        return appends_->finish(deadline);
    }

    std::string backend() const override { return "postgresql"; }

    PoolStats pool_stats() override {
        PoolStats stats = pool_.stats();
        stats.appends_pending = appends_->pending();
        return stats;
    }

    char const* claim_suffix() const override { return " FOR UPDATE SKIP LOCKED"; }
    char const* lock_suffix() const override { return " FOR NO KEY UPDATE"; }
    char const* lock_timeout() const override { return "SET LOCAL lock_timeout = '2s'"; }
    char const* migration_lock() const override { return "SELECT pg_advisory_xact_lock(5946120915)"; }

    void insert_rows(std::string const& table, std::vector<std::string> const& columns,
                     std::function<bool(Row&)> const& next) override {
        std::string sql = "COPY " + table + " (";
        for (std::size_t i = 0; i < columns.size(); ++i) sql += (i ? ", " : "") + columns[i];
        sql += ") FROM STDIN";
        auto copy = [&](PGconn* c) {
            std::unique_ptr<PGresult, void (*)(PGresult*)> start(PQexec(c, sql.c_str()), PQclear);
            if (PQresultStatus(start.get()) != PGRES_COPY_IN) raise(c, start.get(), "COPY: ", notes(c));
            // Whatever happens from here, the connection leaves the COPY state: ended, or aborted with the reason.
            // Returns the COPY's failure (null when it was taken), its SQLSTATE kept.
            auto finish = [&](char const* abort_reason) -> std::unique_ptr<PGresult, void (*)(PGresult*)> {
                std::unique_ptr<PGresult, void (*)(PGresult*)> failed(nullptr, PQclear);
                bool const ended = PQputCopyEnd(c, abort_reason) == 1;
                while (PGresult* r = PQgetResult(c)) {
                    if (!failed && PQresultStatus(r) != PGRES_COMMAND_OK) failed.reset(r);
                    else PQclear(r);
                }
                if (!ended && !failed) failed.reset(PQmakeEmptyPGresult(c, PGRES_FATAL_ERROR));
                return failed;
            };
            try {
                // COPY's text format: tab-separated, \N for NULL, backslash escapes for the separators. Sent in
                // pieces of about 256 KiB while the rows are made.
                std::string buffer;
                auto flush = [&] {
                    if (!buffer.empty() && PQputCopyData(c, buffer.data(), int(buffer.size())) != 1)
                        raise(c, nullptr, "COPY: ", notes(c));
                    buffer.clear();
                };
                for (Row row; next(row);) {
                    check_text_params(row);
                    for (std::size_t i = 0; i < row.size(); ++i) {
                        if (i) buffer += '\t';
                        if (std::holds_alternative<std::nullptr_t>(row[i])) {
                            buffer += "\\N";
                            continue;
                        }
                        if (auto const* number = std::get_if<std::int64_t>(&row[i])) {
                            char digits[24];
                            buffer.append(digits, std::to_chars(digits, digits + sizeof digits, *number).ptr);
                            continue;
                        }
                        append_copy_text(buffer, std::get<std::string>(row[i]));
                    }
                    buffer += '\n';
                    if (buffer.size() > (256u << 10)) flush();
                }
                flush();
            } catch (...) {
                finish("kyotaku: the rows could not be made");
                throw;
            }
            if (auto failed = finish(nullptr)) raise(c, failed.get(), "COPY: ", notes(c));
        };
        if (PGconn* c = pool_.bound()) return copy(c);
        transaction(*this, [&] { copy(pool_.bound()); });
    }

    // A text in COPY's text format: its backslashes, tabs, newlines and carriage returns escaped, the runs between
    // them appended whole. Eight bytes at a time: a word with no byte below 14 and no backslash (most of a JSON
    // text) is passed over at once; another is looked at byte by byte (the test may flag a word that needs nothing).
    static void append_copy_text(std::string& out, std::string const& text) {
        constexpr std::uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
        std::size_t run = 0, at = 0;
        auto const escape = [&](std::size_t upto) {
            for (; at < upto; ++at) {
                char const ch = text[at];
                if (ch != '\\' && ch != '\t' && ch != '\n' && ch != '\r') continue;
                out.append(text, run, at - run);
                out += ch == '\\' ? "\\\\" : ch == '\t' ? "\\t" : ch == '\n' ? "\\n" : "\\r";
                run = at + 1;
            }
        };
        while (at + 8 <= text.size()) {
            std::uint64_t word;
            std::memcpy(&word, text.data() + at, 8);
            std::uint64_t const backslash = word ^ (ones * '\\');
            if ((((word - ones * 14) & ~word) | ((backslash - ones) & ~backslash)) & highs) escape(at + 8);
            else at += 8;
        }
        escape(text.size());
        out.append(text, run);
    }

    void in_transaction(std::function<void()> const& body) override { run_transaction(body, true); }
    void in_transaction_unsynced(std::function<void()> const& body) override { run_transaction(body, false); }

private:
    // `synced`: the commit waits for the disk and the synchronous standby (synchronous_commit on); otherwise it is
    // the session's (off): written to the WAL, flushed by the WAL writer within moments or by the next synced commit
    // (the WAL is one sequence: a synced commit makes every commit before it durable), lost whole, if at all, with a
    // crash of the machine or a failover.
    void run_transaction(std::function<void()> const& body, bool synced) {
        if (PGconn* c = pool_.bound()) {  // nested: a savepoint on the same connection
            std::string sp = "sp" + std::to_string(depth_of(c)++);
            exec(c, "SAVEPOINT " + sp, {});
            try {
                body();
            } catch (...) {
                --depth_of(c);
                try {
                    exec(c, "ROLLBACK TO SAVEPOINT " + sp + "; RELEASE SAVEPOINT " + sp, {});
                } catch (...) {
                }
                throw;
            }
            --depth_of(c);
            exec(c, "RELEASE SAVEPOINT " + sp, {});
            return;
        }
        Pool::Lease lease(pool_);
        usable(lease.conn);
        pool_.bind(lease.conn);
        struct Unbind {
            Pool const& pool;
            ~Unbind() { pool.unbind(); }
        } unbind{pool_};
        exec(lease.conn, synced ? "BEGIN; SET LOCAL synchronous_commit = on" : "BEGIN", {});
        try {
            body();
        } catch (...) {
            try {
                exec(lease.conn, "ROLLBACK", {});
            } catch (...) {
            }
            throw;
        }
        try {
            exec(lease.conn, "COMMIT", {});
        } catch (TransientDatabaseError const& e) {
            // Lost while committing, or ended while waiting for the standby (the commit is then the primary's already):
            // done or not, nobody can tell from here.
            if (e.maybe_committed) write_ledger().in_doubt = true;
            throw;
        }
        ++write_ledger().committed;
    }

    // A group of audit lines in one round trip (libpq's pipeline mode) and one transaction (the statements before a
    // pipeline's sync are one implicit transaction); should a line fail, the group is rolled back and sent again with
    // a sync after each line, so that each commits or fails alone. A lost connection is connected again and the group
    // sent once more, unless its commit may have happened (then every line fails: in doubt).
    // (On the committing thread only.)
    void commit_group(std::vector<std::shared_ptr<PendingAppend>> const& group) {
        for (int attempt = 0;; ++attempt) {
            try {
                if (!appender_) {  // on first use: tools and the readiness probe never open it
                    appender_ = connect(url_);
                    if (!appender_) throw TransientDatabaseError("cannot connect to PostgreSQL: out of memory");
                    PQsetNoticeReceiver(appender_, note_warning, &appender_notes_);
                    appender_broken_ = PQstatus(appender_) != CONNECTION_OK;
                    if (!appender_broken_) configure(appender_);
                }
                PGconn* c = usable(appender_, std::exchange(appender_broken_, false));
                if (PQbackendPID(c) != appender_pid_) remember_cancel(c);  // (a new session)
                if (group.size() > 1 && pipeline(c, group, false)) return;
                if (appends_->giving_up()) {  // (cancelled: the group's one transaction rolled back, no line in)
                    auto const why = std::make_exception_ptr(TransientDatabaseError(
                        "the server stopped before the audit line was committed (past its drain)"));
                    for (auto const& line : group) line->error = why;
                    return;
                }
                pipeline(c, group, true);
                return;
            } catch (TransientDatabaseError const& e) {
                if (attempt == 0 && !e.maybe_committed && !appends_->giving_up()) continue;
                for (auto const& line : group) line->error = std::current_exception();
                return;
            } catch (...) {  // (a statement that cannot be prepared)
                for (auto const& line : group) line->error = std::current_exception();
                return;
            }
        }
    }
    // The statements that send a group: each line alone; or (not `each`) lines in a row with the same INSERT … VALUES
    // ($1, …, $k) and no RETURNING (the audit lines) as one INSERT of their rows, up to 64: one execution of one
    // statement for them, whose start and end were most of the appender's backend's CPU per line.
    struct Statement {
        std::string sql;
        std::size_t first = 0, count = 1;  // the group's lines it sends
    };
    static std::vector<Statement> statements_of(std::vector<std::shared_ptr<PendingAppend>> const& group, bool each) {
        std::vector<Statement> out;
        for (std::size_t i = 0; i < group.size();) {
            std::string const& sql = group[i]->sql;
            std::size_t const k = group[i]->params.size();
            std::size_t n = 1;
            while (!each && n < 64 && i + n < group.size() && group[i + n]->sql == sql &&
                   group[i + n]->params.size() == k)
                ++n;
            std::string values = "VALUES (";
            for (std::size_t p = 1; p <= k; ++p) values += (p > 1 ? ", $" : "$") + std::to_string(p);
            values += ")";
            std::size_t const at = sql.find(values);
            bool const merge = n > 1 && k > 0 && at != std::string::npos &&
                               sql.find(values, at + 1) == std::string::npos && !contains_ascii(sql, "RETURNING");
            if (!merge) {
                for (std::size_t j = 0; j < n; ++j) out.push_back({group[i + j]->sql, i + j, 1});
            } else {
                std::string rows = values;
                for (std::size_t line = 1; line < n; ++line) {
                    rows += ", (";
                    for (std::size_t p = 1; p <= k; ++p) rows += (p > 1 ? ", $" : "$") + std::to_string(line * k + p);
                    rows += ")";
                }
                out.push_back({sql.substr(0, at) + rows + sql.substr(at + values.size()), i, n});
            }
            i += n;
        }
        return out;
    }
    static bool contains_ascii(std::string const& sql, std::string_view upper) {  // (either case)
        auto const it = std::search(sql.begin(), sql.end(), upper.begin(), upper.end(), [](char a, char b) {
            return std::toupper(static_cast<unsigned char>(a)) == std::toupper(static_cast<unsigned char>(b));
        });
        return it != sql.end();
    }
    // Sends the group's statements and reads their results: with a sync after each (`each`), or one at the end.
    // Sets each line's rows or error; true when none failed. Throws TransientDatabaseError when the connection fails.
    bool pipeline(PGconn* c, std::vector<std::shared_ptr<PendingAppend>> const& group, bool each) {
        std::vector<Statement> const statements = statements_of(group, each);
        std::vector<std::vector<std::string>> texts(group.size());
        std::vector<std::vector<char const*>> values(statements.size());
        for (std::size_t s = 0; s < statements.size(); ++s)
            for (std::size_t i = statements[s].first; i < statements[s].first + statements[s].count; ++i) {
                auto const& params = group[i]->params;
                texts[i].resize(params.size());
                for (std::size_t k = 0; k < params.size(); ++k)
                    values[s].push_back(std::holds_alternative<std::nullptr_t>(params[k])
                                            ? nullptr
                                            : (texts[i][k] = as_text(params[k])).c_str());
            }
        std::vector<char const*> names;  // prepared before the pipeline begins (PQprepare waits for its answer)
        for (std::size_t s = 0; s < statements.size(); ++s)
            names.push_back(prepared_name(c, statements[s].sql, int(values[s].size())));
        auto lost = [&]() -> TransientDatabaseError {
            return TransientDatabaseError(std::string("SQL error: ") + PQerrorMessage(c), true);
        };
        if (!PQenterPipelineMode(c)) throw lost();
        struct Leave {
            PGconn* c;
            bool& broken;
            ~Leave() {
                if (!PQexitPipelineMode(c)) broken = true;  // (results left unread: connected again before next use)
            }
        } leave{c, appender_broken_};
        for (std::size_t s = 0; s < statements.size(); ++s) {
            int const n = int(values[s].size());
            int const sent = names[s] ? PQsendQueryPrepared(c, names[s], n, values[s].data(), nullptr, nullptr, 0)
                                      : PQsendQueryParams(c, statements[s].sql.c_str(), n, nullptr, values[s].data(),
                                                          nullptr, nullptr, 0);
            if (!sent || (each && !PQpipelineSync(c))) throw lost();
        }
        if (!each && !PQpipelineSync(c)) throw lost();
        bool all = true;
        using Result = std::unique_ptr<PGresult, void (*)(PGresult*)>;
        for (std::size_t s = 0; s < statements.size(); ++s) {
            Result res(PQgetResult(c), PQclear);
            if (!res) throw lost();
            auto const status = PQresultStatus(res.get());
            std::exception_ptr error;
            std::vector<Row> rows;
            if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
                rows = rows_of(res.get());
            } else {
                all = false;
                try {
                    if (status == PGRES_PIPELINE_ABORTED)
                        throw DatabaseError("SQL error: not run (another statement of its group failed)");
                    raise(c, res.get(), "SQL error: ", notes(c));
                } catch (DatabaseError const&) {
                    error = std::current_exception();
                }
                if (PQstatus(c) != CONNECTION_OK) throw lost();
            }
            for (std::size_t i = statements[s].first; i < statements[s].first + statements[s].count; ++i) {
                group[i]->rows = rows;  // (a merged INSERT has no RETURNING: no rows)
                group[i]->error = error;
            }
            while (PGresult* more = PQgetResult(c)) PQclear(more);  // (the statement's end: a null result)
            if (each || s + 1 == statements.size()) {  // its sync
                Result sync(PQgetResult(c), PQclear);
                if (PQresultStatus(sync.get()) != PGRES_PIPELINE_SYNC) throw lost();
            }
        }
        return all;
    }
    // The appender's session's cancel key, for another thread (PQcancel): made again for each new session.
    void remember_cancel(PGconn* c) {
        PGcancel* fresh = PQgetCancel(c);
        {
            std::lock_guard lock(cancel_mutex_);
            std::swap(appender_cancel_, fresh);
            appender_pid_ = PQbackendPID(c);
        }
        if (fresh) PQfreeCancel(fresh);
    }
    void cancel_appender() {  // (finish_appends' thread)
        std::lock_guard lock(cancel_mutex_);
        char why[256];
        if (appender_cancel_) PQcancel(appender_cancel_, why, sizeof why);
    }
    std::string const url_;
    std::mutex cancel_mutex_;
    PGcancel* appender_cancel_ = nullptr;  // (under cancel_mutex_)
    int appender_pid_ = 0;                 // its session's backend (the committing thread's)
    PGconn* appender_ = nullptr;  // the audit lines' connection (the committing thread's only)
    bool appender_broken_ = false;
    SessionNotes appender_notes_;

    using Pool = ConnectionPool<PGconn*>;
    Pool pool_;

    std::map<PGconn*, std::unique_ptr<SessionNotes>> notes_;  // made with the pool, one per connection
    SessionNotes& notes(PGconn* c) {  // (the map is not changed after the constructor)
        auto const it = notes_.find(c);
        return it != notes_.end() ? *it->second : appender_notes_;
    }

    // Every connection's session: UTF-8; lone statements (append(): the audit appends of reads; every other write is
    // a transaction, committed with synchronous_commit on) commit without waiting for the disk; and a session left
    // idle inside a transaction for a minute (its server hung, paused or cut off
    // with the connection open) is ended by PostgreSQL, so its row locks do not hold the other servers' batch work.
    void configure(PGconn* c) {
        exec(c, "SET client_encoding = 'UTF8'; SET client_min_messages = WARNING; SET synchronous_commit = off; "
                "SET idle_in_transaction_session_timeout = '60s'",
             {});
    }
    // A connection lent from the pool, connected again first if PostgreSQL ended it (a restart, a failover, a
    // terminated backend): otherwise the pool would lend the dead connection again and again and every request fail.
    // A pooled connection is idle: anything to read on it is the server's word that it ended the session (a FATAL
    // message, then EOF: a terminated backend, a shutdown; or EOF alone: a balancer that cut it when the primary
    // went). Seen before the connection is used, the statement is sent on a new one instead of failing.
    PGconn* usable(PGconn* c, bool broken = false) {
        if (!broken && PQstatus(c) == CONNECTION_OK && !ended_while_idle(c)) return c;
        PQreset(c);
        ++reconnects;
        {
            std::lock_guard lock(prepared_mutex_);
            prepared_[c].clear();  // the new session has none of the old one's prepared statements
        }
        if (PQstatus(c) != CONNECTION_OK)
            throw TransientDatabaseError(std::string("cannot reconnect to PostgreSQL: ") + PQerrorMessage(c));
        configure(c);
        return c;
    }
    static bool ended_while_idle(PGconn* c) {
        pollfd p{PQsocket(c), POLLIN, 0};
        if (p.fd < 0) return true;
        if (::poll(&p, 1, 0) <= 0) return false;
        return !PQconsumeInput(c) || PQstatus(c) != CONNECTION_OK;
    }
    // Whether a statement only reads (reads_only), remembered for the texts with parameters (those prepared: a set the
    // code bounds): its scan of PersonRecords' WITH, some 1,780 characters, was 2 % of the server's CPU per re-inquiry.
    std::mutex reads_mutex_;
    std::unordered_map<std::string, bool> reads_;
    bool read_statement(std::string const& sql, bool with_params) {
        if (!with_params) return reads_only(sql);
        {
            std::lock_guard lock(reads_mutex_);
            if (auto const it = reads_.find(sql); it != reads_.end()) return it->second;
        }
        bool const read = reads_only(sql);
        std::lock_guard lock(reads_mutex_);
        if (reads_.size() < 4096) reads_.emplace(sql, read);
        return read;
    }
    std::mutex depth_mutex_;
    std::map<PGconn*, int> depth_;
    int& depth_of(PGconn* c) {
        std::lock_guard lock(depth_mutex_);
        return depth_[c];
    }

    // Statements with parameters are prepared once per connection (named by a counter) and then only executed:
    // no parse and plan per call. Up to 512 per connection; beyond that, unnamed.
    std::map<PGconn*, std::map<std::string, std::string>> prepared_;
    std::mutex prepared_mutex_;
    char const* prepared_name(PGconn* conn, std::string const& sql, int nparams) {
        std::map<std::string, std::string>* names;
        {
            std::lock_guard lock(prepared_mutex_);
            names = &prepared_[conn];  // one thread uses a connection at a time: only the outer map is shared
        }
        if (auto it = names->find(sql); it != names->end()) return it->second.c_str();
        if (names->size() >= 512) return nullptr;
        std::string name = "k" + std::to_string(names->size());
        std::unique_ptr<PGresult, void (*)(PGresult*)> res(PQprepare(conn, name.c_str(), sql.c_str(), nparams, nullptr),
                                                           PQclear);
        if (PQresultStatus(res.get()) != PGRES_COMMAND_OK) raise(conn, res.get(), "SQL error: ", notes(conn));
        return names->emplace(sql, name).first->second.c_str();
    }

    std::vector<Row> exec(PGconn* conn, std::string const& sql, std::vector<Value> const& params) {
        std::vector<std::string> text(params.size());
        std::vector<char const*> values(params.size());
        for (std::size_t i = 0; i < params.size(); ++i) {
            if (std::holds_alternative<std::nullptr_t>(params[i])) {
                values[i] = nullptr;
                continue;
            }
            text[i] = as_text(params[i]);
            values[i] = text[i].c_str();
        }
        notes(conn).warned = false;
        char const* name = params.empty() ? nullptr : prepared_name(conn, sql, int(params.size()));
        std::unique_ptr<PGresult, void (*)(PGresult*)> res(params.empty() ? PQexec(conn, sql.c_str())
                                                           : name ? PQexecPrepared(conn, name, int(params.size()),
                                                                                   values.data(), nullptr, nullptr, 0)
                                                                  : PQexecParams(conn, sql.c_str(), int(params.size()),
                                                                                 nullptr, values.data(), nullptr,
                                                                                 nullptr, 0),
                                                           PQclear);
        auto status = PQresultStatus(res.get());
        if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) raise(conn, res.get(), "SQL error: ", notes(conn));
        return rows_of(res.get());
    }
    static std::vector<Row> rows_of(PGresult const* res) {
        std::vector<Row> rows;
        int n = PQntuples(res), cols = PQnfields(res);
        for (int r = 0; r < n; ++r) {
            Row row;
            for (int c = 0; c < cols; ++c) {
                if (PQgetisnull(res, r, c)) {
                    row.emplace_back(nullptr);
                    continue;
                }
                std::string v(PQgetvalue(res, r, c), std::size_t(PQgetlength(res, r, c)));
                Oid type = PQftype(res, c);
                if (type == int8_oid || type == int4_oid || type == int2_oid)
                    row.emplace_back(std::int64_t(std::stoll(v)));
                else row.emplace_back(std::move(v));
            }
            rows.push_back(std::move(row));
        }
        return rows;
    }
    std::unique_ptr<AppendQueue> appends_;  // last: its thread commits on appender_
};
}  // namespace

std::unique_ptr<Database> open_postgres(std::string const& url, std::size_t connections) {
    return std::make_unique<Postgres>(url, connections);
}

std::unique_ptr<Database> open_database(std::string const& location, std::size_t connections) {
    if (is_postgres_url(location)) return open_postgres(location, connections);
    return open_sqlite(location, connections);
}

}  // namespace kyotaku::server
