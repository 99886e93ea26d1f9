// A load generator for `kyotaku serve` with client certificates (wrk cannot present one): C connections in
// C threads, each keep-alive, POSTing the same request (or GETting PATH when BODY_FILE is "-") for D seconds;
// prints requests/s and latency percentiles.
// Usage: server_load HOST PORT CA CERT KEY PATH BODY_FILE CONNECTIONS SECONDS
#include <utility>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast.hpp>
#include <boost/beast/ssl.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
using clock_type = std::chrono::steady_clock;

int main(int argc, char** argv) {
    if (argc != 10) {
        std::fprintf(stderr, "usage: server_load HOST PORT CA CERT KEY PATH BODY_FILE CONNECTIONS SECONDS\n");
        return 2;
    }
    std::string host = argv[1], port = argv[2], ca = argv[3], cert = argv[4], key = argv[5], path = argv[6];
    bool const get = std::string(argv[7]) == "-";
    std::stringstream ss;
    if (!get) {
        std::ifstream bf(argv[7]);
        ss << bf.rdbuf();
    }
    std::string body = ss.str();
    int connections = std::atoi(argv[8]);
    double seconds = std::atof(argv[9]);
    std::vector<std::vector<double>> latencies(static_cast<std::size_t>(connections));
    std::atomic<long> errors{0}, non200{0};
    auto deadline = clock_type::now() + std::chrono::duration<double>(seconds);
    std::vector<std::thread> threads;
    for (int c = 0; c < connections; ++c)
        threads.emplace_back([&, c] {
            try {
                net::io_context io;
                ssl::context ctx(ssl::context::tls_client);
                ctx.load_verify_file(ca);
                ctx.use_certificate_chain_file(cert);
                ctx.use_private_key_file(key, ssl::context::pem);
                beast::ssl_stream<beast::tcp_stream> stream(io, ctx);
                net::ip::tcp::resolver resolver(io);
                beast::get_lowest_layer(stream).connect(resolver.resolve(host, port));
                stream.handshake(ssl::stream_base::client);
                http::request<http::string_body> req{get ? http::verb::get : http::verb::post, path, 11};
                req.set(http::field::host, host);
                if (!get) req.set(http::field::content_type, "application/json");
                req.keep_alive(true);
                req.body() = body;
                req.prepare_payload();
                beast::flat_buffer buffer;
                while (clock_type::now() < deadline) {
                    auto t0 = clock_type::now();
                    http::write(stream, req);
                    http::response<http::string_body> res;
                    http::read(stream, buffer, res);
                    latencies[std::size_t(c)].push_back(
                        std::chrono::duration<double, std::milli>(clock_type::now() - t0).count());
                    if (res.result_int() != 200) ++non200;
                }
            } catch (std::exception const& e) {
                ++errors;
                std::fprintf(stderr, "connection %d: %s\n", c, e.what());
            }
        });
    for (auto& t : threads) t.join();
    std::vector<double> all;
    for (auto const& l : latencies) all.insert(all.end(), l.begin(), l.end());
    std::sort(all.begin(), all.end());
    auto pct = [&](double p) {
        return all.empty() ? 0.0 : all[std::min(all.size() - 1, std::size_t(p * double(all.size())))];
    };
    std::printf("%zu requests in %.1f s over %d connections: %.0f requests/s, p50 %.2f ms, p99 %.2f ms, max %.2f ms, "
                "non-200 %ld, errors %ld\n",
                all.size(), seconds, connections, double(all.size()) / seconds, pct(0.50), pct(0.99),
                all.empty() ? 0.0 : all.back(), non200.load(), errors.load());
    return errors == 0 && non200 == 0 ? 0 : 1;
}
