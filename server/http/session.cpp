#include "http/session.hpp"

#include "core/card_signature.hpp"
#include "core/ids.hpp"
#include "http/callers.hpp"
#include "http/idempotency.hpp"
#include "http/json_codec.hpp"
#include "ops/observability.hpp"
#include "ops/runtime.hpp"

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast.hpp>
#include <boost/beast/ssl.hpp>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <optional>
#include <tuple>
#include <utility>
#include <vector>

namespace kyotaku::server {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

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
    // of the certificate's DER: two terminals with one subject are told apart in audit records
    std::string fingerprint;
    unsigned char* der = nullptr;
    if (int const n = i2d_X509(cert, &der); n > 0)
        fingerprint = sha256_hex(std::string_view(reinterpret_cast<char const*>(der), std::size_t(n)));
    OPENSSL_free(der);
    return caller_from_subject(service, subject_attribute(name, NID_commonName),
                               subject_attribute(name, NID_organizationalUnitName), subject_attribute(name, NID_title),
                               fingerprint);
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

// A connection's place in a handshake budget for one stage of its handshake (limits.hpp): evicted — closed on the
// connection's strand — by newer connections beyond the budget; left when the stage ends. `open` is cleared (on the
// strand) when the place goes, so an eviction that arrives late closes nothing.
class BudgetPlace {
public:
    BudgetPlace(HandshakeBudget& budget, int max, beast::tcp_stream& socket, bool by_unread_bytes)
        : budget_(budget), open_(std::make_shared<beast::tcp_stream*>(&socket)) {
        ticket_ = budget.enter(
            max,
            [open = open_, executor = socket.get_executor()] {
                net::post(executor, [open] {
                    if (*open) (*open)->close();
                });
            },
            by_unread_bytes ? int(socket.socket().native_handle()) : -1);
    }
    ~BudgetPlace() {
        budget_.leave(ticket_);
        *open_ = nullptr;
    }
    BudgetPlace(BudgetPlace const&) = delete;
    BudgetPlace& operator=(BudgetPlace const&) = delete;

private:
    HandshakeBudget& budget_;
    std::shared_ptr<beast::tcp_stream*> open_;
    HandshakeBudget::Ticket ticket_;
};

// The probes of balancers and monitoring: requests that do not keep a stopping server from closing its listener.
bool probe(std::string const& target) {
    std::string const path = target.substr(0, target.find('?'));
    return path == "/readyz" || path == "/healthz" || path == "/metrics";
}

std::int64_t steady_ticks() { return std::chrono::steady_clock::now().time_since_epoch().count(); }

// A request from its header to the end of its answer, for the drain.
struct InFlight {
    Drain& drain;
    explicit InFlight(Drain& d, std::string const& target) : drain(d) {
        ++drain.in_flight;
        if (!probe(target)) drain.last_request = steady_ticks();
    }
    ~InFlight() { --drain.in_flight; }
    InFlight(InFlight const&) = delete;
    InFlight& operator=(InFlight const&) = delete;
};

// Runs `work` on the threads that may block (the database, the rules, files) and resumes the connection on its own
// executor when it is done: the threads that read, write and handshake never wait for the database, so /healthz
// and /readyz (answered on them, from memory) stay quick however busy the server is.
template <typename T, typename F>
net::awaitable<T> blocking(net::thread_pool& pool, F&& work) {
    co_return co_await net::co_spawn(pool, [&]() -> net::awaitable<T> { co_return work(); }, net::use_awaitable);
}

// The initiation of an operation that completes, on the awaiting coroutine's executor, once `ticket`'s audit line is
// committed or has failed: no thread waits for the commit meanwhile. (A plain object: GCC 12 mishandles
// non-trivial temporaries, a coroutine's arguments among them, in a co_await expression.)
struct AwaitCommit {
    AppendTicket* ticket;
    template <typename Handler>
    void operator()(Handler handler) const {
        auto resume = std::make_shared<Handler>(std::move(handler));
        ticket->when_done([resume] {
            auto const executor = net::get_associated_executor(*resume);
            net::post(executor, [resume] { (*resume)(); });
        });
    }
};

// The routes a balancer or a supervisor asks many times a second, answered from memory without leaving the I/O threads.
bool answered_from_memory(std::string const& method, std::string const& target) {
    return method == "GET" && (target == "/healthz" || target == "/readyz");
}

// The answer to a large upload the budget refuses before its body is read (UploadBudget, limits.hpp); Retry-After: a
// large upload takes seconds.
HttpResult upload_refused(UploadBudget::Refusal why, UploadBudget const& budget) {
    constexpr int retry_after = 10;
    if (why == UploadBudget::Refusal::facility)
        return error_result(too_many("",
                                     "この施設から同時に送られている大きなデータが多すぎます。送信中のものが終わってか"
                                     "ら、もう一度送ってください",
                                     "too many large uploads from this facility at once (at most " +
                                         std::to_string(budget.per_facility()) + "): retry when one has finished",
                                     retry_after));
    if (why == UploadBudget::Refusal::disk) {
        log_error("upload", "the spool directory's disk has too little free space for the spooled uploads: refused "
                            "(upload_spool_mb, docs/operations.md)");
        Error full(Error::Kind::unavailable, "",
                   "サーバのディスクの空きが足りないため、今は受け取れません。しばらく待ってから、もう一度送ってくださ"
                   "い。続くときは、運用者にお知らせください",
                   "the server's spool disk has too little free space for this upload now: retry later");
        full.retry_after = 60;
        return error_result(full);
    }
    Error busy(Error::Kind::unavailable, "",
               "サーバが受け取っている大きなデータが多すぎます。少し待ってから、もう一度送ってください",
               "the server is receiving too many large uploads at once: retry shortly");
    busy.retry_after = retry_after;
    return error_result(busy);
}

// One connection: requests read within the limits (limits.hpp), each phase with its own deadline; a request's body is
// read only as far as its route takes from this caller (plan_body), large uploads spooled to the private directory.
net::awaitable<void> session(std::shared_ptr<ssl::context> tls, tcp::socket accepted, SessionShared& shared,
                             ConnectionCounter::Slot) {
    Runtime& rt = shared.runtime;
    ConnectionLimits const& limits = shared.limits;
    Router const& router = shared.router;
    ++rt.connections_open;
    struct Closed {
        Runtime& rt;
        ~Closed() { --rt.connections_open; }
    } closed{rt};
    ssl::stream<beast::tcp_stream> stream(std::move(accepted), *tls);
    Service& service = router.service();
    auto& socket = beast::get_lowest_layer(stream);
    // The client's address (per-client budgets): the connection's peer, or — from a balancer that sends the PROXY
    // protocol (limits.proxy_protocol_from) — the one its header names.
    std::string client_address;
    {
        beast::error_code ec;
        auto const peer = socket.socket().remote_endpoint(ec);
        if (!ec) {  // an IPv4 client of an IPv6 listener ("::ffff:127.0.0.1") is its IPv4 address, as configured
            auto address = peer.address();
            if (address.is_v6() && address.to_v6().is_v4_mapped())
                address = net::ip::make_address_v4(net::ip::v4_mapped, address.to_v6());
            client_address = address.to_string();
        }
    }
    bool const proxied =
        !client_address.empty() && std::find(limits.proxy_protocol_from.begin(), limits.proxy_protocol_from.end(),
                                             client_address) != limits.proxy_protocol_from.end();
    {
        // The handshake in two stages, each within its own budget (limits.hpp): the client's first record — its
        // ClientHello, read here whole within `hello` — then the rest, with the record handed to OpenSSL.
        std::array<unsigned char, 5> header{};
        std::vector<unsigned char> hello;
        {
            BudgetPlace const place(shared.hellos, limits.max_handshakes, socket, true);
            socket.expires_after(limits.hello);
            if (proxied) {  // the header's line, byte by byte so that nothing of the ClientHello after it is taken
                std::string line;
                char ch = 0;
                while (line.size() < 107 && (line.size() < 2 || line.compare(line.size() - 2, 2, "\r\n") != 0)) {
                    co_await net::async_read(socket, net::buffer(&ch, 1), net::use_awaitable);
                    line += ch;
                }
                auto const source = proxy_v1_source(line);
                if (!source) co_return;  // a balancer that should send the header did not: not a client we can place
                if (!source->empty()) client_address = *source;
            }
            co_await net::async_read(socket, net::buffer(header), net::use_awaitable);
            std::size_t const length = std::size_t(header[3]) << 8 | header[4];
            if (header[0] != 22 || length == 0 || length > (1u << 14) + 2048) co_return;  // not a TLS handshake record
            hello.resize(header.size() + length);
            std::copy(header.begin(), header.end(), hello.begin());
            co_await net::async_read(socket, net::buffer(hello.data() + header.size(), length), net::use_awaitable);
        }
        BudgetPlace const place(shared.handshakes, limits.max_handshakes, socket, false);
        socket.expires_after(limits.handshake);
        co_await stream.async_handshake(ssl::stream_base::server, net::buffer(hello), net::use_awaitable);
    }
    SSL* const ssl_handle = stream.native_handle();
    // A facility's certificate is looked up in the database. While the database is away, the caller is not known:
    // its requests are answered 503, never as if it were nobody.
    Caller caller;
    bool caller_unknown = false;
    if (SSL_get0_peer_certificate(ssl_handle)) {
        std::tie(caller, caller_unknown) = co_await blocking<std::pair<Caller, bool>>(shared.work, [&] {
            try {
                return std::pair(identify(ssl_handle, service), false);
            } catch (DatabaseError const& e) {
                log_error("database", e.what());
                return std::pair(Caller{}, true);
            }
        });
    }
    // each request's caller below starts from it
    if (!client_address.empty()) caller.client = client_key(client_address);
    // The bytes read but not yet parsed, bounded: a header, a chunk's size line with its extensions and a chunked
    // body's trailer fields must each fit whole. Beast 1.74 applies header_limit to neither extensions nor trailers;
    // unbounded, one anonymous request held any amount of memory, and a trailer field of 65,534 bytes threw inside
    // the read (outside this coroutine) and ended the process. Full, the read ends in buffer_overflow: a 400.
    beast::flat_buffer buffer(std::size_t(limits.header_bytes) + 16 * 1024);
    bool close_politely = false;  // the server ends the connection (not the client, nor a deadline): close_notify first
    for (;;) {
        beast::error_code ec;
        if (buffer.size() == 0) {  // waiting for the next request (keep-alive), then its header has its own deadline
            socket.expires_after(limits.idle);
            buffer.commit(
                co_await stream.async_read_some(buffer.prepare(4096), net::redirect_error(net::use_awaitable, ec)));
            if (ec) break;
        }
        http::request_parser<http::empty_body> head;
        head.header_limit(std::uint32_t(limits.header_bytes));
        // (Not boost::none: Boost 1.74 compares a content length against an empty optional as "too large".)
        head.body_limit(limits.spooled_body);
        socket.expires_after(limits.header);
        co_await http::async_read_header(stream, buffer, head, net::redirect_error(net::use_awaitable, ec));
        if (ec == http::error::end_of_stream || ec == net::ssl::error::stream_truncated || ec == net::error::eof ||
            ec == beast::error::timeout || ec == net::error::connection_reset)
            break;  // the client closed, or an idle connection timed out: nothing to answer
        RequestTrace trace{rt, {}};
        trace.record.request_id = new_id().substr(0, 16);
        std::string const method(head.get().method_string()), target(head.get().target());
        InFlight const in_flight(shared.drain, target);
        // The method as a label of logs and metrics: one of the known verbs, never the client's text (a label per
        // invented method would grow the metrics without bound).
        trace.record.method = head.get().method() == http::verb::unknown ? std::string("other") : method;
        Caller who = caller;
        if (!ec && caller.kind == Caller::Kind::anonymous && head.get().count("X-Kyotaku-Url-Token")) {
            std::string const url_token(head.get()["X-Kyotaku-Url-Token"]);
            who = co_await blocking<Caller>(shared.work, [&] {
                try {
                    Caller mobile = mobile_caller(service, url_token);
                    mobile.client = caller.client;
                    return mobile;
                // the database failing while a URL token is checked: the caller stays nobody
                } catch (std::exception const& e) {
                    log_error("url_token", e.what());
                    return caller;
                }
            });
        }
        trace.record.role = role_of(who);
        trace.record.facility = who.facility_code;
        // body_limit here: the header is whole but announces more than any route takes (1 GiB); the route's plan
        // still decides between refusing the caller (403) and the size (413, naming the route's own limit).
        bool const header_whole = !ec || ec == http::error::body_limit;
        BodyPlan plan = header_whole ? plan_body(who, method, target, limits) : BodyPlan{};
        // A body larger than the whole budget of its store could never be read: too large, not "later".
        auto const store = plan.spool ? UploadBudget::Store::spool : UploadBudget::Store::memory;
        plan.limit = std::min(plan.limit, std::max(limits.anonymous_body, shared.uploads.capacity(store)));
        std::optional<HttpResult> early;  // answered without reading the body
        if (!ec && head.get().count(http::field::content_type) > 1)  // which one would the route believe?
            early = error_result(Error(Error::Kind::invalid, "Content-Type",
                                       "Content-Type が 2 つあります。1 つにして送ってください",
                                       "two Content-Type fields: send one"));
        if (!ec && head.content_length() && *head.content_length() > plan.limit) early = plan.refusal;
        if (!ec && head.content_length() && *head.content_length() > plan.limit && !early) ec = http::error::body_limit;
        // A large body takes its size from the budget before a byte of it is read; a chunked one the route's limit.
        UploadBudget::Grant upload;
        std::uint64_t const body_bytes = head.content_length() ? *head.content_length()
                                         : head.chunked()      ? plan.limit
                                                               : 0;
        if (!ec && !early && body_bytes > limits.anonymous_body) {
            auto [grant, refusal] = shared.uploads.reserve(store, body_bytes, who.facility_code);
            if (grant) upload = std::move(grant);
            else early = upload_refused(refusal, shared.uploads);
        }
        // Expect: 100-continue (RFC 9110 10.1.1): the client sends its body only after "100 Continue" — or, refused
        // above (the caller, the size, the upload budget), after the final answer instead, which the client then never
        // sends. Without it a client waits (curl: a second) and sends the body anyway.
        if (!ec && !early && body_bytes > 0 && beast::iequals(head.get()[http::field::expect], "100-continue")) {
            http::response<http::empty_body> go_on{http::status::continue_, head.get().version()};
            socket.expires_after(limits.body);
            co_await http::async_write(stream, go_on, net::redirect_error(net::use_awaitable, ec));
            if (ec) break;
        }
        std::optional<SpoolFile> spool;
        http::request<http::string_body> req;
        if (!ec && !early && plan.spool) {
            spool.emplace(shared.spool_dir);
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
            HttpResult r = early ? *early
                           : ec == http::error::body_limit
                               ? error_result(Error(Error::Kind::too_large, "", "本文が大きすぎます",
                                                    "body too large (at most " + std::to_string(plan.limit) +
                                                        " bytes for this route)"))
                               : error_result(Error(Error::Kind::invalid, "", "HTTP リクエストが不正です",
                                                    "malformed request: " + ec.message()));
            trace.record.status = r.status;
            trace.record.route = plan.route;
            trace.record.bytes_out = r.body.size();
            res.result(http::status(r.status));
            res.set(http::field::content_type, r.content_type);
            res.set("X-Request-Id", trace.record.request_id);
            for (auto const& [name, value] : r.headers) res.set(name, value);  // Retry-After
            res.body() = r.body;
            res.keep_alive(false);
            res.prepare_payload();
            socket.expires_after(limits.body);
            co_await http::async_write(stream, res, net::redirect_error(net::use_awaitable, ec));
            if (ec) break;
            // A lingering close: the client may still be sending the body it was refused (no Expect: 100-continue).
            // Closed at once with those bytes unread, the kernel resets the connection and the client usually loses
            // the answer before reading it (a relay saw "Broken pipe", not "413"). So: end sending (the client sees
            // the answer, then the end), and read and drop what still comes, until the client closes or for at most
            // two seconds.
            socket.socket().shutdown(tcp::socket::shutdown_send, ec);
            std::array<char, 16 * 1024> scrap;
            socket.expires_after(std::chrono::seconds(2));
            while (!ec)
                co_await socket.async_read_some(net::buffer(scrap), net::redirect_error(net::use_awaitable, ec));
            break;
        }
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
        std::vector<std::shared_ptr<AppendTicket>> audit_lines;  // the answer's, each to be committed before it is sent
        auto answer = [&]() -> HttpResult {
            if (caller_unknown && !answered_from_memory(method, target)) {
                HttpResult r = unavailable_result();
                r.route = plan.route;
                return r;
            }
            try {
                RequestScope scope(trace.record.request_id);
                HttpRequest request{method,
                                    target,
                                    std::string(req[http::field::content_type]),
                                    std::move(req.body()),
                                    spool ? spool->path : std::string(),
                                    {std::string(req[http::field::accept_encoding]),
                                     std::string(req[http::field::if_none_match])},
                                    int(socket.socket().native_handle())};
                auto run = [&] { return router.handle(who, request); };
                // The relay's file uploads carry an Idempotency-Key: a repeat gets the first answer, never a second
                // job.
                if (req.count("Idempotency-Key") && idempotent_route(method, target))
                    return answer_once(shared.idempotent, service.context.clock, who,
                                       target.substr(0, target.find('?')), std::string(req["Idempotency-Key"]),
                                       request.body, run);
                // The audit lines of reads are committed while this thread answers others (below: the answer waits
                // for them).
                DeferredAppends deferred;
                HttpResult r = run();
                audit_lines = std::move(deferred.tickets);
                return r;
            } catch (TransientDatabaseError const& e) {  // the Idempotency-Key store while the database is away
                log_error("request", e.what());
                return unavailable_result();
            } catch (std::exception const& e) {  // the Idempotency-Key store failing: answered, not dropped
                log_error("request", e.what());
                return error_result(
                    Error(Error::Kind::internal, "", "サーバの内部エラーです", "internal server error"));
            }
        };
        HttpResult r;  // (not a conditional expression: GCC 12 miscompiles co_await inside one)
        if (answered_from_memory(method, target)) r = answer();
        else r = co_await blocking<HttpResult>(shared.work, answer);
        end.release();  // (a proof below does not hold the batch worker back)
        for (std::size_t i = 0; i < audit_lines.size(); ++i) {  // the answer goes once its audit lines are committed
            AppendTicket* const line = audit_lines[i].get();
            co_await net::async_initiate<decltype(net::use_awaitable) const&, void()>(AwaitCommit{line},
                                                                                      net::use_awaitable);
            std::exception_ptr const failed = line->error();
            if (failed) {
                std::string route = std::move(r.route);
                r = failure_result(failed);
                r.route = std::move(route);
                break;
            }
        }
        spool.reset();  // the body has been read, in memory or from its file: its budget is free for others
        upload.reset();
        // a proof: on the threads of slow work, the request threads free meanwhile (it has its own deadline)
        if (r.slow) {
            std::string route = std::move(r.route);
            auto slow = std::move(r.slow);
            socket.expires_never();
            r = co_await blocking<HttpResult>(shared.slow_work, [&] {
                RequestScope scope(trace.record.request_id);
                return slow();
            });
            r.route = std::move(route);
        }
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
            header.keep_alive(req.keep_alive() && !shared.drain.stopping);
            header.chunked(true);
            http::response_serializer<http::empty_body> sr{header};
            co_await http::async_write_header(stream, sr, net::use_awaitable);
            for (;;) {
                std::string part = co_await blocking<std::string>(shared.work, [&] {
                    RequestScope scope(trace.record.request_id);
                    auto const ticket = service.request_begin();  // each part is computed like an answer
                    struct Leave {
                        Service& s;
                        std::uint64_t t;
                        ~Leave() { s.request_end(t); }
                    } leave{service, ticket};
                    return r.stream();
                });
                if (part.empty()) break;
                trace.record.bytes_out += part.size();
                socket.expires_after(limits.body);
                co_await net::async_write(stream, http::make_chunk(net::buffer(part)), net::use_awaitable);
            }
            co_await net::async_write(stream, http::make_chunk_last(), net::use_awaitable);
            if (!header.keep_alive()) {
                close_politely = true;
                break;
            }
            continue;
        }
        res.result(http::status(r.status));
        res.version(req.version());
        res.set(http::field::server, "kyotaku");
        res.set(http::field::content_type, r.content_type);
        res.set("X-Request-Id", trace.record.request_id);
        for (auto const& [name, value] : r.headers) res.set(name, value);
        res.keep_alive(req.keep_alive() && !shared.drain.stopping);  // stopping: the client reconnects elsewhere
        trace.record.bytes_out = r.body.size();
        res.body() = std::move(r.body);
        res.prepare_payload();
        co_await http::async_write(stream, res, net::use_awaitable);
        if (!res.keep_alive()) {
            close_politely = true;
            break;
        }
    }
    // A client that went away (EOF, with or without close_notify; a reset; a deadline) is not waited for: its place
    // is free at once (issue 22 item 2; a shutdown waited up to 10 s for a close_notify that never came, and behind
    // HAProxy the connection cap filled). When the server ends the connection it says so, waiting at most a second.
    if (close_politely) {
        beast::error_code ec;
        socket.expires_after(std::chrono::seconds(1));
        co_await stream.async_shutdown(net::redirect_error(net::use_awaitable, ec));
    }
}

}  // namespace

void start_session(tcp::socket socket, std::shared_ptr<ssl::context> tls, SessionShared& shared,
                   ConnectionCounter::Slot slot) {
    auto executor = socket.get_executor();
    net::co_spawn(executor, session(std::move(tls), std::move(socket), shared, std::move(slot)),
                  [](std::exception_ptr) { /* a client that goes away mid-request is not the server's problem */ });
}

}  // namespace kyotaku::server
