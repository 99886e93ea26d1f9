// PostgreSQL backend (libpq), selected by a postgresql:// connection URL. The same migrations and the same
// $n-parameterised statements as SQLite; one connection serialised by a mutex, transactions held whole.
#include "database.hpp"

#include <libpq-fe.h>

#include <memory>

namespace kyotaku::server {

namespace {
// Type OIDs of integer columns (pg_type.h): int8, int2, int4.
constexpr Oid int8_oid = 20, int2_oid = 21, int4_oid = 23;

class Postgres final : public Database {
public:
    explicit Postgres(std::string const& url) : conn_(PQconnectdb(url.c_str())) {
        if (!conn_ || PQstatus(conn_) != CONNECTION_OK) {
            std::string msg = conn_ ? PQerrorMessage(conn_) : "out of memory";
            PQfinish(conn_);
            conn_ = nullptr;
            throw DatabaseError("cannot connect to PostgreSQL: " + msg);
        }
        script("SET client_encoding = 'UTF8'; SET client_min_messages = WARNING;");
    }
    ~Postgres() override { PQfinish(conn_); }

    std::vector<Row> query(std::string const& sql, std::vector<Value> const& params) override {
        std::lock_guard lock(mutex_);
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
        std::unique_ptr<PGresult, void (*)(PGresult*)> res(
            PQexecParams(conn_, sql.c_str(), int(params.size()), nullptr, values.data(), nullptr, nullptr, 0), PQclear);
        auto status = PQresultStatus(res.get());
        if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK)
            throw DatabaseError(std::string("SQL error: ") + PQresultErrorMessage(res.get()));
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

    void script(std::string const& sql) override {
        std::lock_guard lock(mutex_);
        std::unique_ptr<PGresult, void (*)(PGresult*)> res(PQexec(conn_, sql.c_str()), PQclear);
        auto status = PQresultStatus(res.get());
        if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK)
            throw DatabaseError(std::string("SQL error: ") + PQresultErrorMessage(res.get()));
    }

    std::string backend() const override { return "postgresql"; }

    void in_transaction(std::function<void()> const& body) override {
        std::lock_guard lock(mutex_);
        std::string sp = "sp" + std::to_string(depth_);
        script(depth_ == 0 ? "BEGIN" : "SAVEPOINT " + sp);
        ++depth_;
        try {
            body();
        } catch (...) {
            --depth_;
            try {
                script(depth_ == 0 ? "ROLLBACK" : "ROLLBACK TO SAVEPOINT " + sp + "; RELEASE SAVEPOINT " + sp);
            } catch (...) {
            }
            throw;
        }
        --depth_;
        script(depth_ == 0 ? "COMMIT" : "RELEASE SAVEPOINT " + sp);
    }

private:
    PGconn* conn_ = nullptr;
    std::recursive_mutex mutex_;
    int depth_ = 0;
};
}  // namespace

std::unique_ptr<Database> open_postgres(std::string const& url) { return std::make_unique<Postgres>(url); }

std::unique_ptr<Database> open_database(std::string const& location) {
    if (location.rfind("postgresql://", 0) == 0 || location.rfind("postgres://", 0) == 0) return open_postgres(location);
    return open_sqlite(location);
}

}  // namespace kyotaku::server
