// SQLite backend: one connection, serialised by a mutex (SQLite is the small-clinic default; PostgreSQL is
// for scale). Statements are prepared per call; bound parameters only, never string concatenation.
#include "database.hpp"

#include "error.hpp"
#include "fields.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <iostream>
#include <unordered_map>

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

void check_text_params(std::vector<Value> const& params) {
    for (std::size_t i = 0; i < params.size(); ++i)
        if (auto const* s = std::get_if<std::string>(&params[i]); s && (!valid_utf8(*s) || s->find('\0') != std::string::npos))
            throw invalid("", "UTF-8 の文字列ではありません (何も保存していません)",
                          "a text is not valid UTF-8 or holds NUL (parameter $" + std::to_string(i + 1) + "; nothing was stored)");
}

namespace {
// A database file only its owner reads: created 0600 (SQLite gives its -wal and -shm files the database's mode), and
// an existing one (with its -wal, -shm) that others could read is made 0600.
void make_private(std::string const& path) {
    if (path.empty() || path == ":memory:" || path.rfind("file:", 0) == 0) return;
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) ::close(fd);
    for (std::string const& file : {path, path + "-wal", path + "-shm"}) {
        struct stat st {};
        if (::stat(file.c_str(), &st) != 0 || !(st.st_mode & 077)) continue;
        if (::chmod(file.c_str(), st.st_mode & 0700) == 0)
            std::cerr << "kyotaku: " << file << ": 他のユーザが読めたので所有者だけにしました / was open to other users: made owner-only (0600)\n";
    }
}
}  // namespace

namespace {
class Sqlite final : public Database {
public:
    explicit Sqlite(std::string const& path) {
        make_private(path);
        if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr) != SQLITE_OK) {
            std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
            sqlite3_close(db_);
            throw DatabaseError("cannot open SQLite database " + path + ": " + msg);
        }
        sqlite3_busy_timeout(db_, 5000);
        // WAL with synchronous=NORMAL outside transactions: a single-statement append (the audit log of a read)
        // survives a process crash and is fsynced with the next transaction. Every transaction — every state
        // change — runs with synchronous=FULL, so its commit is on disk before it is acknowledged.
        script("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;");
    }
    ~Sqlite() override {
        for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
        sqlite3_close(db_);
    }

    std::vector<Row> query(std::string const& sql, std::vector<Value> const& params) override {
        check_text_params(params);
        std::lock_guard lock(mutex_);
        // Prepared statements are cached by their text (the application's statements are a fixed set).
        sqlite3_stmt* stmt = nullptr;
        if (auto it = cache_.find(sql); it != cache_.end()) {
            stmt = it->second;
        } else {
            if (sqlite3_prepare_v2(db_, sql.c_str(), int(sql.size()), &stmt, nullptr) != SQLITE_OK)
                throw DatabaseError(std::string("SQL error: ") + sqlite3_errmsg(db_));
            if (cache_.size() < 256) cache_.emplace(sql, stmt);
        }
        bool cached = cache_.count(sql) != 0;
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
        for (std::size_t i = 0; i < params.size(); ++i) {
            std::string name = "$" + std::to_string(i + 1);
            int index = sqlite3_bind_parameter_index(stmt, name.c_str());
            if (index == 0) continue;  // a parameter the statement does not use
            int rc = std::visit(
                [&](auto const& v) -> int {
                    using T = std::decay_t<decltype(v)>;
                    if constexpr (std::is_same_v<T, std::nullptr_t>) return sqlite3_bind_null(stmt, index);
                    else if constexpr (std::is_same_v<T, std::int64_t>) return sqlite3_bind_int64(stmt, index, v);
                    else return sqlite3_bind_text(stmt, index, v.data(), int(v.size()), SQLITE_TRANSIENT);
                },
                params[i]);
            if (rc != SQLITE_OK) throw DatabaseError(std::string("SQL bind error: ") + sqlite3_errmsg(db_));
        }
        std::vector<Row> rows;
        for (;;) {
            int rc = sqlite3_step(stmt);
            if (rc == SQLITE_DONE) break;
            if (rc != SQLITE_ROW) throw DatabaseError(std::string("SQL error: ") + sqlite3_errmsg(db_));
            Row row;
            int n = sqlite3_column_count(stmt);
            for (int c = 0; c < n; ++c) {
                switch (sqlite3_column_type(stmt, c)) {
                    case SQLITE_NULL: row.emplace_back(nullptr); break;
                    case SQLITE_INTEGER: row.emplace_back(std::int64_t(sqlite3_column_int64(stmt, c))); break;
                    default: {
                        auto const* t = reinterpret_cast<char const*>(sqlite3_column_text(stmt, c));
                        row.emplace_back(std::string(t ? t : "", std::size_t(sqlite3_column_bytes(stmt, c))));
                    }
                }
            }
            rows.push_back(std::move(row));
        }
        return rows;
    }

    void script(std::string const& sql) override {
        std::lock_guard lock(mutex_);
        char* err = nullptr;
        if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
            std::string msg = err ? err : "unknown error";
            sqlite3_free(err);
            throw DatabaseError("SQL error: " + msg);
        }
    }

    std::string backend() const override { return "sqlite"; }

    void in_transaction(std::function<void()> const& body) override {
        std::lock_guard lock(mutex_);  // recursive: the statements inside lock it again
        std::string sp = "sp" + std::to_string(depth_);
        script(depth_ == 0 ? "PRAGMA synchronous=FULL; BEGIN IMMEDIATE" : "SAVEPOINT " + sp);
        ++depth_;
        try {
            body();
        } catch (...) {
            --depth_;
            try {
                script(depth_ == 0 ? "ROLLBACK; PRAGMA synchronous=NORMAL" : "ROLLBACK TO " + sp + "; RELEASE " + sp);
            } catch (...) {
            }
            throw;
        }
        --depth_;
        script(depth_ == 0 ? "COMMIT; PRAGMA synchronous=NORMAL" : "RELEASE " + sp);
    }

private:
    sqlite3* db_ = nullptr;
    std::recursive_mutex mutex_;
    int depth_ = 0;
    std::unordered_map<std::string, sqlite3_stmt*> cache_;
};
}  // namespace

std::unique_ptr<Database> open_sqlite(std::string const& path) { return std::make_unique<Sqlite>(path); }

int migrate(Database& db) {
    db.script("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)");
    int applied = 0;
    for (auto const& m : migrations()) {
        if (!db.query("SELECT 1 FROM schema_migrations WHERE name = $1", {std::string(m.name)}).empty()) continue;
        transaction(db, [&] {
            db.script(m.sql);
            db.query("INSERT INTO schema_migrations (name, applied_at) VALUES ($1, CAST(CURRENT_TIMESTAMP AS TEXT))", {std::string(m.name)});
        });
        ++applied;
    }
    return applied;
}

}  // namespace kyotaku::server
