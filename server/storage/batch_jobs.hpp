// batch_jobs: the batch re-inquiry's tables — its jobs (batch_jobs), their rows (batch_rows: each row's request),
// the chunks the workers lease (batch_chunks) and the rows' answers (batch_results) — for the batch desk and the OQS
// file desk. Rows and answers go in and come out in their stored forms, as text: the batch desk (usecases/batch.cpp)
// writes and reads them with formats/batch_rows.hpp. Each method is one statement, or a few of one step, inside the
// caller's transaction when there is one; the lock order the desks keep is theirs (usecases/batch.cpp).
#pragma once

#include "storage/database.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace kyotaku::server {

// A job as its facility's status route shows it.
struct StoredJob {
    std::int64_t total = 0, done = 0;
    std::optional<std::string> finished_at, failed_at;
    std::string file_identifier, query_date, category;
};

// A job the worker takes a chunk of.
struct JobToServe {
    std::string reception, facility, category, query_date, requested_by;
    std::int64_t total = 0, next_row = 0;
};

// A finished job (finish_if_complete): how many rows, and why it gave up when it did.
struct FinishedJob {
    std::int64_t total = 0;
    bool failed = false;
    std::string failure;
};

class BatchJobs {
public:
    explicit BatchJobs(Database& db) : db_(db) {}

    // --- uploads
    struct NewJob {
        std::string reception, facility, category, query_date, file_identifier, format, created_at, requested_by;
    };
    // Inserts the job (total 0) unless its reception number is taken (then false): one step on both backends.
    bool add_job(NewJob const& job);
    // Inserts the rows' stored requests `next` gives (numbered from 1, as they come; one COPY on PostgreSQL); returns
    // how many.
    std::int64_t add_rows(std::string const& reception, std::function<bool(std::string& stored)> const& next);
    void set_total(std::string const& reception, std::int64_t total);
    // A job answered at once (the file formats that are not queued): its total and done, finished `at`.
    void finish_at_once(std::string const& reception, std::int64_t rows, std::string const& at);

    // --- the facility's routes
    std::optional<StoredJob> job(std::string const& reception, std::string const& facility);
    // Stored answers of rows after `after`, at most `limit`, in row order (the NDJSON pages); all of them when limit
    // is 0.
    std::vector<std::pair<std::int64_t, std::string>> answers(std::string const& reception, std::int64_t after = 0,
                                                              std::int64_t limit = 0);

    // --- keeping
    // Finished jobs not purged yet, oldest first (reception number, finished_at), at most `limit`.
    std::vector<std::pair<std::string, std::string>> finished_unpurged(int limit);
    // Deletes a job's rows, chunks and answers; the job stays (its number still answers), purged `at`.
    void purge(std::string const& reception, std::string const& at);

    // --- the worker
    // The unfinished job of the facility served least recently, then the oldest (claimed: PostgreSQL skips the jobs
    // other transactions hold); marks it served `at`.
    std::optional<JobToServe> serve_next(std::string const& at);
    // The first unanswered chunk of the job that no other worker holds a live lease on (free, expired at `now`, or
    // `worker`'s own) but the one starting at `but_first` (the worker's own being written at the moment; 0: none):
    // leased to `worker` until `until`; nullopt when none.
    std::optional<std::pair<std::int64_t, std::int64_t>> lease_open_chunk(std::string const& reception,
                                                                          std::string const& now,
                                                                          std::string const& worker,
                                                                          std::string const& until,
                                                                          std::int64_t but_first = 0);
    // A new chunk of rows first..last leased to `worker` until `until`; the job's next row moves past it.
    void add_chunk(std::string const& reception, std::int64_t first, std::int64_t last, std::string const& worker,
                   std::string const& until);
    // The chunk's rows that have no answer yet (their stored requests), in row order. A `fresh` chunk (add_chunk's,
    // just made) has none answered: its rows are read by their range alone. (Answers are written only with their
    // chunk marked answered, or when the job gives up, which ends it; a chunk leased again — after its lease expired,
    // or one migration 011 made — may hold answered rows.)
    std::vector<std::pair<std::int64_t, std::string>> unanswered_rows(std::string const& reception, std::int64_t first,
                                                                      std::int64_t last, bool fresh = false);
    // Marks the chunk starting at `first` answered `at` unless it already was (then false: another worker wrote it).
    bool mark_chunk_answered(std::string const& reception, std::int64_t first, std::string const& at);
    // Inserts stored answers of rows (one insert_rows; the texts are moved into it, not copied).
    void add_answers(std::string const& reception, std::vector<std::int64_t> const& row_nos,
                     std::vector<std::string> stored);
    // Counts `rows` more done; returns (done, total), nullopt when the job is gone.
    std::optional<std::pair<std::int64_t, std::int64_t>> count_done(std::string const& reception, std::int64_t rows);
    // Finishes the job `at` if all its rows are done and it is not finished yet (once, whichever worker gets there).
    std::optional<FinishedJob> finish_if_complete(std::string const& reception, std::string const& at);
    // Lets go of the leases `worker` holds on unanswered chunks (of one job, or of all when `reception` is empty);
    // returns how many.
    int release_leases(std::string const& worker, std::string const& reception = {});

    // --- giving up (a permanent error, three times)
    struct Failures {
        std::int64_t total = 0, failures = 0;
        std::string facility;
    };
    std::optional<Failures> failures(std::string const& reception);
    void count_failure(std::string const& reception);
    // The job gives up `at`: every chunk closed, every row without an answer answered `unanswered` (a stored answer),
    // done = total, failed with `why`.
    void give_up(std::string const& reception, std::string const& unanswered, std::string const& at,
                 std::string const& why);
    // Inside a write transaction: a wait for a row lock ends after the database's lock timeout (LockTimeout) instead
    // of for ever — the lock order of usecases/batch.cpp, so that a server hung inside a transaction holds up no other
    // worker for long.
    void bound_lock_waits();

private:
    Database& db_;
};

}  // namespace kyotaku::server
