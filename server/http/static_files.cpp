#include "http/static_files.hpp"

#include "core/card_signature.hpp"
#include "formats/fields.hpp"
#include "http/api_json.hpp"
#include "http/json_codec.hpp"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>

namespace kyotaku::server {

namespace {

char const* content_type_of(std::string const& name) {
    auto ends = [&](char const* e) {
        return name.size() >= std::strlen(e) && name.compare(name.size() - std::strlen(e), std::string::npos, e) == 0;
    };
    if (ends(".html")) return "text/html; charset=utf-8";
    if (ends(".js") || ends(".mjs")) return "text/javascript; charset=utf-8";
    if (ends(".wasm")) return "application/wasm";
    if (ends(".css")) return "text/css; charset=utf-8";
    if (ends(".svg")) return "image/svg+xml";
    if (ends(".png")) return "image/png";
    return nullptr;
}

// One name, no directories, nothing hidden.
bool plain_name(std::string const& name) {
    return !name.empty() && name.size() <= 100 && name.front() != '.' &&
           std::all_of(name.begin(), name.end(), [](char c) {
               return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
           });
}

std::string read_file(std::filesystem::path const& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

// A file of the page in each encoding the build made.
struct Asset {
    char const* type = nullptr;
    std::string identity, br, gz;
    std::string tag;  // a hash of the content, for ETags
    bool immutable = false;
};

}  // namespace

struct WebRoot {
    std::string dir;
    std::map<std::string, Asset, std::less<>> files;
    std::optional<std::string> page;  // index.html, the template of /c/{token}
    std::string style_sources;        // 'sha256-…' of each inline <style> of the page, for the CSP
};

namespace {

std::string csp_hash(std::string const& text) {
    std::string const hex = sha256_hex(text);
    std::vector<unsigned char> raw;
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
        raw.push_back(static_cast<unsigned char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    return "'sha256-" + base64_encode(raw) + "'";
}

std::shared_ptr<WebRoot const> load(std::string const& directory) {
    namespace fs = std::filesystem;
    auto root = std::make_shared<WebRoot>();
    root->dir = directory;
    if (directory.empty()) return root;
    std::set<std::string> hashed;
    std::error_code ec;
    if (fs::exists(fs::path(directory) / "manifest.json", ec)) {
        json manifest = json::parse(read_file(fs::path(directory) / "manifest.json"), nullptr, false);
        if (manifest.is_object() && manifest.contains("files") && manifest["files"].is_object())
            for (auto const& [logical, file] : manifest["files"].items())
                if (file.is_string()) hashed.insert(file.get<std::string>());
    }
    std::map<std::string, std::string> variants;  // name.br / name.gz → contents
    for (auto const& entry : fs::directory_iterator(directory, ec)) {
        if (!entry.is_regular_file()) continue;
        std::string const name = entry.path().filename().string();
        if (!plain_name(name) || name == "manifest.json") continue;
        if (name == "index.html") {
            root->page = read_file(entry.path());
            continue;
        }
        if (name.size() > 3 && (name.ends_with(".br") || name.ends_with(".gz"))) {
            variants[name] = read_file(entry.path());
            continue;
        }
        char const* type = content_type_of(name);
        if (!type) continue;
        Asset& a = root->files[name];
        a.type = type;
        a.identity = read_file(entry.path());
        a.tag = sha256_hex(a.identity).substr(0, 20);
        a.immutable = hashed.count(name) > 0;
    }
    for (auto& [name, a] : root->files) {
        if (auto br = variants.find(name + ".br"); br != variants.end()) a.br = std::move(br->second);
        if (auto gz = variants.find(name + ".gz"); gz != variants.end()) a.gz = std::move(gz->second);
    }
    // The page's inline styles are allowed by their hashes (CSP level 2), never by 'unsafe-inline'.
    if (root->page) {
        std::string const& p = *root->page;
        for (std::size_t at = p.find("<style>"); at != std::string::npos; at = p.find("<style>", at + 1)) {
            std::size_t const end = p.find("</style>", at);
            if (end == std::string::npos) break;
            root->style_sources += " " + csp_hash(p.substr(at + 7, end - at - 7));
        }
    }
    return root;
}


// Headers of every page and asset of the consent page: nothing leaks the URL's token, nothing frames the page.
std::vector<std::pair<std::string, std::string>> page_headers(WebRoot const& root, std::string cache_control) {
    return {{"Cache-Control", std::move(cache_control)},
            {"Referrer-Policy", "no-referrer"},
            {"X-Content-Type-Options", "nosniff"},
            {"Content-Security-Policy",
             "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; connect-src 'self' ws://127.0.0.1:*; "
             "img-src 'self' data:; style-src 'self'" +
                 root.style_sources + "; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"}};
}

// Whether the client takes this content coding (RFC 9110 12.5.3: a q of 0 refuses it).
bool accepts(std::string const& accept_encoding, std::string_view coding) {
    std::size_t at = 0;
    while (at < accept_encoding.size()) {
        std::size_t comma = accept_encoding.find(',', at);
        if (comma == std::string::npos) comma = accept_encoding.size();
        std::string item = accept_encoding.substr(at, comma - at);
        at = comma + 1;
        std::size_t const semi = item.find(';');
        std::string name = item.substr(0, semi);
        name.erase(0, name.find_first_not_of(" \t"));
        name.erase(name.find_last_not_of(" \t") + 1);
        std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return char(std::tolower(c)); });
        if (name != coding) continue;
        if (semi == std::string::npos) return true;
        std::string params = item.substr(semi + 1);
        params.erase(std::remove_if(params.begin(), params.end(), [](char c) { return c == ' ' || c == '\t'; }),
                     params.end());
        return !(params.rfind("q=0", 0) == 0 && params.find_first_not_of("0.", 2) == std::string::npos);
    }
    return false;
}

bool etag_matches(std::string const& if_none_match, std::string const& etag) {
    return if_none_match.find('*') != std::string::npos || if_none_match.find(etag) != std::string::npos;
}

// The representation of an asset for this client: Brotli, gzip or as is, with its ETag; 304 when the client has it.
HttpResult send(WebRoot const& root, char const* type, std::string const& identity, std::string const& br,
                std::string const& gz, std::string const& tag, std::string cache_control, PageRequestHeaders const& h) {
    std::string const* body = &identity;
    std::string encoding, etag = "\"" + tag + "\"";
    if (!br.empty() && accepts(h.accept_encoding, "br")) {
        body = &br;
        encoding = "br";
        etag = "\"" + tag + "-br\"";
    } else if (!gz.empty() && accepts(h.accept_encoding, "gzip")) {
        body = &gz;
        encoding = "gzip";
        etag = "\"" + tag + "-gz\"";
    }
    HttpResult r{200, type, "", page_headers(root, std::move(cache_control))};
    r.headers.emplace_back("ETag", etag);
    if (!br.empty() || !gz.empty()) r.headers.emplace_back("Vary", "Accept-Encoding");
    if (!h.if_none_match.empty() && etag_matches(h.if_none_match, etag)) {
        r.status = 304;
        return r;
    }
    if (!encoding.empty()) r.headers.emplace_back("Content-Encoding", encoding);
    r.body = *body;
    return r;
}

// The name is the client's bytes (maybe not UTF-8, maybe cut inside a character): json_result replaces what is not
// UTF-8, never throws on it.
HttpResult no_such_file(std::string const& name) {
    return error_result(
        Error(Error::Kind::not_found, "", "そのようなファイルはありません", "no such file: " + name.substr(0, 100)));
}

// The server's rules for the page, compressed: its tag (the content hash's beginning, the ETag) and its gzip.
struct CompressedBundle {
    std::string tag, gz;
};

std::string html_escape(std::string const& text) {
    std::string out;
    for (char ch : text) switch (ch) {
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '&': out += "&amp;"; break;
            case '"': out += "&quot;"; break;
            case '\'': out += "&#39;"; break;
            default: out += ch;
        }
    return out;
}

void replace_all(std::string& text, std::string const& marker, std::string const& value) {
    for (std::size_t at = text.find(marker); at != std::string::npos; at = text.find(marker, at + value.size()))
        text.replace(at, marker.size(), value);
}

// The beginning of the server's own small pages (no script, no style).
constexpr char const* head =
    "<!doctype html><html lang=\"ja\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" "
    "content=\"width=device-width, initial-scale=1\"><title>マイナ在宅受付Web</title></head><body><main>";

HttpResult consent_page(Service& service, WebRoot const& root, std::string const& token, PageRequestHeaders const& h) {
    auto check = service.settings.check_token(token);
    if (!check.facility_code)
        return HttpResult{404, "text/html; charset=utf-8",
                          std::string(head) + "<h1>この URL は使えません</h1><p>" + html_escape(check.reason.ja) +
                              "</p><p>医療機関・薬局・訪問看護ステーションから、新しい URL か QR "
                              "コードを受け取ってください。</p></main></body></html>\n",
                          page_headers(root, "no-store")};
    if (!root.page)
        return HttpResult{
            500, "text/html; charset=utf-8",
            std::string(head) + "<h1>マイナ在宅受付Web</h1><p>" + html_escape(check.facility_name) +
                "</p><p>同意ページのファイルが見つかりません (kyotaku serve --web-root)。</p></main></body></html>\n",
            page_headers(root, "no-store")};
    // The facility and the server's date go into the page itself: no request before the assets, and the first
    // paint names the facility. In a JSON data block '<' is escaped so that nothing can close the element.
    std::string data = api_json::to_json(service.consent.page(token)).dump();
    replace_all(data, "<", "\\u003c");
    std::string page = *root.page;
    replace_all(page, "{{facility_name}}", html_escape(check.facility_name));
    replace_all(page, "{{page_data}}", data);
    HttpResult r{200, "text/html; charset=utf-8", "", page_headers(root, "no-store")};
    if (accepts(h.accept_encoding, "gzip")) {
        r.body = gzip(page);
        r.headers.emplace_back("Content-Encoding", "gzip");
    } else {
        r.body = std::move(page);
    }
    r.headers.emplace_back("Vary", "Accept-Encoding");
    return r;
}

}  // namespace

struct ConsentPageFiles::BundleCache {
    std::mutex mutex;
    std::shared_ptr<CompressedBundle const> last;
    // The bundle compressed: the last one again while the rules stay, else made now (and kept in its place).
    std::shared_ptr<CompressedBundle const> of(std::string const& bundle) {
        std::string const tag = sha256_hex(bundle).substr(0, 20);
        std::lock_guard lock(mutex);
        if (!last || last->tag != tag)
            last = std::make_shared<CompressedBundle const>(CompressedBundle{tag, gzip(bundle)});
        return last;
    }
};

ConsentPageFiles::ConsentPageFiles(std::string const& directory)
    : root_(load(directory)), bundles_(std::make_shared<BundleCache>()) {}

std::string gzip(std::string const& data) {
    z_stream z{};
    if (deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) != Z_OK)
        throw std::runtime_error("deflateInit2");
    std::string out(deflateBound(&z, uLong(data.size())) + 32, '\0');
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    z.avail_in = uInt(data.size());
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = uInt(out.size());
    int const rc = deflate(&z, Z_FINISH);
    out.resize(z.total_out);
    deflateEnd(&z);
    if (rc != Z_STREAM_END) throw std::runtime_error("deflate");
    return out;
}

