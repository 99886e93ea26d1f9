// The configuration of `kyotaku serve`. Every setting has a key in the TOML file's [serve] table, a KYOTAKU_*
// environment variable and a command-line flag; later sources win: defaults < file < environment < flags.
// docs/operations.md documents the file, with docs/examples/kyotaku.toml as the example.
#pragma once

#include "ops/connection_limits.hpp"

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace kyotaku::server {

struct ServeOptions {
    std::string host = "127.0.0.1";
    unsigned short port = 8443;  // 0: any free port (printed on start)
    // A non-loopback address is accepted only when it was asked for explicitly, with `listen` (--listen,
    // KYOTAKU_LISTEN, listen = "…" in the file); --host stays loopback-only.
    bool any_address = false;
    // The patients' listener (patient_listen = "ADDRESS:PORT", any address: it is always asked for explicitly): the
    // consent page, its files and its token routes only, over TLS that asks for no client certificate (Android shows
    // a certificate prompt to anyone a server asks; docs/operations.md 2.). When set, facility URLs and QR codes point
    // to it (public_url's default). Unset: the patients' side is served on the main listener, as before.
    bool patient_listener = false;
    std::string patient_host;
    unsigned short patient_port = 0;  // 0: any free port (printed on start)
    std::string db = "kyotaku.sqlite";
    std::string rules;    // empty: share/kyotaku/rules under install_prefix (installed), else ./rules
    std::string tls_dir = "pki";  // ca.pem, server.pem, server.key (and card-ca.pem)
    int threads = 2;
    std::string public_url;  // the base of facility URLs; default https://HOST:PORT (of patient_listen when set)
    std::string web_root;    // the consent page's files (index.html, *.js, *.wasm); default: web/ or
                             // share/kyotaku/web under install_prefix
    // Not a setting: where the command is installed (/usr for /usr/bin/kyotaku; build/ for build/cli/kyotaku), set by
    // the full command, which runs from libexec/kyotaku/ (cli/CMakeLists.txt). Empty: the parent of the running
    // executable's folder.
    std::filesystem::path install_prefix;
    std::string test_clock;  // for tests and demos: start the server's clock on this day (and let the operator move it)
    std::vector<std::string> trust;  // public keys (PEM files); --rules must then be a bundle one of them signed
    std::string key_file;    // the key file (0600, made when missing); default: DB.key beside a SQLite database
    std::string spool_dir;   // the private directory of spooled uploads; default: default_spool_dir(db)
    // an older rule release the operator goes back to on purpose (0: none); ops/rule_releases.hpp
    std::uint64_t rollback_to = 0;
    ConnectionLimits limits;
    // SIGTERM: the server stops taking requests and /readyz answers 503, requests in flight get this long to finish
    // (app.hpp, "Stopping").
    std::chrono::seconds drain{20};
    // Open consent-page hand-offs per client (network address) and facility (usecases/handoff.hpp); 0: no per-client
    // budget — behind a TCP balancer that passes connections through, every client has the balancer's address.
    int handoffs_per_client = 5;
    // Interactive first: while interactive requests keep coming, the batch worker keeps at least this share (percent)
    // of its time and gives way for the rest (usecases/batch.hpp, BatchDesk::batch_share); 100: it never gives way.
    int batch_share = 25;
    // The rule workbench's proofs (http/workbench_proofs.hpp): how many at once (0: none), each one's wall-clock and
    // CPU-time limit, its address space, and the kyotaku command that proves (empty: the server's own executable).
    int prove_at_once = 1;
    int prove_seconds = 300;
    int prove_memory_mb = 4096;
    std::string prove_executable;
};

// One setting: its key in [serve], its flag and its environment variable.
struct Setting {
    enum class Type { text, integer } type;
    char const* key;
    char const* flag;
    char const* env;
    char const* help;
    long min = 0, max = 0;                      // integers only
    std::string ServeOptions::*text = nullptr;  // the option a plain text setting sets (listen, host: their own rules)
    bool may_be_empty = false;
};
std::vector<Setting> const& serve_settings();

// Where the settings come from. `flags` holds the settings given on the command line, by key, as typed.
struct ConfigSources {
    std::string file;  // a TOML file; empty: none
    std::map<std::string, std::string> flags;
    std::function<char const*(char const*)> getenv;  // default: ::getenv
};

struct ResolvedConfig {
    ServeOptions options;
    std::map<std::string, std::string> origin;  // key → "default", "FILE:LINE:COLUMN", "KYOTAKU_…" or "--flag"
    std::vector<std::string> errors;            // each names the file, line and column, the variable or the flag
    bool ok() const { return errors.empty(); }
};
ResolvedConfig resolve_serve_config(ConfigSources const& sources);

// "ADDRESS:PORT" ("[::1]:8443" for IPv6): an IP address (not a name) and a port 0..65535. nullopt with `error`.
struct ListenAddress {
    std::string host;
    unsigned short port = 0;
};
std::optional<ListenAddress> parse_listen(std::string const& text, std::string& error);

// The rule set to load: --rules, else share/kyotaku/rules beside the binary (an installed tree), else ./rules.
std::string rules_path(ServeOptions const& o);
// The consent page's files: --web-root, else web/ or share/kyotaku/web beside the binary ("" when none).
std::string web_root_path(ServeOptions const& o);
// The database location with every secret replaced by "***": a URL's password (user:PASSWORD@), and the value of
// password= and sslpassword= (query parameters, or a key=value string). For every line that names the database.
std::string redact_db(std::string const& location);
// `text` (an error message, say) with any secret of `location` replaced by "***" (raw or percent-decoded), and the
// location itself by redact_db(location).
std::string redact_secrets(std::string const& text, std::string const& location);
// The spool directory's default: beside a SQLite database (DB.spool), else kyotaku-spool-UID in the system's
// temporary directory.
std::string default_spool_dir(std::string const& db);

// `kyotaku serve --check-config`: prints every setting with where it came from, then checks the listen
// address, the TLS files (key matches certificate, expiry), the rules and their release against the database's
// floor (a refusal, or the rollback rollback_to asks for), the database and its schema (without creating or
// migrating anything) and the consent page's files. Returns 0 when the server would start.
int check_config(ResolvedConfig const& config);

// The warning for a server that serves patients from the listener asking for client certificates (no patient_listen)
// on an address beyond loopback; "" when there is nothing to warn about.
std::string patients_on_certificate_listener(ServeOptions const& options);

// The warning for facility URLs no phone can open: no public_url, and the listener they would name (patient_listen,
// else listen) is on an unspecified address (0.0.0.0, ::), so they would begin with https://0.0.0.0:PORT.
// "" when there is nothing to warn about.
std::string facility_urls_unreachable(ServeOptions const& options);

}  // namespace kyotaku::server
