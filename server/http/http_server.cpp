#include "http/http_server.hpp"
#include "http/rules_web.hpp"
#include "kyotaku/signing.hpp"

#include "usecases/handoff.hpp"
#include "http/static_files.hpp"
#include "http/idempotency.hpp"
#include "http/limits.hpp"
#include "ops/observability.hpp"
#include "ops/runtime.hpp"
#include "core/url_token.hpp"

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast.hpp>
#include <boost/beast/ssl.hpp>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

namespace kyotaku::server {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

namespace {

// Invalid UTF-8 that a database from before issue 10 may hold is answered as U+FFFD, never a 500.
HttpResult json_result(int status, json const& body) {
    return HttpResult{status, "application/json; charset=utf-8", body.dump(-1, ' ', false, json::error_handler_t::replace)};
}
HttpResult error_result(int status, std::string const& field, std::string const& message) {
    json e{{"error", message}};
    if (!field.empty()) e["field"] = field;
    return json_result(status, e);
}
int status_of(Error::Kind k) {
    switch (k) {
        case Error::Kind::invalid: return 400;
        case Error::Kind::forbidden: return 403;
        case Error::Kind::not_found: return 404;
        case Error::Kind::conflict: return 409;
        case Error::Kind::gone: return 410;
        case Error::Kind::too_large: return 413;
        case Error::Kind::too_many: return 429;
        case Error::Kind::unsupported: return 415;
        case Error::Kind::unavailable: return 503;
    }
    return 500;
}
// One error shape for every route: the Japanese and English texts as separate fields (and together in `error`).
HttpResult error_result(Error const& e) {
    json body{{"error", e.what()}, {"message_ja", e.ja}, {"message_en", e.en}};
    if (!e.field.empty()) body["field"] = e.field;
    return json_result(status_of(e.kind), body);
}

// Decodes %XX escapes and '+' of a query string value (category=%E8%A8%AA… for 訪問診療等).
std::string percent_decode(std::string const& s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
            std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
            out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
            i += 2;
        } else {
            out += s[i] == '+' ? ' ' : s[i];
        }
    }
    return out;
}

// The query parameter `name` of a target like /path?from=…&to=…, decoded.
std::string query_param(std::string const& target, std::string const& name) {
    auto q = target.find('?');
    if (q == std::string::npos) return {};
    std::string rest = target.substr(q + 1);
    std::size_t at = 0;
    while (at <= rest.size()) {
        std::size_t amp = rest.find('&', at);
        std::string pair = rest.substr(at, amp == std::string::npos ? std::string::npos : amp - at);
        if (pair.rfind(name + "=", 0) == 0) return percent_decode(pair.substr(name.size() + 1));
        if (amp == std::string::npos) break;
        at = amp + 1;
    }
    return {};
}

// A JSON body, parsed without letting its nesting depth choose anything: values deeper than `max_depth` are
// refused (nlohmann's parser keeps its own stack; the callback sees each value's depth).
json parse_json_body(std::string const& body) {
    constexpr int max_depth = 8;
    bool too_deep = false;
    json j = json::parse(
        body,
        [&](int depth, json::parse_event_t, json&) {
            if (depth > max_depth) too_deep = true;
            return !too_deep;  // once too deep, keep nothing more
        },
        false);
    if (too_deep) throw invalid("", "本文の入れ子が深すぎます", "the body is nested too deeply");
    if (j.is_discarded()) throw invalid("", "本文が JSON として読めません", "the body is not valid JSON");
    if (!j.is_object()) throw invalid("", "本文は JSON のオブジェクトです", "the body must be a JSON object");
    return j;
}

}  // namespace

