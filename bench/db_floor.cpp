// The floor of a 100,000-row batch on one database (scripts/bench-server): what reading and writing its rows costs
// with nothing else — no HTTP, no CSV, no decision, no answer to make. Through the server's own storage layer, the
// statements a batch runs, with the same durability: the upload's rows into batch_rows (one insert_rows: COPY on
// PostgreSQL, multi-row INSERTs on SQLite; a synced commit), then chunk by chunk (500 rows, as the worker) the rows
// read back by their range, and as many answers written into batch_results and as many 資格確認履歴 entries into
// inquiry_log in one transaction (unsynced, as the worker's chunks). The texts are the server's own stored forms of
// the demo patient's row, answer and 資格確認履歴 detail. Prints the seconds of each part and their sum, and this
// process's CPU time over them (not the schema's migration nor the rows' removal afterwards; on PostgreSQL the
// database's own processes are not counted).
// Usage: db_floor DATABASE [ROWS]   (a SQLite path, or a postgresql:// URL: its schema is migrated, the rows removed)
#include "core/ids.hpp"
#include "formats/batch_rows.hpp"
#include "formats/inquiry_detail.hpp"
#include "storage/database.hpp"

#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

using namespace kyotaku::server;
using clock_type = std::chrono::steady_clock;

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: db_floor DATABASE [ROWS]\n");
        return 2;
    }
    std::int64_t const rows = argc > 2 ? std::atoll(argv[2]) : 100000, chunk = 500;
    try {
        auto db = open_database(argv[1]);
        migrate(*db);
        std::string const reception =
            "floor" + std::to_string(std::chrono::system_clock::now().time_since_epoch().count());
        // The texts of a row as the server stores them (the codecs' own forms, of the demo patient's sizes).
        std::string const request =
            stored_request(RowQuery{CardFields{"06132013", "123", "4567", "01", "1940-05-01"}, "row12345", {}});
        EligibilityAnswer allowed;
        allowed.allowed = true;
        allowed.qualification_validity = 1;
        allowed.reason.ja = "初回訪問 2024-04-15 から 2024-07-31 までの継続的な関係の期間内です "
                            "(rules/30_reinquiry.rules:52)";
        allowed.basis = ConsentRecord{};
        allowed.basis->id = "0123456789abcdef0123456789abcdef";
        allowed.basis->visit_kind = "訪問診療";
        allowed.basis->first_visit = "2024-04-15";
        allowed.window_end = "2024-07-31";
        allowed.eligibility = EligibilityRecord{};
        allowed.eligibility->insurer = "06132013";
        allowed.eligibility->symbol = "123";
        allowed.eligibility->number = "4567";
        allowed.eligibility->branch = "01";
        allowed.eligibility->birthdate = "1940-05-01";
        allowed.eligibility->name = "在宅 花子";
        allowed.eligibility->name_kana = "ザイタク ハナコ";
        allowed.eligibility->burden_ratio = "010";
        allowed.eligibility->valid_from = "2020-04-01";
        allowed.eligibility->card_classification = "01";
        allowed.eligibility->personal_family = "1";
        allowed.reference_numbers.emplace();
        allowed.query_date = "2024-07-31";
        BatchRowAnswer row_answer;
        row_answer.answer = allowed;
        row_answer.arbitrary_identifier = "row12345";
        std::string const answer = stored_answer(row_answer);
        EligibilityDetail history;
        history.category = "訪問診療等";
        history.card = Card{"06132013", "123", "4567", "01", "1940-05-01"};
        history.allowed = true;
        history.qualification_validity = 1;
        history.consent_id = allowed.basis->id;
        history.reason = allowed.reason.ja;
        history.row = 12345;
        std::string const detail = eligibility_detail_json(history);
        rusage cpu0{};
        getrusage(RUSAGE_SELF, &cpu0);
        auto const t0 = clock_type::now();
        // A job of a facility of its own, finished from the start: a server's worker on the same database leaves it.
        std::string const facility = "floor" + reception.substr(5, 5);
        transaction(*db, [&] {
            db->query("INSERT INTO facilities (code, name, kind, created_at) VALUES ($1, 'db_floor', '医科', "
                      "'2024-07-31T00:00:00Z')",
                      {facility});
            db->query("INSERT INTO batch_jobs (reception_number, facility_code, category, query_date, file_identifier, "
                      "format, total, done, "
                      "created_at, finished_at) VALUES ($1, $3, '訪問診療等', '2024-07-31', '', 'csv', $2, 0, "
                      "'2024-07-31T00:00:00Z', "
                      "'2024-07-31T00:00:00Z')",
                      {reception, rows, facility});
            std::int64_t n = 0;
            db->insert_rows("batch_rows", {"reception_number", "row_no", "request_json"}, [&](Row& out) {
                if (n == rows) return false;
                ++n;
                out = Row{reception, n, request};
                return true;
            });
        });
        auto const t1 = clock_type::now();
        double read_s = 0, write_s = 0;
        std::int64_t read_rows = 0;
        for (std::int64_t first = 1; first <= rows; first += chunk) {
            std::int64_t const last = std::min(rows, first + chunk - 1);
            auto const r0 = clock_type::now();
            auto got = db->query("SELECT row_no, request_json FROM batch_rows WHERE reception_number = $1 AND "
                                 "row_no >= $2 AND row_no <= $3 ORDER BY row_no",
                                 {reception, first, last});
            read_rows += std::int64_t(got.size());
            auto const r1 = clock_type::now();
            db->in_transaction_unsynced([&] {
                std::size_t at = 0;
                db->insert_rows("batch_results", {"reception_number", "row_no", "result_json"}, [&](Row& out) {
                    if (at == got.size()) return false;
                    out = Row{reception, got[at][0], answer};
                    ++at;
                    return true;
                });
                at = 0;
                db->insert_rows("inquiry_log",
                                {"id", "facility_code", "at", "kind", "person_key", "allowed", "detail_json", "actor",
                                 "reception_number"},
                                [&](Row& out) {
                                    if (at == got.size()) return false;
                                    out = Row{time_ordered_id(),
                                              facility,
                                              std::string("2024-07-31T00:00:00Z"),
                                              std::string("一括再照会"),
                                              std::string("P1"),
                                              std::int64_t(1),
                                              detail,
                                              std::string("CN=db_floor"),
                                              reception};
                                    ++at;
                                    return true;
                                });
                db->query("UPDATE batch_jobs SET done = done + $2 WHERE reception_number = $1",
                          {reception, std::int64_t(got.size())});
            });
            auto const r2 = clock_type::now();
            read_s += std::chrono::duration<double>(r1 - r0).count();
            write_s += std::chrono::duration<double>(r2 - r1).count();
        }
        double const insert_s = std::chrono::duration<double>(t1 - t0).count();
        rusage cpu1{};
        getrusage(RUSAGE_SELF, &cpu1);
        auto const seconds = [](timeval const& t) { return double(t.tv_sec) + double(t.tv_usec) / 1e6; };
        double const cpu_s = seconds(cpu1.ru_utime) + seconds(cpu1.ru_stime) - seconds(cpu0.ru_utime) -
                             seconds(cpu0.ru_stime);
        db->query("DELETE FROM inquiry_log WHERE reception_number = $1", {reception});
        for (char const* table : {"batch_results", "batch_rows", "batch_jobs"})
            db->query(std::string("DELETE FROM ") + table + " WHERE reception_number = $1", {reception});
        db->query("DELETE FROM facilities WHERE code = $1", {facility});
        if (read_rows != rows) {
            std::fprintf(stderr, "db_floor: read %lld rows of %lld\n", (long long)read_rows, (long long)rows);
            return 1;
        }
        std::printf("%.3f s: %lld rows in %.3f s, read back in %.3f s, %lld answers and history entries written in "
                    "%.3f s (chunks of %lld); CPU %.2f s\n",
                    insert_s + read_s + write_s, (long long)rows, insert_s, read_s, (long long)rows, write_s,
                    (long long)chunk, cpu_s);
        return 0;
    } catch (std::exception const& e) {
        std::fprintf(stderr, "db_floor: %s\n", e.what());
        return 1;
    }
}
