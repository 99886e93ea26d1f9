// An EligibilityAnswer as JSON: the answer of POST /api/v1/reinquiry, and the same fields in each answered row of a
// batch (stored once, then streamed as NDJSON or written as OQS XML). docs/api.md documents the fields.
#pragma once

#include "decision/eligibility_answer.hpp"

#include <nlohmann/json.hpp>

namespace kyotaku::server {

nlohmann::json eligibility_answer_json(EligibilityAnswer const& a);

}  // namespace kyotaku::server
