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
#include <optional>
#include <system_error>
#include <thread>

namespace kyotaku::server {

namespace fs = std::filesystem;
namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;

namespace {

volatile std::sig_atomic_t stop_requested = 0;

// The largest request file the relay reads (the server's limit for XML bodies).
constexpr std::size_t max_request_bytes = 64 * 1024 * 1024;

struct Endpoint {
    std::string host, port;
};
Endpoint parse_server(std::string const& url) {
    std::string rest = url.rfind("https://", 0) == 0 ? url.substr(8) : url;
    rest = rest.substr(0, rest.find('/'));
    auto colon = rest.rfind(':');
    if (colon == std::string::npos) return {rest, "443"};
    return {rest.substr(0, colon), rest.substr(colon + 1)};
}

struct Response {
    int status = 0;
    std::string body;
};

// One HTTPS request with the facility's client certificate. Throws on a network or TLS failure.
Response post(RelayOptions const& o, std::string const& target, std::string const& body, std::string const& idempotency_key) {
    net::io_context io;
    ssl::context ctx(ssl::context::tls_client);
    ctx.load_verify_file(o.ca);
    ctx.use_certificate_chain_file(o.cert);
    ctx.use_private_key_file(o.key, ssl::context::pem);
    ctx.set_verify_mode(ssl::verify_peer);
    Endpoint ep = parse_server(o.server);
    beast::ssl_stream<beast::tcp_stream> stream(io, ctx);
    // The server must be the one named in --server, not any holder of a certificate from the CA (with a public CA,
    // anyone's): its certificate must name the host (or IP address), and the name goes out as SNI.
    stream.set_verify_callback(ssl::host_name_verification(ep.host));
    if (!SSL_set_tlsext_host_name(stream.native_handle(), ep.host.c_str())) throw std::runtime_error("TLS: cannot set the server name " + ep.host);
    net::ip::tcp::resolver resolver(io);
    beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(30));
    beast::get_lowest_layer(stream).connect(resolver.resolve(ep.host, ep.port));
    stream.handshake(ssl::stream_base::client);
    http::request<http::string_body> req{http::verb::post, target, 11};
    req.set(http::field::host, ep.host);
    req.set(http::field::content_type, "application/xml");
    req.set("Idempotency-Key", idempotency_key);
    req.body() = body;
    req.prepare_payload();
    beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(120));
    http::write(stream, req);
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(512 * 1024 * 1024);
    http::read(stream, buffer, parser);
    Response r{int(parser.get().result_int()), parser.get().body()};
    beast::error_code ec;
    stream.shutdown(ec);
    return r;
}

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
    if (!S_ISREG(st.st_mode)) throw std::runtime_error("req/" + name + ": 通常のファイルではありません / not a regular file");
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

