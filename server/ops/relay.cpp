#include "ops/relay.hpp"

#include "core/card_signature.hpp"
#include "core/clock.hpp"
#include "formats/oqs_xml.hpp"
#include "core/ids.hpp"

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/beast.hpp>
#include <boost/beast/ssl.hpp>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>

namespace kyotaku::server {

namespace fs = std::filesystem;
namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

namespace {

volatile std::sig_atomic_t stop_requested = 0;

// The largest request file the relay reads (the server's limit for XML bodies).
constexpr std::size_t max_request_bytes = 64 * 1024 * 1024;
// The longest file name the folder can hold (NAME_MAX on Linux file systems).
constexpr std::size_t max_name_bytes = 255;
// A retry waits retry_ms, then twice as long each time, at most this long.
constexpr std::chrono::seconds max_backoff{60};

// SIGTERM or SIGINT arrived: thrown out of any wait so that the relay stops within a fraction of a second. Not a
// std::exception, so that no handler of failures mistakes it for one.
struct Stopped {};

struct Endpoint {
    std::string host, port;
};
Endpoint parse_server(std::string const& url) {
    std::string rest = url.rfind("https://", 0) == 0 ? url.substr(8) : url;
    rest = rest.substr(0, rest.find('/'));
    if (!rest.empty() && rest.front() == '[') {  // [IPv6]:PORT
        auto close = rest.find(']');
        if (close != std::string::npos)
            return {rest.substr(1, close - 1),
                    close + 2 < rest.size() && rest[close + 1] == ':' ? rest.substr(close + 2) : "443"};
    }
    auto colon = rest.rfind(':');
    if (colon == std::string::npos) return {rest, "443"};
    return {rest.substr(0, colon), rest.substr(colon + 1)};
}

struct Response {
    int status = 0;
    std::string body;
};

std::string seconds_text(std::chrono::milliseconds d) {
    auto const ms = d.count();
    return ms % 1000 == 0 ? std::to_string(ms / 1000) + " s" : std::to_string(ms) + " ms";
}

// Waits for `ready` in slices, so that a SIGTERM is seen within one slice. Throws Stopped when asked to stop.
template <class Ready>
void wait_until(Ready ready, std::chrono::milliseconds slice = std::chrono::milliseconds(50)) {
    while (!ready()) {
        if (stop_requested) throw Stopped{};
        std::this_thread::sleep_for(slice);
    }
}

// The network side of the relay: every step — resolving the name, connecting, the TLS handshake, sending the
// request, reading the answer, closing — has a deadline, and a SIGTERM ends whichever step is under way within
// about 100 ms. One io_context, run only while a request is under way.
class Uplink {
public:
    explicit Uplink(RelayOptions const& o) : o_(o), server_(parse_server(o.server)) {}

    // The TLS files as a context: read again for every request, so that a renewed certificate is used without a
    // restart; the error names the file that failed.
    ssl::context context() const {
        ssl::context ctx(ssl::context::tls_client);
        auto load = [](std::string const& file, auto&& step) {
            try {
                step();
            } catch (std::exception const& e) {
                throw std::runtime_error(file + ": " + e.what());
            }
        };
        load(o_.ca, [&] { ctx.load_verify_file(o_.ca); });
        load(o_.cert, [&] { ctx.use_certificate_chain_file(o_.cert); });
        load(o_.key, [&] { ctx.use_private_key_file(o_.key, ssl::context::pem); });
        ctx.set_verify_mode(ssl::verify_peer);
        return ctx;
    }

