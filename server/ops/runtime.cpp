#include "ops/runtime.hpp"

#include "kyotaku/signing.hpp"
#include "contract/rule_contract.hpp"
#include "ops/rule_releases.hpp"
#include "storage/server_probes.hpp"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <utility>

#ifndef KYOTAKU_VERSION
#define KYOTAKU_VERSION "unknown"
#endif

namespace kyotaku::server {

namespace {
double unix_now() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// A readiness answer: `checks` names each check with its message (empty: ok). "checks" holds each as one line ("ok",
// or "日本語 / English", as /readyz always said); "checks_ja" and "checks_en" hold the two apart ("ok" in both).
nlohmann::json readiness_answer(bool ready, std::vector<std::pair<char const*, Message>> const& checks) {
    nlohmann::json one = nlohmann::json::object(), ja = nlohmann::json::object(), en = nlohmann::json::object();
    for (auto const& [name, message] : checks) {
        one[name] = message.empty() ? "ok" : message.text();
        ja[name] = message.empty() ? "ok" : message.ja;
        en[name] = message.empty() ? "ok" : message.en;
    }
    return {{"status", ready ? "ready" : "not ready"}, {"checks", one}, {"checks_ja", ja}, {"checks_en", en}};
}

Message const not_loaded{"読み込まれていません", "not loaded"};

}  // namespace

void log_release_admission(ReleaseAdmission const& admission, ReleaseInfo const& release) {
    if (admission.rollback)
        log_line({{"event", "rules_rollback"},
                  {"release", release.release},
                  {"from_release", admission.floor.release},
                  {"key", release.key_id.empty() ? "unsigned" : release.key_id},
                  {"message", "an operator went back (rollback_to): the floor is now this release"}},
                 "warning");
    if (!admission.note.empty())
        log_line({{"event", "rules_rollback_to_unused"}, {"message", admission.note.en}}, "warning");
}

Runtime::Runtime(Database& db, Service& service, std::string rules_path, std::vector<std::string> trusted_keys,
                 ReleaseInfo release, std::uint64_t rollback_to)
    : db_(db), service_(service), rules_path_(std::move(rules_path)), trusted_keys_(std::move(trusted_keys)),
      rollback_to_(rollback_to), started_unix_(unix_now()) {
    char host[128] = {};
    gethostname(host, sizeof host - 1);
    instance_ = std::string(host) + "/" + std::to_string(getpid()) + "/" + new_id().substr(0, 8);
    loaded(*service_.context.rules()->program, release);
}

RulesInfo Runtime::rules() const {
    std::lock_guard lock(mutex_);
    return rules_;
}

void Runtime::loaded(Program const& program, ReleaseInfo const& release) {
    RulesInfo info{rules_path_,
                   source_hash_hex(program.source_hash),
                   compiler_version,
                   program.files.size(),
                   release.release,
                   release.key_id,
                   iso_timestamp(std::chrono::system_clock::now()),
                   unix_now()};
    {
        std::lock_guard lock(mutex_);
        rules_ = info;
    }
    log_line({{"event", "rules_loaded"},
              {"path", info.path},
              {"hash", info.hash},
              {"compiler", info.compiler},
              {"files", info.files},
              {"release", info.release},
              {"key", info.key_id.empty() ? "unsigned" : info.key_id}});
}

ServingRules load_serving_rules(std::string const& path, std::vector<std::string> const& trusted_keys,
                                std::vector<Diagnostic>* diagnostics) {
    ServingRules out;
    std::error_code ec;
    // A path that cannot even be looked at (a symlink loop, a folder without access): said so, naming it.
    if ((void)std::filesystem::status(path, ec); ec && ec != std::errc::no_such_file_or_directory) {
        out.loaded.message =
            Message{path + " を読めません: " + ec.message(), "cannot read " + path + ": " + ec.message()};
        return out;
    }
    if (trusted_keys.empty() || !std::filesystem::is_regular_file(path, ec)) {
        out.loaded = load_trusted_rules(path, trusted_keys, diagnostics);  // sources, or the refusal of sources
        return out;
    }
    std::ifstream file(path, std::ios::binary);
    auto bytes = std::make_shared<std::string>(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
    if (!file.good() && !file.eof()) {
        out.loaded.message = Message{"読み込めません: " + path, "cannot read " + path};
        return out;
    }
    if (bytes->rfind("KYTKBNDL", 0) != 0) {
        out.loaded = load_trusted_rules(path, trusted_keys, diagnostics);  // its refusal of a file that is not a bundle
        return out;
    }
    if (Message m = check_bundle_signature(*bytes, trusted_keys); !m.empty()) {
        out.loaded.message = std::move(m);
        return out;
    }
    out.loaded = load_bundle(*bytes);
    if (out.loaded.program) out.exact = std::move(bytes);
    return out;
}

bool Runtime::reload_rules() {
    std::lock_guard reload(reload_mutex_);
    std::vector<Diagnostic> diags;
    ServingRules serving = load_serving_rules(rules_path_, trusted_keys_, &diags);
    LoadResult& fresh = serving.loaded;
    if (!fresh.program) {
        ++reloads_failed_;
        std::string detail = diags.empty() ? fresh.describe() : format_diagnostics(diags);
        log_line({{"event", "rules_reload_failed"},
                  {"path", rules_path_},
                  {"error", detail},
                  {"kept_hash", rules().hash}},
                 "error");
        return false;
    }
    auto refuse = [&](std::string const& error) {
        ++reloads_failed_;
        RulesInfo const kept = rules();
        log_line({{"event", "rules_reload_failed"},
                  {"path", rules_path_},
                  {"error", error},
                  {"kept_hash", kept.hash},
                  {"kept_release", kept.release},
                  {"release", fresh.release.release}},
                 "error");
        return false;
    };
    // The rules must fulfil the contract before their release is recorded, and be a release not older than the
    // database's floor before they serve anyone.
    if (auto bound = RuleContract::bind(fresh.program); auto const* refused = std::get_if<Message>(&bound))
        return refuse(refused->text());
    ReleaseAdmission admission;
    try {
        admission = admit_release(db_, fresh.release, fresh.program->source_hash, rollback_to_, instance_);
    } catch (std::exception const& e) {
        return refuse(std::string("リリースの記録を読めません / cannot read the release record: ") + e.what());
    }
    if (!admission.accepted) return refuse(admission.refusal.text());
    // the rules lack what the server needs
    if (auto refused = service_.replace_rules(fresh.program, serving.exact)) return refuse(*refused);
    log_release_admission(admission, fresh.release);
    loaded(*fresh.program, fresh.release);
    ++reloads_ok_;
    return true;
}

nlohmann::json Runtime::readiness() {
    if (draining) return readiness_answer(false, {{"draining", Message{"停止中です", "stopping (SIGTERM)"}}});
    std::unique_lock lock(ready_mutex_);
    auto const now = std::chrono::steady_clock::now();
    if (prober_.joinable()) {
        if (now - ready_checked_ <= readiness_stale) {
            stale_logged_ = false;
            return ready_;
        }
        // The probe has not come back: the database does not take the write (it hangs, or another holds its lock).
        auto const seconds =
            std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now - ready_checked_).count());
        if (!std::exchange(stale_logged_, true))
            log_error("readiness_database", "the readiness probe has had no answer for " + seconds + " s");
        // The schema as the last answer found it.
        Message schema{"まだ確かめていません", "not checked yet"};
        if (ready_.contains("checks_ja")) {
            schema = Message{ready_["checks_ja"].value("schema", "?"), ready_["checks_en"].value("schema", "?")};
            if (schema.ja == "ok") schema = {};
        }
        return readiness_answer(
            false, {{"database", Message{"書き込めません (" + seconds + " 秒答えがありません)",
                                         "cannot write (no answer for " + seconds + " s)"}},
                    {"schema", schema},
                    {"rules", service_.context.rules() ? Message{} : not_loaded}});
    }
    if (!ready_.is_null() && now - ready_checked_ < readiness_kept) return ready_;
    ready_ = probe(db_);
    ready_checked_ = now;
    return ready_;
}

