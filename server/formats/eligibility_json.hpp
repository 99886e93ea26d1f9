// An EligibilityAnswer as JSON: the answer of POST /api/v1/reinquiry, and the same fields in each answered row of a
// batch or file (stored once, then streamed as NDJSON or written as OQS XML). docs/api.md documents the fields.
#pragma once

#include "decision/eligibility_answer.hpp"

#include <nlohmann/json.hpp>

namespace kyotaku::server {

nlohmann::json eligibility_answer_json(EligibilityAnswer const& a);
// The same object as the answer's text, written field by field without a tree: exactly what
// eligibility_answer_json(a).dump(-1, ' ', false, replace) gives (keys sorted, UTF-8 kept, a text that is not valid
// UTF-8 dumped by nlohmann itself). The JSON tree built and dumped was ~6 % of the server's CPU under re-inquiry.
std::string eligibility_answer_text(EligibilityAnswer const& a);
// The same fields read back (a stored row of a batch or file): what eligibility_answer_json wrote, but the consent's
// id (never written).
EligibilityAnswer eligibility_answer_of(nlohmann::json const& stored);
// The card fields a caller named a patient by, as JSON (how a 資格確認履歴 entry names the patient asked about).
nlohmann::json card_json(Card const& card);

}  // namespace kyotaku::server
