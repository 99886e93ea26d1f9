// 再照会 and the eligibility query (資格情報の照会), 薬剤情報等の閲覧, 照会番号, and the histories. Every answer about
// a patient's eligibility is one EligibilityAnswer (decision/eligibility_answer.hpp), made by answer_eligibility from
// the decision path. Requests and answers are domain types; the codecs at the edge write them (JSON: http/api_json.hpp;
// the OQS XML files: formats/oqs_xml.hpp).
#pragma once

#include "decision/eligibility_answer.hpp"
#include "storage/inquiry_log.hpp"
#include "storage/medical_records.hpp"
#include "usecases/context.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kyotaku::server {

// How answer_eligibility logs its answer: the route's kind, the caller, a batch's reception number and row; the entry
// is written at once, or appended to `into` for the caller to write with its answers.
struct Logging {
    char const* kind;
    std::string actor;
    std::string reception = {};
    std::int64_t row = 0;  // the row of a batch or file (0: not one)
    // A consented-patient download's row names the patient by the consent it echoes (empty: another route).
    std::string consent_date = {}, visit_kind = {};
    std::vector<InquiryEntry>* into = nullptr;
};

// Who a request names: a card's fields or this facility's 照会番号.
struct Lookup {
    std::optional<Card> card;
    std::string reference_number;
    std::string person;  // a person the server already knows (the consented-patient downloads); never from a request
    // reference_number, or the card fields (insurer_number, symbol, number, branch, birthdate), never both.
    static Lookup from(std::optional<std::string> const& reference_number, CardFields const& card);
};

// 再照会 (POST /api/v1/reinquiry): the patient by card or 照会番号; query_date (a 資格確認日, ≤ today) picks which
// insurance period is shown.
struct EligibilityQuery {
    std::string category;
    std::optional<std::string> query_date;  // a date as sent
    std::optional<std::string> reference_number;
    CardFields card;
};

// 薬剤情報等の閲覧 (POST /api/v1/medical-info).
struct MedicalInfoQuery {
    std::string category, item;
    std::optional<std::string> reference_number;
    CardFields card;
};
struct MedicalInfoAnswer {
    bool allowed = false;
    std::string reason;  // the rules' reason, or why no rule was asked (Japanese)
    std::optional<std::vector<MedicalRecordEntry>> records;  // when allowed: the item's records up to today
};

// 照会番号登録: a number for a consenting patient of this facility, named by the card fields (the birthdate may be
// absent: the 照会番号登録 file carries none; then the card fields must name one consenting patient).
struct ReferenceRegistrationRequest {
    std::string reference_number;
    CardFields card;
};
struct ReferenceRegistered {
    std::string reference_number;
    bool registered = false;  // false: the same registration again
};
// A CSV of registrations (reference_number,insurer_number,symbol,number,branch,birthdate), each line with its result.
struct ReferenceImport {
    int registered = 0;
    struct Line {
        int line = 0;
        std::optional<std::string> reference_number;  // as sent (at most 200 bytes)
        std::optional<std::string> result;            // 登録 or 登録済み
        std::optional<Message> error;
        std::optional<std::string> field;             // of the error, when the desk named one
    };
    std::vector<Line> results;
};

// A page of a history route, as the query gives it (issue 22 item 4: one call returned 136,000 entries, 42 MB of
// JSON): entries from `from` to `to` (ISO timestamps, inclusive; empty: unbounded), in time order, at most `limit`
// (default history_page, at most history_page_max) after `after` — the cursor the previous page gave as "next"
// (empty: the first page). The desk checks each, naming the field.
struct HistoryPage {
    std::string from, to, limit, after;
};
constexpr int history_page = 500, history_page_max = 5000;

class InquiryDesk {
public:
    explicit InquiryDesk(Context& x) : x_(x) {}
    EligibilityAnswer reinquiry(Caller const& c, EligibilityQuery const& q);
    MedicalInfoAnswer view_medical_info(Caller const& c, MedicalInfoQuery const& q);
    ReferenceRegistered register_reference_number(Caller const& c, ReferenceRegistrationRequest const& r);
    ReferenceImport register_reference_numbers_csv(Caller const& c, std::string const& csv);
    // 資格確認履歴 and 医療情報閲覧履歴, a page at a time (HistoryPage). `patient` (the five card fields) keeps one
    // person's 資格確認履歴 entries, however each route named them.
    HistoryEntries<InquiryLogEntry> inquiry_history(Caller const& c, HistoryPage const& page,
                                                    std::optional<CardFields> const& patient = std::nullopt);
    HistoryEntries<ViewingLogEntry> viewing_history(Caller const& c, HistoryPage const& page);

    // The one answer to "what is this person's eligibility", for every route that returns it: decided by the
    // rules on today's date (DecisionPath::eligibility); `requested_date` (a 資格確認日, ≤ today) only picks which
    // insurance period is shown. Writes 資格確認履歴 when `log` is given.
    static EligibilityAnswer answer_eligibility(Context& x, DecisionPath& decisions, Records& records,
                                                FacilityInfo const& facility, Lookup const& who,
                                                std::string const& category, std::string const& requested_date,
                                                Logging const* log);

private:
    Context& x_;
};

}  // namespace kyotaku::server
