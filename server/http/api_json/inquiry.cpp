// The JSON of 再照会, 薬剤情報等の閲覧, 照会番号 and the histories (docs/api.md "再照会", "照会番号", "履歴").
#include "http/api_json.hpp"

#include "formats/eligibility_json.hpp"
#include "formats/fields.hpp"
#include "http/json_codec.hpp"

#include <optional>
#include <string>

namespace kyotaku::server::api_json {

namespace {
json text_or_null(std::optional<std::string> const& v) { return v ? json(*v) : json(nullptr); }

template <class Entry>
json page_json(HistoryEntries<Entry> const& page, json (*entry)(Entry const&)) {
    json entries = json::array();
    for (auto const& e : page.entries) entries.push_back(entry(e));
    return json{{"entries", entries}, {"next", text_or_null(page.next)}};
}

// A stored detail as read back: a JSON object at most 8 levels deep (nlohmann's parser keeps its own stack; the
// callback refuses deeper values, so neither the parse nor the answer's dump recurses as deep as the text asks);
// nullopt for anything else — one damaged row is answered as such, never a 500 for the page.
std::optional<json> stored_detail(std::string const& text) {
    constexpr int max_depth = 8;
    bool too_deep = false;
    json j = json::parse(
        text,
        [&](int depth, json::parse_event_t, json&) {
            if (depth > max_depth) too_deep = true;
            return !too_deep;
        },
        false);
    if (too_deep || j.is_discarded() || !j.is_object()) return std::nullopt;
    return j;
}
}  // namespace

EligibilityQuery eligibility_query(json const& body) {
    Fields f(body, {"category", "reference_number", "insurer_number", "symbol", "number", "branch", "birthdate",
                    "query_date"});
    return {f.text("category"), f.maybe_text("query_date"), f.maybe_text("reference_number"), card_fields(f)};
}

MedicalInfoQuery medical_info_query(json const& body) {
    Fields f(body,
             {"category", "item", "reference_number", "insurer_number", "symbol", "number", "branch", "birthdate"});
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
        for (auto const& r : *a.records)
            records.push_back(json{{"recorded_on", r.recorded_on}, {"content", json::parse(r.content_json)}});
        out["records"] = records;
    }
    return out;
}

HttpResult answer(ReferenceRegistered const& r) {
    // 201 for a new number, 200 for the same registration again.
    return json_result(r.registered ? 201 : 200,
                       json{{"reference_number", r.reference_number}, {"registered", r.registered}});
}

json to_json(ReferenceImport const& r) {
    json results = json::array();
    for (auto const& line : r.results) {
        json row{{"line", line.line}};
        if (line.reference_number) row["reference_number"] = *line.reference_number;
        if (line.result) row["result"] = *line.result;
        if (line.error) row["error"] = line.error->text();
        if (line.field) row["field"] = *line.field;
        results.push_back(row);
    }
    return json{{"registered", r.registered}, {"results", results}};
}

json to_json(HistoryEntries<InquiryLogEntry> const& page) {
    return page_json<InquiryLogEntry>(page, [](InquiryLogEntry const& e) {
        std::optional<json> detail = stored_detail(e.detail_json);
        json entry{{"at", e.at},
                   {"kind", e.kind},
                   {"allowed", e.allowed},
                   {"actor", text_or_null(e.actor)},
                   {"reception_number", text_or_null(e.reception_number)},
                   {"patient", detail && detail->contains("patient") ? (*detail)["patient"] : json(nullptr)}};
        if (detail) {
            entry["detail"] = std::move(*detail);
        } else {
            entry["detail"] = nullptr;
            entry["error"] = "この履歴の詳細は読めません（記録が損なわれています） / the stored detail cannot be read";
        }
        return entry;
    });
}

json to_json(HistoryEntries<ViewingLogEntry> const& page) {
    return page_json<ViewingLogEntry>(page, [](ViewingLogEntry const& e) {
        return json{{"at", e.at},
                    {"item", e.item},
                    {"terminal", e.terminal},
                    {"allowed", e.allowed},
                    {"reason", e.reason}};
    });
}

}  // namespace kyotaku::server::api_json