std::optional<HttpResult> ConsentPageFiles::serve(Service& service, std::string const& method, std::string const& path,
                                           PageRequestHeaders const& headers) const {
    bool const page = path.rfind("/c/", 0) == 0, file = path.rfind("/web/", 0) == 0, home = path == "/";
    if (!page && !file && !home) return std::nullopt;
    if (method != "GET") {
        HttpResult refused =
            error_result(Error(Error::Kind::method_not_allowed, "", "GET だけです", "method not allowed"));
        refused.headers.emplace_back("Allow", "GET");
        return refused;
    }
    auto const& root = root_;
    // The server's address alone, as a patient or a browser opens it: where the page really is, in Japanese.
    if (home)
        return HttpResult{200, "text/html; charset=utf-8",
                          std::string(head) +
                              "<h1>マイナ在宅受付Web</"
                              "h1><p>ここは、医療機関・薬局・訪問看護ステーションの受付のページです。このアドレス"
                              "だけでは始められません。施設の職員から受け取ったQRコードを読み取るか、受付用のURLを開い"
                              "てください。</p>"
                              "</main></body></html>\n",
                          page_headers(*root, "no-cache")};
    if (page) return consent_page(service, *root, path.substr(3), headers);
    std::string const name = path.substr(5);
    if (!plain_name(name)) return no_such_file(name);
    if (name == "rules.bundle") {
        // The rules the server runs, revalidated on every use: a rule change reaches the next page load.
        // (Signed rules: the signed bytes themselves, which the page checks before use.)
        auto const bundle = service.consent.rules_bundle();
        auto const c = bundles_->of(*bundle);
        return send(*root, "application/octet-stream", *bundle, "", c->gz, c->tag, "no-cache", headers);
    }
    auto it = root->files.find(name);
    if (it == root->files.end()) return no_such_file(name);
    Asset const& a = it->second;
    return send(*root, a.type, a.identity, a.br, a.gz, a.tag,
                a.immutable ? "public, max-age=31536000, immutable" : "no-cache", headers);
}

}  // namespace kyotaku::server
