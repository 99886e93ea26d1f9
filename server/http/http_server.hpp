// `kyotaku serve`: HTTP/1.1 over TLS (Boost.Beast), JSON. Office terminals authenticate with a client
// certificate issued by the facility CA (CN = 医療機関等コード, or "kyotaku-admin" for test-data set-up).
#pragma once

#include "ops/config.hpp"
#include "usecases/service.hpp"

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace kyotaku::server {

// Runs until SIGINT/SIGTERM; SIGHUP reloads the rules. Prints "listening on https://HOST:PORT" once ready, then
// one JSON log line per request and event on stdout (observability.hpp). Returns the exit code.
int serve(ServeOptions const& options);

// One request → one response, without the network (the routing table; tests use it directly).
struct HttpResult {
    int status = 200;
    std::string content_type = "application/json; charset=utf-8";
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers = {};
    // When set, the body is sent in chunks (chunked transfer encoding): each call returns the next part, an empty
    // string ends it. `body` is then ignored.
    std::function<std::string()> stream = {};
    // The route pattern that answered ("/api/v1/devices/{device_id}/checks"), for logs and metrics; empty when
    // no route matched. Never the path itself, which may carry a token.
    std::string route = {};
};

// Where the consent page's files are (empty: /c/{token} shows a page saying the files are missing).
void set_web_root(std::string const& directory);
// Who may call a route (docs/api.md): anyone (health, the consent page's token routes), the operator
// (kyotaku-admin), any office terminal of a facility, the facility's 管理者 only, or an office terminal or a
// モバイル端末 session.
// monitor: the operator or a monitoring certificate (CN kyotaku-monitor), for /metrics.
enum class Access { anyone, operator_, facility, manager, facility_or_mobile, monitor };
char const* access_name(Access a);
struct RouteInfo {
    std::string method, path;
    Access access;
    bool discloses = false;  // its answer can carry a patient's eligibility or medical information
};
// Every (method, path) the server answers; path parameters are written {name}.
std::vector<RouteInfo> route_table();
bool allowed(Access a, Caller const& c);

HttpResult handle_request(Service& service, Caller const& caller, std::string const& method, std::string const& target,
                          std::string const& content_type, std::string const& body, std::string const& body_file = "");

// Requests whose body the server spools to a file instead of holding it in memory (large batch uploads).
bool spooled_request(std::string const& method, std::string const& target);

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
BodyPlan plan_body(Caller const& caller, std::string const& method, std::string const& target, ConnectionLimits const& limits);

// The caller of a request without a client certificate that carries the consent page's URL token in the
// X-Kyotaku-Url-Token header: a モバイル端末 session of that facility; anonymous when the token is not usable.
Caller mobile_caller(Service& service, std::string const& url_token);

// The caller an office terminal's verified certificate names: CN = 医療機関等コード (or kyotaku-admin), OU = role
// (管理者 | 職員; none: 職員), title = terminal kind (資格確認端末 | 電子カルテ端末 | モバイル端末; none: 資格確認端末).
// Anything else is anonymous.
Caller caller_from_subject(Service& service, std::string const& cn, std::string const& ou, std::string const& title);

}  // namespace kyotaku::server
