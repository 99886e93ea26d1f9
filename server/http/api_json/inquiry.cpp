// The JSON of 再照会, 薬剤情報等の閲覧, 照会番号 and the histories (docs/api.md "再照会", "照会番号", "履歴").
#include "http/api_json.hpp"

#include "formats/eligibility_json.hpp"
#include "formats/fields.hpp"
#include "http/json_codec.hpp"

namespace kyotaku::server::api_json {

EligibilityQuery eligibility_query(json const& body) {
    Fields f(body, {"category", "reference_number", "insurer_number", "symbol", "number", "branch", "birthdate", "query_date"});
    return {f.text("category"), f.maybe_text("query_date"), f.maybe_text("reference_number"), card_fields(f)};
}

MedicalInfoQuery medical_info_query(json const& body) {
    Fields f(body, {"category", "item", "reference_number", "insurer_number", "symbol", "number", "branch", "birthdate"});
    return {f.text("category"), f.text("item"), f.maybe_text("reference_number"), card_fields(f)};
}

ReferenceRegistrationRequest reference_registration(json const& body) {
    Fields f(body, {"reference_number", "insurer_number", "symbol", "number", "branch", "birthdate"});
    return {f.text("reference_number"), card_fields(f)};
}

json to_json(EligibilityAnswer const& a) { return eligibility_answer_json(a); }

json to_json(MedicalInfoAnswer const& a) {
    json out{{"allowed", a.allowed}, {"reason", a.reason}};
    if (a.records) {
        json records = json::array();
        for (auto const& r : *a.records) records.push_back(json{{"recorded_on", r.recorded_on}, {"content", json::parse(r.content_json)}});
        out["records"] = records;
    }
    return out;
}

HttpResult registered(ReferenceRegistered const& r) {
    return json_result(r.registered ? 201 : 200, json{{"reference_number", r.reference_number}, {"registered", r.registered}});
}

json to_json(ReferenceImport const& r) {
    json results = json::array();
    for (auto const& line : r.results) {
        json row{{"line", line.line}};
        if (line.reference_number) row["reference_number"] = *line.reference_number;
        if (line.result) row["result"] = *line.result;
        if (line.error) row["error"] = *line.error;
        if (line.field) row["field"] = *line.field;
        results.push_back(row);
    }
    return json{{"registered", r.registered}, {"results", results}};
}

json to_json(std::vector<InquiryLogEntry> const& entries) {
    json out = json::array();
    for (auto const& e : entries)
        out.push_back(json{{"at", e.at}, {"kind", e.kind}, {"allowed", e.allowed}, {"detail", json::parse(e.detail_json)}});
    return out;
}

json to_json(std::vector<ViewingLogEntry> const& entries) {
    json out = json::array();
    for (auto const& e : entries)
        out.push_back(json{{"at", e.at}, {"item", e.item}, {"terminal", e.terminal}, {"allowed", e.allowed}, {"reason", e.reason}});
    return out;
}

}  // namespace kyotaku::server::api_json
