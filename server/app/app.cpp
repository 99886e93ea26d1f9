#include "app/app.hpp"

#include "http/limits.hpp"
#include "http/router.hpp"
#include "http/rules_web.hpp"
#include "http/session.hpp"
#include "http/static_files.hpp"
#include "ops/tls.hpp"
#include "core/card_signature.hpp"
#include "kyotaku/signing.hpp"
#include "ops/observability.hpp"
#include "ops/preflight.hpp"
#include "ops/runtime.hpp"
#include "storage/facility_urls.hpp"
#include "storage/idempotent_answers.hpp"
#include "storage/server_probes.hpp"
#include "usecases/handoff.hpp"

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <openssl/ssl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <csignal>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <optional>
#include <thread>

namespace kyotaku::server {

namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

namespace {
// The key file: --key-file, else DB.key beside a SQLite database; required with PostgreSQL (the key is kept apart from
// the database). An in-memory database gets a key that lives as long as it.
std::shared_ptr<Secrets const> load_secrets(ServeOptions const& o) {
    bool const postgres = is_postgres_url(o.db);
    if (o.key_file.empty() && o.db == ":memory:") return Secrets::ephemeral();
    if (o.key_file.empty() && postgres)
        throw std::runtime_error("PostgreSQL では --key-file が必要です (鍵はデータベースと別に置きます) / --key-file "
                                 "is required with PostgreSQL "
                                 "(the key is kept apart from the database)");
    std::string const path = o.key_file.empty() ? o.db + ".key" : o.key_file;
    bool created = false;
    auto secrets = Secrets::from_key_file(path, created);
    if (created)
        std::cerr
            << "kyotaku serve: 鍵ファイル " << path
            << " を作りました (0600)。データベースとは別にバックアップしてください。これがないと施設URLを開けません"
            << " / created the key file " << path
            << " (0600): back it up apart from the database; without it no facility URL opens\n";
    return secrets;
}

// A reason not to start, printed as "kyotaku serve: REASON" (exit code 2).
struct Refused : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// The address to listen on: loopback unless the operator asked for another explicitly (--listen).
net::ip::address listen_address(ServeOptions const& o) {
    boost::system::error_code ec;
    auto address = net::ip::make_address(o.host, ec);
    if (ec) throw Refused("--host " + o.host + ": アドレスではありません / not an IP address");
    if (!address.is_loopback() && !o.any_address)
        throw Refused(
            "--host " + o.host +
            ": ループバック以外に待ち受けるには --listen ADDRESS:PORT で明示してください / refusing a non-loopback "
            "--host; ask for it explicitly with --listen ADDRESS:PORT");
    return address;
}

// The patients' listener's address (patient_listen): any address, since it is always asked for explicitly.
net::ip::address patient_listen_address(ServeOptions const& o) {
    boost::system::error_code ec;
    auto address = net::ip::make_address(o.patient_host, ec);
    if (ec) throw Refused("--patient-listen " + o.patient_host + ": アドレスではありません / not an IP address");
    return address;
}

// The server's certificate and key and the client CA (--tls-dir), with Mozilla's intermediate profile (ops/tls.hpp):
// the same loading as --check-config's and SIGHUP's.
std::unique_ptr<TlsInForce> tls_in_force(std::string const& tls_dir) {
    ServerTls tls = load_server_tls(tls_dir);
    if (!tls.ok()) throw Refused("TLS: " + tls.error);
    return std::make_unique<TlsInForce>(tls_dir, std::move(tls));
}

// The database, migrated, and the key file's secrets; a database this user can only read (a SQLite file restored
// as root, say) is refused now, not after the first write fails.
std::unique_ptr<Database> open_store(ServeOptions const& o, std::string const& spool_dir,
                                     std::shared_ptr<Secrets const>& secrets) {
    try {
        secrets = load_secrets(o);
        if (auto problem = prepare_spool_dir(spool_dir); !problem.empty())
            throw std::runtime_error("--spool-dir " + spool_dir + ": " + problem);
        // A pooled connection for each request thread and two for the batch worker (it holds a second one while it
        // answers the next chunk beside a write: BatchDesk::overlap), at least 4.
        auto db = open_database(o.db, std::max<std::size_t>(4, std::size_t(o.threads) + 2));
        // Which migrations this start applied, in one line (an upgrade's record in the log).
        std::vector<std::string> applied;
        migrate(*db, &applied);
        log_line({{"event", "schema"}, {"applied", applied}, {"migrations", schema_state(*db).applied.size()}});
        try {
            check_writable(*db, iso_timestamp(std::chrono::system_clock::now()));
        } catch (std::exception const& e) {
            throw std::runtime_error(std::string("データベースに書き込めません (所有者と権限を確かめてください) / "
                                                 "cannot write the database (check its owner and mode): ") +
                                     e.what());
        }
        if (int sealed = seal_plain_url_keys(*db, *secrets))
            std::cerr << "kyotaku serve: 平文の URL 鍵 " << sealed << " 個を鍵ファイルで封じました / sealed " << sealed
                      << " plain URL key(s) with the key file\n";
        claim_key_fingerprint(*db, *secrets, iso_timestamp(std::chrono::system_clock::now()));
        // SQLite: the 資格確認履歴 lines of answers go through a journal beside the file (storage/audit_journal.hpp);
        // what an earlier server left there is applied now, and a damaged file is set aside and said.
        if (auto const journal = db->open_audit_journal({}); journal.open) {
            if (!journal.set_aside.empty())
                log_line({{"event", "audit_journal_damaged"},
                          {"journal", journal.path},
                          {"set_aside", journal.set_aside},
                          {"damaged_at_byte", journal.damaged_at},
                          {"damaged_records", journal.damaged},
                          {"lines_applied", journal.replayed}},
                         "error");
            else if (journal.replayed > 0)
                log_line({{"event", "audit_journal_applied"}, {"journal", journal.path}, {"lines", journal.replayed}});
        }
        return db;
    } catch (Refused const&) {
        throw;
    } catch (std::exception const& e) {
        throw Refused(redact_db(o.db) + ": " + redact_secrets(e.what(), o.db));
    }
}

// The clock: a test clock that starts on --test-clock and the operator may move, else none (the machine's).
std::unique_ptr<TestClock> test_clock(ServeOptions const& o) {
    if (o.test_clock.empty()) return nullptr;
    auto day = parse_date(o.test_clock);
    if (!day.date) throw Refused("--test-clock " + o.test_clock + ": " + day.message.text());
    auto clock = std::make_unique<TestClock>(*day.date);
    std::cerr << "kyotaku serve: テスト用の時計で動いています (今日 = " << clock->today().iso()
              << ") / running on a test clock\n";
    return clock;
}

// Releases move forward only: a release older than the newest this database's servers have served is refused (unless
// the operator names it with rollback_to), and so are other rules under a release number already served.
void admit_serving_release(Database& db, LoadResult const& rules, std::string const& rules_dir,
                           std::uint64_t rollback_to) {
    char host[128] = {};
    gethostname(host, sizeof host - 1);
    ReleaseAdmission admission;
    try {
        admission = admit_release(db, rules.release, rules.program->source_hash, rollback_to,
                                  std::string(host) + "/" + std::to_string(getpid()) + "/start");
    } catch (std::exception const& e) {
        throw Refused(std::string("リリースの記録を読めません / cannot read the release record: ") + e.what());
    }
    if (!admission.accepted) {
        log_line({{"event", "rules_refused"},
                  {"path", rules_dir},
                  {"release", rules.release.release},
                  {"floor", admission.floor.release},
                  {"error", admission.refusal.en}},
                 "error");
        throw Refused(rules_dir + ": " + admission.refusal.text());
    }
    log_release_admission(admission, rules.release);
}

// The batch worker: answers pending rows of unfinished jobs, resuming whatever a previous run (or another server on
// the same database) left. Interactive requests go first by construction (BatchDesk::process). Stops and joins when
// destroyed.
class BatchWorker {
public:
    BatchWorker(Service& service, Runtime& rt)
        : service_(service), thread_([this, &rt] {
              // The next chunk answered while one is written (BatchDesk::overlap): on PostgreSQL always, the write
              // being the database's work while the worker waits for its answers; on SQLite, where the write is this
              // process's own work, only while the batch runs alone (overlap_only_alone), on the second core: under
              // interactive load answering ahead there took re-inquiry during a batch from 0.52 to 0.37 of idle
              // (docs/performance.md, eighth and tenth sessions).
              service_.batch.overlap = true;
              service_.batch.overlap_only_alone = service_.context.db.backend() != "postgresql";
              // Chunks of 2,000 rows while the batch runs alone: on PostgreSQL each statement of a chunk is a round
              // trip and a plan of the database's (docs/performance.md, twelfth session); on SQLite each chunk is a
              // lease and a write transaction, its thread and its commit (fifteenth session).
              service_.batch.alone_rows = 2000;
              run(service_, rt);
          }) {
        service_.batch.on_job_accepted = [this] { wake(); };  // (before the server takes requests)
    }
    // Takes no new chunk from now on (the one under way is finished); SIGTERM's drain asks this first.
    void stop_taking() {
        service_.batch.stop();  // (nor is one leased ahead; a wait for interactive requests ends)
        {
            std::lock_guard lock(idle_mutex_);
            stopping_ = true;
        }
        idle_.notify_all();
    }
    // A job was accepted: an idle worker looks at once instead of after its pause (not while a fault is waited out).
    void wake() {
        {
            std::lock_guard lock(idle_mutex_);
            woken_ = true;
        }
        idle_.notify_all();
    }
    // Stops, then lets go of any chunk lease this server still holds (a chunk a failure left leased), so that another
    // server answers it at once instead of after the lease expires.
    ~BatchWorker() {
        service_.batch.on_job_accepted = nullptr;
        stop_taking();
        thread_.join();
        try {
            if (int released = service_.batch.release_leases())
                log_line({{"event", "batch_leases_released"}, {"chunks", released}});
        } catch (std::exception const& e) {
            log_error("batch_release_leases", e.what());
        }
    }

private:
    void run(Service& service, Runtime& rt) {
        while (!stopping_) {
            int answered = 0;
            try {
                answered = service.batch.process(500);
                rt.batch_rows_answered += std::uint64_t(answered);
            } catch (std::exception const& e) {
                ++rt.batch_worker_errors;
                log_error("batch_worker", e.what());
            }
            // nothing to do: purge what is past keeping, look again in a while (at once when stopping)
            if (answered == 0) {
                try {
                    if (service.batch.pause().count() == 0) service.batch.purge();  // (not while the database is away)
                } catch (std::exception const& e) {
                    log_error("batch_purge", e.what());
                }
                // A transient database fault is waited out for longer (BatchDesk::pause).
                std::unique_lock lock(idle_mutex_);
                bool const fault = service.batch.pause().count() != 0;
                idle_.wait_for(lock, std::max(std::chrono::milliseconds(200), service.batch.pause()),
                               [&] { return stopping_.load() || (woken_ && !fault); });
                woken_ = false;
            }
        }
    }
    Service& service_;
    std::atomic<bool> stopping_{false};
    bool woken_ = false;  // a job was accepted since the worker last looked (under idle_mutex_)
    std::mutex idle_mutex_;
    std::condition_variable idle_;
    std::thread thread_;  // last: starts once the rest is made
};

// SIGTERM's drain. /readyz already answers 503; the listener stays open while requests other than probes keep coming
// (a balancer sends them until its checks see the 503: closing the listener then would reset connections it had
// already handed over), and closes once none has begun for `quiet` (at once when none came in the last second); then
// the requests in flight get the rest of `bound` to finish — each answer closes its connection — and the io_context
// stops (idle keep-alive connections end with it). Logged when it begins and when it ends, with what was left.
net::awaitable<void> drain_then_stop(net::io_context& io, std::vector<tcp::acceptor*> acceptors, Drain& drain,
                                     std::chrono::seconds bound) {
    using clock = std::chrono::steady_clock;
    constexpr auto quiet = std::chrono::seconds(1);
    auto const began = clock::now(), deadline = began + bound;
    log_line({{"event", "draining"}, {"drain_seconds", bound.count()}, {"in_flight", drain.in_flight.load()}});
    net::steady_timer tick(io);
    for (;;) {
        auto const now = clock::now();
        auto const last = clock::time_point(clock::duration(drain.last_request.load()));
        bool open = false;
        for (tcp::acceptor* acceptor : acceptors) {
            if (acceptor->is_open() && (now - last >= quiet || now >= deadline)) {
                boost::system::error_code ignored;
                acceptor->close(ignored);
            }
            open = open || acceptor->is_open();
        }
        if ((!open && drain.in_flight == 0) || now >= deadline) break;
        tick.expires_after(std::chrono::milliseconds(50));
        co_await tick.async_wait(net::use_awaitable);
    }
    log_line({{"event", "drained"},
              {"seconds", std::chrono::duration<double>(clock::now() - began).count()},
              {"in_flight_left", drain.in_flight.load()}},
             drain.in_flight == 0 ? "info" : "warning");
    io.stop();
}

// One listener's own counts: its handshake budgets and its accept loop's (the connections closed at its cap, accept
// errors). The patients' listener (patient_listen) has its own, so that a flood there never takes the office
// terminals' places.
struct ListenerCounts {
    char const* name;  // "main", "patients": the metrics' `listener` label
    HandshakeBudget hellos, handshakes;
    AcceptStats accepts;
    std::atomic<std::int64_t> open{0};  // connections open now
};

// /metrics about connections and TLS: each certificate's expiry, SIGHUP's TLS reloads, the listeners' handshake
// budgets and accept counts, the drain.
void connection_metrics(std::string& out, TlsInForce const& tls, std::vector<ListenerCounts const*> const& listeners,
                        UploadBudget const& uploads, Drain const& drain) {
    metric_header(out, "kyotaku_tls_certificate_expiry_seconds", "gauge",
                  "When each certificate the server relies on expires (Unix time): its own (server.pem) and the client "
                  "CAs (ca.pem).");
    for (auto const& c : tls.certificates())
        metric_sample(out, "kyotaku_tls_certificate_expiry_seconds", {{"file", c.file}, {"subject", c.subject}},
                      c.not_after);
    metric_header(out, "kyotaku_tls_reloads_total", "counter", "TLS reloads (SIGHUP), taken or refused.");
    metric_sample(out, "kyotaku_tls_reloads_total", {{"result", "ok"}}, double(tls.reloads_ok.load()));
    metric_sample(out, "kyotaku_tls_reloads_total", {{"result", "failed"}}, double(tls.reloads_failed.load()));
    metric_header(out, "kyotaku_http_handshakes_open", "gauge",
                  "Connections in their TLS handshake now, by listener and stage: waiting for the ClientHello (hello), "
                  "or the rest (handshake).");
    for (auto const* l : listeners) {
        metric_sample(out, "kyotaku_http_handshakes_open", {{"listener", l->name}, {"stage", "hello"}},
                      double(l->hellos.size()));
        metric_sample(out, "kyotaku_http_handshakes_open", {{"listener", l->name}, {"stage", "handshake"}},
                      double(l->handshakes.size()));
    }
    metric_header(out, "kyotaku_http_handshakes_evicted_total", "counter",
                  "Connections closed in their handshake because max_handshakes newer ones were in the same stage of "
                  "the same listener.");
    for (auto const* l : listeners) {
        metric_sample(out, "kyotaku_http_handshakes_evicted_total", {{"listener", l->name}, {"stage", "hello"}},
                      double(l->hellos.evicted.load()));
        metric_sample(out, "kyotaku_http_handshakes_evicted_total", {{"listener", l->name}, {"stage", "handshake"}},
                      double(l->handshakes.evicted.load()));
    }
    metric_header(out, "kyotaku_http_connections_open", "gauge", "Client connections open now, by listener.");
    for (auto const* l : listeners)
        metric_sample(out, "kyotaku_http_connections_open", {{"listener", l->name}}, double(l->open.load()));
    metric_header(out, "kyotaku_http_connections_refused_total", "counter",
                  "Connections closed at once because the listener's cap (max_connections, patient_max_connections) "
                  "were open.");
    for (auto const* l : listeners)
        metric_sample(out, "kyotaku_http_connections_refused_total", {{"listener", l->name}},
                      double(l->accepts.refused_at_cap.load()));
    metric_header(out, "kyotaku_http_accept_errors_total", "counter",
                  "Accept errors (out of descriptors, a connection reset in the backlog).");
    for (auto const* l : listeners)
        metric_sample(out, "kyotaku_http_accept_errors_total", {{"listener", l->name}},
                      double(l->accepts.errors.load()));
    metric_header(out, "kyotaku_http_uploads_open", "gauge",
                  "Large uploads (bodies beyond 64 KiB) read or answered now.");
    metric_sample(out, "kyotaku_http_uploads_open", {}, double(uploads.uploads()));
    metric_header(out, "kyotaku_http_upload_bytes", "gauge",
                  "Bytes the large uploads under way have taken from the budget, by store: memory (upload_memory_mb) "
                  "or spool (upload_spool_mb).");
    metric_header(out, "kyotaku_http_upload_budget_bytes", "gauge", "The budget of large uploads, by store.");
    for (auto [store, name] :
         {std::pair(UploadBudget::Store::memory, "memory"), std::pair(UploadBudget::Store::spool, "spool")}) {
        metric_sample(out, "kyotaku_http_upload_bytes", {{"store", name}}, double(uploads.in_use(store)));
        metric_sample(out, "kyotaku_http_upload_budget_bytes", {{"store", name}}, double(uploads.capacity(store)));
    }
    metric_header(out, "kyotaku_http_uploads_refused_total", "counter",
                  "Large uploads refused before their body was read: the budget was spent (503), the facility had "
                  "uploads_per_facility "
                  "under way (429), or the spool directory's disk had too little free space (503).");
    metric_sample(out, "kyotaku_http_uploads_refused_total", {{"reason", "budget"}},
                  double(uploads.refused_budget.load()));
    metric_sample(out, "kyotaku_http_uploads_refused_total", {{"reason", "facility"}},
                  double(uploads.refused_facility.load()));
    metric_sample(out, "kyotaku_http_uploads_refused_total", {{"reason", "disk"}}, double(uploads.refused_disk.load()));
    metric_header(out, "kyotaku_http_requests_in_flight", "gauge",
                  "Requests from their header to the end of their answer.");
    metric_sample(out, "kyotaku_http_requests_in_flight", {}, double(drain.in_flight.load()));
}

// What the desks report (usecases/events.hpp) goes to the JSON log.
void log_events(DeskEvents& events) {
    // Batch jobs' state changes and the chunks the worker could not answer go to the log.
    events.on_batch_event = [](BatchEvent const& e) {
        LogFields line{{"event", "batch_job"},
                       {"state", e.state},
                       {"reception_number", e.reception_number},
                       {"facility", e.facility},
                       {"rows", e.rows}};
        if (!e.error.empty()) line["error"] = e.error;
        if (e.retry_in_ms >= 0) line["retry_in_ms"] = e.retry_in_ms;
        std::string const state = e.state;
        log_line(std::move(line), state == "failed" ? "error" : state == "retry" ? "warning" : "info");
    };
    events.on_batch_problem = [](BatchProblem const& p) {
        LogFields line{{"event", p.event}, {"reception_number", p.reception_number}, {"error", p.error}};
        if (!p.cause.empty()) line["cause"] = p.cause;
        log_line(std::move(line), p.level == BatchProblem::Level::warning ? "warning" : "error");
    };
    // A Shift_JIS answer's 外字, per unit, at warning level (the answer went out with 〓; docs/interfaces.md).
    events.on_unmappable = [](UnmappableCharacters const& u) {
        log_line({{"event", "unmappable_characters"},
                  {"route", u.route},
                  {"facility", u.facility},
                  {"reception_number", u.reception_number},
                  {"unit", u.unit},
                  {"characters", u.characters}},
                 "warning");
    };
}

// The listener on ADDRESS:PORT (0: a free port the kernel picks), or the refusal naming it.
void listen_on(tcp::acceptor& acceptor, net::ip::address const& address, std::string const& host,
               unsigned short port) {
    tcp::endpoint endpoint(address, port);
    boost::system::error_code ec;
    acceptor.open(endpoint.protocol(), ec);
    if (!ec) acceptor.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor.bind(endpoint, ec);
    if (!ec) acceptor.listen(net::socket_base::max_listen_connections, ec);
    if (ec) throw Refused(host + ":" + std::to_string(port) + ": " + ec.message());
}

// How the workbench's proofs run (http/workbench_proofs.hpp), from the options.
ProofSettings proof_settings_of(ServeOptions const& o, std::string const& spool_dir) {
    ProofSettings settings;
    settings.executable = o.prove_executable.empty() ? std::string("/proc/self/exe") : o.prove_executable;
    settings.work_dir = spool_dir;
    settings.at_once = o.prove_at_once;
    settings.wall = std::chrono::seconds(o.prove_seconds);
    settings.cpu_seconds = std::uint64_t(o.prove_seconds);
    settings.memory_bytes = std::uint64_t(o.prove_memory_mb) << 20;
    return settings;
}

// A warning at start when the spool directory's disk has less free space than the spool budget.
void warn_if_spool_disk_low(std::string const& spool_dir, std::uint64_t upload_spool) {
    if (auto free = free_disk_bytes(spool_dir); free && *free < upload_spool) {
        std::cerr << "kyotaku serve: spool_dir " << spool_dir << " のディスクの空き (" << (*free >> 20)
                  << " MiB) は upload_spool_mb (" << (upload_spool >> 20)
                  << ") より少ないです。空きを超える送信は断ります (503) / the spool directory's disk has "
                  << (*free >> 20)
                  << " MiB free, less than upload_spool_mb: uploads beyond the free space are refused (503)\n";
        log_line({{"event", "spool_disk_low"},
                  {"spool_dir", spool_dir},
                  {"free_mb", *free >> 20},
                  {"upload_spool_mb", upload_spool >> 20}},
                 "warning");
    }
}

// Runs `io` on `threads` threads (this one among them) until it stops. An exception escaping a handler (a
// library's, inside an asynchronous operation: nothing of ours can catch it there) is logged and the thread runs on,
// instead of ending the process and every facility's requests with it.
void run_io(net::io_context& io, int threads) {
    auto run = [&io] {
        for (;;) {
            try {
                io.run();
                return;
            } catch (std::exception const& e) {
                log_error("io", std::string("an exception escaped a handler: ") + e.what());
            } catch (...) {
                log_error("io", "an exception escaped a handler");
            }
        }
    };
    std::vector<std::thread> pool;
    for (int i = 1; i < threads; ++i) pool.emplace_back(run);
    run();
    for (auto& t : pool) t.join();
}

// Runs the server on parts that are all made; returns when SIGINT or SIGTERM stops the io_context.
int run(ServeOptions const& o);
}  // namespace

int serve(ServeOptions const& o) {
    try {
        return run(o);
    } catch (Refused const& r) {
        std::cerr << "kyotaku serve: " << r.what() << "\n";
        return 2;
    }
}

int start_server(ResolvedConfig const& config) {
    std::vector<std::string> errors = config.errors;
    if (config.ok()) errors = preflight(config.options).errors;
    for (auto const& e : errors) std::cerr << "kyotaku serve: error: " << e << "\n";
    if (!errors.empty()) {
        std::cerr << "kyotaku serve: " << errors.size()
                  << " error(s): not started (kyotaku serve --check-config shows the whole configuration)\n";
        return 2;
    }
    try {
        return serve(config.options);
    } catch (std::exception const& e) {
        std::cerr << "kyotaku serve: error: " << redact_secrets(e.what(), config.options.db) << "\n";
        return 2;
    }
}

namespace {
// The rules to serve (signed ones checked against --trust's keys, which the workbench's configuration keeps too);
// rules that do not load refuse the start with their diagnostics.
ServingRules serving_rules(ServeOptions const& o, std::string const& rules_dir, RulesWeb& rules_web) {
    for (auto const& key_path : o.trust) {
        PublicKey key = read_public_key(key_path);
        if (!key.ok()) throw Refused("--trust " + key_path + ": " + key.error.text());
        rules_web.trusted_keys.push_back(key.raw);
    }
    std::vector<Diagnostic> diags;
    ServingRules serving = load_serving_rules(rules_dir, rules_web.trusted_keys, &diags);
    LoadResult const& rules = serving.loaded;
    if (!rules.program)
        throw Refused(rules_dir + ": " + (diags.empty() ? rules.describe() : "\n" + format_diagnostics(diags)));
    rules_web.rules_path = rules_dir;
    return serving;
}

// The consent page's files: --web-root, else the web/ folder the build assembles beside bin/ or cli/; the rule
// workbench sits beside it.
ConsentPageFiles page_files(ServeOptions const& o, RulesWeb& rules_web) {
    namespace fs = std::filesystem;
    std::string const web_root = web_root_path(o);
    std::error_code missing;
    if (!web_root.empty() && !fs::exists(fs::path(web_root) / "index.html", missing))
        std::cerr << "kyotaku serve: --web-root " << web_root << ": index.html がありません / no index.html there\n";
    if (!web_root.empty() && fs::exists(fs::path(web_root).parent_path() / "workbench" / "index.html", missing))
        rules_web.workbench_root = (fs::path(web_root).parent_path() / "workbench").string();
    return ConsentPageFiles(web_root);
}

// Readiness is probed on a thread and a database connection of its own (ops/runtime.hpp): a balancer's check never
// waits for the database or behind requests. Null when there is none (in memory, or it cannot be opened: the probe
// then shares the pool).
std::unique_ptr<Database> readiness_database(ServeOptions const& o) {
    try {
        if (o.db != ":memory:") return open_database(o.db, 1);
    } catch (std::exception const& e) {
        log_error("readiness_database", e.what());
    }
    return nullptr;
}

int run(ServeOptions const& o) {
    namespace fs = std::filesystem;
    auto const address = listen_address(o);
    std::unique_ptr<TlsInForce> const tls = tls_in_force(o.tls_dir);
    // The rules, their keys and the workbench's configuration (rules_web.hpp).
    std::string const rules_dir = rules_path(o);
    RulesWeb rules_web;
    ServingRules serving = serving_rules(o, rules_dir, rules_web);
    LoadResult& rules = serving.loaded;
    std::vector<std::string> const trusted_keys = rules_web.trusted_keys;
    // The database and the key file, the clock, the desks.
    std::shared_ptr<Secrets const> secrets;
    std::string const spool_dir = o.spool_dir.empty() ? default_spool_dir(o.db) : o.spool_dir;
    std::unique_ptr<Database> const db = open_store(o, spool_dir, secrets);
    SystemClock system_clock;
    std::unique_ptr<TestClock> const moved_clock = test_clock(o);
    std::optional<Service> service_holder;
    try {
        // (Signed rules: the page gets exactly the bytes whose signature was checked, serving.exact.)
        service_holder.emplace(*db, rules.program,
                               moved_clock ? static_cast<Clock&>(*moved_clock) : static_cast<Clock&>(system_clock),
                               serving.exact);
    } catch (std::exception const& e) {
        throw Refused(rules_dir + ": " + e.what());
    }
    admit_serving_release(*db, rules, rules_dir, o.rollback_to);
    Service& service = *service_holder;
    service.context.test_clock = moved_clock.get();
    service.context.secrets = secrets;
    service.handoffs().max_open_per_client = o.handoffs_per_client;
    service.batch.batch_share = o.batch_share;
    // The card CA: optional (card consent is refused without it); the systemd unit hands a placeholder without a
    // certificate when the file is missing, which counts as missing.
    if (std::string const card_ca = (fs::path(o.tls_dir) / "card-ca.pem").string(); loads_as_ca_file(card_ca))
        service.context.card_ca = card_ca;
    log_events(service.context.events);

    net::thread_pool work(std::size_t(o.threads));  // the threads that answer requests (they may wait for the database)
    // The event loop and what is bound to it, destroyed first at the end (loop.reset()): the connections' coroutines
    // still pending when it stops (idle keep-alive connections) go with it while the parts they use — the runtime,
    // the router, the drain, the budgets, all made below — still live.
    struct Loop {
        explicit Loop(int threads)
            : io(threads), acceptor(io), patient_acceptor(io), signals(io, SIGINT, SIGTERM), hangup(io, SIGHUP),
              acceptor_strand(net::make_strand(io)) {}
        net::io_context io;
        tcp::acceptor acceptor;
        tcp::acceptor patient_acceptor;  // patient_listen's (closed when there is none)
        net::signal_set signals, hangup;
        // A strand holds its state in the io_context's strand service: it must go before the io_context does (a
        // strand outliving loop.reset() locked a freed mutex at exit — the server hung after "drained").
        net::strand<net::io_context::executor_type> acceptor_strand;
    };
    auto loop = std::make_unique<Loop>(o.threads);
    net::io_context& io = loop->io;
    tcp::acceptor& acceptor = loop->acceptor;
    listen_on(acceptor, address, o.host, o.port);
    std::string const host_in_url = address.is_v6() ? "[" + o.host + "]" : o.host;
    // The patients' listener (patient_listen): facility URLs and QR codes point to it unless public_url says where.
    tcp::acceptor& patient_acceptor = loop->patient_acceptor;
    std::string patient_url;
    if (o.patient_listener) {
        auto const patient_address = patient_listen_address(o);
        listen_on(patient_acceptor, patient_address, o.patient_host, o.patient_port);
        patient_url = "https://" + (patient_address.is_v6() ? "[" + o.patient_host + "]" : o.patient_host) + ":" +
                      std::to_string(patient_acceptor.local_endpoint().port());
    } else if (std::string const warning = patients_on_certificate_listener(o); !warning.empty()) {
        std::cerr << "kyotaku serve: " << warning << "\n";
        log_line({{"event", "patients_on_certificate_listener"}, {"listen", o.host + ":" + std::to_string(o.port)}},
                 "warning");
    }
    if (std::string const warning = facility_urls_unreachable(o); !warning.empty()) {
        std::cerr << "kyotaku serve: " << warning << "\n";
        log_line({{"event", "facility_urls_unreachable"}, {"listen", o.patient_listener ? o.patient_host : o.host}},
                 "warning");
    }
    service.context.public_url =
        !o.public_url.empty() ? o.public_url
        : o.patient_listener  ? patient_url
                              : "https://" + host_in_url + ":" + std::to_string(acceptor.local_endpoint().port());

    ConsentPageFiles const pages = page_files(o, rules_web);

    // A write to stdout (the log) after journald or a pipe went away must not kill the server.
    std::signal(SIGPIPE, SIG_IGN);
    Runtime rt(*db, service, rules_dir, trusted_keys, rules.release, o.rollback_to);
    rt.start_probing(readiness_database(o));
    // The workbench's proofs: kyotaku prove run by the server (its own executable unless configured: /proc/self/exe,
    // which the child execs as the very file the server runs, even after a package upgrade replaced it on disk), on
    // threads of their own, with their temporary rule folders in the private spool directory.
    WorkbenchProofs proofs(proof_settings_of(o, spool_dir));
    net::thread_pool slow_work(std::size_t(std::max(1, o.prove_at_once)));
    Router const router(service, Site{&rt, &pages, &rules_web, &proofs});
    IdempotentAnswers idempotent(*db);
    Drain drain;
    ListenerCounts main_counts{"main", {}, {}, {}, {}}, patient_counts{"patients", {}, {}, {}, {}};
    std::vector<ListenerCounts const*> listeners{&main_counts};
    if (o.patient_listener) listeners.push_back(&patient_counts);
    UploadBudget uploads(o.limits.upload_memory, o.limits.upload_spool, o.limits.uploads_per_facility);
    // The spool budget is disk: checked against what the disk has free at start (a warning) and at each spooled upload.
    uploads.spool_free = [spool_dir] { return free_disk_bytes(spool_dir); };
    warn_if_spool_disk_low(spool_dir, o.limits.upload_spool);
    SessionShared shared{router,           rt,    idempotent,         o.limits,
                         spool_dir,        drain, main_counts.hellos, main_counts.handshakes,
                         uploads,          work,  slow_work,          false,
                         &main_counts.open};
    // The patients' listener's connections share everything but their TLS context, what they may reach, and their
    // handshake budgets and connection cap (their own: a flood there never takes the office terminals' places).
    SessionShared patient_shared{router,
                                 rt,
                                 idempotent,
                                 o.limits,
                                 spool_dir,
                                 drain,
                                 patient_counts.hellos,
                                 patient_counts.handshakes,
                                 uploads,
                                 work,
                                 slow_work,
                                 true,
                                 &patient_counts.open};
    rt.more_metrics = [&](std::string& out) {
        connection_metrics(out, *tls, listeners, uploads, drain);
        proofs.render_metrics(out);
    };

    // SIGHUP (systemctl reload): the rules again, atomically, a rule set that fails to load refused; then the TLS
    // files, each checked before it replaces the one in force (a bad file is refused, logged, and the old ones stay).
    std::function<void()> await_hangup = [&] {
        loop->hangup.async_wait([&](boost::system::error_code const& error, int) {
            if (error) return;
            rt.reload_rules();
            if (std::string const refused = tls->reload(); refused.empty())
                log_line({{"event", "tls_reloaded"}, {"tls_dir", o.tls_dir}});
            else
                log_line({{"event", "tls_reload_failed"}, {"tls_dir", o.tls_dir}, {"error", refused}}, "error");
            await_hangup();
        });
    };
    await_hangup();
    // Connections: capped (within the descriptor limit), each with its deadlines; the accept loop survives every error.
    auto const [max_connections, patient_max_connections] =
        o.patient_listener ? effective_max_connections(o.limits.max_connections, o.limits.patient_max_connections)
                           : std::pair(effective_max_connections(o.limits.max_connections), 0);
    if (max_connections < o.limits.max_connections ||
        (o.patient_listener && patient_max_connections < o.limits.patient_max_connections)) {
        std::string const patients =
            o.patient_listener ? " (patient_listen " + std::to_string(patient_max_connections) + ")" : "";
        std::cerr << "kyotaku serve: 同時接続数をファイル記述子の上限に合わせて " << max_connections << patients
                  << " にしました / connection cap lowered to " << max_connections << patients
                  << " by the descriptor limit\n";
        LogFields line{{"event", "connection_caps_lowered"},
                       {"max_connections", max_connections},
                       {"asked", o.limits.max_connections}};
        if (o.patient_listener) {
            line["patient_max_connections"] = patient_max_connections;
            line["patient_asked"] = o.limits.patient_max_connections;
        }
        log_line(std::move(line), "warning");
    }
    ConnectionCounter connections, patient_connections;
    // The accept loop and the drain that closes the listener share a strand (an acceptor is not safe to touch from two
    // threads at once).
    auto const& acceptor_strand = loop->acceptor_strand;
    net::co_spawn(acceptor_strand,
                  accept_loop(acceptor, max_connections, connections, main_counts.accepts,
                              [&](tcp::socket socket, ConnectionCounter::Slot slot) {
                                  start_session(std::move(socket), tls->context(), shared, std::move(slot));
                              }),
                  [](std::exception_ptr) {});
    if (o.patient_listener) {
        net::co_spawn(acceptor_strand,
                      accept_loop(patient_acceptor, patient_max_connections, patient_connections,
                                  patient_counts.accepts,
                                  [&](tcp::socket socket, ConnectionCounter::Slot slot) {
                                      start_session(std::move(socket), tls->patient_context(), patient_shared,
                                                    std::move(slot));
                                  }),
                      [](std::exception_ptr) {});
        // Before "listening on", the line scripts wait for: once that is printed, both listeners are up.
        std::cout << "patients on " << patient_url << " (the consent page; no client certificate asked for)"
                  << std::endl;
    }
    std::cout << "listening on https://" << host_in_url << ":" << acceptor.local_endpoint().port() << " ("
              << db->backend() << " " << redact_db(o.db) << ")" << std::endl;
    BatchWorker worker(service, rt);
    // SIGTERM or SIGINT: the drain (app.hpp, "Stopping"), then the io_context stops.
    auto drain_deadline = std::chrono::steady_clock::now();  // (read once the loop's threads have ended)
    loop->signals.async_wait([&](boost::system::error_code const& error, int) {
        if (error) return;
        drain_deadline = std::chrono::steady_clock::now() + o.drain;
        rt.draining = true;
        drain.stopping = true;
        worker.stop_taking();
        proofs.stop();  // a running proof is killed now and answered 503, not run on through the drain
        std::vector<tcp::acceptor*> acceptors{&acceptor};
        if (o.patient_listener) acceptors.push_back(&patient_acceptor);
        net::co_spawn(acceptor_strand, drain_then_stop(io, std::move(acceptors), drain, o.drain),
                      [](std::exception_ptr) {});
    });
    run_io(io, o.threads);
    work.join();  // what the stopped connections had handed over finishes (nothing resumes them)
    proofs.stop();  // a proof still running is killed, not waited for
    slow_work.join();
    // The audit lines of reads still being committed: done within the drain's bound, else given up (their requests go
    // unanswered) and logged; either way before the loop goes, since each commit resumes its request on the loop.
    // SQLite's journaled lines (answered, durable in the journal) not applied by then are applied at the next start.
    Database::AppendsLeft const left = db->finish_appends(drain_deadline);
    if (left.lines > 0)
        log_line({{"event", "audit_lines_not_committed"},
                  {"lines", left.lines},
                  {"tables", left.tables},
                  {"error", left.error}},
                 "error");
    if (left.in_journal > 0)
        log_line({{"event", "audit_lines_left_in_journal"}, {"lines", left.in_journal}}, "warning");
    loop.reset();
    return 0;
}
}  // namespace

}  // namespace kyotaku::server
