// PostgreSQL backend (libpq), selected by a postgresql:// connection URL. The same migrations and the same
// $n-parameterised statements as SQLite, prepared once per connection; a pool of connections, a transaction held
// whole on one of them; bulk inserts by COPY.
#include "storage/connection_pool.hpp"
#include "storage/database.hpp"

#include <libpq-fe.h>

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>

namespace kyotaku::server {

namespace {
// Type OIDs of integer columns (pg_type.h): int8, int2, int4.
constexpr Oid int8_oid = 20, int2_oid = 21, int4_oid = 23;

// A small pool of connections. A transaction binds one connection to the calling thread until it ends;
// any other statement takes a free connection. Lone statements (the audit appends of reads) commit with
// synchronous_commit off, durable against a server crash; transactions commit with it on.
class Postgres final : public Database {
public:
    Postgres(std::string const& url, std::size_t size) {
        for (std::size_t i = 0; i < size; ++i) {
            PGconn* c = PQconnectdb(url.c_str());
            if (!c || PQstatus(c) != CONNECTION_OK) {
                std::string msg = c ? PQerrorMessage(c) : "out of memory";
                PQfinish(c);
                for (auto* open : pool_.all()) PQfinish(open);
                throw DatabaseError("cannot connect to PostgreSQL: " + msg);
            }
            pool_.add(c);
            configure(c);
        }
    }
    ~Postgres() override {
        for (auto* c : pool_.all()) PQfinish(c);
    }

    std::vector<Row> query(std::string const& sql, std::vector<Value> const& params) override {
        check_text_params(params);  // libpq would cut a text at NUL; PostgreSQL refuses invalid UTF-8 with a 500
        if (PGconn* c = pool_.bound()) return exec(c, sql, params);
        Pool::Lease lease(pool_);
        return exec(usable(lease.conn), sql, params);
    }

    void script(std::string const& sql) override { query(sql, {}); }

    std::string backend() const override { return "postgresql"; }

    PoolStats pool_stats() override { return pool_.stats(); }

    char const* claim_suffix() const override { return " FOR UPDATE SKIP LOCKED"; }
    char const* lock_timeout() const override { return "SET LOCAL lock_timeout = '2s'"; }
    char const* migration_lock() const override { return "SELECT pg_advisory_xact_lock(5946120915)"; }

    void insert_rows(std::string const& table, std::vector<std::string> const& columns, std::function<bool(Row&)> const& next) override {
        std::string sql = "COPY " + table + " (";
        for (std::size_t i = 0; i < columns.size(); ++i) sql += (i ? ", " : "") + columns[i];
        sql += ") FROM STDIN";
        auto copy = [&](PGconn* c) {
            std::unique_ptr<PGresult, void (*)(PGresult*)> start(PQexec(c, sql.c_str()), PQclear);
            if (PQresultStatus(start.get()) != PGRES_COPY_IN) throw DatabaseError(std::string("COPY: ") + PQresultErrorMessage(start.get()));
            // Whatever happens from here, the connection leaves the COPY state: ended, or aborted with the reason.
            auto finish = [&](char const* abort_reason) {
                bool const ended = PQputCopyEnd(c, abort_reason) == 1;
                std::string error = ended ? "" : PQerrorMessage(c);
                while (PGresult* r = PQgetResult(c)) {
                    if (error.empty() && PQresultStatus(r) != PGRES_COMMAND_OK) error = PQresultErrorMessage(r);
                    PQclear(r);
                }
                return error;
            };
            try {
                // COPY's text format: tab-separated, \N for NULL, backslash escapes for the separators. Sent in
                // pieces of about 256 KiB while the rows are made.
                std::string buffer;
                auto flush = [&] {
                    if (!buffer.empty() && PQputCopyData(c, buffer.data(), int(buffer.size())) != 1)
                        throw DatabaseError(std::string("COPY: ") + PQerrorMessage(c));
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
                        std::string const text = as_text(row[i]);
                        std::string_view rest = text;
                        for (std::size_t special; (special = rest.find_first_of("\\\t\n\r")) != std::string_view::npos;) {
                            buffer.append(rest.substr(0, special));
                            char const ch = rest[special];
                            buffer += ch == '\\' ? "\\\\" : ch == '\t' ? "\\t" : ch == '\n' ? "\\n" : "\\r";
                            rest.remove_prefix(special + 1);
                        }
                        buffer.append(rest);
                    }
                    buffer += '\n';
                    if (buffer.size() > (256u << 10)) flush();
                }
                flush();
            } catch (...) {
                finish("kyotaku: the rows could not be made");
                throw;
            }
            if (std::string error = finish(nullptr); !error.empty()) throw DatabaseError("COPY: " + error);
        };
        if (PGconn* c = pool_.bound()) return copy(c);
        transaction(*this, [&] { copy(pool_.bound()); });
    }

