#include "ops/observability.hpp"

#include "core/clock.hpp"
#include "core/codes.hpp"

#include <unistd.h>

#include <charconv>
#include <cmath>
#include <cstdio>

namespace kyotaku::server {

namespace {
std::mutex out_mutex;
thread_local std::string const* current_request = nullptr;

void write_line(std::string line) {
    line += '\n';
    std::lock_guard lock(out_mutex);
    // One write per line: lines of several threads never interleave, and a line reaches journald whole.
    for (std::size_t at = 0; at < line.size();) {
        ssize_t n = ::write(STDOUT_FILENO, line.data() + at, line.size() - at);
        if (n <= 0) return;  // stdout closed: logging must never stop the server
        at += std::size_t(n);
    }
}
}  // namespace

void log_line(LogFields fields, char const* level) {
    LogFields line{{"time", iso_timestamp(std::chrono::system_clock::now())}, {"level", level}};
    for (auto& [k, v] : fields.items()) line[k] = std::move(v);
    // Invalid UTF-8 (an error message quoting a client's bytes) is replaced, never allowed to throw.
    write_line(line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

void log_error(std::string const& event, std::string const& message) {
    LogFields fields{{"event", event}, {"error", message}};
    if (current_request) fields["request_id"] = *current_request;
    log_line(std::move(fields), "error");
}

RequestScope::RequestScope(std::string const& request_id) { current_request = &request_id; }
RequestScope::~RequestScope() { current_request = nullptr; }
std::string current_request_id() { return current_request ? *current_request : std::string(); }

namespace {
// `s` as a JSON string, as log_line's dump writes it (nlohmann: UTF-8 kept, '"', '\\' and the control characters
// escaped, \u00xx in lowercase); a text that is not valid UTF-8 goes through that dump itself (its replacement of
// the bad bytes).
void append_log_text(std::string& out, std::string_view s) {
    if (!valid_utf8(s)) {
        out += LogFields(std::string(s)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        return;
    }
    out += '"';
    for (char c : s) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (static_cast<unsigned char>(c) < 0x20) {
                    char escaped[8];
                    std::snprintf(escaped, sizeof escaped, "\\u%04x", unsigned(static_cast<unsigned char>(c)));
                    out += escaped;
                } else {
                    out += c;
                }
        }
    }
    out += '"';
}
void append_log_number(std::string& out, std::uint64_t n) {
    char digits[24];
    out.append(digits, std::size_t(std::to_chars(digits, digits + sizeof digits, n).ptr - digits));
}
}  // namespace

void log_request(RequestRecord const& r) {
    // The line log_line would write for these fields, in this order, written directly: the JSON document built for it
    // and dumped was ~5 % of the server's CPU under re-inquiry (perf, SQLite; docs/performance.md).
    std::string line;
    line.reserve(320);
    line += "{\"time\":";
    append_log_text(line, iso_timestamp(std::chrono::system_clock::now()));
    line += ",\"level\":\"info\",\"event\":\"request\",\"request_id\":";
    append_log_text(line, r.request_id);
    line += ",\"facility\":";
    if (r.facility.empty()) line += "null";
    else append_log_text(line, r.facility);
    line += ",\"role\":";
    append_log_text(line, r.role);
    line += ",\"method\":";
    append_log_text(line, r.method);
    line += ",\"route\":";
    if (r.route.empty()) line += "null";
    else append_log_text(line, r.route);
    line += ",\"status\":";
    line += std::to_string(r.status);
    line += ",\"duration_ms\":";
    line += LogFields(std::round(r.seconds * 1e6) / 1e3).dump();  // (nlohmann's own number: 0.0, 1.234, 1e+20)
    line += ",\"bytes_in\":";
    append_log_number(line, r.bytes_in);
    line += ",\"bytes_out\":";
    append_log_number(line, r.bytes_out);
    line += ",\"listener\":";
    append_log_text(line, r.listener);
    line += '}';
    write_line(std::move(line));
}

void RequestMetrics::record(RequestRecord const& r) {
    std::string const route = r.route.empty() ? "unmatched" : r.route;
    std::lock_guard lock(mutex_);
    ++requests_[{route, r.method, r.status, r.listener}];
    auto& h = durations_[{route, r.method}];
    for (std::size_t i = 0; i < buckets.size(); ++i)
        if (r.seconds <= buckets[i]) ++h.counts[i];
    ++h.count;
    h.sum += r.seconds;
    bytes_[{route, r.method}] += r.bytes_out;
}

std::string iso_time_ago(std::chrono::seconds ago) { return iso_timestamp(std::chrono::system_clock::now() - ago); }

void metric_header(std::string& out, char const* name, char const* type, char const* help) {
    out += "# HELP ";
    out += name;
    out += ' ';
    out += help;
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type;
    out += '\n';
}

void metric_sample(std::string& out, std::string const& name, std::map<std::string, std::string> const& labels,
                   double value) {
    out += name;
    if (!labels.empty()) {
        out += '{';
        bool first = true;
        for (auto const& [k, v] : labels) {
            if (!first) out += ',';
            first = false;
            out += k + "=\"";
            for (char c : v) {
                if (c == '\\') out += "\\\\";
                else if (c == '"') out += "\\\"";
                else if (c == '\n') out += "\\n";
                else out += c;
            }
            out += '"';
        }
        out += '}';
    }
    // The shortest text that reads back as exactly this double: a Unix time in seconds with its fraction keeps
    // every digit (with "%.9g", kyotaku_start_time_seconds was up to 10 s off).
    char number[64];
    std::size_t length = 0;
    if (std::isnan(value)) length = std::size_t(std::snprintf(number, sizeof number, "NaN"));
    else if (std::isinf(value)) length = std::size_t(std::snprintf(number, sizeof number, value > 0 ? "+Inf" : "-Inf"));
    else length = std::size_t(std::to_chars(number, number + sizeof number, value).ptr - number);
    out += ' ';
    out.append(number, length);
    out += '\n';
}

void RequestMetrics::render(std::string& out) const {
    std::lock_guard lock(mutex_);
    metric_header(out, "kyotaku_http_requests_total", "counter",
                  "HTTP requests answered, by route pattern, method, status and listener (main, patients).");
    for (auto const& [key, n] : requests_)
        metric_sample(out, "kyotaku_http_requests_total",
                      {{"route", std::get<0>(key)},
                       {"method", std::get<1>(key)},
                       {"status", std::to_string(std::get<2>(key))},
                       {"listener", std::get<3>(key)}},
                      double(n));
    metric_header(out, "kyotaku_http_request_duration_seconds", "histogram",
                  "Time from a request's header to the end of its response.");
    for (auto const& [key, h] : durations_) {
        std::map<std::string, std::string> labels{{"route", key.first}, {"method", key.second}};
        for (std::size_t i = 0; i < buckets.size(); ++i) {
            char le[32];
            std::snprintf(le, sizeof le, "%g", buckets[i]);
            auto with_le = labels;
            with_le["le"] = le;
            metric_sample(out, "kyotaku_http_request_duration_seconds_bucket", with_le, double(h.counts[i]));
        }
        auto inf = labels;
        inf["le"] = "+Inf";
        metric_sample(out, "kyotaku_http_request_duration_seconds_bucket", inf, double(h.count));
        metric_sample(out, "kyotaku_http_request_duration_seconds_sum", labels, h.sum);
        metric_sample(out, "kyotaku_http_request_duration_seconds_count", labels, double(h.count));
    }
    metric_header(out, "kyotaku_http_response_bytes_total", "counter",
                  "Response body bytes sent, by route pattern and method.");
    for (auto const& [key, n] : bytes_)
        metric_sample(out, "kyotaku_http_response_bytes_total", {{"route", key.first}, {"method", key.second}},
                      double(n));
}

}  // namespace kyotaku::server
