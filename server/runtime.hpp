// The running server around the Service: the rule set in service (reloaded on SIGHUP), readiness and metrics.
//
// Rules are swapped by generation: each loaded rule set gets its own Service over the same Database, and a
// request holds the generation it started with (a shared_ptr) until its response is sent, so requests in flight
// finish on the old program while new ones get the new one. A rule set that fails to load is refused and the
// old one kept.
#pragma once

#include "observability.hpp"
#include "service.hpp"

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

namespace kyotaku::server {

struct RulesInfo {
    std::string path, hash, compiler;  // hash: the source hash, 16 hex digits
    std::size_t files = 0;
    std::string loaded_at;  // ISO 8601
    double loaded_unix = 0;
};

class Runtime {
public:
    // Makes a Service for a rule program (the server sets its public URL, card CA and batch log on it).
    using Factory = std::function<std::shared_ptr<Service>(std::shared_ptr<Program const>)>;
    Runtime(Database& db, std::string rules_path, std::shared_ptr<Program const> rules, Factory make);

    // The current generation; hold it while a request is being answered.
    std::shared_ptr<Service> service() const;
    RulesInfo rules() const;
    Database& database() { return db_; }

    // Loads the rules again from the same path. On success the new program serves every later request; on
    // failure (the diagnostics are logged) the old one stays. Returns whether the new rules were taken.
    bool reload_rules();

    // /readyz: the database takes a write, its schema is not newer than this binary, the rules are loaded.
    // Checked at most once a second (a probe is a committed write); {"status":"ready"|"not ready","checks":{…}}.
    nlohmann::json readiness();
    // /metrics, in Prometheus text format.
    std::string metrics_text();

    // How long a readiness answer is kept (a probe is a committed write; anonymous callers must not drive them).
    std::chrono::milliseconds readiness_kept{1000};

    RequestMetrics requests;
    std::atomic<std::int64_t> connections_open{0};
    std::atomic<std::uint64_t> batch_rows_answered{0}, batch_worker_errors{0};

private:
    Database& db_;
    std::string rules_path_;
    Factory make_;
    std::string instance_;
    double started_unix_;
    mutable std::mutex mutex_;
    std::shared_ptr<Service> current_;
    RulesInfo rules_;
    std::mutex reload_mutex_;
    std::atomic<std::uint64_t> reloads_ok_{0}, reloads_failed_{0};
    std::mutex ready_mutex_;
    std::chrono::steady_clock::time_point ready_checked_{};
    nlohmann::json ready_;
    std::mutex gauges_mutex_;
    std::chrono::steady_clock::time_point gauges_read_{};
    std::string gauges_;  // the database-wide gauges, read at most every 5 s

    void set_rules(std::shared_ptr<Program const> const& program, std::shared_ptr<Service> service);
    std::string database_gauges();
};

// The runtime of this process, for the /readyz and /metrics routes (null outside `kyotaku serve`).
void set_runtime(Runtime* runtime);
Runtime* runtime();

}  // namespace kyotaku::server