namespace {
struct Request {
    std::string const& target;
    std::string const& content_type;
    std::string const& body;
    std::vector<std::string> params;  // the {…} segments of the route, in order
    std::string const& body_file;     // set instead of body for spooled uploads
};

// Matches a path against a route pattern whose {name} segments match any one segment.
bool match_route(std::string const& pattern, std::string const& path, std::vector<std::string>& params) {
    params.clear();
    std::size_t a = 0, b = 0;
    while (a < pattern.size() && b <= path.size()) {
        std::size_t ea = pattern.find('/', a), eb = path.find('/', b);
        std::string seg_p = pattern.substr(a, ea == std::string::npos ? std::string::npos : ea - a);
        std::string seg = path.substr(b, eb == std::string::npos ? std::string::npos : eb - b);
        if (seg_p.size() > 2 && seg_p.front() == '{' && seg_p.back() == '}') {
            if (seg.empty()) return false;
            params.push_back(seg);
        } else if (seg_p != seg) {
            return false;
        }
        if ((ea == std::string::npos) != (eb == std::string::npos)) return false;
        if (ea == std::string::npos) return true;
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

// The file routes: an XML request in, an XML result out, the status set by the desk.
template <std::string (OqsDesk::*Answer)(Caller const&, std::string const&, int&)>
HttpResult xml_file(Service& s, Caller const& c, Request const& r) {
    int status = 200;
    std::string out = (s.oqs.*Answer)(c, r.body, status);
    return HttpResult{status, "application/xml", out};
}

void require_csv(Request const& r) {
    if (r.content_type.rfind("text/csv", 0) != 0) throw Error(Error::Kind::unsupported, "", "text/csv の本文が必要です", "the body must be text/csv");
}

// Every route of the API, once, with who may call it. docs/api.md and docs/openapi.json list the same (a test
// checks it). The desks check the caller again; the table is what the documentation promises.
std::vector<Route> const& routes() {
    using A = Access;
    static std::vector<Route> const all{
        {"GET", "/healthz", A::anyone, [](Service&, Caller const&, Request const&) { return json_result(200, json{{"status", "ok"}}); }},
        {"GET", "/readyz", A::anyone,
         [](Service&, Caller const&, Request const&) {
             if (!runtime()) return json_result(503, json{{"status", "not ready"}});
             json ready = runtime()->readiness();
             return json_result(ready["status"] == "ready" ? 200 : 503, ready);
         }},
        // Operational figures, not personal data, but not for anyone on the internet either.
        {"GET", "/metrics", A::monitor,
         [](Service&, Caller const&, Request const&) {
             if (!runtime()) throw Error(Error::Kind::not_found, "", "kyotaku serve の外では使えません", "no metrics outside kyotaku serve");
             return HttpResult{200, "text/plain; version=0.0.4; charset=utf-8", runtime()->metrics_text()};
         }},
        {"POST", "/api/v1/admin/facilities", A::operator_,
         [](Service& s, Caller const& c, Request const& r) { return json_result(201, s.admin.create_facility(c, parse_json_body(r.body))); }},
        {"POST", "/api/v1/admin/insured-persons", A::operator_,
         [](Service& s, Caller const& c, Request const& r) { return json_result(201, s.admin.add_insured_person(c, parse_json_body(r.body))); }},
        {"POST", "/api/v1/admin/consents", A::operator_,
         [](Service& s, Caller const& c, Request const& r) { return json_result(201, s.admin.add_consent(c, parse_json_body(r.body))); }},
        {"GET", "/api/v1/admin/consents", A::operator_,
         [](Service& s, Caller const& c, Request const& r) { return json_result(200, s.admin.list_consents(c, query_param(r.target, "facility_code"))); }},
        {"POST", "/api/v1/admin/medical-records", A::operator_,
         [](Service& s, Caller const& c, Request const& r) { return json_result(201, s.admin.add_medical_record(c, parse_json_body(r.body))); }},
        {"POST", "/api/v1/admin/url-keys/rotate", A::operator_,
         [](Service& s, Caller const& c, Request const&) { return json_result(200, s.admin.rotate_url_key(c)); }},
        {"POST", "/api/v1/admin/cards", A::operator_,
         [](Service& s, Caller const& c, Request const& r) { return json_result(201, s.admin.register_card(c, parse_json_body(r.body))); }},
        {"POST", "/api/v1/admin/clock", A::operator_,
         [](Service& s, Caller const& c, Request const& r) { return json_result(200, s.admin.set_clock(c, parse_json_body(r.body))); }},
        {"GET", "/api/v1/consent/page", A::anyone,
         [](Service& s, Caller const&, Request const& r) { return json_result(200, s.consent.page(query_param(r.target, "token"))); }},
        {"POST", "/api/v1/consent/challenge", A::anyone,
         [](Service& s, Caller const&, Request const& r) { return json_result(201, s.consent.issue_challenge(parse_json_body(r.body))); }},
        {"POST", "/api/v1/consent/register", A::anyone,
         [](Service& s, Caller const&, Request const& r) {
             int status = 201;
             json out = s.consent.register_consent(parse_json_body(r.body), status);
             return json_result(status, out);
         }},
        // 引き継ぎ (hand-off) to the staff's device with a reader: handoff.hpp.
        {"POST", "/api/v1/consent/handoff", A::anyone,
         [](Service&, Caller const&, Request const& r) { return json_result(201, handoffs().create(parse_json_body(r.body))); }},
        {"POST", "/api/v1/consent/handoff/claim", A::anyone,
         [](Service&, Caller const&, Request const& r) { return json_result(200, handoffs().claim(parse_json_body(r.body))); }},
        {"POST", "/api/v1/consent/handoff/challenge", A::anyone,
         [](Service&, Caller const&, Request const& r) { return json_result(201, handoffs().challenge(parse_json_body(r.body))); }},
        {"POST", "/api/v1/consent/handoff/register", A::anyone,
         [](Service&, Caller const&, Request const& r) {
             int status = 201;
             json out = handoffs().register_consent(parse_json_body(r.body), status);
             return json_result(status, out);
         }},
        {"GET", "/api/v1/consent/handoff/{handoff_id}", A::anyone,
         [](Service&, Caller const&, Request const& r) { return json_result(200, handoffs().status(r.params[0])); }},
        {"POST", "/api/v1/consent/handoff/{handoff_id}/cancel", A::anyone,
         [](Service&, Caller const&, Request const& r) { return json_result(200, handoffs().cancel(r.params[0])); }},
        {"POST", "/api/v1/visual-passcode", A::facility,
         [](Service& s, Caller const& c, Request const&) { return json_result(201, s.consent.visual_passcode(c)); }},
        {"GET", "/api/v1/whoami", A::facility, [](Service& s, Caller const& c, Request const&) { return json_result(200, s.settings.whoami(c)); }},
        {"GET", "/api/v1/settings", A::facility, [](Service& s, Caller const& c, Request const&) { return json_result(200, s.settings.get(c)); }},
        {"PUT", "/api/v1/settings", A::manager,
         [](Service& s, Caller const& c, Request const& r) { return json_result(200, s.settings.put(c, parse_json_body(r.body))); }},
        {"GET", "/api/v1/settings/audit", A::manager, [](Service& s, Caller const& c, Request const&) { return json_result(200, s.settings.audit(c)); }},
        {"GET", "/api/v1/url", A::facility, [](Service& s, Caller const& c, Request const&) { return json_result(200, s.settings.url(c)); }},
        {"POST", "/api/v1/url/change", A::manager, [](Service& s, Caller const& c, Request const&) { return json_result(200, s.settings.change_url(c)); }},
        {"GET", "/api/v1/url/qr.svg", A::facility,
         [](Service& s, Caller const& c, Request const&) { return HttpResult{200, "image/svg+xml", qr_svg(s.settings.url_text(c))}; }},
        {"GET", "/api/v1/url/qr.png", A::facility,
         [](Service& s, Caller const& c, Request const&) { return HttpResult{200, "image/png", qr_png(s.settings.url_text(c))}; }},
        {"POST", "/api/v1/admin/claim-reviews", A::operator_,
         [](Service& s, Caller const& c, Request const& r) {
             require_csv(r);
             return json_result(200, s.admin.import_claim_reviews(c, r.body));
         }},
        {"POST", "/api/v1/reinquiry", A::facility,
         [](Service& s, Caller const& c, Request const& r) { return json_result(200, s.inquiry.reinquiry(c, parse_json_body(r.body))); }},
        {"POST", "/api/v1/medical-info", A::facility_or_mobile,
         [](Service& s, Caller const& c, Request const& r) { return json_result(200, s.inquiry.view_medical_info(c, parse_json_body(r.body))); }},
        {"POST", "/api/v1/withdrawal/lookup", A::manager,
         [](Service& s, Caller const& c, Request const& r) { return json_result(200, s.withdrawal.lookup(c, parse_json_body(r.body))); }},
        {"POST", "/api/v1/withdrawal", A::manager,
         [](Service& s, Caller const& c, Request const& r) { return json_result(200, s.withdrawal.withdraw(c, parse_json_body(r.body))); }},
        {"POST", "/api/v1/batch/reinquiry", A::facility,
         [](Service& s, Caller const& c, Request const& r) {
             require_csv(r);
             std::string const category = query_param(r.target, "category").empty() ? "訪問診療等" : query_param(r.target, "category");
             std::ifstream file;
             std::istringstream memory;
             std::istream* in = &memory;
             if (!r.body_file.empty()) {  // spooled by the session: read from the file, never whole in memory
                 file.open(r.body_file, std::ios::binary);
                 in = &file;
             } else {
                 memory.str(r.body);
             }
             return json_result(202, s.batch.upload_csv(c, category, query_param(r.target, "query_date"), query_param(r.target, "file_identifier"), *in));
         }},
        {"GET", "/api/v1/batch/reinquiry/{reception_number}", A::facility,
         [](Service& s, Caller const& c, Request const& r) { return json_result(200, s.batch.status(c, r.params[0])); }},
        {"GET", "/api/v1/batch/reinquiry/{reception_number}/result", A::facility,
         [](Service& s, Caller const& c, Request const& r) {
             HttpResult out{200, "application/x-ndjson; charset=utf-8", ""};
             out.stream = s.batch.result_pages(c, r.params[0]);  // page by page: never the whole result at once
             return out;
         }},
        {"POST", "/api/v1/reference-numbers", A::facility,
         [](Service& s, Caller const& c, Request const& r) {
             if (r.content_type.rfind("text/csv", 0) == 0) return json_result(200, s.inquiry.register_reference_numbers_csv(c, r.body));
             int status = 201;
             json out = s.inquiry.register_reference_number(c, parse_json_body(r.body), status);
             return json_result(status, out);
         }},
        {"POST", "/api/v1/fallback-verifications", A::facility,
         [](Service& s, Caller const& c, Request const& r) { return json_result(201, s.ledger.record_fallback(c, parse_json_body(r.body))); }},
        {"POST", "/api/v1/devices", A::manager,
         [](Service& s, Caller const& c, Request const& r) { return json_result(201, s.ledger.add_device(c, parse_json_body(r.body))); }},
        {"GET", "/api/v1/devices", A::facility, [](Service& s, Caller const& c, Request const&) { return json_result(200, s.ledger.list_devices(c)); }},
        {"POST", "/api/v1/devices/{device_id}/checks", A::manager,
         [](Service& s, Caller const& c, Request const& r) { return json_result(201, s.ledger.add_check(c, r.params[0], parse_json_body(r.body))); }},
        {"GET", "/api/v1/devices/{device_id}/checks", A::facility,
         [](Service& s, Caller const& c, Request const& r) { return json_result(200, s.ledger.checks(c, r.params[0])); }},
        {"POST", "/api/v1/oqs/OQSmuquc01req", A::facility, xml_file<&OqsDesk::bulk_upload>},
        {"POST", "/api/v1/oqs/OQSmuhvq01req", A::facility, xml_file<&OqsDesk::consented_upload_home_care>},
        {"POST", "/api/v1/oqs/OQSmuonq01req", A::facility, xml_file<&OqsDesk::consented_upload_online>},
        {"POST", "/api/v1/oqs/OQSsiquc01req", A::facility, xml_file<&OqsDesk::single>},
        {"POST", "/api/v1/oqs/OQSsiimm01req", A::facility, xml_file<&OqsDesk::reference_number>},
        {"POST", "/api/v1/oqs/OQSmuimm01req", A::facility, xml_file<&OqsDesk::reference_numbers>},
        {"POST", "/api/v1/oqs/OQSmuquc02req", A::facility, xml_file<&OqsDesk::bulk_download>},
        {"GET", "/api/v1/history/inquiries", A::facility,
         [](Service& s, Caller const& c, Request const& r) {
             return json_result(200, s.inquiry.inquiry_history(c, query_param(r.target, "from"), query_param(r.target, "to")));
         }},
        {"GET", "/api/v1/history/viewings", A::facility,
         [](Service& s, Caller const& c, Request const& r) {
             return json_result(200, s.inquiry.viewing_history(c, query_param(r.target, "from"), query_param(r.target, "to")));
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
        case Access::manager: return c.kind == Caller::Kind::facility && c.role == Caller::Role::manager;
        case Access::facility_or_mobile: return c.kind == Caller::Kind::facility || c.kind == Caller::Kind::mobile;
        case Access::monitor: return c.kind == Caller::Kind::admin || (c.kind == Caller::Kind::anonymous && c.subject == "kyotaku-monitor");
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

std::vector<RouteInfo> route_table() {
    std::vector<RouteInfo> out;
    for (auto const& r : routes()) {
        bool discloses = false;
        for (auto const& [m, p] : disclosing_routes) discloses = discloses || (r.method == std::string_view(m) && r.path == std::string_view(p));
        out.push_back({r.method, r.path, r.access, discloses});
    }
    out.push_back({"GET", "/c/{token}", Access::anyone, false});
    out.push_back({"GET", "/web/{file}", Access::anyone, false});
    out.push_back({"GET", "/admin/workbench/{file}", Access::operator_, false});  // rules_web.cpp
    return out;
}

char const* access_name(Access a) {
    switch (a) {
        case Access::anyone: return "anyone";
        case Access::operator_: return "operator";
        case Access::facility: return "facility";
        case Access::manager: return "manager";
        case Access::facility_or_mobile: return "facility_or_mobile";
        case Access::monitor: return "monitor";
    }
    return "?";
}

Caller caller_from_subject(Service& service, std::string const& cn, std::string const& ou, std::string const& title) {
    Caller c;
    c.subject = cn;
    if (cn == "kyotaku-admin") {
        c.kind = Caller::Kind::admin;
        return c;
    }
    if (cn.empty() || !service.facility_exists(cn)) return c;
    // The role is the subject's OU, the terminal kind its title (2.5.4.12): docs/api.md "Certificates". A
    // certificate that names an unknown role or terminal is nobody, not the weakest of them.
    if (ou == "管理者") c.role = Caller::Role::manager;
    else if (ou.empty() || ou == "職員") c.role = Caller::Role::staff;
    else return Caller{};
    if (title.empty()) c.terminal = "資格確認端末";
    else if (title == "資格確認端末" || title == "電子カルテ端末" || title == "モバイル端末") c.terminal = title;
    else return Caller{};
    c.kind = Caller::Kind::facility;
    c.facility_code = cn;
    c.subject = cn + (ou.empty() ? "" : " " + ou) + (title.empty() ? "" : " " + title);
    return c;
}

Caller mobile_caller(Service& service, std::string const& url_token) {
    Caller c;
    if (url_token.empty() || url_token.size() > 512) return c;
    auto check = service.settings.check_token(url_token);
    if (!check.facility_code) return c;
    c.kind = Caller::Kind::mobile;
    c.facility_code = *check.facility_code;
    c.subject = "モバイル端末";
    c.terminal = "モバイル端末";
    return c;
}

namespace {
Error refusal(Access a) {
    return forbidden(a == Access::manager ? "施設の管理者の証明書が必要です" : "この API を使える証明書ではありません",
                     std::string("this route needs: ") + access_name(a));
}
}  // namespace

BodyPlan plan_body(Caller const& caller, std::string const& method, std::string const& target, ConnectionLimits const& limits) {
    BodyPlan plan{std::nullopt, limits.anonymous_body, false};
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
        plan.limit = plan.spool ? limits.spooled_body : path.rfind("/api/v1/oqs/", 0) == 0 ? limits.xml_body : limits.memory_body;
        return plan;
    }
    return plan;  // no such route (404/405 from handle_request): nothing to read
}

bool spooled_request(std::string const& method, std::string const& target) {
    return method == "POST" && target.substr(0, target.find('?')) == "/api/v1/batch/reinquiry";
}

namespace {
HttpResult route_request(Service& service, Caller const& caller, std::string const& method, std::string const& target,
                         std::string const& content_type, std::string const& body, std::string const& body_file, std::string& route) {
    std::string path = target.substr(0, target.find('?'));
    // The signed rule bundle and its keys, and the rule workbench (rules_web.cpp).
    if (auto r = rules_web_route(caller, method, path)) {
        route = path.rfind("/web/", 0) == 0 ? "/web/{file}" : "/admin/workbench/";
        return *r;
    }
    // The consent page (/c/{token}) and its files (/web/{file}): static_files.cpp.
    if (auto page = serve_page_files(service, method, path)) {
        route = path.rfind("/c/", 0) == 0 ? "/c/{token}" : "/web/{file}";
        return *page;
    }
    bool path_known = false;
    Request request{target, content_type, body, {}, body_file};
    for (auto const& r : routes()) {
        if (!match_route(r.path, path, request.params)) continue;
        path_known = true;
        route = r.path;
        if (method != r.method) continue;
        try {
            if (!allowed(r.access, caller)) throw refusal(r.access);
            return r.run(service, caller, request);
        } catch (Error const& e) {
            return error_result(e);
        } catch (DatabaseError const& e) {
            log_error("database", e.what());
            return error_result(500, "", "サーバ内部のエラー (データベース) / internal error (database)");
        } catch (std::exception const& e) {
            log_error("internal", e.what());
            return error_result(500, "", "サーバ内部のエラー / internal error");
        }
    }
    if (path_known) return error_result(405, "", "このパスでは " + method + " は使えません / method not allowed");
    return error_result(404, "", "そのような API はありません / no such route: " + path);
}
}  // namespace

HttpResult handle_request(Service& service, Caller const& caller, std::string const& method, std::string const& target,
                          std::string const& content_type, std::string const& body, std::string const& body_file) {
    std::string route;
    HttpResult result = route_request(service, caller, method, target, content_type, body, body_file, route);
    result.route = std::move(route);
    return result;
}

namespace {

// One attribute of a certificate subject as UTF-8 ("" when absent); an attribute given twice is refused ("\x01").
std::string subject_attribute(X509_NAME* name, int nid) {
    int at = X509_NAME_get_index_by_NID(name, nid, -1);
    if (at < 0) return {};
    if (X509_NAME_get_index_by_NID(name, nid, at) >= 0) return "\x01";
    unsigned char* utf8 = nullptr;
    int n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, at)));
    if (n < 0) return "\x01";
    std::string out(reinterpret_cast<char*>(utf8), std::size_t(n));
    OPENSSL_free(utf8);
    return out;
}

Caller identify(SSL* ssl, Service& service) {
    X509* cert = SSL_get1_peer_certificate(ssl);
    if (!cert) return {};
    struct Free {
        X509* x;
        ~Free() { X509_free(x); }
    } free_cert{cert};
    if (SSL_get_verify_result(ssl) != X509_V_OK) return {};
    X509_NAME* name = X509_get_subject_name(cert);
    return caller_from_subject(service, subject_attribute(name, NID_commonName), subject_attribute(name, NID_organizationalUnitName),
                               subject_attribute(name, NID_title));
}

// What one request leaves behind: a log line and its metrics, written when the request ends (also when the
// client goes away mid-response).
struct RequestTrace {
    Runtime& rt;
    RequestRecord record;
    std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
    ~RequestTrace() {
        record.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        try {
            log_request(record);
            rt.requests.record(record);
        } catch (...) {  // out of memory while logging: the request is answered all the same
        }
    }
};

// The caller's role for the log: operator (kyotaku-admin), a facility's manager (管理者) or staff (職員), a
// モバイル端末 session, monitoring, or nobody.
char const* role_of(Caller const& c) {
    switch (c.kind) {
        case Caller::Kind::admin: return "operator";
        case Caller::Kind::facility: return c.role == Caller::Role::manager ? "manager" : "staff";
        case Caller::Kind::mobile: return "mobile";
        default: return c.subject == "kyotaku-monitor" ? "monitor" : "anonymous";
    }
}

// One connection: requests read within the limits (limits.hpp), each phase with its own deadline; a request's body is
// read only as far as its route takes from this caller (plan_body), large uploads spooled to the private directory.
net::awaitable<void> session(ssl::stream<beast::tcp_stream> stream, Runtime& rt, ConnectionLimits const& limits,
                             std::string const& spool_dir, ConnectionCounter::Slot) {
    ++rt.connections_open;
    struct Closed {
        Runtime& rt;
        ~Closed() { --rt.connections_open; }
    } closed{rt};
    Service& service = rt.service();
    auto& socket = beast::get_lowest_layer(stream);
    socket.expires_after(limits.handshake);
    co_await stream.async_handshake(ssl::stream_base::server, net::use_awaitable);
    Caller caller = identify(stream.native_handle(), rt.service());
    beast::flat_buffer buffer;
    for (;;) {
        beast::error_code ec;
        if (buffer.size() == 0) {  // waiting for the next request (keep-alive), then its header has its own deadline
            socket.expires_after(limits.idle);
            buffer.commit(co_await stream.async_read_some(buffer.prepare(4096), net::redirect_error(net::use_awaitable, ec)));
            if (ec) break;
        }
        http::request_parser<http::empty_body> head;
        head.header_limit(std::uint32_t(limits.header_bytes));
        // (Not boost::none: Boost 1.74 compares a content length against an empty optional as "too large".)
        head.body_limit(limits.spooled_body);
        socket.expires_after(limits.header);
        co_await http::async_read_header(stream, buffer, head, net::redirect_error(net::use_awaitable, ec));
        if (ec == http::error::end_of_stream || ec == net::ssl::error::stream_truncated || ec == net::error::eof || ec == beast::error::timeout ||
            ec == net::error::connection_reset)
            break;  // the client closed, or an idle connection timed out: nothing to answer
        RequestTrace trace{rt, {}};
        trace.record.request_id = new_id().substr(0, 16);
        std::string const method(head.get().method_string()), target(head.get().target());
        // The method as a label of logs and metrics: one of the known verbs, never the client's text (a label per
        // invented method would grow the metrics without bound).
        trace.record.method = head.get().method() == http::verb::unknown ? std::string("other") : method;
        Caller who = caller;
        try {
            if (!ec && caller.kind == Caller::Kind::anonymous && head.get().count("X-Kyotaku-Url-Token"))
                who = mobile_caller(service, std::string(head.get()["X-Kyotaku-Url-Token"]));
        } catch (std::exception const& e) {  // the database failing while a URL token is checked: the caller stays nobody
            log_error("url_token", e.what());
        }
        trace.record.role = role_of(who);
        trace.record.facility = who.facility_code;
        // body_limit here: the header is whole but announces more than any route takes (1 GiB); the route's plan
        // still decides between refusing the caller (403) and the size (413, naming the route's own limit).
        bool const header_whole = !ec || ec == http::error::body_limit;
        BodyPlan const plan = header_whole ? plan_body(who, method, target, limits) : BodyPlan{};
        std::optional<HttpResult> early;  // answered without reading the body
        if (!ec && head.content_length() && *head.content_length() > plan.limit) early = plan.refusal;
        if (!ec && head.content_length() && *head.content_length() > plan.limit && !early) ec = http::error::body_limit;
        std::optional<SpoolFile> spool;
        http::request<http::string_body> req;
        if (!ec && !early && plan.spool) {
            spool.emplace(spool_dir);
            http::request_parser<http::file_body> parser{std::move(head)};
            parser.body_limit(plan.limit);
            socket.expires_after(limits.upload);
            beast::file file;
            if (spool->ok()) file.native_handle(::dup(spool->fd));
            if (!spool->ok() || !file.is_open()) ec = http::error::body_limit;
            else parser.get().body().reset(std::move(file), ec);
            if (!ec) co_await http::async_read(stream, buffer, parser, net::redirect_error(net::use_awaitable, ec));
            if (!ec) {
                auto spooled = parser.release();
                spooled.body().close();
                std::error_code size_error;
                trace.record.bytes_in = std::filesystem::file_size(spool->path, size_error);
                req.base() = spooled.base();
            }
        } else if (!ec && !early) {
            http::request_parser<http::string_body> parser{std::move(head)};
            parser.body_limit(plan.limit);
            socket.expires_after(limits.body);
            co_await http::async_read(stream, buffer, parser, net::redirect_error(net::use_awaitable, ec));
            if (!ec) req = parser.release();
            trace.record.bytes_in = req.body().size();
        }
        if (ec == beast::error::timeout) break;
        http::response<http::string_body> res;
        if (ec || early) {
            // A malformed or oversized request is the client's mistake, a refused one is refused before its body is
            // read: answer 4xx, then close.
            if (ec == http::error::body_limit && plan.refusal) early = plan.refusal;
            HttpResult r = early                           ? *early
                           : ec == http::error::body_limit ? error_result(413, "", "本文が大きすぎます / body too large (at most " +
                                                                                    std::to_string(plan.limit) + " bytes for this route)")
                                                           : error_result(400, "", "HTTP リクエストが不正です / malformed request: " + ec.message());
            trace.record.status = r.status;
            trace.record.route = plan.route;
            trace.record.bytes_out = r.body.size();
            res.result(http::status(r.status));
            res.set(http::field::content_type, r.content_type);
            res.set("X-Request-Id", trace.record.request_id);
            res.body() = r.body;
            res.keep_alive(false);
            res.prepare_payload();
            socket.expires_after(limits.body);
            co_await http::async_write(stream, res, net::redirect_error(net::use_awaitable, ec));
            break;
        }
        Service& service = rt.service();
        // While the answer is computed the batch worker waits before its next chunk commits (interactive first);
        // not while it is written to a client, however slowly that client reads.
        struct End {
            Service& s;
            std::optional<std::uint64_t> ticket;
            void release() {
                if (ticket) s.request_end(*ticket);
                ticket.reset();
            }
            ~End() { release(); }
        } end{service, service.request_begin()};
        HttpResult r;
        try {
            RequestScope scope(trace.record.request_id);
            // The consent page's files depend on two request headers (encoding, revalidation): static_files.cpp.
            std::string const path = target.substr(0, target.find('?'));
            std::optional<HttpResult> page = rules_web_route(who, method, path);
            if (!page)
                page = serve_page_files(service, method, path,
                                        {std::string(req[http::field::accept_encoding]), std::string(req[http::field::if_none_match])});
            auto run = [&] {
                return handle_request(service, who, method, target, std::string(req[http::field::content_type]), req.body(),
                                      spool ? spool->path : std::string());
            };
            if (page) {
                r = std::move(*page);
                r.route = path.rfind("/c/", 0) == 0 ? "/c/{token}" : path.rfind("/admin/", 0) == 0 ? "/admin/workbench/" : "/web/{file}";
            } else {
                // The relay's file uploads carry an Idempotency-Key: a repeat gets the first answer, never a second job.
                r = req.count("Idempotency-Key") && idempotent_route(method, target)
                        ? answer_once(rt.database(), who, std::string(req["Idempotency-Key"]), req.body(), run)
                        : run();
            }
        } catch (std::exception const& e) {  // a page file or the Idempotency-Key store failing: answered, not dropped
            log_error("request", e.what());
            r = error_result(500, "", "サーバの内部エラーです / internal server error");
        }
        end.release();
        trace.record.status = r.status;
        trace.record.route = r.route;
        socket.expires_after(limits.body);
        if (r.stream) {
            // Chunked: the header, then each part as it is made, then the last chunk.
            http::response<http::empty_body> header{http::status(r.status), req.version()};
            header.set(http::field::server, "kyotaku");
            header.set(http::field::content_type, r.content_type);
            header.set("X-Request-Id", trace.record.request_id);
            for (auto const& [name, value] : r.headers) header.set(name, value);
            header.keep_alive(req.keep_alive());
            header.chunked(true);
            http::response_serializer<http::empty_body> sr{header};
            co_await http::async_write_header(stream, sr, net::use_awaitable);
            for (;;) {
                std::string part;
                {
                    RequestScope scope(trace.record.request_id);
                    auto const ticket = service.request_begin();  // each part is computed like an answer
                    struct Leave {
                        Service& s;
                        std::uint64_t t;
                        ~Leave() { s.request_end(t); }
                    } leave{service, ticket};
                    part = r.stream();
                }
                if (part.empty()) break;
                trace.record.bytes_out += part.size();
                socket.expires_after(limits.body);
                co_await net::async_write(stream, http::make_chunk(net::buffer(part)), net::use_awaitable);
            }
            co_await net::async_write(stream, http::make_chunk_last(), net::use_awaitable);
            if (!req.keep_alive()) break;
            continue;
        }
        res.result(http::status(r.status));
        res.version(req.version());
        res.set(http::field::server, "kyotaku");
        res.set(http::field::content_type, r.content_type);
        res.set("X-Request-Id", trace.record.request_id);
        for (auto const& [name, value] : r.headers) res.set(name, value);
        res.keep_alive(req.keep_alive());
        trace.record.bytes_out = r.body.size();
        res.body() = std::move(r.body);
        res.prepare_payload();
        co_await http::async_write(stream, res, net::use_awaitable);
        if (!res.keep_alive()) break;
    }
    beast::error_code ec;
    socket.expires_after(limits.handshake);
    co_await stream.async_shutdown(net::redirect_error(net::use_awaitable, ec));
}

}  // namespace

namespace {
// The key file: --key-file, else DB.key beside a SQLite database; required with PostgreSQL (the key is kept apart from
// the database). An in-memory database gets a key that lives as long as it.
std::shared_ptr<Secrets const> load_secrets(ServeOptions const& o) {
    bool const postgres = is_postgres_url(o.db);
    if (o.key_file.empty() && o.db == ":memory:") return Secrets::ephemeral();
    if (o.key_file.empty() && postgres)
        throw std::runtime_error("PostgreSQL では --key-file が必要です (鍵はデータベースと別に置きます) / --key-file is required with PostgreSQL "
                                 "(the key is kept apart from the database)");
    std::string const path = o.key_file.empty() ? o.db + ".key" : o.key_file;
    bool created = false;
    auto secrets = Secrets::from_key_file(path, created);
    if (created)
        std::cerr << "kyotaku serve: 鍵ファイル " << path << " を作りました (0600)。データベースとは別にバックアップしてください。これがないと施設URLを開けません"
                  << " / created the key file " << path << " (0600): back it up apart from the database; without it no facility URL opens\n";
    return secrets;
}
}  // namespace

int serve(ServeOptions const& o) {
    namespace fs = std::filesystem;
    boost::system::error_code ec;
    auto address = net::ip::make_address(o.host, ec);
    if (ec) {
        std::cerr << "kyotaku serve: --host " << o.host << ": アドレスではありません / not an IP address\n";
        return 2;
    }
    if (!address.is_loopback() && !o.any_address) {
        std::cerr << "kyotaku serve: --host " << o.host
                  << ": ループバック以外に待ち受けるには --listen ADDRESS:PORT で明示してください / refusing a non-loopback --host; "
                     "ask for it explicitly with --listen ADDRESS:PORT\n";
        return 2;
    }
    for (char const* f : {"ca.pem", "server.pem", "server.key"})
        if (!fs::exists(fs::path(o.tls_dir) / f)) {
            std::cerr << "kyotaku serve: " << (fs::path(o.tls_dir) / f).string()
                      << " がありません (scripts/make-test-pki で作れます) / missing TLS file (create it with scripts/make-test-pki)\n";
            return 2;
        }
    std::string const rules_dir = rules_path(o);
    RulesWeb rules_web;
    for (auto const& key_path : o.trust) {
        PublicKey key = read_public_key(key_path);
        if (!key.ok()) {
            std::cerr << "kyotaku serve: --trust " << key_path << ": " << key.error.text() << "\n";
            return 2;
        }
        rules_web.trusted_keys.push_back(key.raw);
    }
    std::vector<std::string> const trusted_keys = rules_web.trusted_keys;
    std::vector<Diagnostic> diags;
    ServingRules serving = load_serving_rules(rules_dir, trusted_keys, &diags);
    LoadResult& rules = serving.loaded;
    if (!rules.program) {
        std::cerr << "kyotaku serve: " << rules_dir << ": " << (diags.empty() ? rules.error : "\n" + format_diagnostics(diags)) << "\n";
        return 2;
    }
    rules_web.rules_path = rules_dir;
    std::unique_ptr<Database> db;
    std::shared_ptr<Secrets const> secrets;
    std::string const spool_dir = o.spool_dir.empty() ? default_spool_dir(o.db) : o.spool_dir;
    try {
        secrets = load_secrets(o);
        if (auto problem = prepare_spool_dir(spool_dir); !problem.empty()) throw std::runtime_error("--spool-dir " + spool_dir + ": " + problem);
        db = open_database(o.db);
        migrate(*db);
        // A database this user can only read (a SQLite file restored as root, say) is refused now, not after the
        // first write fails.
        try {
            transaction(*db, [&] {
                db->query("INSERT INTO server_probes (instance, at) VALUES ('kyotaku-start', $1) ON CONFLICT (instance) DO UPDATE SET at = excluded.at",
                          {iso_timestamp(std::chrono::system_clock::now())});
                db->query("DELETE FROM server_probes WHERE instance = 'kyotaku-start'");
            });
        } catch (std::exception const& e) {
            throw std::runtime_error(std::string("データベースに書き込めません (所有者と権限を確かめてください) / cannot write the database (check its owner and mode): ") +
                                     e.what());
        }
        if (int sealed = seal_plain_url_keys(*db, *secrets))
            std::cerr << "kyotaku serve: 平文の URL 鍵 " << sealed << " 個を鍵ファイルで封じました / sealed " << sealed << " plain URL key(s) with the key file\n";
    } catch (std::exception const& e) {
        std::cerr << "kyotaku serve: " << redact_db(o.db) << ": " << e.what() << "\n";
        return 2;
    }
    // The clock: the machine's, or a test clock that starts on --test-clock and the operator may move.
    SystemClock system_clock;
    std::unique_ptr<TestClock> test_clock;
    if (!o.test_clock.empty()) {
        auto day = parse_date(o.test_clock);
        if (!day.date) {
            std::cerr << "kyotaku serve: --test-clock " << o.test_clock << ": " << day.error << "\n";
            return 2;
        }
        test_clock = std::make_unique<TestClock>(*day.date);
        std::cerr << "kyotaku serve: テスト用の時計で動いています (今日 = " << test_clock->today().iso() << ") / running on a test clock\n";
    }
    std::optional<Service> service_holder;
    try {
        // (Signed rules: the page gets exactly the bytes whose signature was checked, serving.exact.)
        service_holder.emplace(*db, rules.program, test_clock ? static_cast<Clock&>(*test_clock) : static_cast<Clock&>(system_clock), serving.exact);
    } catch (std::exception const& e) {
        std::cerr << "kyotaku serve: " << rules_dir << ": " << e.what() << "\n";
        return 2;
    }
    // Releases move forward only: a release older than the newest this database's servers have served is refused
    // (unless the operator names it with rollback_to), and so is other rules under a release number already served.
    try {
        char host[128] = {};
        gethostname(host, sizeof host - 1);
        ReleaseAdmission admission =
            admit_release(*db, rules.release, rules.program->source_hash, o.rollback_to, std::string(host) + "/" + std::to_string(getpid()) + "/start");
        if (!admission.accepted) {
            log_line({{"event", "rules_refused"}, {"path", rules_dir}, {"release", rules.release.release}, {"floor", admission.floor.release},
                      {"error", admission.refusal.en}},
                     "error");
            std::cerr << "kyotaku serve: " << rules_dir << ": " << admission.refusal.text() << "\n";
            return 2;
        }
        log_release_admission(admission, rules.release);
    } catch (std::exception const& e) {
        std::cerr << "kyotaku serve: " << redact_db(o.db) << ": " << e.what() << "\n";
        return 2;
    }
    Service& service = *service_holder;
    service.context.test_clock = test_clock.get();
    service.context.secrets = secrets;

    ssl::context tls(ssl::context::tls_server);
    tls.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                    ssl::context::no_tlsv1_1);
    try {
        tls.use_certificate_chain_file((fs::path(o.tls_dir) / "server.pem").string());
        tls.use_private_key_file((fs::path(o.tls_dir) / "server.key").string(), ssl::context::pem);
        tls.load_verify_file((fs::path(o.tls_dir) / "ca.pem").string());
    } catch (std::exception const& e) {
        std::cerr << "kyotaku serve: TLS: " << e.what() << "\n";
        return 2;
    }
    // Client certificates are requested and verified when presented; routes decide whether one is required.
    tls.set_verify_mode(ssl::verify_peer);
    // With peer verification on, OpenSSL refuses to resume a TLS session unless the sessions have a context:
    // browsers resume on their parallel connections, and without this half of them failed the handshake.
    static unsigned char const session_context[] = "kyotaku serve";
    SSL_CTX_set_session_id_context(tls.native_handle(), session_context, sizeof session_context - 1);

    net::io_context io(o.threads);
    tcp::acceptor acceptor(io);
    tcp::endpoint endpoint(address, o.port);
    acceptor.open(endpoint.protocol(), ec);
    if (!ec) acceptor.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor.bind(endpoint, ec);
    if (!ec) acceptor.listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
        std::cerr << "kyotaku serve: " << o.host << ":" << o.port << ": " << ec.message() << "\n";
        return 2;
    }
    // The consent page's files: --web-root, else the web/ folder the build assembles beside bin/ or cli/.
    std::string const web_root = web_root_path(o);
    if (!web_root.empty() && !fs::exists(fs::path(web_root) / "index.html"))
        std::cerr << "kyotaku serve: --web-root " << web_root << ": index.html がありません / no index.html there\n";
    set_web_root(web_root);
    // The rule workbench sits beside the consent page's folder.
    if (!web_root.empty() && fs::exists(fs::path(web_root).parent_path() / "workbench" / "index.html"))
        rules_web.workbench_root = (fs::path(web_root).parent_path() / "workbench").string();
    set_rules_web(std::move(rules_web));
    if (fs::exists(fs::path(o.tls_dir) / "card-ca.pem")) service.context.card_ca = (fs::path(o.tls_dir) / "card-ca.pem").string();
    std::string const host_in_url = address.is_v6() ? "[" + o.host + "]" : o.host;
    service.context.public_url =
        o.public_url.empty() ? "https://" + host_in_url + ":" + std::to_string(acceptor.local_endpoint().port()) : o.public_url;
    // Batch jobs' state changes go to the log.
    service.context.on_batch_event = [](json const& e) {
        log_line({{"event", "batch_job"}, {"state", e["state"]}, {"reception_number", e["reception_number"]}, {"facility", e["facility"]}, {"rows", e["rows"]}});
    };
    // A write to stdout (the log) after journald or a pipe went away must not kill the server.
    std::signal(SIGPIPE, SIG_IGN);
    install_handoffs(std::make_shared<Handoffs>(service));
    Runtime rt(*db, service, rules_dir, trusted_keys, rules.release, o.rollback_to);
    set_runtime(&rt);
    struct Unset {
        ~Unset() { set_runtime(nullptr); }
    } unset;
    net::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](auto, auto) { io.stop(); });
    // SIGHUP (systemctl reload): the rules again, atomically; a rule set that fails to load is refused.
    net::signal_set hangup(io, SIGHUP);
    std::function<void()> await_hangup = [&] {
        hangup.async_wait([&](boost::system::error_code const& error, int) {
            if (error) return;
            rt.reload_rules();
            await_hangup();
        });
    };
    await_hangup();
    // Connections: capped (within the descriptor limit), each with its deadlines; the accept loop survives every error.
    int const max_connections = effective_max_connections(o.limits.max_connections);
    if (max_connections < o.limits.max_connections)
        std::cerr << "kyotaku serve: 同時接続数をファイル記述子の上限に合わせて " << max_connections << " にしました / connection cap lowered to "
                  << max_connections << " by the descriptor limit\n";
    ConnectionCounter connections;
    AcceptStats accept_stats;
    rt.connections_refused = &accept_stats.refused_at_cap;  // for /metrics
    rt.accept_errors = &accept_stats.errors;
    net::co_spawn(io,
                  accept_loop(acceptor, max_connections, connections, accept_stats,
                              [&](tcp::socket socket, ConnectionCounter::Slot slot) {
                                  net::co_spawn(acceptor.get_executor(),
                                                session(ssl::stream<beast::tcp_stream>(std::move(socket), tls), rt, o.limits, spool_dir,
                                                        std::move(slot)),
                                                [](std::exception_ptr) { /* a client that goes away mid-request is not the server's problem */ });
                              }),
                  [](std::exception_ptr) {});
    std::cout << "listening on https://" << host_in_url << ":" << acceptor.local_endpoint().port() << " (" << db->backend() << " "
              << redact_db(o.db) << ")" << std::endl;
    // The batch worker: answers pending rows of unfinished jobs, resuming whatever a previous run (or another server
    // on the same database) left. Interactive requests go first by construction (BatchDesk::process).
    std::atomic<bool> stopping{false};
    std::mutex idle_mutex;
    std::condition_variable idle;
    std::thread worker([&] {
        while (!stopping) {
            int answered = 0;
            try {
                answered = service.batch.process(500);
                rt.batch_rows_answered += std::uint64_t(answered);
            } catch (std::exception const& e) {
                ++rt.batch_worker_errors;
                log_error("batch_worker", e.what());
            }
            if (answered == 0) {  // nothing to do: purge what is past keeping, look again in a while (at once when stopping)
                try {
                    service.batch.purge();
                } catch (std::exception const& e) {
                    log_error("batch_purge", e.what());
                }
                std::unique_lock lock(idle_mutex);
                idle.wait_for(lock, std::chrono::milliseconds(200), [&] { return stopping.load(); });
            }
        }
    });
    std::vector<std::thread> pool;
    for (int i = 1; i < o.threads; ++i) pool.emplace_back([&] { io.run(); });
    io.run();
    for (auto& t : pool) t.join();
    {
        std::lock_guard lock(idle_mutex);
        stopping = true;
    }
    idle.notify_all();
    worker.join();
    return 0;
}

}  // namespace kyotaku::server
