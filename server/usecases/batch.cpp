// 資格確認一括照会 (batch re-inquiry): an upload becomes a job with a row per patient, answered in the background
// in chunks, each row by the same eligibility answer as an individual request (decided on the day it is answered).
#include "formats/eligibility_json.hpp"
#include "usecases/desk_util.hpp"

#include <algorithm>
#include <chrono>
#include <stdexcept>

namespace kyotaku::server {

json BatchDesk::upload_csv(Caller const& c, std::string const& category, std::string const& query_date, std::string const& file_identifier,
                           std::istream& csv) {
    require_facility(c);
    bool first = true;
    int line_no = 0;
    // A line is read up to a bound (its fields are a few dozen characters), never whole whatever its length.
    constexpr std::streamsize longest_line = 1024;
    std::string buffer(std::size_t(longest_line) + 2, '\0');
    return upload(c, category, query_date, file_identifier, "csv", [&](json& row) {
        for (;;) {
            csv.getline(buffer.data(), longest_line + 2);
            if (csv.gcount() == 0 && !csv) return false;
            ++line_no;
            std::string line(buffer.data(), std::size_t(csv.gcount()) - (csv.eof() ? 0 : 1));
            if ((csv.fail() && !csv.eof()) || line.size() > std::size_t(longest_line))
                throw invalid("line " + std::to_string(line_no),
                              std::to_string(line_no) + " 行目が長すぎます (" + std::to_string(longest_line) + " バイトまで。ファイル全体を受け付けません)",
                              "line " + std::to_string(line_no) + " is longer than " + std::to_string(longest_line) + " bytes (the file is refused)");
            if (!line.empty() && line.back() == '\r') line.pop_back();
            if (!valid_utf8(line))
                throw invalid("line " + std::to_string(line_no), std::to_string(line_no) + " 行目が UTF-8 ではありません (ファイル全体を受け付けません)",
                              "line " + std::to_string(line_no) + " is not valid UTF-8 (the file is refused)");
            bool header = first && line.rfind("arbitrary_identifier", 0) == 0;
            first = false;
            if (line.empty() || header) continue;
            // Every line becomes a row, even a malformed one: it gets its own error result.
            auto f = split_csv_line(line);
            row = f.size() == 6 ? json{{"arbitrary_identifier", f[0]}, {"insurer_number", f[1]}, {"symbol", f[2]},
                                       {"number", f[3]}, {"branch", f[4]}, {"birthdate", f[5]}}
                                : json{{"malformed", utf8_prefix(line, 200)}};
            if (f.size() == 6) {
                try {  // the row's own error, naming the field (answer_row)
                    check_text(f[0], "arbitrary_identifier", 100);
                } catch (Error const& e) {
                    row = json{{"malformed", e.what()}, {"field", e.field}};
                }
            }
            return true;
        }
    });
}

json BatchDesk::upload(Caller const& c, std::string const& category, std::string const& query_date_raw, std::string const& file_identifier,
                       std::string const& format, std::function<bool(json&)> const& next, bool allow_empty) {
    require_facility(c);
    auto rules = x_.rules();
    if (rules->value_index_of_slot(rules->slot.category, category) < 0)
        throw invalid("category", "診療区分は 訪問診療等 か オンライン診療等 です", "category is 訪問診療等 or オンライン診療等");
    std::string query_date = x_.today().iso();
    if (!query_date_raw.empty()) {
        auto d = parse_date(query_date_raw);
        if (!d.date) throw invalid("query_date", "資格確認日が日付ではありません", "query_date is not a date");
        query_date = d.date->iso();  // how far ahead it may lie is the rules', decided per row (DecisionPath::eligibility)
    }
    if (!valid_utf8(file_identifier)) throw invalid("file_identifier", "file_identifier が UTF-8 ではありません", "file_identifier is not UTF-8");
    check_text(file_identifier, "file_identifier", 100);
    std::string reception;
    json accepted = transaction(x_.db, [&] {
        // The reception number is the second in Japan and 6 random digits (the real system's form): two jobs accepted
        // in one second may draw the same digits, so a number already taken is drawn again (ON CONFLICT DO NOTHING
        // takes it or not in one step, on both backends, whichever server inserts first).
        reception.clear();
        for (int tries = 0; reception.empty(); ++tries) {
            if (tries == 50) throw std::runtime_error("no free reception number in this second");
            std::string const candidate =
                x_.clock.stamp_jst() + std::to_string(std::stoull(new_id().substr(0, 12), nullptr, 16) % 1000000 + 1000000).substr(1);
            if (!x_.db.query("INSERT INTO batch_jobs (reception_number, facility_code, category, query_date, file_identifier, format, total, done, created_at, "
                             "requested_by) VALUES ($1, $2, $3, $4, $5, $6, 0, 0, $7, $8) ON CONFLICT (reception_number) DO NOTHING RETURNING reception_number",
                             {candidate, c.facility_code, category, query_date, file_identifier, format, x_.now(), c.subject})
                     .empty())
                reception = candidate;
        }
        // The rows go in as they are read (one COPY on PostgreSQL, taking them in while more are read).
        std::int64_t total = 0;
        json row;
        x_.db.insert_rows("batch_rows", {"reception_number", "row_no", "request_json"}, [&](Row& out) {
            if (!next(row)) return false;
            if (++total > 200000) throw Error(Error::Kind::too_large, "", "20万行までです", "at most 200,000 rows");
            out = Row{reception, total, row.dump()};
            return true;
        });
        if (total == 0 && !allow_empty) throw invalid("", "行がありません", "the file has no rows");
        x_.db.query("UPDATE batch_jobs SET total = $2 WHERE reception_number = $1", {reception, total});
        return json{{"reception_number", reception}, {"total", total}, {"status", "処理中"}};
    });
    x_.events.batch_event({"accepted", reception, c.facility_code, accepted["total"].get<std::int64_t>()});
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

json BatchDesk::status(Caller const& c, std::string const& reception) {
    require_facility(c);
    auto r = x_.db.query("SELECT total, done, finished_at, file_identifier, query_date, category, failed_at FROM batch_jobs "
                         "WHERE reception_number = $1 AND facility_code = $2",
                         {reception, c.facility_code});
    if (r.empty()) throw not_found("reception_number", "受付番号が見つかりません", "unknown reception number");
    bool finished = !is_null(r[0][2]);
    bool const failed = !is_null(r[0][6]);
    json out{{"reception_number", reception}, {"total", as_int(r[0][0])}, {"done", as_int(r[0][1])},
             {"status", failed ? "異常終了" : finished ? "正常終了" : "処理中"}, {"segment_of_result", finished ? 1 : 2},
             {"file_identifier", as_text(r[0][3])}, {"query_date", as_text(r[0][4])}, {"category", as_text(r[0][5])}};
    // A job that gave up (a permanent error, three times): its answered rows stand, the others say they could not
    // be answered.
    if (failed)
        out["error"] = "サーバの障害で一部の行に答えられませんでした (その行に書いてあります)。その行だけもう一度照会してください / "
                       "the server could not answer some rows (they say so): query those rows again";
    if (finished) {
        out["results_until"] = expires_on(as_text(r[0][2]));
        if (out["results_until"].get<std::string>() < x_.today().iso()) out["status"] = "保存期間終了";
    }
    return out;
}

void BatchDesk::require_results(json const& status) {
    if (status["segment_of_result"] != 1) throw conflict("reception_number", "まだ処理中です", "the job is still running");
    if (status["status"] == "保存期間終了")
        throw Error(Error::Kind::gone, "reception_number",
                    "結果の保存期間 (" + status["results_until"].get<std::string>() + " まで) が過ぎました。もう一度照会してください",
                    "the results were kept until " + status["results_until"].get<std::string>() + ": query again");
}

int BatchDesk::purge() {
    // Jobs finished before yesterday (JST) lose their rows; the job itself stays, so its number still answers.
    std::string const cutoff = Date::from_days(x_.today().days() - result_days).iso();
    int purged = 0;
    for (auto const& r : x_.db.query("SELECT reception_number, finished_at FROM batch_jobs WHERE finished_at IS NOT NULL AND purged_at IS NULL "
                                     "ORDER BY finished_at LIMIT 100")) {
        if (jst_day(as_text(r[1])) >= cutoff) break;
        transaction(x_.db, [&] {
            for (char const* table : {"batch_results", "batch_chunks", "batch_rows"})
                x_.db.query(std::string("DELETE FROM ") + table + " WHERE reception_number = $1", {as_text(r[0])});
            x_.db.query("UPDATE batch_jobs SET purged_at = $2 WHERE reception_number = $1", {as_text(r[0]), x_.now()});
        });
        ++purged;
    }
    return purged;
}

std::function<std::string()> BatchDesk::result_pages(Caller const& c, std::string const& reception, int page_rows) {
    require_results(status(c, reception));
    auto after = std::make_shared<std::int64_t>(-1);
    return [this, reception, page_rows, after]() {
        std::string out;
        for (auto const& r : x_.db.query("SELECT row_no, result_json FROM batch_results WHERE reception_number = $1 AND row_no > $2 ORDER BY row_no LIMIT $3",
                                         {reception, *after, std::int64_t(page_rows)})) {
            json row = json::parse(as_text(r[1]));
            *after = as_int(r[0]);
            row["row"] = *after;
            out += json_line(row);  // U+2028 escaped: line-based readers split nothing
        }
        return out;
    };
}

namespace {
// A row of a job as the worker reads it back (batch_rows.request_json), parsed once: the card it names, or why it
// names none (its own answer), and what its answer repeats.
struct RowRequest {
    std::int64_t row_no = 0;
    bool malformed = false;     // not a row of 6 columns (the upload kept its text)
    std::optional<std::pair<json, json>> refused;  // a field the upload refused as it read it: its error and field
    std::optional<Card> card;   // the patient the row names
    std::optional<Error> error;  // a row whose fields name no one validly
    json arbitrary_identifier = "";
    std::optional<json> echo;
};

RowRequest read_row(std::int64_t row_no, std::string const& request_text) {
    RowRequest row;
    row.row_no = row_no;
    json request = json::parse(request_text, nullptr, false);
    if (request.is_object() && request.contains("malformed") && request.contains("field")) {
        row.refused.emplace(request["malformed"], request["field"]);
        return row;
    }
    if (request.is_discarded() || !request.is_object() || request.contains("malformed")) {
        row.malformed = true;
        return row;
    }
    row.arbitrary_identifier = request.value("arbitrary_identifier", json(""));
    if (request.contains("echo")) row.echo = request["echo"];
    try {
        row.card = card_from(Fields(request, {"arbitrary_identifier", "insurer_number", "symbol", "number", "branch", "birthdate", "echo"}));
    } catch (Error const& e) {
        row.error = e;
    }
    return row;
}

// An answer for a row, as JSON text: the same as an individual request's, plus the row's own fields. The row's
// 資格確認履歴 entry goes to `log.into`, to be written with the answer.
std::string answer_row(Context& x, DecisionPath& decisions, Records& records, FacilityInfo const* facility, std::string const& category,
                       std::string const& query_date, RowRequest const& row, Logging const& log) {
    json result;
    if (row.refused)  // a field refused as it was read
        return json{{"error", row.refused->first}, {"field", row.refused->second}, {"processing_result_status", 2}}.dump();
    if (row.malformed || !facility) {
        Message const columns{"6列 (arbitrary_identifier,insurer_number,symbol,number,branch,birthdate) が必要です",
                              "expected 6 columns"};
        result = json{{"error", columns.text()}, {"processing_result_status", 2}};
        return result.dump();
    }
    try {
        if (row.error) throw *row.error;
        Lookup who{row.card, {}, {}};
        result = eligibility_answer_json(InquiryDesk::answer_eligibility(x, decisions, records, *facility, who, category, query_date, &log));
        result["processing_result_status"] = 1;
    } catch (Error const& e) {
        result = json{{"error", e.what()}, {"field", e.field}, {"processing_result_status", 2}};
    }
    result["arbitrary_identifier"] = row.arbitrary_identifier;
    if (row.echo) result["echo"] = *row.echo;
    return result.dump();
}

// Finishes a job whose rows are all answered (once, whichever worker gets there) and logs it (the server's log; each
// row's 資格確認履歴 entry was written with its answer): finished, or failed when it gave up (failed_at, with the cause).
void finish_if_complete(Context& x, std::string const& reception, std::string const& facility) {
    auto finished = x.db.query("UPDATE batch_jobs SET finished_at = $2 WHERE reception_number = $1 AND finished_at IS NULL AND done >= total "
                               "RETURNING total, failed_at, failure",
                               {reception, x.now()});
    if (!finished.empty()) {
        bool const failed = !is_null(finished[0][1]);
        x.events.batch_event({failed ? "failed" : "finished", reception, facility, as_int(finished[0][0]),
                              failed ? as_text(finished[0][2]) : std::string()});
    }
}

// Lock order, so that batch writers never wait for each other in a cycle: a claim locks its job's row first
// (skipping a job another server's transaction holds) and takes chunk rows only without waiting (SKIP LOCKED); a
// write or a give-up locks chunk rows first, then the job's row, and waits at most the lock timeout for either, so
// a server that hangs inside a transaction holds up no other worker for long (its session is ended after a minute
// idle, its lease expires after 15 s).
void bound_lock_waits(Context& x) {
    if (char const* limit = x.db.lock_timeout()) x.db.query(limit);
}

// The leased range of rows a worker answers.
struct Chunk {
    std::int64_t first = 0, last = 0;
};
}  // namespace

void BatchDesk::write_answers(std::string const& reception, std::vector<std::int64_t> const& row_nos, std::vector<std::string> const& answers) {
    std::size_t at = 0;
    x_.db.insert_rows("batch_results", {"reception_number", "row_no", "result_json"}, [&](Row& row) {
        if (at == row_nos.size()) return false;
        row = Row{reception, row_nos[at], answers.at(at)};
        ++at;
        return true;
    });
}

int BatchDesk::process(int max_rows) {
    // Lease a chunk (a short write transaction) of the job of the facility served least recently (its newest
    // served_at), then the oldest, so that jobs of different facilities take turns: a chunk whose lease is free or
    // expired (its server died), else the next `max_rows` rows no chunk holds yet.
    try {
        int const answered = process_chunk(max_rows);
        pause_ = std::chrono::milliseconds(0);
        return answered;
    } catch (TransientDatabaseError const& e) {
        // The database is away for a moment (a lost connection, a failover, a lost race): not the rows' fault nor the
        // job's. Nothing was written; a chunk this worker leased stays its own (or another's once the lease expires)
        // and is answered again, after a pause that grows while the fault lasts.
        wait_out(current_job_, current_facility_, e.what());
        return 0;
    }
}

void BatchDesk::wait_out(std::string const& reception, std::string const& facility, std::string const& why) {
    pause_ = std::clamp(pause_ * 2, std::chrono::milliseconds(100), std::chrono::milliseconds(5000));
    ++retries;
    x_.events.batch_event({"retry", reception, facility, 0, why, pause_.count()});
}

int BatchDesk::process_chunk(int max_rows) {
    struct Job {
        std::string reception, facility, category, query_date, requested_by;
    };
    std::optional<Job> job;
    current_job_.clear();
    current_facility_.clear();
    // (unsynced: a lease is told to no one; lost with a crash of the machine, it is taken again)
    std::optional<Chunk> chunk = unsynced_transaction(x_.db, [&]() -> std::optional<Chunk> {
        auto jobs = x_.db.query(
            std::string("SELECT j.reception_number, j.facility_code, j.category, j.query_date, j.total, j.next_row, j.requested_by FROM batch_jobs j "
                        "WHERE j.finished_at IS NULL ORDER BY COALESCE((SELECT MAX(k.served_at) FROM batch_jobs k WHERE k.facility_code = "
                        "j.facility_code), ''), j.created_at, j.reception_number LIMIT 1") +
            x_.db.claim_suffix());
        if (jobs.empty()) return std::nullopt;
        job = Job{as_text(jobs[0][0]), as_text(jobs[0][1]), as_text(jobs[0][2]), as_text(jobs[0][3]),
                  is_null(jobs[0][6]) ? std::string() : as_text(jobs[0][6])};
        std::string const& reception = job->reception;
        std::string const now = x_.now(), until = x_.clock.timestamp_after(std::chrono::seconds(15));
        x_.db.query("UPDATE batch_jobs SET served_at = $2 WHERE reception_number = $1", {reception, now});
        auto open = x_.db.query(std::string("SELECT first_row, last_row FROM batch_chunks WHERE reception_number = $1 AND answered_at IS NULL AND "
                                            "(lease_until IS NULL OR lease_until < $2 OR lease_owner = $3) ORDER BY first_row LIMIT 1") +
                                    x_.db.claim_suffix(),
                                {reception, now, worker_});
        if (!open.empty()) {
            Chunk c{as_int(open[0][0]), as_int(open[0][1])};
            x_.db.query("UPDATE batch_chunks SET lease_owner = $3, lease_until = $4 WHERE reception_number = $1 AND first_row = $2",
                        {reception, c.first, worker_, until});
            return c;
        }
        std::int64_t const total = as_int(jobs[0][4]), next_row = as_int(jobs[0][5]);
        if (next_row > total) return std::nullopt;
        Chunk c{next_row, std::min(total, next_row + std::max(max_rows, 1) - 1)};
        x_.db.query("INSERT INTO batch_chunks (reception_number, first_row, last_row, lease_owner, lease_until) VALUES ($1, $2, $3, $4, $5)",
                    {reception, c.first, c.last, worker_, until});
        x_.db.query("UPDATE batch_jobs SET next_row = $2 WHERE reception_number = $1", {reception, c.last + 1});
        return c;
    });
    if (!job) return 0;  // no unfinished job, or every one is another server's for the moment
    current_job_ = job->reception;
    current_facility_ = job->facility;
    std::string const reception = job->reception, facility_code = job->facility;
    std::string const category = job->category, query_date = job->query_date;
    if (!chunk) {
        transaction(x_.db, [&] { finish_if_complete(x_, reception, facility_code); });  // (synced: see below)
        return 0;
    }
    try {
        // Answer the chunk outside any transaction (readers never wait for a writer), with its persons loaded at once.
        auto rows = x_.db.query("SELECT r.row_no, r.request_json FROM batch_rows r WHERE r.reception_number = $1 AND r.row_no >= $2 AND r.row_no <= $3 "
                                "AND NOT EXISTS (SELECT 1 FROM batch_results x WHERE x.reception_number = r.reception_number AND x.row_no = r.row_no) "
                                "ORDER BY r.row_no",
                                {reception, chunk->first, chunk->last});
        std::vector<RowRequest> requests;
        std::vector<Card> cards;
        requests.reserve(rows.size());
        for (auto const& r : rows) {
            requests.push_back(read_row(as_int(r[0]), as_text(r[1])));
            if (requests.back().card) cards.push_back(*requests.back().card);
        }
        rows.clear();
        ChunkRecords records(x_.db, facility_code, cards);
        auto facility = records.facility(facility_code);
        DecisionPath decisions(x_.rules(), records, x_.today());
        std::vector<std::int64_t> row_nos;
        std::vector<std::string> answers;
        std::vector<InquiryEntry> history;  // one 資格確認履歴 entry per row answered, written with the answers
        row_nos.reserve(requests.size());
        answers.reserve(requests.size());
        for (auto const& request : requests) {
            row_nos.push_back(request.row_no);
            Logging const log{.kind = "一括再照会", .actor = job->requested_by, .reception = reception, .row = request.row_no, .into = &history};
            answers.push_back(answer_row(x_, decisions, records, facility ? &*facility : nullptr, category, query_date, request, log));
        }
        if (on_chunk_ready) on_chunk_ready();
        // Interactive requests in flight finish first; then one short write, unless another worker answered the chunk.
        x_.gate.drain();
        try {
            // Unsynced (Database::in_transaction_unsynced): a chunk's answers are told to no one until the job is
            // finished, below, by a synced commit that makes every chunk before it durable; a chunk lost with a crash of
            // the machine is lost whole (its lease and answers) and answered again.
            bool complete = false;
            int const written = unsynced_transaction(x_.db, [&] {
                bound_lock_waits(x_);
                // Whoever writes a chunk first answers it, even after its lease expired (a chunk slower than its lease
                // is not taken back and forth for ever); a later write of it finds it answered and is dropped.
                if (x_.db.query("UPDATE batch_chunks SET answered_at = $3, lease_owner = NULL, lease_until = NULL WHERE reception_number = $1 AND "
                                "first_row = $2 AND answered_at IS NULL RETURNING first_row",
                                {reception, chunk->first, x_.now()})
                        .empty())
                    return 0;
                write_answers(reception, row_nos, answers);
                log_inquiries(x_, history);
                auto const job_row = x_.db.query("UPDATE batch_jobs SET done = done + $2 WHERE reception_number = $1 RETURNING done, total",
                                                 {reception, std::int64_t(requests.size())});
                complete = !job_row.empty() && as_int(job_row[0][0]) >= as_int(job_row[0][1]);
                return int(requests.size());
            });
            if (complete) {
                try {
                    transaction(x_.db, [&] {
                        bound_lock_waits(x_);
                        finish_if_complete(x_, reception, facility_code);
                    });
                } catch (TransientDatabaseError const&) {
                    // Finished by this worker's next look at the job (a job whose rows are all answered: `!chunk` above).
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
    int released = 0;
    transaction(x_.db, [&] {
        released = int(x_.db.query("UPDATE batch_chunks SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1 AND answered_at IS NULL "
                                   "RETURNING first_row",
                                   {worker_})
                           .size());
    });
    return released;
}

void BatchDesk::give_up(std::string const& reception, std::string const& why) {
    try {
        transaction(x_.db, [&] {
            bound_lock_waits(x_);
            auto job = x_.db.query("SELECT total, failures, facility_code FROM batch_jobs WHERE reception_number = $1", {reception});
            if (job.empty()) return;
            bool const last = as_int(job[0][1]) + 1 >= 3;
            // Chunk rows first (this worker's leases let go; all open chunks closed when the job gives up, so a worker
            // still answering one writes nothing), then the job's row: the order every batch writer keeps.
            x_.db.query("UPDATE batch_chunks SET lease_owner = NULL, lease_until = NULL WHERE reception_number = $1 AND lease_owner = $2 AND answered_at IS NULL",
                        {reception, worker_});
            if (!last) {
                x_.db.query("UPDATE batch_jobs SET failures = failures + 1 WHERE reception_number = $1", {reception});
                return;
            }
            // Every row without an answer gets the error, whichever chunk holds it or none.
            Message const unanswered{"この行は処理できませんでした (サーバ内部のエラー)",
                                     "the row could not be answered (internal error)"};
            std::string const error = json{{"error", unanswered.text()}, {"processing_result_status", 2}}.dump();
            x_.db.query("UPDATE batch_chunks SET answered_at = $2, lease_owner = NULL, lease_until = NULL WHERE reception_number = $1 AND answered_at IS NULL",
                        {reception, x_.now()});
            std::int64_t const answered = as_int(x_.db.query("SELECT COUNT(*) FROM batch_results WHERE reception_number = $1", {reception}).at(0).at(0));
            x_.db.query("INSERT INTO batch_results (reception_number, row_no, result_json) SELECT r.reception_number, r.row_no, $2 FROM batch_rows r "
                        "WHERE r.reception_number = $1 AND NOT EXISTS (SELECT 1 FROM batch_results x WHERE x.reception_number = r.reception_number "
                        "AND x.row_no = r.row_no)",
                        {reception, error});
            x_.db.query("UPDATE batch_jobs SET failures = failures + 1, done = done + $2, next_row = total + 1, failed_at = $3, failure = $4 "
                        "WHERE reception_number = $1",
                        {reception, as_int(job[0][0]) - answered, x_.now(), utf8_prefix(why, 500)});
            ++jobs_failed;
            finish_if_complete(x_, reception, as_text(job[0][2]));
        });
    } catch (std::exception const& e) {
        x_.events.batch_problem({BatchProblem::Level::error, "batch_failure_unrecorded", reception, e.what(), why});
    }
}

}  // namespace kyotaku::server
