// The running server around the Service: the rules reloaded on SIGHUP, readiness and metrics.
//
// A reload compiles the rules again and hands them to Service::replace_rules, which swaps the rules in force
// whole (Context::rules): a request works on the rules it took when it started, later ones get the new rules. A
// rule set that does not compile, or does not fulfil the rule contract, is refused and the old one kept.
#pragma once

#include "ops/observability.hpp"
#include "ops/rule_releases.hpp"
#include "usecases/service.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace kyotaku::server {

struct RulesInfo {
    std::string path, hash, compiler;  // hash: the source hash, 16 hex digits
    std::size_t files = 0;
    std::uint64_t release = 0;  // the bundle's release number (0: rule sources or an unnumbered bundle)
    std::string key_id;         // the key that signed it (fingerprint; "" when unsigned)
    std::string loaded_at;  // ISO 8601
    double loaded_unix = 0;
};

// The rules `kyotaku serve` runs: with trusted keys, the file is read once, its signature checked on those bytes, the
// program loaded from them, and the same bytes kept for the consent page (`exact`); without keys, load_rules.
struct ServingRules {
    LoadResult loaded;
    std::shared_ptr<std::string const> exact;
};
ServingRules load_serving_rules(std::string const& path, std::vector<std::string> const& trusted_keys,
                                std::vector<Diagnostic>* diagnostics);

class Runtime {
public:
    // trusted_keys: raw Ed25519 keys of --trust; when given, a reload takes only a bundle one of them signed, and
    // the consent page gets the new bundle exactly as signed (rules_web.hpp). `release`: the release of the rules
    // in service at start (already admitted, rule_releases.hpp); `rollback_to`: the operator's setting, for reloads.
    Runtime(Database& db, Service& service, std::string rules_path, std::vector<std::string> trusted_keys = {},
            ReleaseInfo release = {}, std::uint64_t rollback_to = 0);
    // This process in logs and the database: host/pid/random.
    std::string const& instance() const { return instance_; }

    Service& service() { return service_; }
    RulesInfo rules() const;
    Database& database() { return db_; }

    // Loads the rules again from the same path. On success the new program serves every later request; on
    // failure (the diagnostics are logged) the old one stays: rules that do not load, lack what the server needs,
    // or carry a release older than the database's floor (rule_releases.hpp). Returns whether they were taken.
    bool reload_rules();

    // /readyz: the database takes a write, its schema is not newer than this binary, the rules are loaded;
    // {"status":"ready"|"not ready","checks":{…}}. With start_probing(), the answer is the last probe's, made every
    // readiness_kept on a thread and a connection of its own, so that /readyz never waits for the database or
    // behind other work (a balancer's check must not time out on a busy server); an answer older than
    // readiness_stale (the probe hangs: the database does not answer) is not ready. Without it (tests, tools),
    // a call probes itself, at most once per readiness_kept (a probe is a committed write).
    nlohmann::json readiness();
    // Probes once now, then every readiness_kept on a thread, with `probe_db` (null: the shared pool). Stopped by
    // the destructor.
    void start_probing(std::unique_ptr<Database> probe_db);
    ~Runtime();
    // /metrics, in Prometheus text format.
    std::string metrics_text();

    // How long a readiness answer is kept (a probe is a committed write; anonymous callers must not drive them).
    std::chrono::milliseconds readiness_kept{1000};
    // How old the probing thread's last answer may be before /readyz says not ready.
    std::chrono::milliseconds readiness_stale{5000};

    RequestMetrics requests;
    std::atomic<std::uint64_t> batch_rows_answered{0}, batch_worker_errors{0};
    // SIGTERM (app.hpp, "Stopping"): /readyz answers 503 at once, whatever its checks would say.
    std::atomic<bool> draining{false};
    // Set by the composition root: more samples for /metrics (the TLS certificates, the drain, the body budgets).
    std::function<void(std::string&)> more_metrics;

private:
    Database& db_;
    Service& service_;
    std::string rules_path_;
    std::vector<std::string> trusted_keys_;
    std::uint64_t rollback_to_;
    std::string instance_;
    double started_unix_;
    mutable std::mutex mutex_;
    RulesInfo rules_;
    std::mutex reload_mutex_;
    std::atomic<std::uint64_t> reloads_ok_{0}, reloads_failed_{0};
    std::mutex ready_mutex_;
    std::chrono::steady_clock::time_point ready_checked_{};
    nlohmann::json ready_;
    nlohmann::json probe(Database& db);  // one readiness check
    std::unique_ptr<Database> probe_db_;
    std::thread prober_;
    std::condition_variable probe_wake_;
    bool stop_probing_ = false;  // under ready_mutex_
    bool stale_logged_ = false;  // under ready_mutex_: the stale answer of this episode was logged
    std::mutex gauges_mutex_;
    std::chrono::steady_clock::time_point gauges_read_{};
    std::string gauges_;  // the database-wide gauges, read at most every 5 s

    void loaded(Program const& program, ReleaseInfo const& release);  // records and logs the rules now in force
    std::string database_gauges();
};

// Logs a rollback the operator asked for (rules_rollback, a warning naming both releases) and a rollback_to left set.
void log_release_admission(ReleaseAdmission const& admission, ReleaseInfo const& release);

}  // namespace kyotaku::server
