// 資格確認一括照会 (batch re-inquiry): an upload becomes a job with a row per patient, answered in the background
// in chunks, each row by the same eligibility answer as an individual request (decided on the day it is answered).
#include "usecases/batch.hpp"

#include "formats/batch_rows.hpp"
#include "storage/batch_jobs.hpp"
#include "usecases/desk_util.hpp"

#include <algorithm>
#include <chrono>
#include <exception>
#include <stdexcept>

namespace kyotaku::server {

BatchAccepted BatchDesk::upload(Caller const& c, BatchUpload const& up) {
    require_facility(c);
    auto rules = x_.rules();
    if (rules->value_index_of_slot(rules->slot.category, up.category) < 0)
        throw invalid("category", "診療区分は 訪問診療等 か オンライン診療等 です",
                      "category is 訪問診療等 or オンライン診療等");
    std::string query_date = x_.today().iso();
    if (!up.query_date.empty()) {
        auto d = parse_date(up.query_date);
        if (!d.date) throw invalid("query_date", "資格確認日が日付ではありません", "query_date is not a date");
        // how far ahead it may lie is the rules', decided per row (DecisionPath::eligibility)
        query_date = d.date->iso();
    }
    if (!valid_utf8(up.file_identifier))
        throw invalid("file_identifier", "file_identifier が UTF-8 ではありません", "file_identifier is not UTF-8");
    check_line(up.file_identifier, "file_identifier", 100);
    BatchJobs jobs(x_.db);
    BatchAccepted accepted = transaction(x_.db, [&] {
        // The reception number is the second in Japan and 6 random digits (the real system's form): two jobs accepted
        // in one second may draw the same digits, so a number already taken is drawn again (the insert takes it or not
        // in one step, on both backends, whichever server inserts first).
        std::string reception;
        for (int tries = 0; reception.empty(); ++tries) {
            if (tries == 50) throw std::runtime_error("no free reception number in this second");
            std::string const candidate =
                x_.clock.stamp_jst() +
                std::to_string(std::stoull(new_id().substr(0, 12), nullptr, 16) % 1000000 + 1000000).substr(1);
            if (jobs.add_job({candidate, c.facility_code, up.category, query_date, up.file_identifier, up.format,
                              x_.now(), c.subject}))
                reception = candidate;
        }
        // The rows go in as they are read (one COPY on PostgreSQL, taking them in while more are read).
        std::int64_t read = 0;
        BatchRow row;
        std::int64_t const total = jobs.add_rows(reception, [&](std::string& stored) {
            if (!up.next(row)) return false;
            if (++read > 200000) throw Error(Error::Kind::too_large, "", "20万行までです", "at most 200,000 rows");
            stored = stored_request(row);
            return true;
        });
        if (total == 0 && !up.allow_empty) throw invalid("", "行がありません", "the file has no rows");
        jobs.set_total(reception, total);
        return BatchAccepted{reception, total};
    });
    x_.events.batch_event({"accepted", accepted.reception_number, c.facility_code, accepted.total});
    if (on_job_accepted) on_job_accepted();
    return accepted;
}

namespace {
// A finished job's results are kept until the end of the day after it finished (JST), then purged: an answer
// given on a day the rules allowed it is not handed out again weeks later, after a withdrawal or the end of the
// relationship.
constexpr int result_days = 1;

std::string jst_day(std::string const& utc_timestamp) {
    // The timestamps are UTC ISO 8601; the day they fall on in Japan.
    auto day = parse_iso_date_fast(utc_timestamp.substr(0, 10));
    if (!day) return {};
    int const hour = std::stoi(utc_timestamp.substr(11, 2));
    return Date::from_days(day->days() + (hour >= 15 ? 1 : 0)).iso();
}
}  // namespace

std::string BatchDesk::expires_on(std::string const& finished_at) {
    auto day = parse_iso_date_fast(jst_day(finished_at));
    return day ? Date::from_days(day->days() + result_days).iso() : std::string();
}

BatchStatus BatchDesk::status(Caller const& c, std::string const& reception) {
    require_facility(c);
    auto job = BatchJobs(x_.db).job(reception, c.facility_code);
    if (!job) throw not_found("reception_number", "受付番号が見つかりません", "unknown reception number");
    BatchStatus out;
    out.reception_number = reception;
    out.total = job->total;
    out.done = job->done;
    out.finished = job->finished_at.has_value();
    out.state = job->failed_at ? BatchStatus::State::failed
                : out.finished ? BatchStatus::State::finished
                               : BatchStatus::State::running;
    out.file_identifier = job->file_identifier;
    out.query_date = job->query_date;
    out.category = job->category;
    // A job that gave up (a permanent error, three times): its answered rows stand, the others say they could not
    // be answered.
    if (job->failed_at)
        out.error = Message{
            "サーバの障害で一部の行に答えられませんでした (その行に書いてあります)。その行だけもう一度照会してください",
            "the server could not answer some rows (they say so): query those rows again"};
    if (out.finished) {
        out.results_until = expires_on(*job->finished_at);
        if (*out.results_until < x_.today().iso()) out.state = BatchStatus::State::expired;
    }
    return out;
}

void BatchDesk::require_results(BatchStatus const& status) {
    if (!status.finished) throw conflict("reception_number", "まだ処理中です", "the job is still running");
    if (status.state == BatchStatus::State::expired)
        throw Error(Error::Kind::gone, "reception_number",
                    "結果の保存期間 (" + status.results_until.value_or("") +
                        " まで) が過ぎました。もう一度照会してください",
                    "the results were kept until " + status.results_until.value_or("") + ": query again");
}

namespace {
// Stored answers read back.
BatchDesk::ResultPage answers_of(std::vector<std::pair<std::int64_t, std::string>> const& stored) {
    BatchDesk::ResultPage page;
    page.reserve(stored.size());
    for (auto const& [row_no, answer] : stored) page.emplace_back(row_no, stored_answer_of(answer));
    return page;
}

// The stored forms of answers.
std::vector<std::string> stored_answers(std::vector<BatchRowAnswer> const& answers) {
    std::vector<std::string> stored;
    stored.reserve(answers.size());
    for (auto const& answer : answers) stored.push_back(stored_answer(answer));
    return stored;
}
}  // namespace

int BatchDesk::purge() {
    // Jobs finished before yesterday (JST) lose their rows; the job itself stays, so its number still answers.
    std::string const cutoff = Date::from_days(x_.today().days() - result_days).iso();
    BatchJobs jobs(x_.db);
    int purged = 0;
    for (auto const& job : jobs.finished_unpurged(100)) {
        if (jst_day(job.second) >= cutoff) break;
        transaction(x_.db, [&] { jobs.purge(job.first, x_.now()); });
        ++purged;
    }
    return purged;
}

std::function<BatchDesk::ResultPage()> BatchDesk::result_pages(Caller const& c, std::string const& reception,
                                                               int page_rows) {
    require_results(status(c, reception));
    auto after = std::make_shared<std::int64_t>(-1);
    return [this, reception, page_rows, after]() {
        ResultPage page = answers_of(BatchJobs(x_.db).answers(reception, *after, page_rows));
        if (!page.empty()) *after = page.back().first;
        return page;
    };
}

BatchDesk::ResultPage BatchDesk::results(std::string const& reception) {
    return answers_of(BatchJobs(x_.db).answers(reception, -1));
}

void BatchDesk::finish_at_once(std::string const& reception, std::int64_t rows) {
    BatchJobs(x_.db).finish_at_once(reception, rows, x_.now());
}

namespace {
// A row of a job as the worker reads it back, checked once per chunk: the card it names, or why it names none (its
// own answer), and what its answer repeats.
struct RowRequest {
    std::int64_t row_no = 0;
    bool malformed = false;                                   // not a row of 6 columns (the upload kept its text)
    // a field the upload refused as it read it: its error and field
    std::optional<std::pair<std::string, std::string>> refused;
    std::optional<Card> card;                                 // the patient the row names
    std::optional<Error> error;                               // a row whose fields name no one validly
    std::string arbitrary_identifier;
    std::optional<Echo> echo;
};

RowRequest read_row(std::int64_t row_no, BatchRow const& stored) {
    RowRequest row;
    row.row_no = row_no;
    if (auto const* unread = std::get_if<RowUnread>(&stored)) {
        if (unread->field) row.refused.emplace(unread->text, *unread->field);
        else row.malformed = true;
        return row;
    }
    auto const* query = std::get_if<RowQuery>(&stored);
    if (!query) {  // a row of a file answered at once: never queued for the worker
        row.malformed = true;
        return row;
    }
    row.arbitrary_identifier = query->arbitrary_identifier;
    row.echo = query->echo;
    try {
        row.card = card_from(query->card);
    } catch (Error const& e) {
        row.error = e;
    }
    return row;
}

// An answer for a row: the same as an individual request's, plus the row's own fields. The row's 資格確認履歴 entry
// goes to `log.into`, to be written with the answer.
BatchRowAnswer answer_row(Context& x, DecisionPath& decisions, Records& records, FacilityInfo const* facility,
                          std::string const& category, std::string const& query_date, RowRequest const& row,
                          Logging const& log) {
    BatchRowAnswer result;
    if (row.refused) {  // a field refused as it was read
        result.error = row.refused->first;
        result.field = row.refused->second;
        return result;
    }
    if (row.malformed || !facility) {
        result.error = Message{"6列 (arbitrary_identifier,insurer_number,symbol,number,branch,birthdate) が必要です",
                               "expected 6 columns"}
                           .text();
        return result;
    }
    try {
        if (row.error) throw *row.error;
        Lookup who{row.card, {}, {}};
        result.answer =
            InquiryDesk::answer_eligibility(x, decisions, records, *facility, who, category, query_date, &log);
    } catch (Error const& e) {
        result.error = e.what();
        result.field = e.field;
    }
    result.arbitrary_identifier = row.arbitrary_identifier;
    result.echo = row.echo;
    return result;
}

// Finishes a job whose rows are all answered (once, whichever worker gets there) and logs it (the server's log; each
// row's 資格確認履歴 entry was written with its answer): finished, or failed when it gave up (failed_at, with the
// cause).
void finish_if_complete(Context& x, std::string const& reception, std::string const& facility) {
    if (auto finished = BatchJobs(x.db).finish_if_complete(reception, x.now()))
        x.events.batch_event(
            {finished->failed ? "failed" : "finished", reception, facility, finished->total, finished->failure});
}

// Lock order, so that batch writers never wait for each other in a cycle: a claim locks its job's row first
// (skipping a job another server's transaction holds) and takes chunk rows only without waiting (SKIP LOCKED); a
// write or a give-up locks chunk rows first, then the job's row, and waits at most the lock timeout for either
// (BatchJobs::bound_lock_waits), so a server that hangs inside a transaction holds up no other worker for long (its
// session is ended after a minute idle, its lease expires after 15 s).

// The leased range of rows a worker answers; `fresh`: made by this lease, so none of its rows is answered yet.
struct Chunk {
    std::int64_t first = 0, last = 0;
    bool fresh = false;
};
}  // namespace

void BatchDesk::write_answers(std::string const& reception, std::vector<std::int64_t> const& row_nos,
                              std::vector<BatchRowAnswer> const& answers) {
    BatchJobs(x_.db).add_answers(reception, row_nos, stored_answers(answers));
}

int BatchDesk::process(int max_rows) {
    // Lease a chunk (a short write transaction) of the job of the facility served least recently (its newest
    // served_at), then the oldest, so that jobs of different facilities take turns: a chunk whose lease is free or
    // expired (its server died), else the next `max_rows` rows no chunk holds yet.
    if (!give_way()) return 0;  // (told to stop while it gave way: no chunk is taken)
    auto const began = x_.gate.clock().now();
    std::uint64_t const since = x_.gate.entered();
    chunk_since_ = since;
    last_chunk_.reset();
    try {
        int const answered = process_chunk(max_rows);
        pause_ = std::chrono::milliseconds(0);
        if (answered > 0) last_chunk_ = Paced{began, x_.gate.clock().now(), since};
        return answered;
    } catch (TransientDatabaseError const& e) {
        // The database is away for a moment (a lost connection, a failover, a lost race): not the rows' fault nor the
        // job's. Nothing was written; a chunk this worker leased stays its own (or another's once the lease expires)
        // and is answered again, after a pause that grows while the fault lasts.
        wait_out(current_job_, current_facility_, e.what());
        return 0;
    }
}

bool BatchDesk::give_way() {
    if (!last_chunk_ || batch_share >= 100 || stopping) return true;
    auto const took = last_chunk_->ended - last_chunk_->began;
    auto const longest = std::min<std::chrono::steady_clock::duration>(
        max_give_way, took * (100 - std::max(batch_share, 1)) / std::max(batch_share, 1));
    auto const from = x_.gate.clock().now();
    if (x_.gate.give_way(last_chunk_->since, last_chunk_->ended + longest, stopping)) {
        ++gave_way;
        gave_way_us += std::uint64_t(
            std::chrono::duration_cast<std::chrono::microseconds>(x_.gate.clock().now() - from).count());
        return !stopping;
    }
    return true;
}

void BatchDesk::stop() {
    stopping = true;
    x_.gate.wake();
}

void BatchDesk::wait_out(std::string const& reception, std::string const& facility, std::string const& why) {
    pause_ = std::clamp(pause_ * 2, std::chrono::milliseconds(100), std::chrono::milliseconds(5000));
    ++retries;
    x_.events.batch_event({"retry", reception, facility, 0, why, pause_.count()});
}

// A chunk leased and answered, not written yet: its job, its rows' stored answers and 資格確認履歴 entries, or why it
// could not be answered (a fault, thrown again where it is written). No chunk: the job has none left to lease.
struct BatchDesk::Decided {
    JobToServe job;
    std::optional<Chunk> chunk;
    std::vector<std::int64_t> row_nos;
    std::vector<std::string> stored;    // the answers' stored forms, made outside the write transaction
    std::vector<InquiryEntry> history;  // one 資格確認履歴 entry per row answered, written with the answers
    std::exception_ptr failed;
};

BatchDesk::BatchDesk(Context& x) : x_(x), worker_(new_id()) {}

BatchDesk::~BatchDesk() { forget_ahead(); }

void BatchDesk::forget_ahead() {
    if (!ahead_.valid()) return;
    try {
        ahead_.get();
    } catch (std::exception const&) {  // (its lease, if it took one, is let go or expires: the chunk is answered again)
    }
}

std::unique_ptr<BatchDesk::Decided> BatchDesk::lease(int max_rows, std::string const& writing_job,
                                                     std::int64_t writing_first) {
    BatchJobs jobs(x_.db);
    std::optional<JobToServe> job;
    // (unsynced: a lease is told to no one; lost with a crash of the machine, it is taken again)
    std::optional<Chunk> chunk = unsynced_transaction(x_.db, [&]() -> std::optional<Chunk> {
        std::string const now = x_.now(), until = x_.clock.timestamp_after(std::chrono::seconds(15));
        job = jobs.serve_next(now);
        if (!job) return std::nullopt;
        // (not the chunk this worker is about to write, still unanswered and its own)
        if (auto open = jobs.lease_open_chunk(job->reception, now, worker_, until,
                                              job->reception == writing_job ? writing_first : 0))
            return Chunk{open->first, open->second};
        if (job->next_row > job->total) return std::nullopt;
        Chunk c{job->next_row, std::min(job->total, job->next_row + std::max(max_rows, 1) - 1), true};
        jobs.add_chunk(job->reception, c.first, c.last, worker_, until);
        return c;
    });
    if (!job) return nullptr;  // no unfinished job, or every one is another server's for the moment
    auto out = std::make_unique<Decided>();
    out->job = std::move(*job);
    out->chunk = chunk;
    return out;
}

void BatchDesk::answer(Decided& d) {
    std::string const& reception = d.job.reception;
    Chunk const& chunk = *d.chunk;
    try {
        // Answer the chunk outside any transaction (readers never wait for a writer), with its persons loaded at once.
        // (A fresh chunk's rows are read by their range alone; should another worker answer it meanwhile — its lease
        // expired — the write finds it answered and drops these answers.)
        BatchJobs jobs(x_.db);
        auto rows = jobs.unanswered_rows(reception, chunk.first, chunk.last, chunk.fresh);
        std::vector<RowRequest> requests;
        std::vector<Card> cards;
        requests.reserve(rows.size());
        for (auto const& [row_no, stored] : rows) {
            requests.push_back(read_row(row_no, stored_request_of(stored)));
            if (requests.back().card) cards.push_back(*requests.back().card);
        }
        rows.clear();
        ChunkRecords records(x_.db, d.job.facility, cards);
        auto facility = records.facility(d.job.facility);
        DecisionPath decisions(x_.rules(), records, x_.today());
        d.row_nos.reserve(requests.size());
        d.stored.reserve(requests.size());
        for (auto const& request : requests) {
            d.row_nos.push_back(request.row_no);
            Logging const log{.kind = "一括再照会",
                              .actor = d.job.requested_by,
                              .reception = reception,
                              .row = request.row_no,
                              .into = &d.history};
            d.stored.push_back(stored_answer(answer_row(x_, decisions, records, facility ? &*facility : nullptr,
                                                        d.job.category, d.job.query_date, request, log)));
        }
    } catch (std::exception const&) {
        d.failed = std::current_exception();
    }
}

int BatchDesk::process_chunk(int max_rows) {
    current_job_.clear();
    current_facility_.clear();
    // A chunk leased and answered ahead (overlap) is taken as it is; else one is leased and answered now.
    std::unique_ptr<Decided> next;
    if (ahead_.valid()) next = ahead_.get();
    else if ((next = lease(max_rows, {}, 0)) && next->chunk) answer(*next);
    if (!next) return 0;
    current_job_ = next->job.reception;
    current_facility_ = next->job.facility;
    if (!next->chunk) {
        transaction(x_.db, [&] { finish_if_complete(x_, current_job_, current_facility_); });  // (synced: see write)
        return 0;
    }
    if (overlap && !stopping) {
        bool const alone = x_.gate.alone_since(chunk_since_);
        if (!overlap_only_alone || alone)
            lease_ahead(alone ? std::max(max_rows, alone_rows) : max_rows, next->chunk->first);
    }
    return write(*next);
}

void BatchDesk::lease_ahead(int max_rows, std::int64_t writing_first) {
    // The next chunk is leased here, before the write, in a short transaction of this thread's own (a lease beside
    // the write would skip the job whose row the write holds locked, and find nothing); only its answers are made on
    // a thread of their own, while this chunk is written. Should the lease fail, this chunk is written all the same
    // (a fault that lasts shows again at the next lease).
    std::unique_ptr<Decided> ahead;
    try {
        ahead = lease(max_rows, current_job_, writing_first);
    } catch (std::exception const&) {
        return;
    }
    if (!ahead || !ahead->chunk) return;  // (no chunk left to lease: the next process() looks again)
    ahead_ = std::async(std::launch::async, [this, d = std::move(ahead)]() mutable {
        answer(*d);
        return std::move(d);
    });
}

int BatchDesk::write(Decided& d) {
    std::string const reception = d.job.reception, facility_code = d.job.facility;
    Chunk const chunk = *d.chunk;
    try {
        if (d.failed) std::rethrow_exception(d.failed);
        if (on_chunk_ready) on_chunk_ready();
        // Interactive requests in flight finish first; then one short write, unless another worker answered the chunk.
        x_.gate.drain();
        BatchJobs jobs(x_.db);
        try {
            // Unsynced (Database::in_transaction_unsynced): a chunk's answers are told to no one until the job is
            // finished, below, by a synced commit that makes every chunk before it durable; a chunk lost with a crash
            // of the machine is lost whole (its lease and answers) and answered again.
            bool complete = false;
            int const written = unsynced_transaction(x_.db, [&] {
                jobs.bound_lock_waits();
                // Whoever writes a chunk first answers it, even after its lease expired (a chunk slower than its lease
                // is not taken back and forth for ever); a later write of it finds it answered and is dropped.
                if (!jobs.mark_chunk_answered(reception, chunk.first, x_.now())) return 0;
                // (their texts moved: a chunk is written once; should this transaction fail, it is answered again)
                jobs.add_answers(reception, d.row_nos, std::move(d.stored));
                log_inquiries(x_, std::move(d.history));
                auto const counted = jobs.count_done(reception, std::int64_t(d.row_nos.size()));
                complete = counted && counted->first >= counted->second;
                return int(d.row_nos.size());
            });
            if (complete) {
                try {
                    transaction(x_.db, [&] {
                        jobs.bound_lock_waits();
                        finish_if_complete(x_, reception, facility_code);
                    });
                } catch (TransientDatabaseError const&) {
                    // Finished by this worker's next look at the job (a job whose rows are all answered: no chunk
                    // in process_chunk).
                }
            }
            return written;
        } catch (LockTimeout const& e) {
            // Another server holds the chunk or the job and does not let go (hung?): not this chunk's fault. Its
            // answers are dropped; the chunk is answered again once its lease expires.
            x_.events.batch_problem({BatchProblem::Level::warning, "batch_chunk_dropped", reception, e.what(), {}});
            return 0;
        }
    } catch (TransientDatabaseError const&) {
        throw;  // waited out by process()
    } catch (std::exception const& e) {
        // The chunk could not be answered, and not because the database was away (not a bad row either: those have
        // their own error). The lease is let go; after three such failures the job gives up: its remaining rows
        // get an error, it is 異常終了 (failed), so it blocks no one.
        x_.events.batch_problem({BatchProblem::Level::error, "batch_chunk_failed", reception, e.what(), {}});
        give_up(reception, e.what());
        return 0;
    }
}

int BatchDesk::release_leases() {
    forget_ahead();  // (a chunk answered ahead and not written: its lease is let go with the others)
    return transaction(x_.db, [&] { return BatchJobs(x_.db).release_leases(worker_); });
}

void BatchDesk::give_up(std::string const& reception, std::string const& why) {
    try {
        transaction(x_.db, [&] {
            BatchJobs jobs(x_.db);
            jobs.bound_lock_waits();
            auto job = jobs.failures(reception);
            if (!job) return;
            bool const last = job->failures + 1 >= 3;
            // Chunk rows first (this worker's leases let go; all open chunks closed when the job gives up, so a worker
            // still answering one writes nothing), then the job's row: the order every batch writer keeps.
            jobs.release_leases(worker_, reception);
            if (!last) {
                jobs.count_failure(reception);
                return;
            }
            // Every row without an answer gets the error, whichever chunk holds it or none.
            BatchRowAnswer unanswered;
            unanswered.error = Message{"この行は処理できませんでした (サーバ内部のエラー)",
                                       "the row could not be answered (internal error)"}
                                   .text();
            jobs.give_up(reception, stored_answer(unanswered), x_.now(), utf8_prefix(why, 500));
            ++jobs_failed;
            finish_if_complete(x_, reception, job->facility);
        });
    } catch (std::exception const& e) {
        x_.events.batch_problem({BatchProblem::Level::error, "batch_failure_unrecorded", reception, e.what(), why});
    }
}

}  // namespace kyotaku::server
