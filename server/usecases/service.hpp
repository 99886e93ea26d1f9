// The reference verification system's use cases, independent of HTTP, one desk per area (architecture.md "The
// server's layers"): each desk runs the sequence of one request and its transaction. Every allow/deny about a
// patient's data comes from the decision path (decision.hpp), which alone asks the rules; the date comes from the
// injected clock; the caller's facility, role and terminal come from its certificate.
#pragma once

#include "core/clock.hpp"
#include "core/error.hpp"
#include "core/ids.hpp"
#include "core/secrets.hpp"
#include "decision/decision.hpp"
#include "contract/rule_contract.hpp"
#include "formats/fields.hpp"
#include "storage/database.hpp"
#include "storage/records.hpp"
#include "usecases/admin.hpp"
#include "usecases/consent.hpp"
#include "usecases/context.hpp"
#include "usecases/events.hpp"
#include "usecases/inquiry.hpp"
#include "usecases/ledger.hpp"
#include "usecases/oqs_files.hpp"
#include "usecases/request_gate.hpp"
#include "usecases/settings.hpp"
#include "usecases/withdrawal.hpp"

#include <nlohmann/json.hpp>

#include <atomic>
#include <functional>
#include <istream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace kyotaku::server {

using json = nlohmann::json;

// 資格確認一括照会: upload → reception number → poll → download, and the worker that answers the rows.
class BatchDesk {
public:
    explicit BatchDesk(Context& x) : x_(x), worker_(new_id()) {}
    // CSV: arbitrary_identifier,insurer_number,symbol,number,branch,birthdate (header line optional).
    json upload_csv(Caller const& c, std::string const& category, std::string const& query_date, std::string const& file_identifier,
                    std::istream& csv);
    // Rows pulled one at a time (`next` returns false at the end): nothing is held whole. Runs in one transaction.
    json upload(Caller const& c, std::string const& category, std::string const& query_date, std::string const& file_identifier,
                std::string const& format, std::function<bool(json&)> const& next, bool allow_empty = false);
    json status(Caller const& c, std::string const& reception_number);
    // A finished job's results can be downloaded until the end of the day after it finished (JST): a 409 while it
    // runs, a 410 once they are purged.
    static void require_results(json const& status);
    static std::string expires_on(std::string const& finished_at);
    // Deletes the rows of jobs whose results are past keeping (the worker calls it when idle); how many jobs.
    int purge();
    // NDJSON pages of up to `page_rows` rows per call (empty when done); checks the caller and the job first.
    std::function<std::string()> result_pages(Caller const& c, std::string const& reception_number, int page_rows = 2000);
    // One chunk of the worker: leases a chunk of the job whose facility was served least recently (one whose lease
    // expired, else the next `max_rows` rows), answers it outside any transaction, waits for the interactive
    // requests in flight, then writes the answers in one short transaction where its lease still stands. A crash
    // loses no row and answers none twice (the lease expires; the write is conditional). Returns how many rows it
    // answered.
    // A transient database fault (a lost connection, a failover, a lost race) answers nothing and fails nothing:
    // the chunk stays this worker's and is tried again after pause(), which doubles while the fault lasts (0.1 s
    // up to 5 s); only a permanent error counts against the job, which gives up after three (failed, 異常終了).
    int process(int max_rows = 500);
    // Lets go of the chunk leases this worker holds and has not answered (a stopping server's: another server takes
    // the chunks at once instead of after the lease expires). Returns how many.
    int release_leases();
    // How long the worker should wait before its next process() (zero unless a transient fault is being waited out).
    std::chrono::milliseconds pause() const { return pause_; }
    // This worker's counts, for /metrics: chunks tried again after a transient fault; jobs it gave up.
    std::atomic<std::uint64_t> retries{0}, jobs_failed{0};
    // Stores the answers of rows of a job (inside the caller's transaction): the worker's, and those of the file
    // formats answered at once.
    void write_answers(std::string const& reception, std::vector<std::int64_t> const& row_nos, std::vector<std::string> const& answers);
    // Tests: called after a chunk's answers are made, before the worker waits for requests and commits.
    std::function<void()> on_chunk_ready;
    // Called once an upload's job is stored (committed), so that an idle worker starts on it at once; set before
    // requests are served (kyotaku serve's worker).
    std::function<void()> on_job_accepted;

private:
    void give_up(std::string const& reception, std::string const& why);
    int process_chunk(int max_rows);
    void wait_out(std::string const& reception, std::string const& facility, std::string const& why);
    std::string current_job_, current_facility_;  // the job process_chunk() works on (for the retry's log line)
    Context& x_;
    std::string worker_;  // this instance's lease owner id
    std::chrono::milliseconds pause_{0};
};

class Handoffs;  // usecases/handoff.hpp: 引き継ぎ of the consent page to the staff's device

// Everything, wired together. Throws std::runtime_error (naming what is missing) when the rules do not fulfil
// the rule contract.
class Service {
public:
    // exact_bundle: the signed bundle's bytes the rules were loaded from (see RuleContract::exact_bundle).
    Service(Database& db, std::shared_ptr<Program const> rules, Clock& clock, std::shared_ptr<std::string const> exact_bundle = nullptr);
    ~Service();
    Service(Service const&) = delete;
    Service& operator=(Service const&) = delete;

    Context context;
    AdminDesk admin{context};
    SettingsDesk settings{context};
    LedgerDesk ledger{context};
    ConsentDesk consent{context, settings};
    InquiryDesk inquiry{context};
    WithdrawalDesk withdrawal{context};
    BatchDesk batch{context};
    OqsDesk oqs{context, batch, inquiry};
    Handoffs& handoffs() { return *handoffs_; }

    // Replaces the rules in force (requests in flight finish on the old ones). Returns the contract error and keeps
    // the old rules when the new ones do not fulfil it.
    std::optional<std::string> replace_rules(std::shared_ptr<Program const> rules, std::shared_ptr<std::string const> exact_bundle = nullptr);

    bool facility_exists(std::string const& code);
    // An interactive request starts (the ticket goes to request_end): the batch worker lets it finish first.
    std::uint64_t request_begin() { return context.gate.enter(); }
    void request_end(std::uint64_t ticket) { context.gate.leave(ticket); }

private:
    std::unique_ptr<Handoffs> handoffs_;
};

// Binds a rule program to the contract, or throws std::runtime_error with the contract's message.
Rules bind_rules(std::shared_ptr<Program const> program, std::shared_ptr<std::string const> exact_bundle = nullptr);

}  // namespace kyotaku::server
