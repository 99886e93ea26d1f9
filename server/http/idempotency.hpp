// Idempotency-Key on the file routes that make something (a batch job, 照会番号: POST /api/v1/oqs/OQSmuquc01req,
// OQSmuhvq01req, OQSmuonq01req, OQSsiimm01req, OQSmuimm01req): the folder relay sends one key per request file and
// keeps it across restarts. The first request with a key is answered and its 2xx answer stored with the key, in
// the same transaction as what the request did; the same key from the same certificate to the same route later —
// or at the same time, from any server — gets that stored answer (header Idempotent-Replayed: true) and nothing is
// done twice. The same key with another body, or from another certificate, is a 422; on another route it is
// another key. Answers are kept for 7 days. OQSsiquc01req (a patient's eligibility) is never replayed: a read,
// answered again by today's rules and logged again.
#pragma once

#include "core/clock.hpp"
#include "http/http_result.hpp"
#include "storage/idempotent_answers.hpp"
#include "usecases/service.hpp"

#include <functional>

namespace kyotaku::server {

// Whether the route takes an Idempotency-Key (the XML routes that make something; reads are idempotent already).
bool idempotent_route(std::string const& method, std::string const& target);

// Answers through `run` once per (facility, route, key) — `route` the request's path; `run` is called inside the
// store's transaction. Stored answers are stamped with `clock`.
HttpResult answer_once(IdempotentAnswers& store, Clock const& clock, Caller const& caller, std::string const& route,
                       std::string const& key, std::string const& body, std::function<HttpResult()> const& run);

}  // namespace kyotaku::server
