// 資格確認一括照会 (batch re-inquiry): upload → reception number → poll → download, and the worker that answers the
// rows. Requests and answers are domain types (the rows: decision/batch_row.hpp); the codecs at the edge read and
// write them (CSV: formats/batch_csv.hpp; JSON and NDJSON: http/api_json.hpp; the OQS XML files: oqs_files.hpp and
// formats/oqs_xml.hpp). The tables are the store's (storage/batch_jobs.hpp).
#pragma once

#include "decision/batch_row.hpp"
#include "usecases/context.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace kyotaku::server {

// An upload: its rows pulled one at a time (`next` fills its argument and returns false at the end: nothing is held
// whole), the 診療区分, the 資格確認日 as sent (empty: today), the caller's file identifier and the format the rows
// came in (csv, xml; the files answered at once: hvq, onq, imm).
struct BatchUpload {
    std::string category, query_date, file_identifier, format;
    std::function<bool(BatchRow&)> next;
    bool allow_empty = false;  // a job of no rows is accepted (a consented-patient download that found none)
};

struct BatchAccepted {
    std::string reception_number;
    std::int64_t total = 0;  // rows; the job is 処理中
};

// A job as its facility sees it.
struct BatchStatus {
    enum class State { running, finished, failed, expired };  // 処理中, 正常終了, 異常終了, 保存期間終了
    std::string reception_number;
    std::int64_t total = 0, done = 0;
    State state = State::running;
    bool finished = false;  // every row answered (SegmentOfResult 1; 2 while it runs)
    std::string file_identifier, query_date, category;
    std::optional<Message> error;               // a job that gave up: what its facility should do
    std::optional<std::string> results_until;   // a finished job: the last day its results are kept (JST)
};

