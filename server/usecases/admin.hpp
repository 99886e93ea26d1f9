// テスト用データセットアップ and the operator's tasks (operator certificate only): the reference system's stand-ins
// for what the real system gets from insurers, J-LIS and its own operators. Requests and answers are domain types;
// http/api_json.hpp reads and writes them.
#pragma once

#include "usecases/context.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kyotaku::server {

struct NewFacility {
    std::string code, name, kind;
};

struct NewInsuredPerson {
    CardFields card;
    std::string name;
    std::string name_kana;  // may be empty
    std::string burden_ratio;
    std::string valid_from;                  // a date as sent
    std::optional<std::string> valid_to;     // a date as sent
    std::optional<std::string> card_classification, personal_family;
    std::string loss_reason, person_key;     // may be empty
};
struct InsuredPersonAdded {
    std::string id, person_key;
};

// Test data: a consent as if registered on `first_visit`.
struct TestConsent {
    std::string facility_code, person_key, visit_kind;
    std::string first_visit;  // a date as sent
    std::string identity_method;
    TextList items;
    std::optional<std::string> appointment_date;  // a date as sent
    bool preparatory_visit = false;               // 準備のための訪問 (the facility's kind must offer it)
};

struct ConsentListing {
    std::string id, person_key, visit_kind, first_visit, registered_at;
    std::optional<std::string> withdrawn_at;
    std::string identity_method;
    std::vector<std::string> items;
    std::optional<std::string> appointment_date;
    bool preparatory_visit = false;
    std::optional<std::string> withdrawn_by;  // who withdrew it (the patient, or the facility's 管理者)
};

struct NewMedicalRecord {
    std::string person_key, item;
    std::string recorded_on;   // a date as sent
    std::string content_json;  // the record's content: a JSON object, stored and shown as it is
};

struct CardRegistration {
    std::string person_key, certificate;
};

// One refused line of an imported file.
struct LineError {
    int line = 0;
    std::string field;
    Message message;
};
struct ClaimReviewImport {
    int imported = 0;
    std::vector<LineError> errors;
};

class AdminDesk {
public:
    explicit AdminDesk(Context& x) : x_(x) {}
    NewFacility create_facility(Caller const& c, NewFacility const& f);
    InsuredPersonAdded add_insured_person(Caller const& c, NewInsuredPerson const& p);
    std::string add_consent(Caller const& c, TestConsent const& consent);  // → its id
    std::vector<ConsentListing> list_consents(Caller const& c, std::string const& facility_code);
    std::string add_medical_record(Caller const& c, NewMedicalRecord const& record);  // → its id
    // → the certificate's fingerprint
    std::string register_card(Caller const& c, CardRegistration const& card);
    std::uint32_t rotate_url_key(Caller const& c);                                     // → the new key's version
    // レセプト審査結果 from the review organisations (支払基金・国保連), the continuity evidence of the rules: CSV
    // facility_code,insurer_number,symbol,number,branch,birthdate,month,reviewed_on. Never from a facility: a
    // facility that could post its own reviewed claims would choose its own continuity.
    ClaimReviewImport import_claim_reviews(Caller const& c, std::string const& csv);
    // Moves the test clock to `today` (a date as sent); a conflict when the server runs on the machine's clock. → the
    // server's date after the move.
    std::string set_clock(Caller const& c, std::string const& today);

private:
    Context& x_;
};

}  // namespace kyotaku::server