    // One HTTPS request with the facility's client certificate. Throws std::runtime_error naming the step that
    // failed or ran out of time, Stopped on SIGTERM.
    Response post(std::string const& target, std::string const& body, std::string const& idempotency_key) {
        using std::chrono::milliseconds;
        milliseconds const connect_deadline(o_.connect_timeout_ms), answer_deadline(o_.answer_timeout_ms);
        ssl::context ctx = context();
        auto const endpoints = resolve(connect_deadline);
        beast::ssl_stream<beast::tcp_stream> stream(io_, ctx);
        // The server must be the one named in --server, not any holder of a certificate from the CA (with a public CA,
        // anyone's): its certificate must name the host (or IP address), and the name goes out as SNI.
        stream.set_verify_callback(ssl::host_name_verification(server_.host));
        if (!SSL_set_tlsext_host_name(stream.native_handle(), server_.host.c_str()))
            throw std::runtime_error("TLS: cannot set the server name " + server_.host);
        http::request<http::string_body> req{http::verb::post, target, 11};
        req.set(http::field::host, server_.host);
        req.set(http::field::content_type, "application/xml");
        req.set("Idempotency-Key", idempotency_key);
        // A file that may be refused for its size (beyond what anonymous callers may send, 64 KiB) asks first.
        bool const ask_first = body.size() > 64 * 1024;
        if (ask_first) req.set(http::field::expect, "100-continue");
        req.body() = body;
        req.prepare_payload();

        auto& tcp = beast::get_lowest_layer(stream);
        char const* step = "connect";
        milliseconds limit = connect_deadline;
        Response response;
        auto exchange = [&]() -> net::awaitable<void> {
            tcp.expires_after(limit);
            co_await tcp.async_connect(endpoints, net::use_awaitable);
            step = "TLS handshake";
            tcp.expires_after(limit);
            co_await stream.async_handshake(ssl::stream_base::client, net::use_awaitable);
            step = "send";
            limit = answer_deadline;
            tcp.expires_after(limit);
            // Expect: 100-continue (RFC 9110 10.1.1): the header first; the file only after the server's 100. A file
            // the server refuses (too large, a facility's uploads at once) is answered before a byte of it is sent,
            // and the relay reports that answer — not a broken pipe — and does not send megabytes again on each try.
            // (kyotaku serve always answers 100 or a final status; a server that does neither is waited for until the
            // answer's deadline, and the failure names that step.)
            http::request_serializer<http::string_body> serializer{req};
            if (ask_first) co_await http::async_write_header(stream, serializer, net::use_awaitable);
            else co_await http::async_write(stream, serializer, net::use_awaitable);
            step = "answer";
            tcp.expires_after(limit);
            beast::flat_buffer buffer;
            std::optional<http::response_parser<http::empty_body>> first(std::in_place);
            co_await http::async_read_header(stream, buffer, *first, net::use_awaitable);
            if (ask_first && first->get().result() == http::status::continue_) {
                step = "send";
                tcp.expires_after(limit);
                co_await http::async_write(stream, serializer, net::use_awaitable);
                step = "answer";
                tcp.expires_after(limit);
                first.emplace();
                co_await http::async_read_header(stream, buffer, *first, net::use_awaitable);
            }
            http::response_parser<http::string_body> parser{std::move(*first)};
            parser.body_limit(512 * 1024 * 1024);
            co_await http::async_read(stream, buffer, parser, net::use_awaitable);
            response = Response{int(parser.get().result_int()), parser.get().body()};
            // The answer is whole: a server that does not close politely costs at most a second, and is no failure.
            step = "close";
            tcp.expires_after(std::chrono::seconds(1));
            beast::error_code ignored;
            co_await stream.async_shutdown(net::redirect_error(net::use_awaitable, ignored));
        };
        bool done = false;
        std::exception_ptr failure;
        io_.restart();
        net::co_spawn(io_, exchange(), [&](std::exception_ptr e) {
            failure = e;
            done = true;
        });
        bool stopping = false;
        while (!done) {
            io_.run_one_for(std::chrono::milliseconds(100));
            if (stop_requested && !stopping) {  // ends the step under way; the coroutine then finishes at once
                stopping = true;
                beast::error_code ignored;
                tcp.socket().close(ignored);
            }
        }
        if (stopping) throw Stopped{};
        if (failure && std::string_view(step) != "close") {
            try {
                std::rethrow_exception(failure);
            } catch (boost::system::system_error const& e) {
                std::string const where = std::string(step) + " " + server_.host + ":" + server_.port;
                if (e.code() == beast::error::timeout)
                    throw std::runtime_error(where + ": no progress within " + seconds_text(limit) + " (timed out)");
                throw std::runtime_error(where + ": " + e.code().message());
            }
        }
        return response;
    }

private:
    RelayOptions const& o_;
    Endpoint server_;
    net::io_context io_;

