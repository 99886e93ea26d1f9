// The JSON API's codec, at the edge: each route's body becomes its desk's request — the route's field allow-list and
// the JSON types are checked here (formats/fields.hpp: an unknown field is a 400 naming it) — and each desk's answer
// becomes the JSON that docs/api.md documents, with its status where the answer decides it. The desks (usecases/)
// know no JSON; they check the values.
#pragma once

#include "http/http_result.hpp"
#include "usecases/admin.hpp"
#include "usecases/batch.hpp"
#include "usecases/consent.hpp"
#include "usecases/handoff.hpp"
#include "usecases/inquiry.hpp"
#include "usecases/ledger.hpp"
#include "usecases/settings.hpp"
#include "usecases/withdrawal.hpp"

#include <nlohmann/json.hpp>

#include <string>
#include <utility>
#include <vector>

namespace kyotaku::server::api_json {

using json = nlohmann::json;

// Requests, each from a body parsed by parse_json_body (json_codec.hpp).
NewFacility new_facility(json const& body);                    // POST /api/v1/admin/facilities
NewInsuredPerson new_insured_person(json const& body);         // POST /api/v1/admin/insured-persons
TestConsent test_consent(json const& body);                    // POST /api/v1/admin/consents
NewMedicalRecord new_medical_record(json const& body);         // POST /api/v1/admin/medical-records
CardRegistration card_registration(json const& body);          // POST /api/v1/admin/cards
std::string clock_day(json const& body);                       // POST /api/v1/admin/clock: today
SettingsChange settings_change(json const& body);              // PUT /api/v1/settings
NewDevice new_device(json const& body);                        // POST /api/v1/devices
NewDeviceCheck new_device_check(json const& body);             // POST /api/v1/devices/{device_id}/checks
FallbackVerification fallback_verification(json const& body);  // POST /api/v1/fallback-verifications
EligibilityQuery eligibility_query(json const& body);          // POST /api/v1/reinquiry
MedicalInfoQuery medical_info_query(json const& body);         // POST /api/v1/medical-info
ReferenceRegistrationRequest reference_registration(json const& body);  // POST /api/v1/reference-numbers (JSON)
std::string challenge_token(json const& body);                 // POST /api/v1/consent/challenge: token
ConsentSubmission consent_registration(json const& body);    // POST /api/v1/consent/register
HandoffStart handoff_start(json const& body);                  // POST /api/v1/consent/handoff
std::pair<std::string, std::string> handoff_claim(json const& body);  // POST /api/v1/consent/handoff/claim: token, code
HandoffChallengeRequest handoff_challenge(json const& body);    // POST /api/v1/consent/handoff/challenge
HandoffRegistration handoff_registration(json const& body);    // POST /api/v1/consent/handoff/register
CardFields withdrawal_lookup(json const& body);                // POST /api/v1/withdrawal/lookup
WithdrawalRequest withdrawal(json const& body);                // POST /api/v1/withdrawal

// Answers.
json to_json(NewFacility const& f);
json to_json(InsuredPersonAdded const& p);
json to_json(std::vector<ConsentListing> const& consents);
json to_json(ClaimReviewImport const& r);
json to_json(WhoAmI const& w);
json to_json(Settings const& s);
json to_json(SettingsView const& v);
json to_json(std::vector<SettingsAuditEntry> const& entries);
json to_json(FacilityUrl const& u);
json to_json(Recorded const& r);
json to_json(std::vector<Device> const& devices);
json to_json(std::vector<DeviceCheck> const& checks);
json to_json(ConsentPage const& p);
json to_json(Challenge const& c);
json to_json(VisualPasscode const& p);
HttpResult answer(RegisteredConsent const& r);  // 201, or 200 for the same registration sent again
json to_json(HandoffCreated const& h);
json to_json(HandoffStatus const& s);
json to_json(HandoffClaimed const& c);
json to_json(EligibilityAnswer const& a);  // formats/eligibility_json.hpp: the same fields in a batch's rows
json to_json(MedicalInfoAnswer const& a);
HttpResult answer(ReferenceRegistered const& r);  // 201, or 200 for the same registration again
json to_json(ReferenceImport const& r);
json to_json(HistoryEntries<InquiryLogEntry> const& page);
json to_json(HistoryEntries<ViewingLogEntry> const& page);
json to_json(WithdrawalPerson const& p);
json to_json(Withdrawn const& w);
json to_json(BatchAccepted const& a);  // POST /api/v1/batch/reinquiry (202)
json to_json(BatchStatus const& s);    // GET /api/v1/batch/reinquiry/{reception_number}
// One line of GET /api/v1/batch/reinquiry/{reception_number}/result (NDJSON): the row's answer with its number.
std::string result_line(std::int64_t row, BatchRowAnswer const& answer);

}  // namespace kyotaku::server::api_json
