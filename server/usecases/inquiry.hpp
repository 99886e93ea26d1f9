// 再照会 and the eligibility query (資格情報の照会), 薬剤情報等の閲覧, 照会番号, and the histories. Every answer about a
// patient's eligibility is one EligibilityAnswer, made by answer_eligibility from the decision path; requests and
// answers are domain types that the codecs at the edge (JSON, the OQS XML files, the batch's NDJSON) write.
#pragma once

#include "decision/eligibility_answer.hpp"
#include "usecases/context.hpp"

#include <optional>
#include <string>
#include <vector>

namespace kyotaku::server {

// Who a request names: a card's fields or this facility's 照会番号.
struct Lookup {
    std::optional<Card> card;
    std::string reference_number;
    std::string person;  // a person the server already knows (the consented-patient downloads); never from a request
    // reference_number, or the card fields (insurer_number, symbol, number, branch, birthdate), never both.
    static Lookup from(std::optional<std::string> const& reference_number, CardFields const& card);
};

// 再照会 (POST /api/v1/reinquiry).
struct EligibilityQuery {
    std::string category;
    std::optional<std::string> query_date;  // a date as sent
    std::optional<std::string> reference_number;
    CardFields card;
};

// 薬剤情報等の閲覧.
struct MedicalInfoQuery {
    std::string category, item;
    std::optional<std::string> reference_number;
    CardFields card;
};
struct MedicalInfoAnswer {
    bool allowed = false;
    std::string reason;
    struct Entry {
        std::string recorded_on, content_json;  // the record's content as stored (a JSON object)
    };
    std::optional<std::vector<Entry>> records;  // when allowed
};

// 照会番号登録: a number for a consenting patient of this facility, named by the card fields (the birthdate may be
// absent: the 照会番号登録 file carries none).
struct ReferenceRegistrationRequest {
    std::string reference_number;
    CardFields card;
};
struct ReferenceRegistered {
    std::string reference_number;
    bool registered = false;  // false: the same registration again
};
struct ReferenceImport {
    int registered = 0;
    struct Line {
        int line = 0;
        std::optional<std::string> reference_number;
        std::optional<std::string> result;  // 登録 or 登録済み
        std::optional<std::string> error, field;
    };
    std::vector<Line> results;
};

struct InquiryLogEntry {
    std::string at, kind;
    bool allowed = false;
    std::string detail_json;  // the few fields the log keeps, as stored (a JSON object)
};
struct ViewingLogEntry {
    std::string at, item, terminal;
    bool allowed = false;
    std::string reason;
};

class InquiryDesk {
public:
    explicit InquiryDesk(Context& x) : x_(x) {}
    EligibilityAnswer reinquiry(Caller const& c, EligibilityQuery const& q);
    MedicalInfoAnswer view_medical_info(Caller const& c, MedicalInfoQuery const& q);
    ReferenceRegistered register_reference_number(Caller const& c, ReferenceRegistrationRequest const& r);
    ReferenceImport register_reference_numbers_csv(Caller const& c, std::string const& csv);
    std::vector<InquiryLogEntry> inquiry_history(Caller const& c, std::string const& from, std::string const& to);
    std::vector<ViewingLogEntry> viewing_history(Caller const& c, std::string const& from, std::string const& to);

    // The one answer to "what is this person's eligibility", for every route that returns it: decided by the
    // rules on today's date (DecisionPath::eligibility); `requested_date` (a 資格確認日, ≤ today) only picks which
    // insurance period is shown. Writes 資格確認履歴 when `log_kind` is given.
    static EligibilityAnswer answer_eligibility(Context& x, DecisionPath& decisions, Records& records, FacilityInfo const& facility,
                                                Lookup const& who, std::string const& category, std::string const& requested_date,
                                                char const* log_kind);

private:
    Context& x_;
};

}  // namespace kyotaku::server
