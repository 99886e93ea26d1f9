// The JSON wire format at the edge: request bodies parsed within bounds, answers and errors written in the one
// shape docs/api.md documents ({"error", "message_ja", "message_en", "field"}), query parameters decoded.
#pragma once

#include "core/error.hpp"
#include "http/http_result.hpp"

#include <nlohmann/json.hpp>

#include <string>

namespace kyotaku::server {

// A JSON answer; invalid UTF-8 that a database from before issue 10 may hold is written as U+FFFD, never a 500.
HttpResult json_result(int status, nlohmann::json const& body);
// The HTTP status of an error kind (400 invalid, 403 forbidden, 404, 409, 410, 413, 415, 429, 503).
int status_of(Error::Kind kind);
// One error shape for every route: the Japanese and English texts as separate fields (and together in `error`).
HttpResult error_result(Error const& e);
// An error of the HTTP layer itself that has only the joined text ({"error": …, "field"?}).
HttpResult error_result(int status, std::string const& field, std::string const& message);
// The database was away (a failover) and the request could not be run again (storage/faults.hpp): 503 with
// Retry-After, never 500; when a write of it may have been committed before the connection went, it says so.
HttpResult unavailable_result();

// A JSON body, parsed without letting its nesting depth choose anything: values deeper than 8 levels are refused
// (Error invalid), as are invalid JSON and anything but an object.
nlohmann::json parse_json_body(std::string const& body);

// The query parameter `name` of a target like /path?from=…&to=…, %XX- and '+'-decoded ("" when absent).
std::string query_param(std::string const& target, std::string const& name);

}  // namespace kyotaku::server
