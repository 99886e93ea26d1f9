// Logs and metrics of `kyotaku serve`.
//
// Logs: one JSON object per line on stdout (for journald), each with "time" (UTC, microseconds) and "level".
// A request's line holds only what an operator needs — time, request id, facility code, role, method, the route
// *pattern* (never the path: /c/{token} carries a token), status, duration and byte counts — never a body, a
// query string, a header, a token, a PIN or a passcode.
//
// Metrics: Prometheus text format (version 0.0.4), rendered by Runtime::metrics_text().
#pragma once

#include <nlohmann/json.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

namespace kyotaku::server {

// Writes `fields` as one line on stdout, in their order, after "time" and "level" (default level "info").
using LogFields = nlohmann::ordered_json;
void log_line(LogFields fields, char const* level = "info");
// An error line: "level":"error", "event" and "error", and the current request's id when there is one.
void log_error(std::string const& event, std::string const& message);

// The request being handled on this thread (set around the synchronous handling of one request), so that
// error lines name it.
class RequestScope {
public:
    explicit RequestScope(std::string const& request_id);
    ~RequestScope();
    RequestScope(RequestScope const&) = delete;
    RequestScope& operator=(RequestScope const&) = delete;
};
// The id of the request being handled on this thread ("" when none).
std::string current_request_id();

struct RequestRecord {
    std::string request_id, facility, role, method, route;  // route: the pattern, "" when no route matched
    int status = 0;
    double seconds = 0;
    std::uint64_t bytes_in = 0, bytes_out = 0;
    std::string listener = "main";  // "patients" for patient_listen's requests
};
void log_request(RequestRecord const& r);

// Per-route request counters and latency histograms.
class RequestMetrics {
public:
    static constexpr std::array<double, 12> buckets{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                    0.1,   0.25,   0.5,   1,    2.5,   10};
    void record(RequestRecord const& r);
    void render(std::string& out) const;  // kyotaku_http_requests_total, …_duration_seconds, …_response_bytes_total

private:
    struct Histogram {
        std::array<std::uint64_t, buckets.size()> counts{};
        std::uint64_t count = 0;
        double sum = 0;
    };
    mutable std::mutex mutex_;
    // route, method, status, listener
    std::map<std::tuple<std::string, std::string, int, std::string>, std::uint64_t> requests_;
    std::map<std::pair<std::string, std::string>, Histogram> durations_;            // route, method
    std::map<std::pair<std::string, std::string>, std::uint64_t> bytes_;            // route, method
};

// UTC time `ago` before now, as the database's timestamps are written (iso_timestamp), to compare with them.
std::string iso_time_ago(std::chrono::seconds ago);

// Text format helpers: "# HELP", "# TYPE" and samples; label values are escaped.
void metric_header(std::string& out, char const* name, char const* type, char const* help);
void metric_sample(std::string& out, std::string const& name, std::map<std::string, std::string> const& labels,
                   double value);

}  // namespace kyotaku::server
