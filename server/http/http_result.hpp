// One HTTP answer as the routes make it, before the session (session.hpp) writes it to the connection.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace kyotaku::server {

struct HttpResult {
    int status = 200;
    std::string content_type = "application/json; charset=utf-8";
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers = {};
    // When set, the body is sent in chunks (chunked transfer encoding): each call returns the next part, an empty
    // string ends it. `body` is then ignored.
    std::function<std::string()> stream = {};
    // When set, the answer is what this returns, computed on the server's threads for slow work (a proof takes
    // seconds: http/workbench_proofs.hpp) rather than the request threads; it never throws. The session runs it
    // (Router::handle does not); the other fields but `route` are then ignored.
    std::function<HttpResult()> slow = {};
    // The route pattern that answered ("/api/v1/devices/{device_id}/checks"), for logs and metrics; empty when
    // no route matched. Never the path itself, which may carry a token.
    std::string route = {};
};

}  // namespace kyotaku::server
