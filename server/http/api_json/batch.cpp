// The JSON of 資格確認一括照会 (docs/api.md "一括照会"): the accepted upload, the job's status, and each answered row
// as a line of the NDJSON result (formats/batch_rows.hpp: the same fields as 再照会's answer, plus the row's own).
#include "http/api_json.hpp"

#include "formats/batch_rows.hpp"
#include "formats/fields.hpp"

namespace kyotaku::server::api_json {

namespace {
char const* state_name(BatchStatus::State s) {
    switch (s) {
        case BatchStatus::State::running: return "処理中";
        case BatchStatus::State::finished: return "正常終了";
        case BatchStatus::State::failed: return "異常終了";
        case BatchStatus::State::expired: return "保存期間終了";
    }
    return "処理中";
}
}  // namespace

json to_json(BatchAccepted const& a) {
    return json{{"reception_number", a.reception_number}, {"total", a.total}, {"status", "処理中"}};
}

json to_json(BatchStatus const& s) {
    json out{{"reception_number", s.reception_number},
             {"total", s.total},
             {"done", s.done},
             {"status", state_name(s.state)},
             {"segment_of_result", s.finished ? 1 : 2},
             {"file_identifier", s.file_identifier},
             {"query_date", s.query_date},
             {"category", s.category}};
    if (s.error) out["error"] = s.error->text();
    if (s.results_until) out["results_until"] = *s.results_until;
    return out;
}

std::string result_line(std::int64_t row, BatchRowAnswer const& answer) {
    json line = batch_answer_json(answer);
    line["row"] = row;
    return json_line(line);  // U+2028 escaped: line-based readers split nothing
}

}  // namespace kyotaku::server::api_json