void Runtime::start_probing(std::unique_ptr<Database> probe_db) {
    probe_db_ = std::move(probe_db);
    Database& db = probe_db_ ? *probe_db_ : db_;
    {
        nlohmann::json first = probe(db);
        std::lock_guard lock(ready_mutex_);
        ready_ = std::move(first);
        ready_checked_ = std::chrono::steady_clock::now();
    }
    prober_ = std::thread([this, &db] {
        std::unique_lock lock(ready_mutex_);
        while (!probe_wake_.wait_for(lock, readiness_kept, [&] { return stop_probing_; })) {
            lock.unlock();
            nlohmann::json answer = probe(db);  // outside the lock: /readyz answers meanwhile
            lock.lock();
            ready_ = std::move(answer);
            ready_checked_ = std::chrono::steady_clock::now();
        }
    });
}

Runtime::~Runtime() {
    {
        std::lock_guard lock(ready_mutex_);
        stop_probing_ = true;
    }
    probe_wake_.notify_all();
    if (prober_.joinable()) prober_.join();
}

nlohmann::json Runtime::probe(Database& db) {
    Message const rules = service_.context.rules() ? Message{} : not_loaded;
    try {
        write_probe(db, instance_, iso_timestamp(std::chrono::system_clock::now()),
                    iso_time_ago(std::chrono::hours(24)));
    } catch (std::exception const& e) {
        // Not ready from now on, not once the rest is checked too (the schema's read would wait for the same database).
        log_error("readiness_database", e.what());
        return readiness_answer(false, {{"database", Message{"書き込めません", "cannot write"}},
                                        {"schema", Message{"確かめていません", "not checked"}},
                                        {"rules", rules}});
    }
    Message schema;
    try {
        if (!schema_state(db).unknown.empty())
            schema = Message{"この kyotaku より新しいスキーマです", "the schema is newer than this kyotaku"};
    } catch (std::exception const& e) {
        schema = Message{"読めません", "cannot read"};
        log_error("readiness_schema", e.what());
    }
    return readiness_answer(schema.empty() && rules.empty(), {{"database", {}}, {"schema", schema}, {"rules", rules}});
}

