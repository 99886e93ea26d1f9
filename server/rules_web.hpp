// What kyotaku serve hands browsers about its rules: the consent page's rule bundle exactly as signed (with
// --trust) and the keys the page checks it with (/web/trust.json), and the rule workbench for administrators
// (/admin/workbench/: the page, its WebAssembly compiler, and the server's rule sources).
#pragma once

#include "http_server.hpp"

#include <optional>
#include <string>
#include <vector>

namespace kyotaku::server {

struct RulesWeb {
    std::string signed_bundle;              // the bundle as loaded, with its signature (empty: no --trust)
    std::vector<std::string> trusted_keys;  // raw Ed25519 public keys of --trust
    std::string workbench_root;             // the workbench's files (index.html, workbench.js, …); empty: none
    std::string rules_path;                 // --rules, for the workbench's copy of the sources
};
void set_rules_web(RulesWeb config);
// After a reload (SIGHUP) of signed rules: the bundle the page gets from now on.
void set_signed_bundle(std::string bundle);

// The answer for these paths, or nullopt when the path is not one of them (or /web/rules.bundle is unsigned).
std::optional<HttpResult> rules_web_route(Caller const& caller, std::string const& method, std::string const& path);

}  // namespace kyotaku::server