class BatchDesk {
public:
    explicit BatchDesk(Context& x);
    ~BatchDesk();  // (waits for a chunk being answered ahead: see overlap)
    BatchDesk(BatchDesk const&) = delete;
    BatchDesk& operator=(BatchDesk const&) = delete;
    // Stores the job and its rows in one transaction (inside the caller's, when there is one).
    BatchAccepted upload(Caller const& c, BatchUpload const& up);
    BatchStatus status(Caller const& c, std::string const& reception_number);
    // A finished job's results can be downloaded until the end of the day after it finished (JST): a conflict while
    // it runs, gone once they are purged.
    static void require_results(BatchStatus const& status);
    static std::string expires_on(std::string const& finished_at);
    // Deletes the rows of jobs whose results are past keeping (the worker calls it when idle); how many jobs.
    int purge();
    // The answered rows (row number, answer) in pages of up to `page_rows` per call (empty when done); checks the
    // caller and the job first.
    using ResultPage = std::vector<std::pair<std::int64_t, BatchRowAnswer>>;
    std::function<ResultPage()> result_pages(Caller const& c, std::string const& reception_number,
                                             int page_rows = 2000);
    // Every answered row of a finished job, in row order (the OQS result file), after status() and require_results.
    ResultPage results(std::string const& reception_number);
    // One chunk of the worker: leases a chunk of the job whose facility was served least recently (one whose lease
    // expired, else the next `max_rows` rows), answers it outside any transaction, waits for the interactive
    // requests in flight, then writes the answers in one short transaction where its lease still stands. A crash
    // loses no row and answers none twice (the lease expires; the write is conditional). Returns how many rows it
    // answered.
    // A transient database fault (a lost connection, a failover, a lost race) answers nothing and fails nothing:
    // the chunk stays this worker's and is tried again after pause(), which doubles while the fault lasts (0.1 s
    // up to 5 s); only a permanent error counts against the job, which gives up after three (failed, 異常終了).
    int process(int max_rows = 500);
    // kyotaku serve's worker: before process() writes a chunk's answers, the next chunk is leased (a short
    // transaction of the worker's thread), then answered on a thread of its own while the chunk is written (its
    // decisions beside the write transaction: the server's CPU beside the database's, or the second core), to be
    // written by the next process(). Each process() still writes one chunk; the guarantees are the same (a chunk
    // answered ahead and never written is answered again once its lease is let go or expires). Set before the first
    // process(), from the thread that calls it.
    bool overlap = false;
    // With overlap: the next chunk is answered ahead only while the batch runs alone, that is when no interactive
    // request is in flight as the chunk is about to be written and at most one started since it was begun (the gate's
    // "a lone request", usecases/request_gate.hpp); under interactive load each chunk is answered, then written, on
    // the worker's thread alone. kyotaku serve's worker on SQLite, where the ahead thread's decisions would take the
    // cores from the requests (on PostgreSQL they run beside the database's own work).
    bool overlap_only_alone = false;
    // With overlap: a chunk leased ahead while the batch runs alone (as overlap_only_alone says it) holds up to this
    // many rows when more than process()'s max_rows (0: never): fewer statements, leases and commits per row
    // (kyotaku serve's worker, 2,000: on PostgreSQL each statement is a round trip and a plan; on SQLite each chunk is
    // a lease, a write transaction and a thread). Under interactive load the chunks keep max_rows, so that the worker
    // gives way as often as before.
    int alone_rows = 0;
    // Set (from any thread) when the worker stops taking chunks: no chunk is leased ahead from then on.
    std::atomic<bool> stopping{false};
    // Sets `stopping` and ends a wait of give_way (kyotaku serve's worker, stopping).
    void stop();
    // Interactive first (usecases/request_gate.hpp): before each chunk, when interactive requests came while the last
    // one was answered, process() gives way to them for as long as they keep coming, up to (100 - batch_share) /
    // batch_share times the time the last chunk took and never longer than max_give_way: under interactive load the
    // batch keeps at least batch_share percent of the worker's time (and always progresses); with no interactive
    // request it never waits. 100: never gives way. kyotaku serve's `batch_share` setting. A worker told to stop
    // (stop()) while it gives way takes no chunk: process() returns 0 at once.
    int batch_share = 25;
    std::chrono::milliseconds max_give_way{50};
    // How many times, and for how long in all, process() gave way (for /metrics).
    std::atomic<std::uint64_t> gave_way{0}, gave_way_us{0};
    // Lets go of the chunk leases this worker holds and has not answered (a stopping server's: another server takes
    // the chunks at once instead of after the lease expires). Returns how many.
    int release_leases();
    // How long the worker should wait before its next process() (zero unless a transient fault is being waited out).
    std::chrono::milliseconds pause() const { return pause_; }
    // This worker's counts, for /metrics: chunks tried again after a transient fault; jobs it gave up.
    std::atomic<std::uint64_t> retries{0}, jobs_failed{0};
    // Stores the answers of rows of a job (inside the caller's transaction): the worker's, and those of the file
    // formats answered at once.
    void write_answers(std::string const& reception, std::vector<std::int64_t> const& row_nos,
                       std::vector<BatchRowAnswer> const& answers);
    // Finishes a job answered at once (the file formats that are not queued) with `rows` rows, inside the caller's
    // transaction.
    void finish_at_once(std::string const& reception, std::int64_t rows);
    // Tests: called after a chunk's answers are made, before the worker waits for requests and commits.
    std::function<void()> on_chunk_ready;
    // Called once an upload's job is stored (committed), so that an idle worker starts on it at once; set before
    // requests are served (kyotaku serve's worker).
    std::function<void()> on_job_accepted;

private:
    struct Decided;  // a chunk leased and answered, not written yet
    void give_up(std::string const& reception, std::string const& why);
    int process_chunk(int max_rows);
    std::unique_ptr<Decided> lease(int max_rows, std::string const& writing_job, std::int64_t writing_first);
    void answer(Decided& chunk);
    void lease_ahead(int max_rows, std::int64_t writing_first);
    int write(Decided& chunk);
    void forget_ahead();
    void wait_out(std::string const& reception, std::string const& facility, std::string const& why);
    std::string current_job_, current_facility_;  // the job process_chunk() works on (for the retry's log line)
    Context& x_;
    std::string worker_;  // this instance's lease owner id
    std::chrono::milliseconds pause_{0};
    bool give_way();  // false: told to stop while it gave way
    // The last chunk answered: when it began and ended (the gate's clock), and the requests entered when it began.
    struct Paced {
        std::chrono::steady_clock::time_point began, ended;
        std::uint64_t since = 0;
    };
    std::optional<Paced> last_chunk_;
    std::uint64_t chunk_since_ = 0;  // the gate's entered() when the chunk under way was begun (overlap_only_alone)
    std::future<std::unique_ptr<Decided>> ahead_;  // the next chunk, answered while this one is written (overlap)
};

}  // namespace kyotaku::server
