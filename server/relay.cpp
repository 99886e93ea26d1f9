#include "relay.hpp"

#include "oqs_xml.hpp"
#include "service.hpp"

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast.hpp>
#include <boost/beast/ssl.hpp>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <thread>

namespace kyotaku::server {

namespace fs = std::filesystem;
namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;

namespace {

volatile std::sig_atomic_t stop_requested = 0;

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
Response post(RelayOptions const& o, std::string const& target, std::string const& body) {
    net::io_context io;
    ssl::context ctx(ssl::context::tls_client);
    ctx.load_verify_file(o.ca);
    ctx.use_certificate_chain_file(o.cert);
    ctx.use_private_key_file(o.key, ssl::context::pem);
    ctx.set_verify_mode(ssl::verify_peer);
    Endpoint ep = parse_server(o.server);
    beast::ssl_stream<beast::tcp_stream> stream(io, ctx);
    net::ip::tcp::resolver resolver(io);
    beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(30));
    beast::get_lowest_layer(stream).connect(resolver.resolve(ep.host, ep.port));
    stream.handshake(ssl::stream_base::client);
    http::request<http::string_body> req{http::verb::post, target, 11};
    req.set(http::field::host, ep.host);
    req.set(http::field::content_type, "application/xml");
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

std::string read_file(fs::path const& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// Writes atomically: a reader of DIR/res never sees half a result either.
void write_file(fs::path const& p, std::string const& bytes) {
    fs::path tmp = p.parent_path() / ("." + p.filename().string() + ".tmp");
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        out.write(bytes.data(), std::streamsize(bytes.size()));
        out.flush();
        if (!out) throw std::runtime_error("cannot write " + tmp.string());
    }
    fs::rename(tmp, p);
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

struct Seen {
    std::uintmax_t size = 0;
    fs::file_time_type time;
    std::chrono::steady_clock::time_point stable_since;
    int attempts = 0;
};

}  // namespace

int relay(RelayOptions const& o) {
    fs::path req = fs::path(o.dir) / "req", res = fs::path(o.dir) / "res", done = fs::path(o.dir) / "done";
    std::error_code ec;
    for (auto const& d : {req, res, done}) fs::create_directories(d, ec);
    if (ec) {
        std::cerr << "kyotaku relay: " << o.dir << ": " << ec.message() << "\n";
        return 2;
    }
    for (auto const& f : {o.ca, o.cert, o.key})
        if (!fs::exists(f)) {
            std::cerr << "kyotaku relay: " << f << " がありません / missing TLS file\n";
            return 2;
        }
    std::signal(SIGINT, [](int) { stop_requested = 1; });
    std::signal(SIGTERM, [](int) { stop_requested = 1; });
    std::map<std::string, Seen> seen;
    std::cout << "relay: watching " << req.string() << " → " << res.string() << " (" << o.server << ")" << std::endl;
    while (!stop_requested) {
        bool pending = false;
        std::vector<fs::path> files;
        for (auto const& e : fs::directory_iterator(req, ec))
            if (e.is_regular_file() && e.path().filename().string()[0] != '.') files.push_back(e.path());
        std::sort(files.begin(), files.end());
        auto now = std::chrono::steady_clock::now();
        for (auto const& path : files) {
            std::string name = path.filename().string();
            fs::path out = res / result_name(name);
            // Answered before (perhaps by a relay that was killed before moving the request): never again.
            if (fs::exists(out)) {
                fs::rename(path, done / name, ec);
                seen.erase(name);
                continue;
            }
            auto size = fs::file_size(path, ec);
            auto time = fs::last_write_time(path, ec);
            if (ec) continue;
            auto& s = seen[name];
            if (s.size != size || s.time != time || s.stable_since == std::chrono::steady_clock::time_point{}) {
                s.size = size;
                s.time = time;
                s.stable_since = now;
                pending = true;
                continue;
            }
            bool settled = now - s.stable_since >= std::chrono::milliseconds(o.settle_ms);
            std::string bytes = read_file(path);
            if (!settled || (!complete_xml(bytes) && now - s.stable_since < std::chrono::milliseconds(o.settle_ms * 30))) {
                pending = true;  // still being written (or waiting to be sure it will not be finished)
                continue;
            }
            std::string answer;
            if (!complete_xml(bytes)) {
                answer = error_result(bytes, "要求ファイルが途中で終わっています / the request file is incomplete");
            } else {
                std::string target = name.find("OQSmuquc01req") != std::string::npos   ? "/api/v1/oqs/OQSmuquc01req"
                                     : name.find("OQSmuquc02req") != std::string::npos ? "/api/v1/oqs/OQSmuquc02req"
                                     : name.find("OQSsiquc01req") != std::string::npos ? "/api/v1/oqs/OQSsiquc01req"
                                     : name.find("OQSsiimm01req") != std::string::npos ? "/api/v1/oqs/OQSsiimm01req"
                                     : name.find("OQSmuimm01req") != std::string::npos ? "/api/v1/oqs/OQSmuimm01req"
                                     : name.find("OQSmuhvq01req") != std::string::npos ? "/api/v1/oqs/OQSmuhvq01req"
                                     : name.find("OQSmuonq01req") != std::string::npos ? "/api/v1/oqs/OQSmuonq01req"
                                     // The download phase is the same for every bulk flow: a ReceptionNumber.
                                     : (name.find("OQSmuhvq02req") != std::string::npos || name.find("OQSmuonq02req") != std::string::npos ||
                                        name.find("OQSmuimm02req") != std::string::npos)
                                         ? "/api/v1/oqs/OQSmuquc02req"
                                         : "";
                if (target.empty()) {
                    answer = error_result(bytes, "この種類のファイルにはまだ対応していません / unsupported request file: " + name);
                } else {
                    try {
                        Response r = post(o, target, bytes);
                        answer = r.body.rfind("<?xml", 0) == 0 ? r.body
                                                                : error_result(bytes, "サーバの応答 " + std::to_string(r.status) + " / server answered " +
                                                                                          std::to_string(r.status) + ": " + r.body.substr(0, 300));
                    } catch (std::exception const& e) {
                        if (++s.attempts < o.max_attempts) {
                            std::cerr << "relay: " << name << ": " << e.what() << " (retrying)\n";
                            pending = true;
                            continue;
                        }
                        answer = error_result(bytes, std::string("サーバに送れませんでした / could not reach the server: ") + e.what());
                    }
                }
            }
            write_file(out, answer);
            fs::rename(path, done / name, ec);
            seen.erase(name);
            std::cout << "relay: " << name << " → " << out.filename().string() << std::endl;
        }
        if (o.once && !pending) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(o.poll_ms));
    }
    return 0;
}

}  // namespace kyotaku::server
