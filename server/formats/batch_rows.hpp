// A batch's rows as they are stored and as JSON (decision/batch_row.hpp).
//
// - The request of a row (batch_rows.request_json) and its answer (batch_results.result_json) are stored in a compact
//   form of their own: written field by field from the typed row and read back typed (the worker reads a chunk's
//   requests once), never through a JSON tree. What versions before it stored as JSON (a text starting with `{`) is
//   read as well.
// - An answer as JSON: the object each line of the NDJSON result route shows (docs/api.md), the same fields as
//   POST /api/v1/reinquiry's answer plus the row's own (processing_result_status, arbitrary_identifier, echo …).
#pragma once

#include "decision/batch_row.hpp"

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

namespace kyotaku::server {

// The stored request of a row (the compact form), and back; read also accepts the JSON of earlier versions. A text
// that is neither, or damaged, reads as a RowUnread (answered "6列 … が必要です"), as every version answered it.
std::string stored_request(BatchRow const& row);
BatchRow stored_request_of(std::string_view stored);

// The stored answer of a row (the compact form), and back; read also accepts the JSON of earlier versions. Throws
// std::runtime_error on a text that is neither (a damaged row: its job's chunk fails, not the server).
std::string stored_answer(BatchRowAnswer const& answer);
BatchRowAnswer stored_answer_of(std::string_view stored);

// The JSON of an answer (without the row number), and back (an answer stored as JSON by an earlier version).
nlohmann::json batch_answer_json(BatchRowAnswer const& answer);
BatchRowAnswer batch_answer_of(nlohmann::json const& stored);

}  // namespace kyotaku::server
