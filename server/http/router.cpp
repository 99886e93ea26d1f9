#include "http/router.hpp"

#include "storage/faults.hpp"

#include "core/url_token.hpp"
#include "formats/batch_csv.hpp"
#include "formats/eligibility_json.hpp"
#include "formats/fields.hpp"
#include "http/api_json.hpp"
#include "http/json_codec.hpp"
#include "ops/observability.hpp"
#include "ops/runtime.hpp"
#include "usecases/handoff.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <fstream>
#include <initializer_list>
#include <sstream>
#include <string_view>

namespace kyotaku::server {

namespace {
struct Request {
    std::string const& target;
    std::string const& content_type;
    std::string const& body;
    std::vector<std::string> params;  // the {…} segments of the route, in order
    std::string const& body_file;     // set instead of body for spooled uploads
    Site const& site;
    int client_fd;                    // the connection's socket (-1: none)
};

// Matches a path against a route pattern whose {name} segments match any one segment.
// Views, not copies: every route is tried against every request's path, so a copy per segment (and of the pattern)
// was an allocation per route tried.
bool match_route(std::string_view pattern, std::string_view path, std::vector<std::string>& params) {
    params.clear();
    std::size_t a = 0, b = 0;
    while (a < pattern.size() && b <= path.size()) {
        std::size_t ea = pattern.find('/', a), eb = path.find('/', b);
        std::string_view seg_p = pattern.substr(a, ea == std::string_view::npos ? std::string_view::npos : ea - a);
        std::string_view seg = path.substr(b, eb == std::string_view::npos ? std::string_view::npos : eb - b);
        if (seg_p.size() > 2 && seg_p.front() == '{' && seg_p.back() == '}') {
            if (seg.empty()) return false;
            params.emplace_back(seg);
        } else if (seg_p != seg) {
            return false;
        }
        if ((ea == std::string_view::npos) != (eb == std::string_view::npos)) return false;
        if (ea == std::string_view::npos) return true;
        a = ea + 1;
        b = eb + 1;
    }
    return pattern == path;
}
using Handler = HttpResult (*)(Service&, Caller const&, Request const&);
struct Route {
    char const* method;
    char const* path;
    Access access;
    Handler run;
};

// The file routes: an XML request in, an XML result out; a refused file's result with the status of its refusal.
template <FileAnswer (OqsDesk::*Answer)(Caller const&, std::string const&)>
HttpResult xml_file(Service& s, Caller const& c, Request const& r) {
    FileAnswer out = (s.oqs.*Answer)(c, r.body);
    return HttpResult{out.refused ? status_of(*out.refused) : 200, "application/xml", std::move(out.xml)};
}

// A history route's page, as its query gives it (the desk checks it).
HistoryPage history_page_of(std::string const& target) {
    return HistoryPage{query_param(target, "from"), query_param(target, "to"), query_param(target, "limit"),
                       query_param(target, "after")};
}

// What a route reads as its body (docs/api.md), checked before the route runs: JSON (application/json) unless listed
// here; a GET reads none; the file routes (/api/v1/oqs/…) read XML and check it themselves.
enum class Body { json, none, csv, json_or_csv, xml };
struct RouteBody {
    char const* method;
    char const* path;
    Body body;
};
constexpr std::array<RouteBody, 7> route_bodies{{
    {"POST", "/api/v1/admin/url-keys/rotate", Body::none},
    {"POST", "/api/v1/consent/handoff/{handoff_id}/cancel", Body::none},
    {"POST", "/api/v1/visual-passcode", Body::none},
    {"POST", "/api/v1/url/change", Body::none},
    {"POST", "/api/v1/admin/claim-reviews", Body::csv},
    {"POST", "/api/v1/batch/reinquiry", Body::csv},
    {"POST", "/api/v1/reference-numbers", Body::json_or_csv},
}};
Body body_of(std::string_view method, std::string_view path) {
    if (method == "GET") return Body::none;
    if (path.rfind("/api/v1/oqs/", 0) == 0) return Body::xml;
    for (auto const& b : route_bodies)
        if (method == b.method && path == b.path) return b.body;
    return Body::json;
}

// The media type of a Content-Type, without its parameters, in lower case ("application/json; charset=utf-8" →
// "application/json").
std::string media_type(std::string const& content_type) {
    std::string out = content_type.substr(0, content_type.find(';'));
    while (!out.empty() && (out.back() == ' ' || out.back() == '\t')) out.pop_back();
    for (auto& ch : out) ch = char(std::tolower(static_cast<unsigned char>(ch)));
    return out;
}

// The charset parameter of a Content-Type, in lower case without quotes; empty when there is none.
std::string charset_of(std::string const& content_type) {
    for (std::size_t at = content_type.find(';'); at != std::string::npos; at = content_type.find(';', at + 1)) {
        std::size_t begin = at + 1;
        while (begin < content_type.size() && (content_type[begin] == ' ' || content_type[begin] == '\t')) ++begin;
        std::string param = content_type.substr(begin, content_type.find(';', begin) - begin);
        for (auto& ch : param) ch = char(std::tolower(static_cast<unsigned char>(ch)));
        if (param.rfind("charset=", 0) != 0) continue;
        std::string value = param.substr(8);
        while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.pop_back();
        if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
        return value;
    }
    return {};
}

// The type as sent, when it is short printable ASCII (it is the caller's text).
std::string sent_type(std::string const& content_type) {
    bool const printable =
        !content_type.empty() && content_type.size() <= 100 &&
        std::all_of(content_type.begin(), content_type.end(), [](char ch) { return ch >= 0x20 && ch < 0x7f; });
    return printable ? "Content-Type: " + content_type : content_type.empty() ? "no Content-Type" : "this Content-Type";
}

// A body of one of `wanted`'s media types (compared without case, parameters apart), in UTF-8: a charset other than
// UTF-8 is refused too (the body would be read as UTF-8 all the same). 415 naming the field and the type sent.
bool media_is(std::string const& content_type, std::initializer_list<char const*> wanted) {
    std::string const type = media_type(content_type), charset = charset_of(content_type);
    if (!charset.empty() && charset != "utf-8" && charset != "utf8") return false;
    return std::any_of(wanted.begin(), wanted.end(), [&](char const* w) { return type == w; });
}

void require_csv(Request const& r) {
    if (media_is(r.content_type, {"text/csv"})) return;
    std::string const sent = sent_type(r.content_type);
    throw Error(Error::Kind::unsupported, "Content-Type",
                "text/csv (UTF-8) の本文が必要です (" + sent + " は受け取りません)",
                "the body must be text/csv in UTF-8, not " + sent);
}

// Refuses what a route does not take, naming it: a body on a route that takes none (an empty JSON object, {}, has no
// fields and is taken), and a JSON route's body of another type (415, naming the type sent).
void check_body(Body body, std::string const& method, std::string const& pattern, Request const& r) {
    std::string const route = method + " " + pattern;
    if (body == Body::none) {
        if (r.body.empty() && r.body_file.empty()) return;
        auto const empty_object = [&] {
            try {
                return r.body_file.empty() && r.body.size() <= 16 && parse_json_body(r.body).empty();
            } catch (Error const&) {
                return false;
            }
        };
        if (empty_object()) return;
        throw invalid("body", route + " は本文を受け取りません。本文を付けずに送ってください",
                      route + " takes no body: send none");
    }
    if (body != Body::json && body != Body::json_or_csv) return;
    if (media_is(r.content_type, {"application/json"}) ||
        (body == Body::json_or_csv && media_is(r.content_type, {"text/csv"})))
        return;
    std::string const sent = sent_type(r.content_type);
    std::string const wanted = body == Body::json ? "application/json" : "application/json or text/csv";
    throw Error(Error::Kind::unsupported, "Content-Type",
                route + " の本文は " + wanted + " です (" + sent +
                    " は受け取りません)。Content-Type: application/json を付けて送ってください",
                route + " takes " + wanted + ", not " + sent);
}

// Every route of the API, once, with who may call it. docs/api.md and docs/openapi.json list the same (a test
// checks it). The desks check the caller again; the table is what the documentation promises. A モバイル端末
// certificate (a 職員's device at the patient's home; an unlabelled certificate is one) re-inquires one patient
// (reinquiry, OQSsiquc01req), registers 照会番号 and reads its settings; what is facility-wide — batches and bulk
// downloads, the histories, the device ledger, the URL, 同意取消, the 管理者's routes — needs an office terminal
// (院内・事業所での操作 in the notice's quick guides; issue 24 item 11).
std::vector<Route> const& routes() {
    using A = Access;
    static std::vector<Route> const all{
        {"GET", "/healthz", A::anyone,
         [](Service&, Caller const&, Request const&) {
             return json_result(200, json{{"status", "ok"}});
         }},
        {"GET", "/readyz", A::anyone,
         [](Service&, Caller const&, Request const& r) {
             if (!r.site.runtime) return json_result(503, json{{"status", "not ready"}});
             json ready = r.site.runtime->readiness();
             return json_result(ready["status"] == "ready" ? 200 : 503, ready);
         }},
        // Operational figures, not personal data, but not for anyone on the internet either.
        {"GET", "/metrics", A::monitor,
         [](Service&, Caller const&, Request const& r) {
             if (!r.site.runtime)
                 throw Error(Error::Kind::not_found, "", "kyotaku serve の外では使えません",
                             "no metrics outside kyotaku serve");
             return HttpResult{200, "text/plain; version=0.0.4; charset=utf-8", r.site.runtime->metrics_text()};
         }},
        {"POST", "/api/v1/admin/facilities", A::operator_,
         [](Service& s, Caller const& c, Request const& r) {
             return json_result(201, api_json::to_json(
                                         s.admin.create_facility(c, api_json::new_facility(parse_json_body(r.body)))));
         }},
        {"POST", "/api/v1/admin/insured-persons", A::operator_,
         [](Service& s, Caller const& c, Request const& r) {
             return json_result(201, api_json::to_json(s.admin.add_insured_person(c, api_json::new_insured_person(
                                                                                         parse_json_body(r.body)))));
         }},
        {"POST", "/api/v1/admin/consents", A::operator_,
         [](Service& s, Caller const& c, Request const& r) {
             return json_result(201,
                                json{{"id", s.admin.add_consent(c, api_json::test_consent(parse_json_body(r.body)))}});
         }},
        {"GET", "/api/v1/admin/consents", A::operator_,
         [](Service& s, Caller const& c, Request const& r) {
             return json_result(200,
                                api_json::to_json(s.admin.list_consents(c, query_param(r.target, "facility_code"))));
         }},
        {"POST", "/api/v1/admin/medical-records", A::operator_,
         [](Service& s, Caller const& c, Request const& r) {
             return json_result(201, json{{"id", s.admin.add_medical_record(c, api_json::new_medical_record(
                                                                                   parse_json_body(r.body)))}});
         }},
        // The rule workbench's proofs (workbench_proofs.hpp): the rules being edited, proven by kyotaku prove on the
        // server.
        {"POST", "/api/v1/admin/rules/prove", A::operator_,
         [](Service&, Caller const& c, Request const& r) {
             if (!r.site.proofs) {
                 check_proof_request(r.body);  // a bad body is a 400 here too
                 throw Error(Error::Kind::unavailable, "",
                             "このサーバでは証明を実行しません。kyotaku prove rules で証明してください",
                             "no proofs on this server: run kyotaku prove");
             }
             return r.site.proofs->start(c, r.body, r.client_fd);
         }},
        {"POST", "/api/v1/admin/url-keys/rotate", A::operator_,
         [](Service& s, Caller const& c, Request const&) {
             return json_result(200, json{{"key_version", s.admin.rotate_url_key(c)}});
         }},
        {"POST", "/api/v1/admin/cards", A::operator_,
         [](Service& s, Caller const& c, Request const& r) {
             return json_result(201,
                                json{{"fingerprint",
                                      s.admin.register_card(c, api_json::card_registration(parse_json_body(r.body)))}});
         }},
        {"POST", "/api/v1/admin/clock", A::operator_,
         [](Service& s, Caller const& c, Request const& r) {
             return json_result(200,
                                json{{"today", s.admin.set_clock(c, api_json::clock_day(parse_json_body(r.body)))}});
         }},
        {"GET", "/api/v1/consent/page", A::anyone,
         [](Service& s, Caller const&, Request const& r) {
             return json_result(200, api_json::to_json(s.consent.page(query_param(r.target, "token"))));
         }},
        {"POST", "/api/v1/consent/challenge", A::anyone,
         [](Service& s, Caller const& c, Request const& r) {
             return json_result(201, api_json::to_json(s.consent.issue_challenge(c, api_json::challenge_token(
                                                                                        parse_json_body(r.body)))));
         }},
        {"POST", "/api/v1/consent/register", A::anyone,
         [](Service& s, Caller const& c, Request const& r) {
             return api_json::answer(
                 s.consent.register_consent(c, api_json::consent_registration(parse_json_body(r.body))));
         }},
        // 引き継ぎ (hand-off) to the staff's device with a reader: handoff.hpp.
        {"POST", "/api/v1/consent/handoff", A::anyone,
         [](Service& s, Caller const& c, Request const& r) {
             return json_result(201, api_json::to_json(
                                         s.handoffs().create(c, api_json::handoff_start(parse_json_body(r.body)))));
         }},
        {"POST", "/api/v1/consent/handoff/claim", A::anyone,
         [](Service& s, Caller const& c, Request const& r) {
             auto const [token, code] = api_json::handoff_claim(parse_json_body(r.body));
             return json_result(200, api_json::to_json(s.handoffs().claim(c, token, code)));
         }},
        {"POST", "/api/v1/consent/handoff/challenge", A::anyone,
         [](Service& s, Caller const& c, Request const& r) {
             return json_result(201, api_json::to_json(s.handoffs().challenge(c, api_json::handoff_challenge(
                                                                                     parse_json_body(r.body)))));
         }},
        {"POST", "/api/v1/consent/handoff/register", A::anyone,
         [](Service& s, Caller const& c, Request const& r) {
             return api_json::answer(
                 s.handoffs().register_consent(c, api_json::handoff_registration(parse_json_body(r.body))));
         }},
        {"GET", "/api/v1/consent/handoff/{handoff_id}", A::anyone,
         [](Service& s, Caller const&, Request const& r) {
             return json_result(200, api_json::to_json(s.handoffs().status(r.params[0])));
         }},
        {"POST", "/api/v1/consent/handoff/{handoff_id}/cancel", A::anyone,
         [](Service& s, Caller const&, Request const& r) {
             return json_result(200, api_json::to_json(s.handoffs().cancel(r.params[0])));
         }},
        // The passcode authorises a 目視確認 at the visit from the office: a device at the visit cannot authorise
        // itself.
        {"POST", "/api/v1/visual-passcode", A::office_terminal,
         [](Service& s, Caller const& c, Request const&) {
             return json_result(201, api_json::to_json(s.consent.visual_passcode(c)));
         }},
        {"GET", "/api/v1/whoami", A::facility,
         [](Service& s, Caller const& c, Request const&) {
             return json_result(200, api_json::to_json(s.settings.whoami(c)));
         }},
        {"GET", "/api/v1/settings", A::facility,
         [](Service& s, Caller const& c, Request const&) {
             return json_result(200, api_json::to_json(s.settings.get(c)));
         }},
        {"PUT", "/api/v1/settings", A::manager,
         [](Service& s, Caller const& c, Request const& r) {
             return json_result(200, api_json::to_json(
                                         s.settings.put(c, api_json::settings_change(parse_json_body(r.body)))));
         }},
        {"GET", "/api/v1/settings/audit", A::manager,
         [](Service& s, Caller const& c, Request const&) {
             return json_result(200, api_json::to_json(s.settings.audit(c)));
         }},
        {"GET", "/api/v1/url", A::office_terminal,
         [](Service& s, Caller const& c, Request const&) {
             return json_result(200, api_json::to_json(s.settings.url(c)));
         }},
        {"POST", "/api/v1/url/change", A::manager,
         [](Service& s, Caller const& c, Request const&) {
             return json_result(200, api_json::to_json(s.settings.change_url(c)));
         }},
        {"GET", "/api/v1/url/qr.svg", A::office_terminal,
         [](Service& s, Caller const& c, Request const&) {
             return HttpResult{200, "image/svg+xml", qr_svg(s.settings.url_text(c))};
         }},
        {"GET", "/api/v1/url/qr.png", A::office_terminal,
         [](Service& s, Caller const& c, Request const&) {
             return HttpResult{200, "image/png", qr_png(s.settings.url_text(c))};
         }},
        {"POST", "/api/v1/admin/claim-reviews", A::operator_,
         [](Service& s, Caller const& c, Request const& r) {
             require_csv(r);
             return json_result(200, api_json::to_json(s.admin.import_claim_reviews(c, r.body)));
         }},
        {"POST", "/api/v1/reinquiry", A::facility,
         [](Service& s, Caller const& c, Request const& r) {
             // (written without a JSON tree: formats/eligibility_json.hpp)
             return HttpResult{200, "application/json; charset=utf-8",
                               eligibility_answer_text(s.inquiry.reinquiry(
                                   c, api_json::eligibility_query(parse_json_body(r.body))))};
         }},
        {"POST", "/api/v1/medical-info", A::facility_or_mobile,
         [](Service& s, Caller const& c, Request const& r) {
             return json_result(200, api_json::to_json(s.inquiry.view_medical_info(c, api_json::medical_info_query(
                                                                                          parse_json_body(r.body)))));
         }},
        // 同意取消照会: 資格確認端末等 in the notice's quick guides, no role named (別添3): 職員 too, from an office
        // terminal (issue 24 item 6).
        {"POST", "/api/v1/withdrawal/lookup", A::office_terminal,
         [](Service& s, Caller const& c, Request const& r) {
             return json_result(200, api_json::to_json(
                                         s.withdrawal.lookup(c, api_json::withdrawal_lookup(parse_json_body(r.body)))));
         }},
        {"POST", "/api/v1/withdrawal", A::office_terminal,
         [](Service& s, Caller const& c, Request const& r) {
             return json_result(200, api_json::to_json(
                                         s.withdrawal.withdraw(c, api_json::withdrawal(parse_json_body(r.body)))));
         }},
        {"POST", "/api/v1/batch/reinquiry", A::office_terminal,
         [](Service& s, Caller const& c, Request const& r) {
             require_csv(r);
             std::string const category =
                 query_param(r.target, "category").empty() ? "訪問診療等" : query_param(r.target, "category");
             std::ifstream file;
             std::istringstream memory;
             std::istream* in = &memory;
             if (!r.body_file.empty()) {  // spooled by the session: read from the file, never whole in memory
                 file.open(r.body_file, std::ios::binary);
                 in = &file;
             } else {
                 memory.str(r.body);
             }
             CsvRows rows(*in);
             BatchUpload up{category, query_param(r.target, "query_date"), query_param(r.target, "file_identifier"),
                            "csv", [&rows](BatchRow& row) { return rows.next(row); }};
             return json_result(202, api_json::to_json(s.batch.upload(c, up)));
         }},
        {"GET", "/api/v1/batch/reinquiry/{reception_number}", A::office_terminal,
         [](Service& s, Caller const& c, Request const& r) {
             return json_result(200, api_json::to_json(s.batch.status(c, r.params[0])));
         }},
        {"GET", "/api/v1/batch/reinquiry/{reception_number}/result", A::office_terminal,
         [](Service& s, Caller const& c, Request const& r) {
             HttpResult out{200, "application/x-ndjson; charset=utf-8", ""};
             // Page by page: never the whole result at once.
             out.stream = [pages = s.batch.result_pages(c, r.params[0])] {
                 std::string text;
                 for (auto const& [row, answer] : pages()) text += api_json::result_line(row, answer);
                 return text;
             };
             return out;
         }},
        {"POST", "/api/v1/reference-numbers", A::facility,
         [](Service& s, Caller const& c, Request const& r) {
             if (media_is(r.content_type, {"text/csv"}))
                 return json_result(200, api_json::to_json(s.inquiry.register_reference_numbers_csv(c, r.body)));
             return api_json::answer(
                 s.inquiry.register_reference_number(c, api_json::reference_registration(parse_json_body(r.body))));
         }},
        {"POST", "/api/v1/fallback-verifications", A::office_terminal,
         [](Service& s, Caller const& c, Request const& r) {
             return json_result(201, api_json::to_json(s.ledger.record_fallback(c, api_json::fallback_verification(
                                                                                       parse_json_body(r.body)))));
         }},
        {"POST", "/api/v1/devices", A::manager,
         [](Service& s, Caller const& c, Request const& r) {
             return json_result(201, api_json::to_json(
                                         s.ledger.add_device(c, api_json::new_device(parse_json_body(r.body)))));
         }},
        {"GET", "/api/v1/devices", A::office_terminal,
         [](Service& s, Caller const& c, Request const&) {
             return json_result(200, api_json::to_json(s.ledger.list_devices(c)));
         }},
        {"POST", "/api/v1/devices/{device_id}/checks", A::manager,
         [](Service& s, Caller const& c, Request const& r) {
             return json_result(201, api_json::to_json(
                                         s.ledger.add_check(c, r.params[0],
                                                            api_json::new_device_check(parse_json_body(r.body)))));
         }},
        {"GET", "/api/v1/devices/{device_id}/checks", A::office_terminal,
         [](Service& s, Caller const& c, Request const& r) {
             return json_result(200, api_json::to_json(s.ledger.checks(c, r.params[0])));
         }},
        {"POST", "/api/v1/oqs/OQSmuquc01req", A::office_terminal, xml_file<&OqsDesk::bulk_upload>},
        {"POST", "/api/v1/oqs/OQSmuhvq01req", A::office_terminal, xml_file<&OqsDesk::consented_upload_home_care>},
        {"POST", "/api/v1/oqs/OQSmuonq01req", A::office_terminal, xml_file<&OqsDesk::consented_upload_online>},
        {"POST", "/api/v1/oqs/OQSsiquc01req", A::facility, xml_file<&OqsDesk::single>},
        {"POST", "/api/v1/oqs/OQSsiimm01req", A::facility, xml_file<&OqsDesk::reference_number>},
        {"POST", "/api/v1/oqs/OQSmuimm01req", A::office_terminal, xml_file<&OqsDesk::reference_numbers>},
        {"POST", "/api/v1/oqs/OQSmuquc02req", A::office_terminal, xml_file<&OqsDesk::bulk_download>},
        {"GET", "/api/v1/history/inquiries", A::office_terminal,
         [](Service& s, Caller const& c, Request const& r) {
             // One patient's entries: the card fields, each a query parameter (all five, or none).
             auto param = [&](char const* field) {
                 std::string v = query_param(r.target, field);
                 return v.empty() ? std::nullopt : std::optional<std::string>(v);
             };
             CardFields const card{param("insurer_number"), param("symbol"), param("number"), param("branch"),
                                   param("birthdate")};
             bool const any = card.insurer_number || card.symbol || card.number || card.branch || card.birthdate;
             return json_result(200,
                                api_json::to_json(s.inquiry.inquiry_history(c, history_page_of(r.target),
                                                                            any ? std::optional(card) : std::nullopt)));
         }},
        {"GET", "/api/v1/history/viewings", A::office_terminal,
         [](Service& s, Caller const& c, Request const& r) {
             return json_result(200, api_json::to_json(s.inquiry.viewing_history(c, history_page_of(r.target))));
         }},
    };
    return all;
}

}  // namespace

bool allowed(Access a, Caller const& c) {
    switch (a) {
        case Access::anyone: return true;
        case Access::operator_: return c.kind == Caller::Kind::admin;
        case Access::facility: return c.kind == Caller::Kind::facility;
        case Access::office_terminal: return c.kind == Caller::Kind::facility && c.terminal != "モバイル端末";
        // 管理者画面 is 院内・事業所での操作 (the notice's quick guide): a 管理者 on a モバイル端末 is refused too.
        case Access::manager: return allowed(Access::office_terminal, c) && c.role == Caller::Role::manager;
        case Access::facility_or_mobile: return c.kind == Caller::Kind::facility || c.kind == Caller::Kind::mobile;
        case Access::monitor:
            return c.kind == Caller::Kind::admin ||
                   (c.kind == Caller::Kind::anonymous && c.subject == "kyotaku-monitor");
    }
    return false;
}

// The routes whose answers can carry a patient's eligibility or medical information. Each answers through the
// decision path (InquiryDesk::answer_eligibility or DecisionPath::viewing); the route-table test probes each.
// (The relay sends OQSmuhvq02req, OQSmuonq02req and OQSmuimm02req files to the one download, OQSmuquc02req.)
constexpr std::array<std::pair<char const*, char const*>, 6> disclosing_routes{{
    {"POST", "/api/v1/reinquiry"},
    {"POST", "/api/v1/medical-info"},
    {"GET", "/api/v1/batch/reinquiry/{reception_number}/result"},
    {"POST", "/api/v1/oqs/OQSsiquc01req"},
    {"POST", "/api/v1/oqs/OQSmuquc02req"},
    {"POST", "/api/v1/withdrawal/lookup"},
}};

namespace {
// The consent page's files and the rule workbench: routes matched by their path's beginning, before the API's, each
// answering every method itself (405, or the workbench's own 403). `label` names the route in logs, metrics and
// route_table; `run` answers nullopt for a path under the prefix that is not one of its own.
struct PageRoute {
    char const* prefix;
    bool exact;  // the path is the prefix itself
    char const* label;
    Access access;  // what route_table documents; the handler checks it
    std::optional<HttpResult> (*run)(Service&, Caller const&, HttpRequest const&, std::string const& path, Site const&);
};

RulesWeb const& no_rules_web() {
    static RulesWeb const none;
    return none;
}
ConsentPageFiles const& no_page_files() {
    static ConsentPageFiles const none;
    return none;
}

std::optional<HttpResult> rules_web(Service&, Caller const& c, HttpRequest const& r, std::string const& path,
                                    Site const& site) {
    return rules_web_route(site.rules_web ? *site.rules_web : no_rules_web(), c, r.method, path);
}
std::optional<HttpResult> page_files(Service& s, Caller const&, HttpRequest const& r, std::string const& path,
                                     Site const& site) {
    return (site.pages ? *site.pages : no_page_files()).serve(s, r.method, path, r.page);
}

// The server's address alone (/: where the page is), the signed rule bundle's keys and the rule workbench
// (rules_web.cpp), then the consent page (/c/{token}) and its files (/web/{file}: static_files.cpp).
constexpr std::array<PageRoute, 5> page_routes{{
    {"/", true, "/", Access::anyone, page_files},
    {"/web/trust.json", true, "/web/{file}", Access::anyone, rules_web},
    {"/admin/workbench", false, "/admin/workbench/{file}", Access::operator_, rules_web},
    {"/c/", false, "/c/{token}", Access::anyone, page_files},
    {"/web/", false, "/web/{file}", Access::anyone, page_files},
}};
}  // namespace

std::vector<RouteInfo> route_table() {
    std::vector<RouteInfo> out;
    for (auto const& r : routes()) {
        bool discloses = false;
        for (auto const& [m, p] : disclosing_routes)
            discloses = discloses || (r.method == std::string_view(m) && r.path == std::string_view(p));
        out.push_back({r.method, r.path, r.access, discloses});
    }
    for (auto const& p : page_routes)
        if (std::none_of(out.begin(), out.end(), [&](RouteInfo const& i) { return i.path == p.label; }))
            out.push_back({"GET", p.label, p.access, false});
    return out;
}

std::vector<RouteInfo> patient_route_table() {
    std::vector<RouteInfo> out;
    for (auto const& r : route_table())
        if (r.access == Access::anyone) out.push_back(r);
    return out;
}

char const* access_name(Access a) {
    switch (a) {
        case Access::anyone: return "anyone";
        case Access::operator_: return "operator";
        case Access::facility: return "facility";
        case Access::office_terminal: return "office_terminal";
        case Access::manager: return "manager";
        case Access::facility_or_mobile: return "facility_or_mobile";
        case Access::monitor: return "monitor";
    }
    return "?";
}

namespace {
Error refusal(Access a) {
    return forbidden(a == Access::manager ? "施設の管理者の証明書 (院内・事業所の端末) が必要です"
                     : a == Access::office_terminal
                         ? "院内・事業所の端末 (資格確認端末・電子カルテ端末) の証明書が必要です"
                         : "この API を使える証明書ではありません",
                     std::string("this route needs: ") + access_name(a));
}
}  // namespace

BodyPlan plan_body(Caller const& caller, std::string const& method, std::string const& target,
                   ConnectionLimits const& limits) {
    BodyPlan plan{std::nullopt, limits.anonymous_body, false, {}};
    std::string const path = target.substr(0, target.find('?'));
    std::vector<std::string> params;
    for (auto const& r : routes()) {
        if (method != r.method || !match_route(r.path, path, params)) continue;
        plan.route = r.path;
        if (!allowed(r.access, caller)) {
            plan.refusal = error_result(refusal(r.access));
            return plan;  // a small body is read and refused by the route; a larger one is refused before it is read
        }
        bool const office = caller.kind == Caller::Kind::facility || caller.kind == Caller::Kind::admin;
        if (!office || r.access == Access::anyone) return plan;
        plan.spool = spooled_request(method, target);
        plan.limit = plan.spool                           ? limits.spooled_body
                     : path.rfind("/api/v1/oqs/", 0) == 0 ? limits.xml_body
                                                          : limits.memory_body;
        if (path == "/api/v1/admin/rules/prove") plan.limit = std::min(plan.limit, proof_body_limit(ProofSettings{}));
        return plan;
    }
    return plan;  // no such route (404/405 from Router::handle): nothing to read
}

bool spooled_request(std::string const& method, std::string const& target) {
    return method == "POST" && target.substr(0, target.find('?')) == "/api/v1/batch/reinquiry";
}

Router::Router(Service& service, Site site) : service_(service), site_(site) {}

HttpResult Router::handle(Caller const& caller, std::string const& method, std::string const& target,
                          std::string const& content_type, std::string const& body) const {
    return handle(caller, HttpRequest{method, target, content_type, body, {}, {}, -1, false});
}

HttpResult failure_result(std::exception_ptr failure) {
    try {
        std::rethrow_exception(failure);
    } catch (Error const& e) {
        return error_result(e);
    } catch (TransientDatabaseError const& e) {
        log_error("database", e.what());
        return unavailable_result();
    } catch (DatabaseError const& e) {
        log_error("database", e.what());
        return error_result(
            Error(Error::Kind::internal, "", "サーバ内部のエラー (データベース)", "internal error (database)"));
    } catch (std::exception const& e) {
        log_error("internal", e.what());
        return error_result(Error(Error::Kind::internal, "", "サーバ内部のエラー", "internal error"));
    }
}

HttpResult Router::handle(Caller const& caller, HttpRequest const& http) const {
    std::string const path = http.target.substr(0, http.target.find('?'));
    std::string route;
    std::string allow;  // the methods the path has (405's Allow header, RFC 9110 15.5.6)
    auto answer = [&]() -> HttpResult {
        for (auto const& p : page_routes) {
            if (p.exact ? path != p.prefix : path.rfind(p.prefix, 0) != 0) continue;
            if (http.patients_only && p.access != Access::anyone) {
                route = p.label;
                throw refusal(p.access);
            }
            if (auto r = p.run(service_, caller, http, path, site_)) {
                route = p.label;
                return std::move(*r);
            }
        }
        bool path_known = false;
        Request request{http.target, http.content_type, http.body, {}, http.body_file, site_, http.client_fd};
        for (auto const& r : routes()) {
            if (!match_route(r.path, path, request.params)) continue;
            path_known = true;
            route = r.path;
            if (http.method != r.method) {
                allow += (allow.empty() ? "" : ", ") + std::string(r.method);
                continue;
            }
            if ((http.patients_only && r.access != Access::anyone) || !allowed(r.access, caller))
                throw refusal(r.access);
            check_body(body_of(r.method, r.path), http.method, r.path, request);
            return r.run(service_, caller, request);
        }
        if (path_known)
            throw Error(Error::Kind::method_not_allowed, "", "このパスでは " + http.method + " は使えません",
                        "method not allowed");
        throw Error(Error::Kind::not_found, "", "そのような API はありません", "no such route: " + path);
    };
    HttpResult result;
    try {
        // A transient database fault (a connection a failover ended, a lost race) runs the request once more when
        // nothing of it was committed (storage/faults.hpp), on a connection that is alive.
        result = once_more_if_nothing_committed(service_.context.db.retries, answer);
    } catch (std::exception const&) {
        result = failure_result(std::current_exception());
    }
    if (result.status == 405 && !allow.empty()) result.headers.emplace_back("Allow", allow);
    result.route = std::move(route);
    return result;
}

}  // namespace kyotaku::server
