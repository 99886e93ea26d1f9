// 資格確認一括照会 (batch re-inquiry): an upload becomes a job with a row per patient, answered in the background
// in chunks, each row by the same eligibility answer as an individual request (decided on the day it is answered).
#include "desk_util.hpp"

#include <chrono>

namespace kyotaku::server {

std::string BatchDesk::check_query_date(Context& x, std::string const& iso, char const* field) {
    if (!iso.empty() && iso > x.today().iso())
        throw invalid(field, "資格確認日 " + iso + " が今日 (" + x.today().iso() + ") より後です", std::string(field) + " is after today");
    return iso;
}

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
            if (f.size() == 6 && f[0].size() > 100) row = json{{"malformed", "arbitrary_identifier > 100"}};
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
        query_date = check_query_date(x_, d.date->iso(), "query_date");
    }
    if (!valid_utf8(file_identifier)) throw invalid("file_identifier", "file_identifier が UTF-8 ではありません", "file_identifier is not UTF-8");
    check_text(file_identifier, "file_identifier", 100);
    std::string reception = x_.clock.stamp_jst() + std::to_string(std::stoull(new_id().substr(0, 12), nullptr, 16) % 1000000 + 1000000).substr(1);
    return transaction(x_.db, [&] {
        x_.db.query("INSERT INTO batch_jobs (reception_number, facility_code, category, query_date, file_identifier, format, total, done, created_at) "
                    "VALUES ($1, $2, $3, $4, $5, $6, 0, 0, $7)",
                    {reception, c.facility_code, category, query_date, file_identifier, format, x_.now()});
        // 100 rows per INSERT: one statement execution instead of a hundred.
        constexpr std::size_t per_statement = 100;
        std::int64_t total = 0;
        std::vector<Value> params{reception};
        auto flush = [&] {
            std::size_t n = (params.size() - 1) / 2;
            if (n == 0) return;
            std::string sql = "INSERT INTO batch_rows (reception_number, row_no, request_json) VALUES ";
            for (std::size_t i = 0; i < n; ++i) sql += (i ? ", ($1, $" : "($1, $") + std::to_string(2 + 2 * i) + ", $" + std::to_string(3 + 2 * i) + ")";
            x_.db.query(sql, params);
            params.resize(1);
        };
        json row;
        while (next(row)) {
            if (++total > 200000) throw Error(Error::Kind::too_large, "", "20万行までです", "at most 200,000 rows");
            params.emplace_back(total);
            params.emplace_back(row.dump());
            if ((params.size() - 1) / 2 == per_statement) flush();
        }
        flush();
        if (total == 0 && !allow_empty) throw invalid("", "行がありません", "the file has no rows");
        x_.db.query("UPDATE batch_jobs SET total = $2 WHERE reception_number = $1", {reception, total});
        return json{{"reception_number", reception}, {"total", total}, {"status", "処理中"}};
    });
}

json BatchDesk::status(Caller const& c, std::string const& reception) {
    require_facility(c);
    auto r = x_.db.query("SELECT total, done, finished_at, file_identifier, query_date, category FROM batch_jobs WHERE reception_number = $1 AND facility_code = $2",
                         {reception, c.facility_code});
    if (r.empty()) throw not_found("reception_number", "受付番号が見つかりません", "unknown reception number");
    bool finished = !is_null(r[0][2]);
    return json{{"reception_number", reception}, {"total", as_int(r[0][0])}, {"done", as_int(r[0][1])},
                {"status", finished ? "正常終了" : "処理中"}, {"segment_of_result", finished ? 1 : 2},
                {"file_identifier", as_text(r[0][3])}, {"query_date", as_text(r[0][4])}, {"category", as_text(r[0][5])}};
}

std::function<std::string()> BatchDesk::result_pages(Caller const& c, std::string const& reception, int page_rows) {
    json st = status(c, reception);
    if (st["segment_of_result"] != 1) throw conflict("reception_number", "まだ処理中です", "the job is still running");
    auto after = std::make_shared<std::int64_t>(-1);
    return [this, reception, page_rows, after]() {
        std::string out;
        for (auto const& r : x_.db.query("SELECT row_no, result_json FROM batch_rows WHERE reception_number = $1 AND row_no > $2 ORDER BY row_no LIMIT $3",
                                         {reception, *after, std::int64_t(page_rows)})) {
            json row = json::parse(as_text(r[1]));
            *after = as_int(r[0]);
            row["row"] = *after;
            out += row.dump() + "\n";
        }
        return out;
    };
}