std::string Runtime::database_gauges() {
    std::lock_guard lock(gauges_mutex_);
    auto now = std::chrono::steady_clock::now();
    if (!gauges_.empty() && now - gauges_read_ < std::chrono::seconds(5)) return gauges_;
    std::string out;
    try {
        DatabaseCounts const n = count_rows(db_);
        SchemaState schema = schema_state(db_);
        metric_header(out, "kyotaku_batch_rows", "gauge",
                      "Batch re-inquiry rows in the database, pending or answered.");
        metric_sample(out, "kyotaku_batch_rows", {{"state", "pending"}}, double(n.batch_rows_pending));
        metric_sample(out, "kyotaku_batch_rows", {{"state", "answered"}}, double(n.batch_rows_answered));
        metric_header(out, "kyotaku_batch_jobs", "gauge",
                      "Batch re-inquiry jobs in the database: unfinished, finished, or failed (gave up).");
        metric_sample(out, "kyotaku_batch_jobs", {{"state", "unfinished"}}, double(n.batch_jobs_unfinished));
        metric_sample(out, "kyotaku_batch_jobs", {{"state", "finished"}},
                      double(n.batch_jobs - n.batch_jobs_unfinished - n.batch_jobs_failed));
        metric_sample(out, "kyotaku_batch_jobs", {{"state", "failed"}}, double(n.batch_jobs_failed));
        metric_header(out, "kyotaku_consents", "gauge", "Consents in the database, open or withdrawn.");
        metric_sample(out, "kyotaku_consents", {{"state", "open"}}, double(n.consents_open));
        metric_sample(out, "kyotaku_consents", {{"state", "withdrawn"}},
                      double(n.consents - n.consents_open));
        metric_header(out, "kyotaku_consent_registrations", "gauge",
                      "Consents registered by the consent page with a card (challenges used).");
        metric_sample(out, "kyotaku_consent_registrations", {}, double(n.consent_registrations));
        metric_header(out, "kyotaku_schema_migrations", "gauge",
                      "Schema migrations applied, pending, or unknown to this binary (newer).");
        metric_sample(out, "kyotaku_schema_migrations", {{"state", "applied"}}, double(schema.applied.size()));
        metric_sample(out, "kyotaku_schema_migrations", {{"state", "pending"}}, double(schema.pending.size()));
        metric_sample(out, "kyotaku_schema_migrations", {{"state", "unknown"}}, double(schema.unknown.size()));
        metric_header(out, "kyotaku_metrics_database_up", "gauge", "Whether the database gauges could be read.");
        metric_sample(out, "kyotaku_metrics_database_up", {}, 1);
    } catch (std::exception const& e) {
        log_error("metrics_database", e.what());
        out.clear();
        metric_header(out, "kyotaku_metrics_database_up", "gauge", "Whether the database gauges could be read.");
        metric_sample(out, "kyotaku_metrics_database_up", {}, 0);
    }
    gauges_ = out;
    gauges_read_ = now;
    return out;
}

