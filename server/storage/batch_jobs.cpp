#include "storage/batch_jobs.hpp"

namespace kyotaku::server {

namespace {
std::optional<std::string> text_or_null(Value const& v) {
    return is_null(v) ? std::nullopt : std::optional<std::string>(as_text(v));
}
// A stored form read, moved out of its row.
std::string take_text(Value& v) {
    if (auto* text = std::get_if<std::string>(&v)) return std::move(*text);
    return as_text(v);
}
}  // namespace

bool BatchJobs::add_job(NewJob const& j) {
    return !db_.query("INSERT INTO batch_jobs (reception_number, facility_code, category, query_date, file_identifier, "
                      "format, total, done, created_at, "
                      "requested_by) VALUES ($1, $2, $3, $4, $5, $6, 0, 0, $7, $8) ON CONFLICT (reception_number) DO "
                      "NOTHING RETURNING reception_number",
                      {j.reception, j.facility, j.category, j.query_date, j.file_identifier, j.format, j.created_at,
                       j.requested_by})
                .empty();
}

std::int64_t BatchJobs::add_rows(std::string const& reception,
                                 std::function<bool(std::string& stored)> const& next) {
    std::int64_t total = 0;
    std::string stored;
    db_.insert_rows("batch_rows", {"reception_number", "row_no", "request_json"}, [&](Row& out) {
        if (!next(stored)) return false;
        out.resize(3);  // (each value moved into its place: a braced Row would copy the texts from its list)
        out[0] = reception;
        out[1] = ++total;
        out[2] = std::move(stored);
        return true;
    });
    return total;
}

void BatchJobs::set_total(std::string const& reception, std::int64_t total) {
    db_.query("UPDATE batch_jobs SET total = $2 WHERE reception_number = $1", {reception, total});
}

void BatchJobs::finish_at_once(std::string const& reception, std::int64_t rows, std::string const& at) {
    db_.query("UPDATE batch_jobs SET total = $2, done = $2, finished_at = $3 WHERE reception_number = $1",
              {reception, rows, at});
}

std::optional<StoredJob> BatchJobs::job(std::string const& reception, std::string const& facility) {
    auto r =
        db_.query("SELECT total, done, finished_at, file_identifier, query_date, category, failed_at FROM batch_jobs "
                  "WHERE reception_number = $1 AND facility_code = $2",
                  {reception, facility});
    if (r.empty()) return std::nullopt;
    return StoredJob{as_int(r[0][0]),  as_int(r[0][1]),  text_or_null(r[0][2]), text_or_null(r[0][6]),
                     as_text(r[0][3]), as_text(r[0][4]), as_text(r[0][5])};
}

std::vector<std::pair<std::int64_t, std::string>> BatchJobs::answers(std::string const& reception,
                                                                     std::int64_t after, std::int64_t limit) {
    std::vector<std::pair<std::int64_t, std::string>> out;
    auto rows = limit > 0 ? db_.query("SELECT row_no, result_json FROM batch_results WHERE reception_number = $1 AND "
                                      "row_no > $2 ORDER BY row_no LIMIT $3",
                                      {reception, after, limit})
                          : db_.query("SELECT row_no, result_json FROM batch_results WHERE reception_number = $1 AND "
                                      "row_no > $2 ORDER BY row_no",
                                      {reception, after});
    out.reserve(rows.size());
    for (auto& r : rows) out.emplace_back(as_int(r[0]), take_text(r[1]));
    return out;
}

std::vector<std::pair<std::string, std::string>> BatchJobs::finished_unpurged(int limit) {
    std::vector<std::pair<std::string, std::string>> out;
    for (auto const& r : db_.query(
             "SELECT reception_number, finished_at FROM batch_jobs WHERE finished_at IS NOT NULL AND purged_at IS NULL "
             "ORDER BY finished_at LIMIT $1",
             {std::int64_t(limit)}))
        out.emplace_back(as_text(r[0]), as_text(r[1]));
    return out;
}

void BatchJobs::purge(std::string const& reception, std::string const& at) {
    for (char const* table : {"batch_results", "batch_chunks", "batch_rows"})
        db_.query(std::string("DELETE FROM ") + table + " WHERE reception_number = $1", {reception});
    db_.query("UPDATE batch_jobs SET purged_at = $2 WHERE reception_number = $1", {reception, at});
}

std::optional<JobToServe> BatchJobs::serve_next(std::string const& at) {
    auto jobs = db_.query(std::string("SELECT j.reception_number, j.facility_code, j.category, j.query_date, j.total, "
                                      "j.next_row, j.requested_by FROM batch_jobs j "
                                      "WHERE j.finished_at IS NULL ORDER BY COALESCE((SELECT MAX(k.served_at) FROM "
                                      "batch_jobs k WHERE k.facility_code = "
                                      "j.facility_code), ''), j.created_at, j.reception_number LIMIT 1") +
                          db_.claim_suffix());
    if (jobs.empty()) return std::nullopt;
    JobToServe j{as_text(jobs[0][0]),
                 as_text(jobs[0][1]),
                 as_text(jobs[0][2]),
                 as_text(jobs[0][3]),
                 text_or_null(jobs[0][6]).value_or(""),
                 as_int(jobs[0][4]),
                 as_int(jobs[0][5])};
    db_.query("UPDATE batch_jobs SET served_at = $2 WHERE reception_number = $1", {j.reception, at});
    return j;
}

std::optional<std::pair<std::int64_t, std::int64_t>> BatchJobs::lease_open_chunk(std::string const& reception,
                                                                                 std::string const& now,
                                                                                 std::string const& worker,
                                                                                 std::string const& until,
                                                                                 std::int64_t but_first) {
    auto open = db_.query(
        std::string(
            "SELECT first_row, last_row FROM batch_chunks WHERE reception_number = $1 AND answered_at IS NULL AND "
            "(lease_until IS NULL OR lease_until < $2 OR lease_owner = $3) AND first_row <> $4 ORDER BY first_row "
            "LIMIT 1") +
            db_.claim_suffix(),
        {reception, now, worker, but_first});
    if (open.empty()) return std::nullopt;
    std::pair<std::int64_t, std::int64_t> const chunk{as_int(open[0][0]), as_int(open[0][1])};
    db_.query(
        "UPDATE batch_chunks SET lease_owner = $3, lease_until = $4 WHERE reception_number = $1 AND first_row = $2",
        {reception, chunk.first, worker, until});
    return chunk;
}

void BatchJobs::add_chunk(std::string const& reception, std::int64_t first, std::int64_t last,
                          std::string const& worker, std::string const& until) {
    db_.query("INSERT INTO batch_chunks (reception_number, first_row, last_row, lease_owner, lease_until) VALUES ($1, "
              "$2, $3, $4, $5)",
              {reception, first, last, worker, until});
    db_.query("UPDATE batch_jobs SET next_row = $2 WHERE reception_number = $1", {reception, last + 1});
}

std::vector<std::pair<std::int64_t, std::string>> BatchJobs::unanswered_rows(std::string const& reception,
                                                                             std::int64_t first, std::int64_t last,
                                                                             bool fresh) {
    // The answers looked up by the chunk's range too (not row by row against the whole table): PostgreSQL planned the
    // row-by-row form, on statistics older than the table, as a scan of every job's answers per chunk (75 ms to 7 s a
    // chunk once a few jobs were kept, against 0.2 ms).
    auto rows = fresh ? db_.query("SELECT row_no, request_json FROM batch_rows WHERE reception_number = $1 AND "
                                  "row_no >= $2 AND row_no <= $3 ORDER BY row_no",
                                  {reception, first, last})
                      : db_.query("SELECT r.row_no, r.request_json FROM batch_rows r WHERE r.reception_number = $1 AND "
                                  "r.row_no >= $2 AND r.row_no <= $3 AND r.row_no NOT IN (SELECT x.row_no FROM "
                                  "batch_results x WHERE x.reception_number = $1 AND x.row_no >= $2 AND "
                                  "x.row_no <= $3) ORDER BY r.row_no",
                                  {reception, first, last});
    std::vector<std::pair<std::int64_t, std::string>> out;
    out.reserve(rows.size());
    for (auto& r : rows) out.emplace_back(as_int(r[0]), take_text(r[1]));
    return out;
}

bool BatchJobs::mark_chunk_answered(std::string const& reception, std::int64_t first, std::string const& at) {
    return !db_.query("UPDATE batch_chunks SET answered_at = $3, lease_owner = NULL, lease_until = NULL WHERE "
                      "reception_number = $1 AND "
                      "first_row = $2 AND answered_at IS NULL RETURNING first_row",
                      {reception, first, at})
                .empty();
}

void BatchJobs::add_answers(std::string const& reception, std::vector<std::int64_t> const& row_nos,
                            std::vector<std::string> stored) {
    std::size_t at = 0;
    db_.insert_rows("batch_results", {"reception_number", "row_no", "result_json"}, [&](Row& row) {
        if (at == row_nos.size()) return false;
        row.resize(3);  // (as add_rows)
        row[0] = reception;
        row[1] = row_nos[at];
        row[2] = std::move(stored.at(at));
        ++at;
        return true;
    });
}

std::optional<std::pair<std::int64_t, std::int64_t>> BatchJobs::count_done(std::string const& reception,
                                                                           std::int64_t rows) {
    auto r = db_.query("UPDATE batch_jobs SET done = done + $2 WHERE reception_number = $1 RETURNING done, total",
                       {reception, rows});
    if (r.empty()) return std::nullopt;
    return std::pair{as_int(r[0][0]), as_int(r[0][1])};
}

std::optional<FinishedJob> BatchJobs::finish_if_complete(std::string const& reception, std::string const& at) {
    auto r = db_.query(
        "UPDATE batch_jobs SET finished_at = $2 WHERE reception_number = $1 AND finished_at IS NULL AND done >= total "
        "RETURNING total, failed_at, failure",
        {reception, at});
    if (r.empty()) return std::nullopt;
    bool const failed = !is_null(r[0][1]);
    return FinishedJob{as_int(r[0][0]), failed, failed ? text_or_null(r[0][2]).value_or("") : std::string()};
}

int BatchJobs::release_leases(std::string const& worker, std::string const& reception) {
    if (!reception.empty()) {
        return int(db_.query("UPDATE batch_chunks SET lease_owner = NULL, lease_until = NULL WHERE reception_number = "
                             "$1 AND lease_owner = $2 AND "
                             "answered_at IS NULL RETURNING first_row",
                             {reception, worker})
                       .size());
    }
    return int(db_.query("UPDATE batch_chunks SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1 AND "
                         "answered_at IS NULL RETURNING first_row",
                         {worker})
                   .size());
}

std::optional<BatchJobs::Failures> BatchJobs::failures(std::string const& reception) {
    auto job =
        db_.query("SELECT total, failures, facility_code FROM batch_jobs WHERE reception_number = $1", {reception});
    if (job.empty()) return std::nullopt;
    return Failures{as_int(job[0][0]), as_int(job[0][1]), as_text(job[0][2])};
}

void BatchJobs::count_failure(std::string const& reception) {
    db_.query("UPDATE batch_jobs SET failures = failures + 1 WHERE reception_number = $1", {reception});
}

void BatchJobs::give_up(std::string const& reception, std::string const& unanswered, std::string const& at,
                        std::string const& why) {
    db_.query("UPDATE batch_chunks SET answered_at = $2, lease_owner = NULL, lease_until = NULL WHERE reception_number "
              "= $1 AND answered_at IS NULL",
              {reception, at});
    std::int64_t const answered =
        as_int(db_.query("SELECT COUNT(*) FROM batch_results WHERE reception_number = $1", {reception}).at(0).at(0));
    std::int64_t const total =
        as_int(db_.query("SELECT total FROM batch_jobs WHERE reception_number = $1", {reception}).at(0).at(0));
    db_.query("INSERT INTO batch_results (reception_number, row_no, result_json) SELECT r.reception_number, r.row_no, "
              "$2 FROM batch_rows r "
              "WHERE r.reception_number = $1 AND NOT EXISTS (SELECT 1 FROM batch_results x WHERE x.reception_number = "
              "r.reception_number "
              "AND x.row_no = r.row_no)",
              {reception, unanswered});
    db_.query("UPDATE batch_jobs SET failures = failures + 1, done = done + $2, next_row = total + 1, failed_at = $3, "
              "failure = $4 "
              "WHERE reception_number = $1",
              {reception, total - answered, at, why});
}

void BatchJobs::bound_lock_waits() {
    if (char const* limit = db_.lock_timeout()) db_.query(limit);
}

}  // namespace kyotaku::server
