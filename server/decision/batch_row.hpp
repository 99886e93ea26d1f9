// The rows of a batch or file (資格確認一括照会, the consented-patient downloads, 照会番号 registrations in bulk),
// typed between the wire and the decision: a BatchRow is what a codec at the edge read (a CSV line, an OQS XML search
// info), or a patient the server picked from its own records; a BatchRowAnswer is what the row was answered — the
// one EligibilityAnswer, or why the row could not be asked — with what it repeats of its request. The store keeps
// both (storage/batch_jobs.hpp: the request as JSON, the answer in a compact form of its own, formats/batch_rows.hpp);
// each wire format has one codec for the answer (NDJSON: http/api_json.hpp; OQS XML: formats/oqs_xml.hpp). No JSON.
#pragma once

#include "core/codes.hpp"
#include "decision/eligibility_answer.hpp"

#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace kyotaku::server {

// An OQS file's search info (or registration info) as sent: [element name, text] pairs, in the file's order, echoed
// back in the row's result unit.
using Echo = std::vector<std::pair<std::string, std::string>>;

// A row that asks about a patient by the card fields: a CSV line of six columns, an OQS QualificationConfirmSearchInfo.
// The fields are as sent; the desk checks them when it answers the row (a bad one is that row's own error).
struct RowQuery {
    CardFields card;
    std::string arbitrary_identifier;  // repeated in the row's answer
    std::optional<Echo> echo;          // an OQS file's search info
    friend bool operator==(RowQuery const&, RowQuery const&) = default;
};

// A row the codec could not read as one: answered with its own error. Without `field`, `text` is the line as sent (cut
// at 200 bytes: a CSV line that is not six columns) — or, for a registration, why it could not be read; with `field`,
// a field refused as it was read (`text` is the error).
struct RowUnread {
    std::string text;
    std::optional<std::string> field;
    std::optional<Echo> echo;
    friend bool operator==(RowUnread const&, RowUnread const&) = default;
};

// A consented patient of the facility (OQSmuhvq01req / OQSmuonq01req): picked by the server from its own consents,
// never named by the caller.
struct RowConsented {
    std::string person, consent_date, visit_kind;
    friend bool operator==(RowConsented const&, RowConsented const&) = default;
};

// A 照会番号 registration of a file (OQSmuimm01req): the number and the card fields as sent (the birthdate only when
// the file has one).
struct RowRegistration {
    std::string reference_number;
    CardFields card;
    Echo echo;
    friend bool operator==(RowRegistration const&, RowRegistration const&) = default;
};

using BatchRow = std::variant<RowQuery, RowUnread, RowConsented, RowRegistration>;

// What a row was answered. Exactly one of: `answer` (the row was asked: ProcessingResultStatus 1, whether the
// rules allow or refuse), `error` (the row could not be asked: ProcessingResultStatus 2, "ja / en" as the wire
// shows it, and the field it names when one), or `registration` (a 照会番号 registration's result, with `error` when
// it was refused). The rest repeats the request.
struct BatchRowAnswer {
    std::optional<EligibilityAnswer> answer;
    std::optional<std::string> error;
    std::optional<std::string> field;
    std::optional<bool> registration;
    std::optional<std::string> arbitrary_identifier;
    std::optional<Echo> echo;
    std::optional<std::string> consent_date;  // ISO: the consent a consented-patient download's row rests on
};

}  // namespace kyotaku::server
