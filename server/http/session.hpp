// One TLS connection of `kyotaku serve` (Boost.Beast): the handshake, the caller from the client certificate, then
// requests read within the limits (limits.hpp), each phase with its own deadline; a request's body is read only as
// far as its route takes from this caller (plan_body), large uploads spooled to the private directory. Each request
// goes to the router (router.hpp); a large body takes its size from the budget all connections share first
// (UploadBudget, limits.hpp: 503 when it is spent, 429 beyond the facility's uploads at once). The file uploads with an
// Idempotency-Key go through answer_once (idempotency.hpp). One JSON log line and the metrics per request
// (observability.hpp).
#pragma once

#include "ops/connection_limits.hpp"
#include "http/limits.hpp"
#include "http/router.hpp"
#include "storage/idempotent_answers.hpp"

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

namespace boost::asio {
class thread_pool;
}
namespace boost::asio::ssl {
class context;
}

namespace kyotaku::server {

class Runtime;

// SIGTERM's drain (app.hpp, "Stopping"), as the connections see it: once `stopping`, every answer closes its
// connection (Connection: close); the composition root waits for `in_flight` to reach 0, and stops accepting once no
// request but a probe (/readyz, /healthz, /metrics) has begun for a while (`last_request`, steady-clock ticks) — the
// balancer has taken the server out by then.
struct Drain {
    std::atomic<bool> stopping{false};
    std::atomic<int> in_flight{0};                // requests from their header to the end of their answer
    std::atomic<std::int64_t> last_request{0};    // when the last request that is not a probe began
};

// What every connection shares; the composition root (app/) makes one for the server's lifetime.
struct SessionShared {
    Router const& router;
    Runtime& runtime;                // connection and request metrics
    IdempotentAnswers& idempotent;   // the stored answers of Idempotency-Key requests
    ConnectionLimits limits;
    std::string spool_dir;
    Drain& drain;
    HandshakeBudget& hellos;         // connections waiting for their ClientHello (limits.hpp)
    HandshakeBudget& handshakes;     // connections in the rest of their TLS handshake
    UploadBudget& uploads;           // large request bodies, in memory and spooled, all connections together
    // The threads that answer requests (they may wait for the database); the connections' own threads only read,
    // write, handshake and answer /healthz and /readyz.
    boost::asio::thread_pool& work;
    // The threads of slow work (HttpResult::slow: the workbench's proofs), as many as may run at once.
    boost::asio::thread_pool& slow_work;
    // The patients' listener (patient_listen): its TLS asks for no client certificate, every caller is nobody (no
    // certificate, no モバイル端末 session from a URL token) and only the routes anyone may call are served
    // (HttpRequest::patients_only); everything else is refused as it is to a caller without a certificate.
    bool patients = false;
    // The listener's open connections (the gauge kyotaku_http_connections_open{listener}).
    std::atomic<std::int64_t>* connections_open = nullptr;
};

// Runs one accepted connection on the socket's executor (a strand of its own: accept_loop) until the client goes or a
// limit ends it; `tls` is the context in force when it was accepted (kept for the connection's life: a SIGHUP's new
// certificates serve later connections); `slot` holds the connection's place under the cap until then. Errors of the
// connection end it quietly. A client that has gone (EOF with or without TLS close_notify, a reset, a deadline) frees
// its place at once; only a connection the server ends itself sends close_notify, waiting at most a second.
void start_session(boost::asio::ip::tcp::socket socket, std::shared_ptr<boost::asio::ssl::context> tls,
                   SessionShared& shared, ConnectionCounter::Slot slot);

}  // namespace kyotaku::server
