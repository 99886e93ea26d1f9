// What kyotaku serve hands browsers about its rules: the keys the consent page checks the signed rule bundle with
// (/web/trust.json; the bundle itself is the page's /web/rules.bundle, static_files.cpp, exactly as signed), and the
// rule workbench for administrators (/admin/workbench/: the page, its WebAssembly compiler, the server's rule sources).
#pragma once

#include "http/http_result.hpp"
#include "usecases/service.hpp"

#include <optional>
#include <string>
#include <vector>

namespace kyotaku::server {

struct RulesWeb {
    std::vector<std::string> trusted_keys;  // raw Ed25519 public keys of --trust
    std::string workbench_root;             // the workbench's files (index.html, workbench.js, …); empty: none
    std::string rules_path;                 // --rules, for the workbench's copy of the sources
};

// The answer for these paths (/web/trust.json, /admin/workbench and below), or nullopt when the path is not one of
// them.
std::optional<HttpResult> rules_web_route(RulesWeb const& config, Caller const& caller, std::string const& method,
                                          std::string const& path);

}  // namespace kyotaku::server