std::string Runtime::metrics_text() {
    std::string out;
    metric_header(out, "kyotaku_build_info", "gauge", "The kyotaku version of this server.");
    metric_sample(out, "kyotaku_build_info", {{"version", KYOTAKU_VERSION}}, 1);
    metric_header(out, "kyotaku_start_time_seconds", "gauge", "When this server started (Unix time).");
    metric_sample(out, "kyotaku_start_time_seconds", {}, started_unix_);
    RulesInfo r = rules();
    metric_header(out, "kyotaku_rules_info", "gauge",
                  "The rule set in service: its source hash, compiler version, file count, release and signing key.");
    metric_sample(out, "kyotaku_rules_info",
                  {{"hash", r.hash},
                   {"compiler", r.compiler},
                   {"files", std::to_string(r.files)},
                   {"release", std::to_string(r.release)},
                   {"key", r.key_id.empty() ? "unsigned" : r.key_id}},
                  1);
    metric_header(out, "kyotaku_rules_release", "gauge",
                  "The release number of the rule set in service (0: not a release).");
    metric_sample(out, "kyotaku_rules_release", {}, double(r.release));
    metric_header(out, "kyotaku_rules_loaded_timestamp_seconds", "gauge",
                  "When the rule set in service was loaded (Unix time).");
    metric_sample(out, "kyotaku_rules_loaded_timestamp_seconds", {}, r.loaded_unix);
    metric_header(out, "kyotaku_rules_reloads_total", "counter", "Rule reloads (SIGHUP), taken or refused.");
    metric_sample(out, "kyotaku_rules_reloads_total", {{"result", "ok"}}, double(reloads_ok_.load()));
    metric_sample(out, "kyotaku_rules_reloads_total", {{"result", "failed"}}, double(reloads_failed_.load()));
    requests.render(out);
    metric_header(out, "kyotaku_batch_worker_rows_total", "counter", "Batch rows answered by this server's worker.");
    metric_sample(out, "kyotaku_batch_worker_rows_total", {}, double(batch_rows_answered.load()));
    metric_header(out, "kyotaku_batch_worker_errors_total", "counter", "Errors of this server's batch worker.");
    metric_sample(out, "kyotaku_batch_worker_errors_total", {}, double(batch_worker_errors.load()));
    metric_header(
        out, "kyotaku_batch_worker_retries_total", "counter",
        "Chunks this server's worker tries again after a transient database fault (a lost connection, a failover).");
    metric_sample(out, "kyotaku_batch_worker_retries_total", {}, double(service_.batch.retries.load()));
    metric_header(out, "kyotaku_batch_worker_gave_way_seconds_total", "counter",
                  "Time this server's batch worker waited between chunks for interactive requests (batch_share).");
    metric_sample(out, "kyotaku_batch_worker_gave_way_seconds_total", {},
                  double(service_.batch.gave_way_us.load()) / 1e6);
    metric_header(out, "kyotaku_batch_jobs_failed_total", "counter",
                  "Jobs this server's worker gave up on a permanent error (異常終了).");
    metric_sample(out, "kyotaku_batch_jobs_failed_total", {}, double(service_.batch.jobs_failed.load()));
    metric_header(out, "kyotaku_db_reconnects_total", "counter",
                  "Database connections found ended (a restart, a failover) and connected again.");
    metric_sample(out, "kyotaku_db_reconnects_total", {}, double(db_.reconnects.load()));
    metric_header(out, "kyotaku_db_retries_total", "counter",
                  "Reads and requests run again after a transient database fault.");
    metric_sample(out, "kyotaku_db_retries_total", {}, double(db_.retries.load()));
    metric_header(out, "kyotaku_oqs_unmappable_characters_total", "counter",
                  "Characters a Shift_JIS answer could not hold (外字), written as 〓 (U+3013) or, a variation "
                  "selector, dropped.");
    metric_sample(out, "kyotaku_oqs_unmappable_characters_total", {},
                  double(service_.context.unmappable_characters.load()));
    Database::PoolStats pool = db_.pool_stats();
    metric_header(out, "kyotaku_db_pool_connections", "gauge", "Database connections of this server, busy or idle.");
    metric_sample(out, "kyotaku_db_pool_connections", {{"state", "busy"}}, double(pool.busy));
    metric_sample(out, "kyotaku_db_pool_connections", {{"state", "idle"}}, double(pool.size - pool.busy));
    metric_header(out, "kyotaku_db_pool_waiting", "gauge", "Threads waiting for a database connection now.");
    metric_sample(out, "kyotaku_db_pool_waiting", {}, double(pool.waiting));
    metric_header(out, "kyotaku_db_audit_lines_pending", "gauge",
                  "Audit lines of reads queued or being committed now (each request's answer waits for its line).");
    metric_sample(out, "kyotaku_db_audit_lines_pending", {}, double(pool.appends_pending));
    out += database_gauges();
    if (more_metrics) more_metrics(out);
    nlohmann::json ready;
    {
        std::lock_guard lock(ready_mutex_);
        ready = ready_;
    }
    metric_header(out, "kyotaku_ready", "gauge",
                  "The last /readyz answer (1 ready, 0 not ready; absent before the first).");
    if (!ready.is_null()) metric_sample(out, "kyotaku_ready", {}, ready["status"] == "ready" ? 1 : 0);
    return out;
}

}  // namespace kyotaku::server