// Writes `bytes` as `name` in the folder atomically and durably: a temporary file created exclusively and
// without following a symlink (a stale or planted one is unlinked first, never followed), synced, renamed over
// the name, the folder synced. Throws on any failure (a full disk), leaving no temporary file behind.
void write_atomic(int dir, std::string const& label, std::string const& name, std::string const& bytes) {
    std::string const tmp = "." + name + ".tmp";
    int const flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
    Fd fd(::openat(dir, tmp.c_str(), flags, 0644));
    if (fd.fd < 0 && errno == EEXIST) {
        ::unlinkat(dir, tmp.c_str(), 0);
        fd = Fd(::openat(dir, tmp.c_str(), flags, 0644));
    }
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
std::string error_result(std::string const& request, std::string const& message) {
    try {
        return file_error_result(request, "", "", message, SystemClock().stamp_jst());
    } catch (std::exception const&) {  // the message would not convert to the request's encoding
        return file_error_result("", "", "", message, SystemClock().stamp_jst());
    }
}

bool complete_xml(std::string const& bytes) {
    auto end = bytes.find_last_not_of(" \t\r\n");
    return end != std::string::npos && end >= 8 && bytes.compare(end - 8, 9, "</XmlMsg>") == 0;
}

std::string route_of(std::string const& name) {
    for (char const* kind : {"OQSmuquc01req", "OQSmuquc02req", "OQSsiquc01req", "OQSsiimm01req", "OQSmuimm01req", "OQSmuhvq01req", "OQSmuonq01req"})
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
    int attempts = 0;
};

class Relay {
public:
    explicit Relay(RelayOptions const& o)
        : o_(o),
          req_(open_folder(fs::path(o.dir) / "req")),
          res_(open_folder(fs::path(o.dir) / "res")),
          done_(open_folder(fs::path(o.dir) / "done")),
          sent_(open_folder(fs::path(o.dir) / "sent")) {}

    // One pass over req/. Returns whether something is still pending (being written, or to retry).
    bool pass() {
        bool pending = false;
        std::vector<std::string> names;
        try {
            names = list(req_.fd);
        } catch (std::exception const& e) {
            report("req", e.what());
            return true;
        }
        auto now = std::chrono::steady_clock::now();
        for (auto const& name : names) {
            try {
                pending |= handle(name, now);
            } catch (std::exception const& e) {  // a full disk, a vanished file …: reported, retried next pass
                report(name, e.what());
                pending = true;
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
                    if (name.size() > 5 && name.front() == '.' && name.compare(name.size() - 4, 4, ".tmp") == 0) ::unlinkat(dir, name.c_str(), 0);
        } catch (std::exception const& e) {
            report("sent", e.what());
        }
    }

private:
    RelayOptions const& o_;
    Fd req_, res_, done_, sent_;
    std::map<std::string, Seen> seen_;
    std::map<std::string, std::string> reported_;  // the last message per file: each said once

    void report(std::string const& name, std::string const& message) {
        auto& last = reported_[name];
        if (last == message) return;
        last = message;
        std::cerr << "relay: " << name << ": " << message << std::endl;
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

    bool handle(std::string const& name, std::chrono::steady_clock::time_point now) {
        std::string const out = result_name(name);
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
            report(name, "通常のファイルではないので扱いません (シンボリックリンク、FIFO、デバイス、フォルダ) / skipped: not a regular file "
                         "(a symbolic link, FIFO, device or folder)");
            return false;
        }
        auto& s = seen_[name];
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
        if (bytes.size() > max_request_bytes) {
            answer = error_result("", "要求ファイルが大きすぎます (64 MB まで) / the request file is too large (at most 64 MB)");
        } else if (!complete_xml(bytes)) {
            if (now - s.stable_since < std::chrono::milliseconds(o_.settle_ms * 30)) return true;  // perhaps still being written
            answer = error_result(bytes, "要求ファイルが途中で終わっています / the request file is incomplete");
        } else if (std::string const target = route_of(name); target.empty()) {
            answer = error_result(bytes, "この種類のファイルにはまだ対応していません / unsupported request file: " + name);
        } else {
            std::string const key = record_sending(name, bytes);
            try {
                Response r = post(o_, target, bytes, key);
                answer = r.body.rfind("<?xml", 0) == 0 ? r.body
                                                        : error_result(bytes, "サーバの応答 " + std::to_string(r.status) + " / server answered " +
                                                                                  std::to_string(r.status) + ": " + r.body.substr(0, 300));
            } catch (std::exception const& e) {
                if (++s.attempts < o_.max_attempts) {
                    report(name, std::string(e.what()) + " (retrying)");
                    return true;
                }
                answer = error_result(bytes, std::string("サーバに送れませんでした / could not reach the server: ") + e.what());
            }
        }
        // The answer is on disk before the request is forgotten: if this write fails (a full disk), the request
        // stays, and the next pass sends it again with the same key and gets the same answer.
        write_atomic(res_.fd, "res", out, answer);
        finish(name);
        std::cout << "relay: " << name << " → " << out << std::endl;
        return false;
    }
};

}  // namespace

int relay(RelayOptions const& o) {
    for (auto const& f : {o.ca, o.cert, o.key})
        if (!fs::exists(f)) {
            std::cerr << "kyotaku relay: " << f << " がありません / missing TLS file\n";
            return 2;
        }
    std::optional<Relay> relay;
    try {
        std::error_code ec;
        fs::create_directories(o.dir, ec);
        relay.emplace(o);
    } catch (std::exception const& e) {
        std::cerr << "kyotaku relay: " << o.dir << ": " << e.what() << " (req, res, done, sent は実在のフォルダであること / must be real folders, not symlinks)\n";
        return 2;
    }
    std::signal(SIGINT, [](int) { stop_requested = 1; });
    std::signal(SIGTERM, [](int) { stop_requested = 1; });
    std::signal(SIGPIPE, SIG_IGN);
    relay->drop_stale_records();
    std::cout << "relay: watching " << (fs::path(o.dir) / "req").string() << " → " << (fs::path(o.dir) / "res").string() << " (" << o.server
              << ")" << std::endl;
    while (!stop_requested) {
        bool pending = relay->pass();
        if (o.once && !pending) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(o.poll_ms));
    }
    return 0;
}

}  // namespace kyotaku::server
