// The consent page's files, served for a phone on a mobile network (docs/consent-page.md, "Weight and speed"):
//
// - GET /c/{token}: the page itself (web/index.html, a template) with the facility's name and the page's data
//   (GET /api/v1/consent/page's answer) filled in by the server, so the first paint already says whose page it
//   is and what is about to happen, and no request is needed before the assets. Never cached (no-store).
// - GET /web/{file}: the build's content-hashed files (web/CMakeLists.txt writes name.HASH.ext and
//   manifest.json) with long-lived caching (immutable), each precompressed at build time (.br, .gz) and sent in
//   the best encoding the client accepts, with an ETag; `rules.bundle` (the server's own rules) is revalidated
//   by its ETag on every use (no-cache, 304 when unchanged). A web root without manifest.json (an old build,
//   the unit tests) is served by plain names with short caching and ETags.
// Every answer carries the page's headers: no referrer (the URL holds the token), no framing, a
// Content-Security-Policy without 'unsafe-eval' or 'unsafe-inline' (the inline style is allowed by its hash).
#pragma once

#include "http/http_result.hpp"
#include "usecases/service.hpp"

#include <memory>
#include <optional>
#include <string>

namespace kyotaku::server {

// The request headers the page's files depend on.
struct PageRequestHeaders {
    std::string accept_encoding;  // Accept-Encoding
    std::string if_none_match;    // If-None-Match
};

struct WebRoot;

// The page's files of one web root, read once (the composition root makes it from --web-root; an empty directory:
// /c/{token} shows a page saying the files are missing).
class ConsentPageFiles {
public:
    explicit ConsentPageFiles(std::string const& directory = "");
    // The answer for /c/{token}, /web/{file} and / (where the page is, in Japanese); nullopt for every other path.
    std::optional<HttpResult> serve(Service& service, std::string const& method, std::string const& path,
                                    PageRequestHeaders const& headers = {}) const;

private:
    struct BundleCache;
    std::shared_ptr<WebRoot const> root_;
    // The rules' bundle gzipped, made once per bundle (the last one served; a reload makes the next): this object's,
    // not the process's.
    std::shared_ptr<BundleCache> bundles_;
};

// gzip (RFC 1952) of `data` at the best compression (zlib).
std::string gzip(std::string const& data);

}  // namespace kyotaku::server