    // The server's addresses. A numeric address needs no lookup; a name is looked up on a thread of its own,
    // because getaddrinfo cannot be cancelled: past the deadline (or on SIGTERM) the lookup is left to finish alone.
    std::vector<tcp::endpoint> resolve(std::chrono::milliseconds deadline) {
        boost::system::error_code ec;
        auto const address = net::ip::make_address(server_.host, ec);
        unsigned long const port = std::strtoul(server_.port.c_str(), nullptr, 10);
        if (port == 0 || port > 65535)
            throw std::runtime_error("--server " + o_.server + ": the port is not a number from 1 to 65535");
        if (!ec) return {tcp::endpoint(address, static_cast<unsigned short>(port))};
        struct Lookup {
            std::mutex m;
            bool done = false;
            std::vector<tcp::endpoint> found;
            std::string error;
        };
        auto lookup = std::make_shared<Lookup>();
        std::thread([lookup, host = server_.host, service = server_.port] {
            std::vector<tcp::endpoint> found;
            std::string error;
            try {
                net::io_context io;
                tcp::resolver resolver(io);
                for (auto const& entry : resolver.resolve(host, service)) found.push_back(entry.endpoint());
            } catch (std::exception const& e) {
                error = e.what();
            }
            std::lock_guard lock(lookup->m);
            lookup->found = std::move(found);
            lookup->error = std::move(error);
            lookup->done = true;
        }).detach();
        auto const until = std::chrono::steady_clock::now() + deadline;
        bool timed_out = false;
        wait_until([&] {
            std::lock_guard lock(lookup->m);
            timed_out = !lookup->done && std::chrono::steady_clock::now() >= until;
            return lookup->done || timed_out;
        });
        if (timed_out)
            throw std::runtime_error("resolve " + server_.host + ": no answer within " + seconds_text(deadline) +
                                     " (timed out)");
        std::lock_guard lock(lookup->m);
        if (!lookup->error.empty()) throw std::runtime_error("resolve " + server_.host + ": " + lookup->error);
        if (lookup->found.empty()) throw std::runtime_error("resolve " + server_.host + ": no address");
        return lookup->found;
    }
};

std::system_error os_error(std::string const& what) { return std::system_error(errno, std::generic_category(), what); }

// A descriptor closed when it goes out of scope.
struct Fd {
    int fd = -1;
    explicit Fd(int f = -1) : fd(f) {}
    Fd(Fd&& o) noexcept : fd(o.fd) { o.fd = -1; }
    Fd& operator=(Fd&& o) noexcept {
        std::swap(fd, o.fd);
        return *this;
    }
    Fd(Fd const&) = delete;
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
};

// The folders of the exchange, opened once: every file is then reached relative to them, never through a
// symlink in their place.
Fd open_folder(fs::path const& path) {
    std::error_code ec;
    fs::create_directory(path, ec);
    Fd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (fd.fd < 0) throw os_error(path.string());
    return fd;
}

// A regular file of the folder (lstat: a symlink is not one).
bool regular_at(int dir, std::string const& name) {
    struct stat st {};
    return ::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
}

// Reads a regular file without following a symlink (O_NOFOLLOW) and without blocking on a FIFO swapped in
// after the check (O_NONBLOCK; fstat then refuses it).
std::string read_regular(int dir, std::string const& name) {
    Fd fd(::openat(dir, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
    if (fd.fd < 0) throw os_error("req/" + name);
    struct stat st {};
    if (::fstat(fd.fd, &st) != 0) throw os_error("req/" + name);
    if (!S_ISREG(st.st_mode))
        throw std::runtime_error("req/" + name + ": 通常のファイルではありません / not a regular file");
    if (std::size_t(st.st_size) > max_request_bytes) return std::string(max_request_bytes + 1, '\0');
    std::string bytes(std::size_t(st.st_size), '\0');
    std::size_t at = 0;
    while (at < bytes.size()) {
        ssize_t n = ::pread(fd.fd, bytes.data() + at, bytes.size() - at, off_t(at));
        if (n < 0) throw os_error("req/" + name);
        if (n == 0) break;  // shrank meanwhile: the settle check sees it next time
        at += std::size_t(n);
    }
    bytes.resize(at);
    return bytes;
}

// Writes `bytes` as `name` in the folder atomically and durably, readable by the relay's user only (an answer
// holds a patient's eligibility, whatever the umask): a temporary file of a fixed-length random name (so that
// any name that fits the folder can be written) created exclusively and without following a symlink, synced,
// renamed over the name, the folder synced. Throws on any failure (a full disk), leaving no temporary file behind.
void write_atomic(int dir, std::string const& label, std::string const& name, std::string const& bytes) {
    std::string const tmp = "." + new_id().substr(0, 16) + ".tmp";
    Fd fd(::openat(dir, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (fd.fd < 0) throw os_error(label + "/" + tmp);
    auto fail = [&](std::string const& what) {
        std::system_error e = os_error(label + "/" + what);
        ::unlinkat(dir, tmp.c_str(), 0);
        return e;
    };
    for (std::size_t at = 0; at < bytes.size();) {
        ssize_t n = ::write(fd.fd, bytes.data() + at, bytes.size() - at);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw fail(tmp);
        }
        at += std::size_t(n);
    }
    if (::fsync(fd.fd) != 0) throw fail(tmp);
    if (::renameat(dir, tmp.c_str(), dir, name.c_str()) != 0) throw fail(name);
    ::fsync(dir);
}

std::string result_name(std::string const& req) {
    std::string out = req;
    for (char const* from : {"01req", "02req"}) {
        auto at = out.find(from);
        if (at != std::string::npos) {
            out.replace(at + 2, 3, "res");
            return out;
        }
    }
    return out + ".res";
}

// An error result in the OQSmuquc01res shape, in the request's encoding when it can be told.
// The file's one ErrorMessage holds both languages ("ja / en").
std::string error_result(std::string const& request, Message const& message) {
    try {
        return file_error_result(request, "", "", message.text(), SystemClock().stamp_jst());
    } catch (std::exception const&) {  // the message would not convert to the request's encoding
        return file_error_result("", "", "", message.text(), SystemClock().stamp_jst());
    }
}

bool complete_xml(std::string const& bytes) {
    auto end = bytes.find_last_not_of(" \t\r\n");
    return end != std::string::npos && end >= 8 && bytes.compare(end - 8, 9, "</XmlMsg>") == 0;
}

std::string route_of(std::string const& name) {
    for (char const* kind : {"OQSmuquc01req", "OQSmuquc02req", "OQSsiquc01req", "OQSsiimm01req", "OQSmuimm01req",
                             "OQSmuhvq01req", "OQSmuonq01req"})
        if (name.find(kind) != std::string::npos) return std::string("/api/v1/oqs/") + kind;
    // The download phase is the same for every bulk flow: a ReceptionNumber.
    for (char const* kind : {"OQSmuhvq02req", "OQSmuonq02req", "OQSmuimm02req"})
        if (name.find(kind) != std::string::npos) return "/api/v1/oqs/OQSmuquc02req";
    return {};
}

struct Seen {
    off_t size = -1;
    timespec time{};
    std::chrono::steady_clock::time_point stable_since;
    int failures = 0;                                // attempts that failed (sending, or writing the answer)
    std::chrono::steady_clock::time_point next_try;  // not before this (backoff after a failure)
    bool given_up = false;                           // --once: left in req/ after max_attempts failures
};

// What a run did, for the last line and --once's exit status.
struct Tally {
    int answered = 0;        // with the server's answer
    int error_answers = 0;   // with an error result made by the relay (unreachable server, unsupported or broken file)
    int moved_aside = 0;     // to rejected/: its answer's name would not fit the folder
    int left = 0;            // --once: still in req/ (its answer could not be written; tried max_attempts times)
};

class Relay {
public:
    explicit Relay(RelayOptions const& o)
        : o_(o),
          uplink_(o),
          req_(open_folder(fs::path(o.dir) / "req")),
          res_(open_folder(fs::path(o.dir) / "res")),
          done_(open_folder(fs::path(o.dir) / "done")),
          sent_(open_folder(fs::path(o.dir) / "sent")) {}

    // The TLS files, checked once at start (each request loads them again).
    void check_tls() const { uplink_.context(); }

    // One pass over req/. Returns whether something is still pending (being written, or to retry). Throws Stopped.
    bool pass() {
        bool pending = false;
        std::vector<std::string> names;
        try {
            names = list(req_.fd);
        } catch (std::exception const& e) {
            report("req", e.what());
            return true;
        }
        for (auto const& name : names) {
            if (stop_requested) throw Stopped{};
            auto const now = std::chrono::steady_clock::now();
            auto& s = seen_[name];
            if (s.given_up) continue;
            if (now < s.next_try) {  // backing off after a failure
                pending = true;
                continue;
            }
            try {
                pending |= handle(name, s, now);
            // a full disk, an unwritable res/, a vanished file …: reported, retried later
            } catch (std::exception const& e) {
                failed(name, s, now, e.what());
                pending |= !s.given_up;
            }
        }
        for (auto it = seen_.begin(); it != seen_.end();)  // forget files that went away
            it = std::find(names.begin(), names.end(), it->first) == names.end() ? seen_.erase(it) : std::next(it);
        return pending;
    }

    // At start: records of requests that are no longer in req/ (answered, then the relay stopped before removing
    // the record), and temporary files a stopped relay left in res/ and sent/ (unlinked, never followed).
    void drop_stale_records() {
        try {
            for (auto const& name : list(sent_.fd))
                if (!regular_at(req_.fd, name)) ::unlinkat(sent_.fd, name.c_str(), 0);
            for (int dir : {res_.fd, sent_.fd})
                for (auto const& name : list(dir, true))
                    if (name.size() > 5 && name.front() == '.' && name.compare(name.size() - 4, 4, ".tmp") == 0)
                        ::unlinkat(dir, name.c_str(), 0);
        } catch (std::exception const& e) {
            report("sent", e.what());
        }
    }

    Tally const& tally() const { return tally_; }

private:
    RelayOptions const& o_;
    Uplink uplink_;
    Fd req_, res_, done_, sent_;
    std::optional<Fd> rejected_;  // made when first needed
    std::map<std::string, Seen> seen_;
    std::map<std::string, std::string> reported_;  // the last message per file: each said once
    Tally tally_;

    void report(std::string const& name, std::string const& message) {
        auto& last = reported_[name];
        if (last == message) return;
        last = message;
        std::cerr << "relay: " << name << ": " << message << std::endl;
    }

    // A failed attempt: tried again after a backoff that doubles each time (retry_ms, 2×, 4× … at most a minute);
    // with --once, given up after max_attempts (the file stays in req/ for the next run).
    void failed(std::string const& name, Seen& s, std::chrono::steady_clock::time_point now, std::string const& why) {
        ++s.failures;
        auto wait = std::chrono::milliseconds(o_.retry_ms);
        for (int i = 1; i < s.failures && wait < max_backoff; ++i) wait *= 2;
        wait = std::min<std::chrono::milliseconds>(wait, max_backoff);
        s.next_try = now + wait;
        if (o_.once && s.failures >= o_.max_attempts) {
            s.given_up = true;
            ++tally_.left;
            report(name, why + " (" + std::to_string(s.failures) + " attempts; left in req/ for the next run)");
            return;
        }
        report(name, why + " (attempt " + std::to_string(s.failures) + ", next in " + seconds_text(wait) + ")");
    }

    // The visible names of a folder (hidden ones — our temporary files — excluded unless asked for).
    static std::vector<std::string> list(int dir, bool hidden = false) {
        Fd copy(::dup(dir));
        if (copy.fd < 0) throw os_error("dup");
        DIR* d = ::fdopendir(copy.fd);
        if (!d) throw os_error("opendir");
        copy.fd = -1;  // owned by d now
        ::rewinddir(d);
        std::vector<std::string> names;
        errno = 0;
        while (dirent* e = ::readdir(d)) {
            std::string const n = e->d_name;
            if (n != "." && n != ".." && (hidden || n[0] != '.')) names.push_back(n);
            errno = 0;
        }
        int const error = errno;
        ::closedir(d);
        if (error) throw std::system_error(error, std::generic_category(), "readdir");
        std::sort(names.begin(), names.end());
        return names;
    }

    // The request is answered: moved to done/ (replacing an older file of the same name), then its record removed.
    void finish(std::string const& name) {
        if (::renameat(req_.fd, name.c_str(), done_.fd, name.c_str()) != 0) throw os_error("done/" + name);
        ::fsync(done_.fd);
        ::fsync(req_.fd);
        ::unlinkat(sent_.fd, name.c_str(), 0);
        seen_.erase(name);
        reported_.erase(name);
    }

    // A request whose answer cannot have the matching name (it would be longer than the folder allows): moved to
    // rejected/, never sent, so that it neither waits for ever nor keeps --once from ending.
    void move_aside(std::string const& name, std::string const& why) {
        if (!rejected_) rejected_.emplace(open_folder(fs::path(o_.dir) / "rejected"));
        if (::renameat(req_.fd, name.c_str(), rejected_->fd, name.c_str()) != 0) throw os_error("rejected/" + name);
        ::fsync(rejected_->fd);
        ::fsync(req_.fd);
        std::cerr << "relay: " << name << ": " << why << "; moved to rejected/" << std::endl;
        ++tally_.moved_aside;
        seen_.erase(name);
        reported_.erase(name);
    }

    // The idempotency key of this request: the recorded one when the record is of these bytes, else a new one,
    // recorded (synced) before anything is sent.
    std::string record_sending(std::string const& name, std::string const& bytes) {
        std::string const hash = sha256_hex(bytes);
        if (regular_at(sent_.fd, name)) {
            std::string record;
            try {
                record = read_regular(sent_.fd, name);
            } catch (std::exception const&) {
            }
            auto nl = record.find('\n');
            if (nl != std::string::npos && record.compare(nl + 1, hash.size(), hash) == 0) return record.substr(0, nl);
        }
        std::string key = new_id();
        write_atomic(sent_.fd, "sent", name, key + "\n" + hash + "\n");
        return key;
    }

    bool handle(std::string const& name, Seen& s, std::chrono::steady_clock::time_point now) {
        std::string const out = result_name(name);
        if (out.size() > max_name_bytes) {
            move_aside(name, "名前が長すぎて結果ファイルを作れません (" + std::to_string(out.size()) +
                                 " バイト) / the answer's name would be " + std::to_string(out.size()) +
                                 " bytes, more than the folder allows (" + std::to_string(max_name_bytes) + ")");
            return false;
        }
        // Answered before (perhaps by a relay that stopped before moving the request): never again.
        if (regular_at(res_.fd, out)) {
            finish(name);
            return false;
        }
        struct stat st {};
        if (::fstatat(req_.fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno == ENOENT) return false;
            throw os_error("req/" + name);
        }
        if (!S_ISREG(st.st_mode)) {
            report(name, "通常のファイルではないので扱いません (シンボリックリンク、FIFO、デバイス、フォルダ) / "
                         "skipped: not a regular file "
                         "(a symbolic link, FIFO, device or folder)");
            return false;
        }
        if (s.size != st.st_size || s.time.tv_sec != st.st_mtim.tv_sec || s.time.tv_nsec != st.st_mtim.tv_nsec ||
            s.stable_since == std::chrono::steady_clock::time_point{}) {
            s.size = st.st_size;
            s.time = st.st_mtim;
            s.stable_since = now;
            return true;
        }
        bool const settled = now - s.stable_since >= std::chrono::milliseconds(o_.settle_ms);
        if (!settled) return true;
        std::string const bytes = read_regular(req_.fd, name);
        std::string answer;
        bool from_server = false;
        if (bytes.size() > max_request_bytes) {
            answer = error_result(
                "", {"要求ファイルが大きすぎます (64 MB まで)", "the request file is too large (at most 64 MB)"});
        } else if (!complete_xml(bytes)) {
            // perhaps still being written
            if (now - s.stable_since < std::chrono::milliseconds(o_.settle_ms * 30)) return true;
            answer = error_result(bytes, {"要求ファイルが途中で終わっています", "the request file is incomplete"});
        } else if (std::string const target = route_of(name); target.empty()) {
            answer = error_result(bytes,
                                  {"この種類のファイルにはまだ対応していません", "unsupported request file: " + name});
        } else {
            std::string const key = record_sending(name, bytes);
            try {
                Response r = uplink_.post(target, bytes, key);
                from_server = r.body.rfind("<?xml", 0) == 0;
                std::string const status = std::to_string(r.status);
                answer = from_server
                             ? r.body
                             : error_result(bytes, {"サーバの応答 " + status,
                                                    "server answered " + status + ": " + r.body.substr(0, 300)});
            } catch (std::exception const& e) {
                if (s.failures + 1 < o_.max_attempts) throw;  // failed(): retried after a backoff
                answer = error_result(
                    bytes, {"サーバに送れませんでした", std::string("could not reach the server: ") + e.what()});
                report(name, e.what());
            }
        }
        // The answer is on disk before the request is forgotten: if this write fails (a full disk, res/ not
        // writable), the request stays, and a later pass sends it again with the same key and gets the same answer.
        write_atomic(res_.fd, "res", out, answer);
        finish(name);
        ++(from_server ? tally_.answered : tally_.error_answers);
        std::cout << "relay: " << name << " → " << out << (from_server ? "" : " (error result)") << std::endl;
        return false;
    }
};

}  // namespace

int relay(RelayOptions const& o) {
    for (auto const& f : {o.ca, o.cert, o.key})
        if (!fs::exists(f)) {
            std::cerr << "kyotaku relay: " << f << " がありません / missing TLS file\n";
            return relay_exit::usage;
        }
    if (o.connect_timeout_ms <= 0 || o.answer_timeout_ms <= 0 || o.retry_ms <= 0 || o.max_attempts <= 0) {
        std::cerr << "kyotaku relay: timeouts, --retry-ms and --attempts must be positive\n";
        return relay_exit::usage;
    }
    std::optional<Relay> relay;
    try {
        std::error_code ec;
        fs::create_directories(o.dir, ec);
        relay.emplace(o);
    } catch (std::exception const& e) {
        std::cerr << "kyotaku relay: " << o.dir << ": " << e.what()
                  << " (req, res, done, sent は実在のフォルダであること / must be real folders, not symlinks)\n";
        return relay_exit::usage;
    }
    try {
        relay->check_tls();
    } catch (std::exception const& e) {
        std::cerr << "kyotaku relay: TLS: " << e.what() << "\n";
        return relay_exit::usage;
    }
    stop_requested = 0;
    std::signal(SIGINT, [](int) { stop_requested = 1; });
    std::signal(SIGTERM, [](int) { stop_requested = 1; });
    std::signal(SIGPIPE, SIG_IGN);
    relay->drop_stale_records();
    std::cout << "relay: watching " << (fs::path(o.dir) / "req").string() << " → " << (fs::path(o.dir) / "res").string()
              << " (" << o.server << ")" << std::endl;
    bool stopped = false;
    try {
        for (;;) {
            bool const pending = relay->pass();
            if (o.once && !pending) break;
            auto const until = std::chrono::steady_clock::now() + std::chrono::milliseconds(o.poll_ms);
            wait_until([&] { return std::chrono::steady_clock::now() >= until; });
        }
    } catch (Stopped) {
        stopped = true;
    }
    Tally const& t = relay->tally();
    std::cout << "relay: " << (stopped ? "stopped" : "done") << ": " << t.answered << " answered, " << t.error_answers
              << " with an error result, " << t.moved_aside << " moved to rejected/, " << t.left << " left in req/"
              << std::endl;
    if (stopped) return o.once ? relay_exit::stopped : relay_exit::done;
    if (t.left > 0) return relay_exit::left_pending;
    if (t.error_answers > 0 || t.moved_aside > 0) return relay_exit::error_results;
    return relay_exit::done;
}

}  // namespace kyotaku::server
