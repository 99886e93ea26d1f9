// The JSON API's codec, at the edge: each route's body becomes its desk's request — the route's field allow-list and
// the JSON types are checked here (formats/fields.hpp: an unknown field is a 400 naming it) — and each desk's answer
// becomes the JSON that docs/api.md documents, with its status where the answer decides it. The desks (usecases/)
// know no JSON; they check the values. Typed so far: the admin, settings and ledger desks; consent, handoff, inquiry,
// withdrawal, batch and oqs_files still take and give JSON (issue 20 item 1, what is left: architecture.md).
#pragma once

#include "usecases/admin.hpp"
#include "usecases/ledger.hpp"
#include "usecases/settings.hpp"

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

}  // namespace kyotaku::server::api_json
