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
// The HTTP status of an error kind (400 invalid, 403 forbidden, 404, 405, 409, 410, 413, 415, 422, 429, 500, 503).
int status_of(Error::Kind kind);
// One error shape for every answer, the HTTP layer's own included: the Japanese and English texts as separate
// fields (and together in `error`, "ja / en"), and the field at fault when there is one.
HttpResult error_result(Error const& e);
// The database was away (a failover) and the request could not be run again (storage/faults.hpp): 503 with
// Retry-After, never 500; when a write of it may have been committed before the connection went, it says so.
HttpResult unavailable_result();

// A JSON body, parsed without letting its nesting depth choose anything: values deeper than 8 levels are refused
// (Error invalid), as are invalid JSON and anything but an object, and a key given twice (naming it). The common
// body is built straight by a SAX handler; anything else is parsed again by parse_json_body_checked, whose answers
// (the tree, or the refusal and its words) are the ones given: a test compares the two on edge cases and mutations.
nlohmann::json parse_json_body(std::string const& body);
nlohmann::json parse_json_body_checked(std::string const& body);

// The query parameter `name` of a target like /path?from=…&to=…, %XX- and '+'-decoded ("" when absent).
std::string query_param(std::string const& target, std::string const& name);

}  // namespace kyotaku::server