    void in_transaction(std::function<void()> const& body) override {
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
        exec(lease.conn, "BEGIN; SET LOCAL synchronous_commit = on", {});
        try {
            body();
        } catch (...) {
            try {
                exec(lease.conn, "ROLLBACK", {});
            } catch (...) {
            }
            throw;
        }
        exec(lease.conn, "COMMIT", {});
    }

private:
    using Pool = ConnectionPool<PGconn*>;
    Pool pool_;

    // Every connection's session: UTF-8; lone statements (the audit appends of reads) commit without waiting for
    // the disk; and a session left idle inside a transaction for a minute (its server hung, paused or cut off
    // with the connection open) is ended by PostgreSQL, so its row locks do not hold the other servers' batch work.
    void configure(PGconn* c) {
        exec(c, "SET client_encoding = 'UTF8'; SET client_min_messages = WARNING; SET synchronous_commit = off; "
                "SET idle_in_transaction_session_timeout = '60s'",
             {});
    }
    // A connection lent from the pool, connected again first if PostgreSQL ended it (a restart, a failover, a
    // terminated backend): otherwise the pool would lend the dead connection again and again and every request fail.
    PGconn* usable(PGconn* c) {
        if (PQstatus(c) == CONNECTION_OK) return c;
        PQreset(c);
        {
            std::lock_guard lock(prepared_mutex_);
            prepared_[c].clear();  // the new session has none of the old one's prepared statements
        }
        if (PQstatus(c) != CONNECTION_OK) throw DatabaseError(std::string("cannot reconnect to PostgreSQL: ") + PQerrorMessage(c));
        configure(c);
        return c;
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
        std::unique_ptr<PGresult, void (*)(PGresult*)> res(PQprepare(conn, name.c_str(), sql.c_str(), nparams, nullptr), PQclear);
        if (PQresultStatus(res.get()) != PGRES_COMMAND_OK) throw DatabaseError(std::string("SQL error: ") + PQresultErrorMessage(res.get()));
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
        char const* name = params.empty() ? nullptr : prepared_name(conn, sql, int(params.size()));
        std::unique_ptr<PGresult, void (*)(PGresult*)> res(
            params.empty() ? PQexec(conn, sql.c_str())
            : name         ? PQexecPrepared(conn, name, int(params.size()), values.data(), nullptr, nullptr, 0)
                           : PQexecParams(conn, sql.c_str(), int(params.size()), nullptr, values.data(), nullptr, nullptr, 0),
            PQclear);
        auto status = PQresultStatus(res.get());
        if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
            std::string const message = std::string("SQL error: ") + (res ? PQresultErrorMessage(res.get()) : PQerrorMessage(conn));
            char const* state = res ? PQresultErrorField(res.get(), PG_DIAG_SQLSTATE) : nullptr;
            if (state && std::string_view(state) == "55P03") throw LockTimeout(message);  // lock_not_available
            throw DatabaseError(message);
        }
        std::vector<Row> rows;
        int n = PQntuples(res.get()), cols = PQnfields(res.get());
        for (int r = 0; r < n; ++r) {
            Row row;
            for (int c = 0; c < cols; ++c) {
                if (PQgetisnull(res.get(), r, c)) {
                    row.emplace_back(nullptr);
                    continue;
                }
                std::string v(PQgetvalue(res.get(), r, c), std::size_t(PQgetlength(res.get(), r, c)));
                Oid type = PQftype(res.get(), c);
                if (type == int8_oid || type == int4_oid || type == int2_oid) row.emplace_back(std::int64_t(std::stoll(v)));
                else row.emplace_back(std::move(v));
            }
            rows.push_back(std::move(row));
        }
        return rows;
    }
};
}  // namespace

std::unique_ptr<Database> open_postgres(std::string const& url) { return std::make_unique<Postgres>(url, 4); }

std::unique_ptr<Database> open_database(std::string const& location) {
    if (is_postgres_url(location)) return open_postgres(location);
    return open_sqlite(location);
}

}  // namespace kyotaku::server
