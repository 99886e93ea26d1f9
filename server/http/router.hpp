// The routes of `kyotaku serve`: one table of (method, path, who may call it, handler), matched once per request —
// the consent page's files and the rule workbench included — and the dispatch that turns a desk's answer or Error
// into an HttpResult. No network here (session.hpp reads and writes the connection); tests call Router directly.
#pragma once

#include "ops/connection_limits.hpp"
#include "http/http_result.hpp"
#include "http/rules_web.hpp"
#include "http/static_files.hpp"
#include "http/workbench_proofs.hpp"
#include "usecases/service.hpp"

#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <vector>

namespace kyotaku::server {

class Runtime;  // ops/runtime.hpp: /readyz and /metrics

// Who may call a route (docs/api.md): anyone (health, the consent page's token routes), the operator
// (kyotaku-admin), any office terminal of a facility, the facility's 管理者 only, or an office terminal or a
// モバイル端末 session.
// monitor: the operator or a monitoring certificate (CN kyotaku-monitor), for /metrics.
// office_terminal: a facility certificate of a terminal at the office (資格確認端末 or 電子カルテ端末), not a
// モバイル端末.
enum class Access { anyone, operator_, facility, office_terminal, manager, facility_or_mobile, monitor };
char const* access_name(Access a);
bool allowed(Access a, Caller const& c);

struct RouteInfo {
    std::string method, path;
    Access access;
    bool discloses = false;  // its answer can carry a patient's eligibility or medical information
};
// Every (method, path) the server answers; path parameters are written {name}.
std::vector<RouteInfo> route_table();
// Those the patients' listener serves (patient_listen): the routes anyone may call.
std::vector<RouteInfo> patient_route_table();

// One request as the routes see it.
struct HttpRequest {
    std::string method, target;  // target: the path and its query
    std::string content_type;
    std::string body;
    std::string body_file;       // set instead of body for spooled uploads (spooled_request)
    PageRequestHeaders page = {};  // Accept-Encoding, If-None-Match: the consent page's files depend on them
    int client_fd = -1;            // the connection's socket, watched by slow work for the client going (-1: none)
    // From the patients' listener (patient_listen): only the routes anyone may call (Access::anyone: the consent
    // page, its files, its token routes, /, /healthz, /readyz); any other is refused as to a caller without a
    // certificate, whoever the caller.
    bool patients_only = false;
};

// How the session reads a request's body, decided from its header alone before a byte of the body is read: the
// largest body this caller may send to this route (small for the routes anyone may call, for mobile sessions and for
// a caller the route refuses), whether it is spooled, and — when the route refuses the caller — the answer to send
// instead of reading a body larger than that.
struct BodyPlan {
    std::optional<HttpResult> refusal;
    std::uint64_t limit = 0;
    bool spool = false;
    std::string route;  // the route's path template ("" when no route matches), for the log of an early answer
};
BodyPlan plan_body(Caller const& caller, std::string const& method, std::string const& target,
                   ConnectionLimits const& limits);

// Requests whose body the server spools to a file instead of holding it in memory (large batch uploads).
bool spooled_request(std::string const& method, std::string const& target);

// What the routes reach besides the desks; the composition root (app/) wires them in. Absent parts answer as a
// server without them would: no runtime → /readyz 503 and /metrics 404, no page files → /c/{token} says the files
// are missing, no rules-web configuration → no trusted keys and no workbench.
struct Site {
    Runtime* runtime = nullptr;
    ConsentPageFiles const* pages = nullptr;
    RulesWeb const* rules_web = nullptr;
    WorkbenchProofs const* proofs = nullptr;  // POST /api/v1/admin/rules/prove (absent: 503)
};

// The answer for a request whose use case threw `failure` (rethrown when it is not a std::exception): a desk's Error
// as its status and JSON body, a passing database fault 503, anything else 500 (logged).
HttpResult failure_result(std::exception_ptr failure);

class Router {
public:
    explicit Router(Service& service, Site site = {});
    // One request → one answer, its `route` set to the pattern that matched ("" when none). Never throws: a desk's
    // Error becomes its status and JSON body, anything else a 500.
    HttpResult handle(Caller const& caller, HttpRequest const& request) const;
    // The same, for tests and tools that have only these.
    HttpResult handle(Caller const& caller, std::string const& method, std::string const& target,
                      std::string const& content_type, std::string const& body) const;

    Service& service() const { return service_; }
    Site const& site() const { return site_; }

private:
    Service& service_;
    Site site_;
};

}  // namespace kyotaku::server
