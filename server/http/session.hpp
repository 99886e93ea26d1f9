// One TLS connection of `kyotaku serve` (Boost.Beast): the handshake, the caller from the client certificate, then
// requests read within the limits (limits.hpp), each phase with its own deadline; a request's body is read only as
// far as its route takes from this caller (plan_body), large uploads spooled to the private directory. Each request
// goes to the router (router.hpp); the file uploads with an Idempotency-Key go through answer_once
// (idempotency.hpp). One JSON log line and the metrics per request (observability.hpp).
#pragma once

#include "http/connection_limits.hpp"
#include "http/limits.hpp"
#include "http/router.hpp"
#include "storage/idempotent_answers.hpp"

#include <string>

namespace boost::asio {
class thread_pool;
}
namespace boost::asio::ssl {
class context;
}

namespace kyotaku::server {

class Runtime;

// What every connection shares; the composition root (app/) makes one for the server's lifetime.
struct SessionShared {
    Router const& router;
    Runtime& runtime;                // connection and request metrics
    IdempotentAnswers& idempotent;   // the stored answers of Idempotency-Key requests
    ConnectionLimits limits;
    std::string spool_dir;
    // The threads that answer requests (they may wait for the database); the connections' own threads only read,
    // write, handshake and answer /healthz and /readyz.
    boost::asio::thread_pool& work;
};

// Runs one accepted connection on the socket's executor until the client goes or a limit ends it; `slot` holds the
// connection's place under the cap until then. Errors of the connection end it quietly.
void start_session(boost::asio::ip::tcp::socket socket, boost::asio::ssl::context& tls, SessionShared& shared,
                   ConnectionCounter::Slot slot);

}  // namespace kyotaku::server
