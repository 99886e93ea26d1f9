// The one answer to "what is this person's eligibility", as every route gives it — 再照会 (POST /api/v1/reinquiry),
// the OQS files (OQSsiquc01res, the consented-patient downloads), a batch's rows: the decision path's verdict and,
// when it allows, what the server's records show. The typed row between the decision and the wire: each wire format
// has one codec for it (JSON: formats/eligibility_json.hpp; OQS XML: formats/oqs_xml.hpp). No JSON here.
#pragma once

#include "kyotaku/calendar.hpp"
#include "kyotaku/message.hpp"
#include "storage/records.hpp"

#include <optional>
#include <string>
#include <vector>

namespace kyotaku::server {

struct EligibilityAnswer {
    bool allowed = false;
    // Why (allowed or refused): the deciding rule's reason (Japanese only: en is empty), or why no rule was asked, in
    // both languages (no consent, a 資格確認日 the rules do not take, …).
    Message reason;
    // The consent the answer rests on (its visit kind and first visit are shown; its id goes to 資格確認履歴 only).
    std::optional<ConsentRecord> basis;
    std::optional<std::string> window_end;  // the relationship's window's last day, when the answer rests on one
    // 1 有効, 2 無効, 3 無効（新しい資格あり）, 4 該当資格なし (this facility's 照会番号 names no one); nullopt when
    // refused for another reason.
    std::optional<int> qualification_validity;
    // When allowed: the insurance period shown (the one valid on the 資格確認日, or the one that ended), the
    // facility's 照会番号 of the person, and the 資格確認日 the answer is for.
    std::optional<EligibilityRecord> eligibility;
    std::optional<std::vector<std::string>> reference_numbers;
    std::optional<std::string> query_date;
};

// 資格喪失日 (DisqualificationDate) of an insurance period that ended: the day after the last day it was valid.
inline std::optional<std::string> disqualification_date(EligibilityRecord const& e) {
    if (!e.valid_to) return std::nullopt;
    auto const last = parse_iso_date_fast(*e.valid_to);
    if (!last) return std::nullopt;
    return Date::from_days(last->days() + 1).iso();
}

}  // namespace kyotaku::server