int BatchDesk::process(int max_rows, int max_ms) {
    auto jobs = x_.db.query("SELECT reception_number, facility_code, category, query_date FROM batch_jobs WHERE finished_at IS NULL ORDER BY created_at LIMIT 1");
    if (jobs.empty()) return 0;
    std::string const reception = as_text(jobs[0][0]), facility_code = as_text(jobs[0][1]);
    std::string const category = as_text(jobs[0][2]), query_date = as_text(jobs[0][3]);
    return transaction(x_.db, [&] {
        auto rows = x_.db.query("SELECT row_no, request_json FROM batch_rows WHERE reception_number = $1 AND result_json IS NULL ORDER BY row_no LIMIT $2",
                                {reception, std::int64_t(max_rows)});
        // The chunk's requests, parsed once; the cards of the well-formed ones are loaded at once.
        std::vector<json> requests;
        std::vector<Card> cards;
        requests.reserve(rows.size());
        for (auto const& r : rows) {
            requests.push_back(json::parse(as_text(r[1]), nullptr, false));
            try {
                if (requests.back().contains("insurer_number"))
                    cards.push_back(card_from(Fields(requests.back(), {"arbitrary_identifier", "insurer_number", "symbol", "number", "branch", "birthdate", "echo"})));
            } catch (Error const&) {
            }
        }
        ChunkRecords records(x_.db, facility_code, cards);
        auto facility = records.facility(facility_code);
        DecisionPath decisions(x_.rules(), records, x_.today());
        auto started = std::chrono::steady_clock::now();
        std::size_t answered = 0;
        for (std::size_t i = 0; i < rows.size(); ++i) {
            if (answered > 0 && std::chrono::steady_clock::now() - started > std::chrono::milliseconds(max_ms)) break;
            if (answered >= 50 && x_.interactive.load() > 0) break;  // interactive requests first
            ++answered;
            json const& request = requests[i];
            json result;
            if (request.is_discarded() || !request.is_object() || request.contains("malformed")) {
                result = json{{"error", "6列 (arbitrary_identifier,insurer_number,symbol,number,branch,birthdate) が必要です / expected 6 columns"},
                              {"processing_result_status", 2}};
            } else {
                try {
                    Fields f(request, {"arbitrary_identifier", "insurer_number", "symbol", "number", "branch", "birthdate", "echo"});
                    Lookup who{card_from(f), {}};
                    result = InquiryDesk::answer_eligibility(x_, decisions, records, *facility, who, category, query_date, nullptr);
                    result["processing_result_status"] = 1;
                } catch (Error const& e) {
                    result = json{{"error", e.what()}, {"field", e.field}, {"processing_result_status", 2}};
                }
                result["arbitrary_identifier"] = request.value("arbitrary_identifier", json(""));
                if (request.contains("echo")) result["echo"] = request["echo"];
            }
            x_.db.query("UPDATE batch_rows SET result_json = $3 WHERE reception_number = $1 AND row_no = $2 AND result_json IS NULL",
                        {reception, as_int(rows[i][0]), result.dump()});
        }
        x_.db.query("UPDATE batch_jobs SET done = (SELECT COUNT(*) FROM batch_rows WHERE reception_number = $1 AND result_json IS NOT NULL) "
                    "WHERE reception_number = $1",
                    {reception});
        if (rows.size() < std::size_t(max_rows) && answered == rows.size()) {
            x_.db.query("UPDATE batch_jobs SET finished_at = $2 WHERE reception_number = $1", {reception, x_.now()});
            auto total = x_.db.query("SELECT total FROM batch_jobs WHERE reception_number = $1", {reception});
            log_inquiry(x_, facility_code, "一括再照会", "", true,
                        json{{"reception_number", reception}, {"category", category}, {"rows", as_int(total[0][0])}});
        }
        return int(answered);
    });
}

}  // namespace kyotaku::server
