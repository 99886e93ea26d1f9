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
#include <functional>
#include <memory>
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

// The initiation of `work` on the threads that may block (as blocking()), followed by the wait for the audit lines it
// deferred (`lines`, filled by `work`): the connection resumes once, on its own executor, when the answer is computed
// and each line is committed or one has failed — not once for the answer and again for its lines. `work` does not
// throw (it keeps what it caught for the coroutine). (A plain object, as AwaitCommit.)
struct ComputeThenCommit {
    net::thread_pool* pool;
    std::function<void()> const* work;
    std::vector<std::shared_ptr<AppendTicket>> const* lines;
    template <typename Handler>
    void operator()(Handler handler) const {
        auto resume = std::make_shared<Handler>(std::move(handler));
        net::post(*pool, [work = work, lines = lines, resume] {
            (*work)();
            after_lines(*lines, 0, resume);
        });
    }
    template <typename Handler>
    static void after_lines(std::vector<std::shared_ptr<AppendTicket>> const& lines, std::size_t i,
                            std::shared_ptr<Handler> resume) {
        if (i == lines.size() || (i > 0 && lines[i - 1]->error())) {
            auto const executor = net::get_associated_executor(*resume);
            net::post(executor, [resume] { (*resume)(); });
            return;
        }
        lines[i]->when_done([&lines, i, resume] { after_lines(lines, i + 1, resume); });
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

// One request on a connection, from its header to its answer: what the steps of Connection::exchange share.
struct Exchange {
    http::request_parser<http::empty_body> head;
    beast::error_code ec;  // of reading the request; set, the request is refused (refuse) or the connection ends
    std::string method, target;
    Caller who;  // the connection's caller, or the mobile page's from its URL token
    BodyPlan plan;
    std::optional<HttpResult> early;  // answered without reading the body
    UploadBudget::Grant upload;       // a large body's place in the upload budget
    std::optional<SpoolFile> spool;   // a spooled body's file
    http::request<http::string_body> req;
};

// One TLS connection, in named steps: handshake (within the handshake budgets), identify_caller, then exchange per
// request — read_head, plan_request, read_body, then refuse or compute and write the answer — and close.
class Connection {
public:
    Connection(std::shared_ptr<ssl::context> tls, tcp::socket accepted, SessionShared& shared)
        : tls_(std::move(tls)),
          shared_(shared),
          limits_(shared.limits),
          service_(shared.router.service()),
          stream_(std::move(accepted), *tls_),
          socket_(beast::get_lowest_layer(stream_)),
          buffer_(std::size_t(shared.limits.header_bytes) + 16 * 1024) {}

    // The connection's life: false from a step ends it.
    net::awaitable<void> run() {
        if (!co_await handshake()) co_return;
        co_await identify_caller();
        for (;;) {
            bool const next = co_await exchange();
            if (!next) break;
        }
        co_await close();
    }

private:
    // The client's address, the PROXY protocol's header from a balancer that sends it, then the TLS handshake in two
    // stages, each within its own budget (limits.hpp): the client's first record — its ClientHello, read here whole
    // within `hello` — then the rest, with the record handed to OpenSSL. False: not a client to serve.
    net::awaitable<bool> handshake() {
        find_client_address();
        bool const proxied = !client_address_.empty() &&
                             std::find(limits_.proxy_protocol_from.begin(), limits_.proxy_protocol_from.end(),
                                       client_address_) != limits_.proxy_protocol_from.end();
        std::array<unsigned char, 5> header{};
        std::vector<unsigned char> hello;
        {
            BudgetPlace const place(shared_.hellos, limits_.max_handshakes, socket_, true);
            socket_.expires_after(limits_.hello);
            if (proxied) {  // the header's line, byte by byte so that nothing of the ClientHello after it is taken
                std::string line;
                char ch = 0;
                while (line.size() < 107 && (line.size() < 2 || line.compare(line.size() - 2, 2, "\r\n") != 0)) {
                    co_await net::async_read(socket_, net::buffer(&ch, 1), net::use_awaitable);
                    line += ch;
                }
                auto const source = proxy_v1_source(line);
                if (!source) co_return false;  // a balancer that should send the header did not: not a client we can
                                               // place
                if (!source->empty()) client_address_ = *source;
            }
            co_await net::async_read(socket_, net::buffer(header), net::use_awaitable);
            std::size_t const length = std::size_t(header[3]) << 8 | header[4];
            if (header[0] != 22 || length == 0 || length > (1u << 14) + 2048)
                co_return false;  // not a TLS handshake record
            hello.resize(header.size() + length);
            std::copy(header.begin(), header.end(), hello.begin());
            co_await net::async_read(socket_, net::buffer(hello.data() + header.size(), length), net::use_awaitable);
        }
        BudgetPlace const place(shared_.handshakes, limits_.max_handshakes, socket_, false);
        socket_.expires_after(limits_.handshake);
        co_await stream_.async_handshake(ssl::stream_base::server, net::buffer(hello), net::use_awaitable);
        co_return true;
    }

    // The client's address (per-client budgets): the connection's peer until a PROXY header names another. An IPv4
    // client of an IPv6 listener ("::ffff:127.0.0.1") is its IPv4 address, as configured.
    void find_client_address() {
        beast::error_code ec;
        auto const peer = socket_.socket().remote_endpoint(ec);
        if (ec) return;
        auto address = peer.address();
        if (address.is_v6() && address.to_v6().is_v4_mapped())
            address = net::ip::make_address_v4(net::ip::v4_mapped, address.to_v6());
        client_address_ = address.to_string();
    }

    // A facility's certificate is looked up in the database. While the database is away, the caller is not known:
    // its requests are answered 503, never as if it were nobody.
    net::awaitable<void> identify_caller() {
        SSL* const ssl_handle = stream_.native_handle();
        // On the patients' listener nobody has a certificate: none is asked for, and one there would be unverified.
        if (!shared_.patients && SSL_get0_peer_certificate(ssl_handle)) {
            std::tie(caller_, caller_unknown_) = co_await blocking<std::pair<Caller, bool>>(shared_.work, [&] {
                try {
                    return std::pair(identify(ssl_handle, service_), false);
                } catch (DatabaseError const& e) {
                    log_error("database", e.what());
                    return std::pair(Caller{}, true);
                }
            });
        }
        // each request's caller below starts from it
        if (!client_address_.empty()) caller_.client = client_key(client_address_);
    }

    // One request and its answer. False: the connection ends (the client went, a deadline, a refusal, Connection:
    // close).
    net::awaitable<bool> exchange() {
        Exchange x;
        if (!co_await read_head(x)) co_return false;
        RequestTrace trace{shared_.runtime, {}};
        trace.record.request_id = request_id();
        if (shared_.patients) trace.record.listener = "patients";
        x.method = std::string(x.head.get().method_string());
        x.target = std::string(x.head.get().target());
        InFlight const in_flight(shared_.drain, x.target);
        // The method as a label of logs and metrics: one of the known verbs, never the client's text (a label per
        // invented method would grow the metrics without bound).
        trace.record.method = x.head.get().method() == http::verb::unknown ? std::string("other") : x.method;
        x.who = caller_;
        if (!x.ec && !shared_.patients && caller_.kind == Caller::Kind::anonymous &&
            x.head.get().count("X-Kyotaku-Url-Token"))
            co_await identify_mobile(x);
        trace.record.role = role_of(x.who);
        trace.record.facility = x.who.facility_code;
        plan_request(x);
        if (!co_await read_body(x, trace)) co_return false;
        if (x.ec || x.early) {
            co_await refuse(x, trace);
            co_return false;
        }
        HttpResult r = co_await compute(x, trace);
        trace.record.status = r.status;
        trace.record.route = r.route;
        socket_.expires_after(limits_.body);
        bool keep_alive = false;
        if (r.stream) keep_alive = co_await write_chunked(x, trace, r);
        else keep_alive = co_await write_answer(x, trace, r);
        close_politely_ = !keep_alive;
        co_return keep_alive;
    }

    // Waits for the next request (keep-alive: `idle`), then reads its header within `header`. False: the client
    // closed, or an idle connection timed out — nothing to answer. Other errors stay in x.ec (answered 4xx).
    net::awaitable<bool> read_head(Exchange& x) {
        if (buffer_.size() == 0) {
            socket_.expires_after(limits_.idle);
            buffer_.commit(co_await stream_.async_read_some(buffer_.prepare(4096),
                                                            net::redirect_error(net::use_awaitable, x.ec)));
            if (x.ec) co_return false;
        }
        x.head.header_limit(std::uint32_t(limits_.header_bytes));
        // (Not boost::none: Boost 1.74 compares a content length against an empty optional as "too large".)
        x.head.body_limit(limits_.spooled_body);
        socket_.expires_after(limits_.header);
        co_await http::async_read_header(stream_, buffer_, x.head, net::redirect_error(net::use_awaitable, x.ec));
        co_return !(x.ec == http::error::end_of_stream || x.ec == net::ssl::error::stream_truncated ||
                    x.ec == net::error::eof || x.ec == beast::error::timeout || x.ec == net::error::connection_reset);
    }

    // The mobile page's caller, from its URL token; the database failing while the token is checked: the caller
    // stays nobody.
    net::awaitable<void> identify_mobile(Exchange& x) {
        std::string const url_token(x.head.get()["X-Kyotaku-Url-Token"]);
        x.who = co_await blocking<Caller>(shared_.work, [&] {
            try {
                Caller mobile = mobile_caller(service_, url_token);
                mobile.client = caller_.client;
                return mobile;
            } catch (std::exception const& e) {
                log_error("url_token", e.what());
                return caller_;
            }
        });
    }

    // How far the body is read (the route's plan for this caller), and what is answered before any of it is: two
    // Content-Types, a refused caller, a size beyond the route's limit, a large body the upload budget refuses.
    void plan_request(Exchange& x) {
        auto const& head = x.head;
        // body_limit here: the header is whole but announces more than any route takes (1 GiB); the route's plan
        // still decides between refusing the caller (403) and the size (413, naming the route's own limit).
        bool const header_whole = !x.ec || x.ec == http::error::body_limit;
        x.plan = header_whole ? plan_body(x.who, x.method, x.target, limits_) : BodyPlan{};
        // A body larger than the whole budget of its store could never be read: too large, not "later".
        auto const store = x.plan.spool ? UploadBudget::Store::spool : UploadBudget::Store::memory;
        x.plan.limit = std::min(x.plan.limit, std::max(limits_.anonymous_body, shared_.uploads.capacity(store)));
        if (!x.ec && head.get().count(http::field::content_type) > 1)  // which one would the route believe?
            x.early = error_result(Error(Error::Kind::invalid, "Content-Type",
                                         "Content-Type が 2 つあります。1 つにして送ってください",
                                         "two Content-Type fields: send one"));
        bool const too_large = head.content_length() && *head.content_length() > x.plan.limit;
        if (!x.ec && too_large) x.early = x.plan.refusal;
        if (!x.ec && too_large && !x.early) x.ec = http::error::body_limit;
        // A large body takes its size from the budget before a byte of it is read; a chunked one the route's limit.
        if (!x.ec && !x.early && body_bytes(x) > limits_.anonymous_body) {
            auto [grant, refusal] = shared_.uploads.reserve(store, body_bytes(x), x.who.facility_code);
            if (grant) x.upload = std::move(grant);
            else x.early = upload_refused(refusal, shared_.uploads);
        }
    }

    std::uint64_t body_bytes(Exchange const& x) const {
        return x.head.content_length() ? *x.head.content_length() : x.head.chunked() ? x.plan.limit : 0;
    }

    // The body, in memory or spooled to a file (its own deadline, `upload`), after "100 Continue" when the client
    // asks for it. False: the connection ends (a deadline, the client gone while 100 Continue was written).
    net::awaitable<bool> read_body(Exchange& x, RequestTrace& trace) {
        // Expect: 100-continue (RFC 9110 10.1.1): the client sends its body only after "100 Continue" — or, refused
        // above (the caller, the size, the upload budget), after the final answer instead, which the client then never
        // sends. Without it a client waits (curl: a second) and sends the body anyway.
        if (!x.ec && !x.early && body_bytes(x) > 0 &&
            beast::iequals(x.head.get()[http::field::expect], "100-continue")) {
            http::response<http::empty_body> go_on{http::status::continue_, x.head.get().version()};
            socket_.expires_after(limits_.body);
            co_await http::async_write(stream_, go_on, net::redirect_error(net::use_awaitable, x.ec));
            if (x.ec) co_return false;
        }
        if (!x.ec && !x.early && x.plan.spool) {
            x.spool.emplace(shared_.spool_dir);
            http::request_parser<http::file_body> parser{std::move(x.head)};
            parser.body_limit(x.plan.limit);
            socket_.expires_after(limits_.upload);
            beast::file file;
            if (x.spool->ok()) file.native_handle(::dup(x.spool->fd));
            if (!x.spool->ok() || !file.is_open()) x.ec = http::error::body_limit;
            else parser.get().body().reset(std::move(file), x.ec);
            if (!x.ec)
                co_await http::async_read(stream_, buffer_, parser, net::redirect_error(net::use_awaitable, x.ec));
            if (!x.ec) {
                auto spooled = parser.release();
                spooled.body().close();
                std::error_code size_error;
                trace.record.bytes_in = std::filesystem::file_size(x.spool->path, size_error);
                x.req.base() = spooled.base();
            }
        } else if (!x.ec && !x.early) {
            http::request_parser<http::string_body> parser{std::move(x.head)};
            parser.body_limit(x.plan.limit);
            socket_.expires_after(limits_.body);
            co_await http::async_read(stream_, buffer_, parser, net::redirect_error(net::use_awaitable, x.ec));
            if (!x.ec) x.req = parser.release();
            trace.record.bytes_in = x.req.body().size();
        }
        co_return x.ec != beast::error::timeout;
    }

    // A malformed or oversized request is the client's mistake, a refused one is refused before its body is read:
    // answer 4xx, then close.
    net::awaitable<void> refuse(Exchange& x, RequestTrace& trace) {
        if (x.ec == http::error::body_limit && x.plan.refusal) x.early = x.plan.refusal;
        HttpResult r = x.early ? *x.early
                       : x.ec == http::error::body_limit
                           ? error_result(Error(Error::Kind::too_large, "", "本文が大きすぎます",
                                                "body too large (at most " + std::to_string(x.plan.limit) +
                                                    " bytes for this route)"))
                           : error_result(Error(Error::Kind::invalid, "", "HTTP リクエストが不正です",
                                                "malformed request: " + x.ec.message()));
        trace.record.status = r.status;
        trace.record.route = x.plan.route;
        trace.record.bytes_out = r.body.size();
        http::response<http::string_body> res;
        res.result(http::status(r.status));
        res.set(http::field::content_type, r.content_type);
        res.set("X-Request-Id", trace.record.request_id);
        for (auto const& [name, value] : r.headers) res.set(name, value);  // Retry-After
        res.body() = r.body;
        res.keep_alive(false);
        res.prepare_payload();
        beast::error_code ec;
        socket_.expires_after(limits_.body);
        co_await http::async_write(stream_, res, net::redirect_error(net::use_awaitable, ec));
        if (ec) co_return;
        // A lingering close: the client may still be sending the body it was refused (no Expect: 100-continue).
        // Closed at once with those bytes unread, the kernel resets the connection and the client usually loses
        // the answer before reading it (a relay saw "Broken pipe", not "413"). So: end sending (the client sees
        // the answer, then the end), and read and drop what still comes, until the client closes or for at most
        // two seconds.
        socket_.socket().shutdown(tcp::socket::shutdown_send, ec);
        std::array<char, 16 * 1024> scrap;
        socket_.expires_after(std::chrono::seconds(2));
        while (!ec)
            co_await socket_.async_read_some(net::buffer(scrap), net::redirect_error(net::use_awaitable, ec));
    }

    // The answer: the router's (on the request threads, or at once for what is answered from memory), sent only once
    // the audit lines of its reads are committed (a line that fails answers as its failure), then — a proof — run on
    // the threads of slow work, the request threads free meanwhile (it has its own deadline).
    net::awaitable<HttpResult> compute(Exchange& x, RequestTrace& trace) {
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
        } end{service_, service_.request_begin()};
        std::vector<std::shared_ptr<AppendTicket>> audit_lines;  // the answer's, each to be committed before it is sent
        HttpResult r;  // (not a conditional expression: GCC 12 miscompiles co_await inside one)
        if (answered_from_memory(x.method, x.target)) {
            r = answer(x, trace, audit_lines);
        } else {  // computed, then its lines committed, before the connection resumes
            std::exception_ptr thrown;
            std::function<void()> const work = [&] {
                try {
                    r = answer(x, trace, audit_lines);
                    end.release();  // (the batch worker waits for the computation, not for the lines' commit)
                } catch (...) {
                    thrown = std::current_exception();
                }
            };
            co_await net::async_initiate<decltype(net::use_awaitable) const&, void()>(
                ComputeThenCommit{&shared_.work, &work, &audit_lines}, net::use_awaitable);
            if (thrown) std::rethrow_exception(thrown);
        }
        end.release();  // (a proof below does not hold the batch worker back)
        for (std::size_t i = 0; i < audit_lines.size(); ++i) {  // the answer goes once its audit lines are committed
            AppendTicket* const line = audit_lines[i].get();
            if (!line->done())
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
        x.spool.reset();  // the body has been read, in memory or from its file: its budget is free for others
        x.upload.reset();
        if (r.slow) {
            std::string route = std::move(r.route);
            auto slow = std::move(r.slow);
            socket_.expires_never();
            r = co_await blocking<HttpResult>(shared_.slow_work, [&] {
                RequestScope scope(trace.record.request_id);
                return slow();
            });
            r.route = std::move(route);
        }
        co_return r;
    }

    // The router's answer to one read request, on the thread that calls it; the audit lines of its reads go to
    // `audit_lines`, committed while this thread answers others.
    HttpResult answer(Exchange& x, RequestTrace& trace, std::vector<std::shared_ptr<AppendTicket>>& audit_lines) {
        if (caller_unknown_ && !answered_from_memory(x.method, x.target)) {
            HttpResult r = unavailable_result();
            r.route = x.plan.route;
            return r;
        }
        auto& req = x.req;
        try {
            RequestScope scope(trace.record.request_id);
            HttpRequest request{x.method,
                                x.target,
                                std::string(req[http::field::content_type]),
                                std::move(req.body()),
                                x.spool ? x.spool->path : std::string(),
                                {std::string(req[http::field::accept_encoding]),
                                 std::string(req[http::field::if_none_match])},
                                int(socket_.socket().native_handle()),
                                shared_.patients};
            auto run = [&] { return shared_.router.handle(x.who, request); };
            // The relay's file uploads carry an Idempotency-Key: a repeat gets the first answer, never a second job.
            if (req.count("Idempotency-Key") && idempotent_route(x.method, x.target))
                return answer_once(shared_.idempotent, service_.context.clock, x.who,
                                   x.target.substr(0, x.target.find('?')), std::string(req["Idempotency-Key"]),
                                   request.body, run);
            DeferredAppends deferred;
            HttpResult r = run();
            audit_lines = std::move(deferred.tickets);
            return r;
        } catch (TransientDatabaseError const& e) {  // the Idempotency-Key store while the database is away
            log_error("request", e.what());
            return unavailable_result();
        } catch (std::exception const& e) {  // the Idempotency-Key store failing: answered, not dropped
            log_error("request", e.what());
            return error_result(Error(Error::Kind::internal, "", "サーバの内部エラーです", "internal server error"));
        }
    }

    // The answer whole; stopping, it closes the connection (the client reconnects elsewhere). True: keep-alive.
    net::awaitable<bool> write_answer(Exchange& x, RequestTrace& trace, HttpResult& r) {
        http::response<http::string_body> res{http::status(r.status), x.req.version()};
        set_headers(res, r, trace);
        res.keep_alive(x.req.keep_alive() && !shared_.drain.stopping);
        trace.record.bytes_out = r.body.size();
        res.body() = std::move(r.body);
        res.prepare_payload();
        co_await http::async_write(stream_, res, net::use_awaitable);
        co_return res.keep_alive();
    }

    // Chunked: the header, then each part as it is made (computed like an answer, on the request threads), then the
    // last chunk. True: keep-alive.
    net::awaitable<bool> write_chunked(Exchange& x, RequestTrace& trace, HttpResult& r) {
        http::response<http::empty_body> header{http::status(r.status), x.req.version()};
        set_headers(header, r, trace);
        header.keep_alive(x.req.keep_alive() && !shared_.drain.stopping);
        header.chunked(true);
        http::response_serializer<http::empty_body> sr{header};
        co_await http::async_write_header(stream_, sr, net::use_awaitable);
        for (;;) {
            std::string part = co_await blocking<std::string>(shared_.work, [&] {
                RequestScope scope(trace.record.request_id);
                auto const ticket = service_.request_begin();  // each part is computed like an answer
                struct Leave {
                    Service& s;
                    std::uint64_t t;
                    ~Leave() { s.request_end(t); }
                } leave{service_, ticket};
                return r.stream();
            });
            if (part.empty()) break;
            trace.record.bytes_out += part.size();
            socket_.expires_after(limits_.body);
            co_await net::async_write(stream_, http::make_chunk(net::buffer(part)), net::use_awaitable);
        }
        co_await net::async_write(stream_, http::make_chunk_last(), net::use_awaitable);
        co_return header.keep_alive();
    }

    template <typename Message>
    static void set_headers(Message& m, HttpResult const& r, RequestTrace const& trace) {
        m.set(http::field::server, "kyotaku");
        m.set(http::field::content_type, r.content_type);
        m.set("X-Request-Id", trace.record.request_id);
        for (auto const& [name, value] : r.headers) m.set(name, value);
    }

    // A client that went away (EOF, with or without close_notify; a reset; a deadline) is not waited for: its place
    // is free at once (issue 22 item 2; a shutdown waited up to 10 s for a close_notify that never came, and behind
    // HAProxy the connection cap filled). When the server ends the connection it says so, waiting at most a second.
    net::awaitable<void> close() {
        if (!close_politely_) co_return;
        beast::error_code ec;
        socket_.expires_after(std::chrono::seconds(1));
        co_await stream_.async_shutdown(net::redirect_error(net::use_awaitable, ec));
    }

    std::shared_ptr<ssl::context> tls_;  // the context in force when the connection was accepted
    SessionShared& shared_;
    ConnectionLimits const& limits_;
    Service& service_;
    ssl::stream<beast::tcp_stream> stream_;
    beast::tcp_stream& socket_;
    std::string client_address_;
    Caller caller_;
    bool caller_unknown_ = false;
    // The bytes read but not yet parsed, bounded: a header, a chunk's size line with its extensions and a chunked
    // body's trailer fields must each fit whole. Beast 1.74 applies header_limit to neither extensions nor trailers;
    // unbounded, one anonymous request held any amount of memory, and a trailer field of 65,534 bytes threw inside
    // the read (outside this coroutine) and ended the process. Full, the read ends in buffer_overflow: a 400.
    beast::flat_buffer buffer_;
    bool close_politely_ = false;  // the server ends the connection (not the client, nor a deadline): close_notify
};

// One connection, counted open while it lives; `slot` holds its place under the cap.
net::awaitable<void> session(std::shared_ptr<ssl::context> tls, tcp::socket accepted, SessionShared& shared,
                             ConnectionCounter::Slot) {
    std::atomic<std::int64_t>* const open = shared.connections_open;
    if (open) ++*open;
    struct Closed {
        std::atomic<std::int64_t>* open;
        ~Closed() {
            if (open) --*open;
        }
    } closed{open};
    Connection connection(std::move(tls), std::move(accepted), shared);
    co_await connection.run();
}

}  // namespace

void start_session(tcp::socket socket, std::shared_ptr<ssl::context> tls, SessionShared& shared,
                   ConnectionCounter::Slot slot) {
    auto executor = socket.get_executor();
    net::co_spawn(executor, session(std::move(tls), std::move(socket), shared, std::move(slot)),
                  [](std::exception_ptr) { /* a client that goes away mid-request is not the server's problem */ });
}

}  // namespace kyotaku::server
