// The one answer to "what is this person's eligibility", as every route gives it (the JSON API, the OQS XML files,
// the batch's rows): the decision path's verdict and what the server's records show when it allows. A typed row
// between the decision and the wire; formats/eligibility_json.hpp writes it.
#pragma once

#include "kyotaku/message.hpp"
#include "storage/records.hpp"

#include <optional>
#include <string>
#include <vector>

namespace kyotaku::server {

// The one answer to "what is this person's eligibility".
struct EligibilityAnswer {
    bool allowed = false;
    // 1 有効, 2 無効, 3 無効（新しい資格あり）, 4 該当資格なし; nullopt when not allowed for another reason
    std::optional<int> qualification_validity;
    Message reason;  // the rules' reason (Japanese only) or why no rule was asked
    std::optional<std::string> visit_kind, first_visit;  // of the consent the answer rests on
    std::optional<std::string> window_end;               // of the relationship, when there is one
    // When allowed: the insurance period shown (valid on the 資格確認日, or the one that ended), the facility's
    // 照会番号 of the person, and the 資格確認日.
    std::optional<EligibilityRecord> eligibility;
    std::optional<std::vector<std::string>> reference_numbers;
    std::optional<std::string> query_date;
};

}  // namespace kyotaku::server
