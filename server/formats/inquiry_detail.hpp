// 資格確認履歴's detail of an eligibility answer (InquiryDesk::answer_eligibility: 再照会, the OQS files, a batch's
// rows), typed, and its stored form: the JSON object the history routes show (docs/api.md), written field by field
// without a JSON tree (a batch writes one per row). The keys in sorted order, as every version stored them.
#pragma once

#include "storage/records.hpp"

#include <cstdint>
#include <optional>
#include <string>

namespace kyotaku::server {

struct EligibilityDetail {
    std::string category;
    // How the caller named the patient: the card fields it sent, this facility's 照会番号, or a consent the server
    // holds (a consented-patient download's row: the consent's date and visit kind; nothing for another route's).
    enum class By { card, reference_number, consent } by = By::card;
    std::optional<Card> card;
    std::string reference_number, consent_date, visit_kind;
    std::string query_date;  // the 資格確認日 as asked (empty: none)
    bool allowed = false;
    std::optional<int> qualification_validity;
    std::optional<std::string> consent_id;  // the consent the answer rests on
    std::optional<std::string> reason;      // the answer's reason (Japanese)
    std::int64_t row = 0;                   // the row of a batch or file (0: not one)
};

// The stored detail (inquiry_log.detail_json): {"allowed", "by", "category", "consent_id", "patient",
// "qualification_validity", "query_date", "reason", "row"}, each present as the fields above say.
std::string eligibility_detail_json(EligibilityDetail const& detail);

}  // namespace kyotaku::server
