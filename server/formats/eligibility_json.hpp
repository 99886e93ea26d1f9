// An EligibilityAnswer as JSON: the answer of POST /api/v1/reinquiry, and the same fields in each answered row of a
// batch or file (stored once, then streamed as NDJSON or written as OQS XML). docs/api.md documents the fields.
#pragma once

#include "decision/eligibility_answer.hpp"

#include <nlohmann/json.hpp>

namespace kyotaku::server {

nlohmann::json eligibility_answer_json(EligibilityAnswer const& a);
// The same fields read back (a stored row of a batch or file): what eligibility_answer_json wrote, but the consent's
// id (never written).
EligibilityAnswer eligibility_answer_of(nlohmann::json const& stored);
// The card fields a caller named a patient by, as JSON (how a 資格確認履歴 entry names the patient asked about).
nlohmann::json card_json(Card const& card);

}  // namespace kyotaku::server
