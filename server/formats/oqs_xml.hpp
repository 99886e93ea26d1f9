// The オンライン資格確認 file formats that receipt computers already write and read (interfaces.md §1):
// XmlMsg / MessageHeader / MessageBody, Shift_JIS or UTF-8, for the bulk flow OQSmuquc (01req → 01res,
// 02req → 02res). pugixml reads and writes the XML; iconv converts Shift_JIS (as Windows' CP932).
#pragma once

#include "decision/batch_row.hpp"
#include "decision/eligibility_answer.hpp"

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kyotaku::server {

// The encoding named by the XML declaration (upper-case), "UTF-8" when there is none.
std::string declared_encoding(std::string_view xml);
// The encoding to answer a request in: its declared one when this system writes it (UTF-8 or Shift_JIS),
// UTF-8 otherwise.
std::string answer_encoding(std::string_view xml);
// Converts between an encoding and UTF-8; throws Error (invalid, field "encoding") on bytes that do not convert.
// A file without an encoding declaration whose bytes are not UTF-8 is read as Shift_JIS (CP932), as receipt
// computers write it; a file declared UTF-8 that is not is refused.
std::string to_utf8(std::string_view bytes, std::string const& encoding);
std::string from_utf8(std::string const& utf8, std::string const& encoding);

// What a Shift_JIS answer could not hold. Every answer below is written in its request's encoding; in Shift_JIS
// (CP932) a character CP932 has no code for — 外字 such as 𠮷 (JIS X 0213 plane 2) or 𡈽 — is written as 〓 (U+3013
// GETA MARK), the substitute the real system's files use, and a variation selector after a character is dropped:
// an answer never fails for a character. A UTF-8 answer keeps every character. The writers add here how many they
// substituted, per unit (1-based: the row of a bulk answer, 1 for the single answer's body; 0: outside any unit), so
// that the server can count them (/metrics) and log the rows.
struct Substitutions {
    std::size_t characters = 0;
    std::vector<std::pair<std::size_t, std::size_t>> units;  // (unit, characters), for the units that had any
    void add(std::size_t unit, std::size_t n) {
        characters += n;
        units.emplace_back(unit, n);
    }
};

// OQSmuquc01req: 資格確認一括照会 upload.
struct BulkUpload {
    std::string encoding;            // of the request; the answers use the same
    std::string query_date;          // QualificationConfirmationDate, ISO
    std::string facility_code;       // MedicalInstitutionCode
    std::string file_identifier;     // ArbitraryFileIdentifier
    int treatment_flag = 2;          // MedicalTreatmentFlag: 2 訪問診療等, 3 オンライン診療等 (absent: 2)
    std::vector<RowQuery> rows;      // each: the card fields and ArbitraryIdentifier (the Birthdate as ISO when it is
                                     // yyyyMMdd, else as sent: the row's own error), and the echo: the
                                     // QualificationConfirmSearchInfo as sent, in order
};
BulkUpload parse_bulk_upload(std::string const& bytes);

// OQSmuquc01res: the reception number (or the upload's error).
// Every result takes its ProcessExecutionTime (yyyyMMddHHmmss, the server's clock) from the caller.
std::string bulk_upload_result(BulkUpload const& up, std::string const& reception_number, std::string const& error_code,
                               std::string const& error_message, std::string const& executed_at,
                               Substitutions* lost = nullptr);

// An 01res saying the file itself was refused (EKY0901), in the request's answer encoding.
std::string file_error_result(std::string const& request, std::string const& facility_code,
                              std::string const& file_identifier, std::string const& message,
                              std::string const& executed_at, Substitutions* lost = nullptr);

// OQSmuquc02req: the download request.
struct BulkDownload {
    std::string encoding, facility_code, reception_number;
};
BulkDownload parse_bulk_download(std::string const& bytes);

// OQSmuquc02res: the results (`rows` empty while SegmentOfResult is 2 処理中).
struct BulkJobInfo {
    std::string reception_number, facility_code, file_identifier, query_date;
    bool finished = false;
};
// One answered unit of a result file (a BulkConfirmUnit of an 02res, or the body of a single 01res): the search
// info as sent, and the eligibility answer (ProcessingResultStatus 1 when it allows, with the 資格情報; 2 with its
// reason when it refuses), or why the row could not be asked, or a 照会番号 registration's result. The OQS XML codec of
// an EligibilityAnswer.
struct OqsUnit {
    Echo echo;                                               // the QualificationConfirmSearchInfo (or
                                                             // ReferenceNumberRegistrationInfo) as sent, in order
    std::optional<EligibilityAnswer> answer;                 // the row was asked
    std::string error;                                       // the row could not be asked (or registered): why
    std::optional<std::string> consent_date;                 // ISO; the consented-patient downloads
    std::optional<bool> registration;                        // a 照会番号 registration's result (OQSmuimm02res)
};
std::string bulk_result(BulkJobInfo const& job, std::vector<OqsUnit> const& rows, std::string const& encoding,
                        std::string const& executed_at, Substitutions* lost = nullptr);

// OQSmuhvq01req / OQSmuonq01req: 同意済資格情報一括取得 — the facility's consented patients whose consent date
// (the first visit) falls in a range. MedicalTreatmentFlag 2 訪問診療等, 3 オンライン診療等.
struct ConsentedDownload {
    std::string encoding, facility_code, file_identifier, query_date;  // QualificationConfirmationDate, ISO
    int treatment_flag = 2;
    std::string from, to;  // ConsentDateFrom / ConsentDateTo, ISO (inclusive)
};
ConsentedDownload parse_consented_download(std::string const& bytes);

// OQSsiimm01req: 照会番号登録 — ReferenceNumberRegistrationInfo{ReferenceNumber, InsurerNumber, InsuredCardSymbol,
// InsuredIdentificationNumber, InsuredBranchNumber} (a Birthdate is accepted when sent).
struct ReferenceRegistration {
    std::string encoding = "UTF-8", facility_code, file_identifier, reference_number;
    RowRegistration request;  // the number and the card fields (the birthdate when sent); no echo
};
ReferenceRegistration parse_reference_registration(std::string const& bytes);
// OQSmuimm01req: the same in bulk, one ReferenceNumberRegistrationInfo per patient.
struct ReferenceRegistrations {
    std::string encoding = "UTF-8", facility_code, file_identifier;
    std::vector<BatchRow> requests;  // each a RowRegistration with its echo, or a RowUnread (why, and the echo)
};
ReferenceRegistrations parse_reference_registrations(std::string const& bytes);
std::string reference_registration_result(ReferenceRegistration const& reg, std::string const& error_code,
                                          std::string const& message, std::string const& executed_at,
                                          Substitutions* lost = nullptr);

// OQSsiquc01res: the single 資格確認's answer to an OQSsiquc01req (parsed like an upload with one search info).
std::string single_result(BulkUpload const& request, OqsUnit const& unit, std::string const& executed_at,
                          Substitutions* lost = nullptr);

// ProcessingResultCode values of this reference system (the real list is not public): one table.
struct ResultCode {
    char const* code;
    char const* meaning;
};
std::vector<ResultCode> const& processing_result_codes();

}  // namespace kyotaku::server
