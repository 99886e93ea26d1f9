#include "http/rules_web.hpp"

#include "http/json_codec.hpp"
#include "kyotaku/jsonl.hpp"

#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

namespace kyotaku::server {

namespace {
std::string base64(std::string_view bytes) {
    static char const table[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    for (std::size_t i = 0; i < bytes.size(); i += 3) {
        std::uint32_t v = std::uint32_t(static_cast<unsigned char>(bytes[i])) << 16;
        if (i + 1 < bytes.size()) v |= std::uint32_t(static_cast<unsigned char>(bytes[i + 1])) << 8;
        if (i + 2 < bytes.size()) v |= static_cast<unsigned char>(bytes[i + 2]);
        out += table[(v >> 18) & 63];
        out += table[(v >> 12) & 63];
        out += i + 1 < bytes.size() ? table[(v >> 6) & 63] : '=';
        out += i + 2 < bytes.size() ? table[v & 63] : '=';
    }
    return out;
}

std::optional<std::string> read_file(std::filesystem::path const& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) return std::nullopt;
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::vector<std::pair<std::string, std::string>> headers(bool page) {
    std::vector<std::pair<std::string, std::string>> h{{"Cache-Control", "no-store"},
                                                       {"X-Content-Type-Options", "nosniff"},
                                                       {"Referrer-Policy", "no-referrer"}};
    if (page)
        h.push_back({"Content-Security-Policy",
                     "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; connect-src 'self' data:; img-src "
                     "'self' data:; "
                     "style-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"});
    return h;
}

HttpResult json_error(Error const& e) {
    HttpResult r = error_result(e);
    r.headers = headers(false);
    if (e.kind == Error::Kind::method_not_allowed) r.headers.emplace_back("Allow", "GET");  // RFC 9110 15.5.6
    return r;
}
Error get_only() { return Error(Error::Kind::method_not_allowed, "", "GET だけです", "method not allowed"); }

// The server's rule sources for the workbench: {"rules":"…","files":[{"path","text"}]} (no files when --rules
// is a bundle). "rules" names the folder or bundle by its own name, never its place on the server's disk.
std::string sources_json(std::string const& rules_path) {
    std::string out = "{\"rules\":";
    std::string name = rules_path;
    while (name.size() > 1 && name.back() == '/') name.pop_back();
    append_json_string(out, std::filesystem::path(name).filename().string());
    out += ",\"files\":[";
    std::vector<Diagnostic> errors;
    std::error_code ec;
    bool const is_bundle = std::filesystem::is_regular_file(rules_path, ec) &&
                           read_file(rules_path).value_or("").rfind("KYTKBNDL", 0) == 0;
    if (!is_bundle) {
        auto const sources = read_rule_sources(rules_path, errors);
        for (std::size_t i = 0; i < sources.size(); ++i) {
            if (i) out += ",";
            out += "{\"path\":";
            append_json_string(out, sources[i].name);  // relative to the rule folder
            out += ",\"text\":";
            append_json_string(out, sources[i].text);
            out += "}";
        }
    }
    return out + "]}";
}
}  // namespace

std::optional<HttpResult> rules_web_route(RulesWeb const& config, Caller const& caller, std::string const& method,
                                          std::string const& path) {
    if (path == "/web/trust.json") {
        if (method != "GET") return json_error(get_only());
        std::string body = "{\"keys\":[";
        for (std::size_t i = 0; i < config.trusted_keys.size(); ++i)
            body += (i ? ",\"" : "\"") + base64(config.trusted_keys[i]) + "\"";
        return HttpResult{200, "application/json; charset=utf-8", body + "]}", headers(false)};
    }
    if (path != "/admin/workbench" && path.rfind("/admin/workbench/", 0) != 0) return std::nullopt;
    // The workbench is for administrators (the kyotaku-admin certificate) only.
    if (caller.kind != Caller::Kind::admin)
        return json_error(
            forbidden("ルールの作業台は管理者の証明書でだけ開けます", "the rule workbench is for administrators only"));
    if (method != "GET") return json_error(get_only());
    if (path == "/admin/workbench") {
        HttpResult r{301, "text/plain; charset=utf-8", "", headers(false)};
        r.headers.push_back({"Location", "/admin/workbench/"});
        return r;
    }
    std::string name = path.substr(std::string("/admin/workbench/").size());
    if (name.empty()) name = "index.html";
    if (name == "rules.json")
        return HttpResult{200, "application/json; charset=utf-8", sources_json(config.rules_path), headers(false)};
    static std::pair<char const*, char const*> const files[] = {{"index.html", "text/html; charset=utf-8"},
                                                                {"workbench.js", "text/javascript; charset=utf-8"},
                                                                {"workbench.css", "text/css; charset=utf-8"},
                                                                {"kyotaku-workbench.js",
                                                                 "text/javascript; charset=utf-8"}};
    for (auto const& [file, type] : files) {
        if (name != file) continue;
        auto body = config.workbench_root.empty() ? std::nullopt
                                                  : read_file(std::filesystem::path(config.workbench_root) / file);
        if (!body)
            return json_error(Error(Error::Kind::not_found, "", "作業台のファイルがありません",
                                    "the workbench's files are missing: " + name));
        return HttpResult{200, type, std::move(*body), headers(true)};
    }
    return json_error(Error(Error::Kind::not_found, "", "そのようなファイルはありません", "no such file: " + name));
}

}  // namespace kyotaku::server
