#include "ops/config.hpp"

#include "kyotaku/signing.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include "storage/database.hpp"
#include "core/secrets.hpp"
#include "kyotaku/engine.hpp"

#include <boost/asio/ip/address.hpp>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <toml++/toml.h>

#include <charconv>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <iostream>

namespace kyotaku::server {

namespace fs = std::filesystem;

std::vector<Setting> const& serve_settings() {
    using T = Setting::Type;
    static std::vector<Setting> const all{
        {T::text, "listen", "--listen", "KYOTAKU_LISTEN",
         "待ち受けるアドレスとポート ADDRESS:PORT (ループバック以外も可) / address and port to listen on; the explicit way to listen beyond loopback"},
        {T::text, "host", "--host", "KYOTAKU_HOST", "待ち受けるアドレス (ループバックのみ) / loopback address to listen on (default 127.0.0.1)"},
        {T::integer, "port", "--port", "KYOTAKU_PORT", "ポート (0 は空いているポート) / port (0: any free port; default 8443)", 0, 65535},
        {T::text, "db", "--db", "KYOTAKU_DB", "SQLite のファイル、または postgresql:// の接続URL / SQLite file or PostgreSQL URL (default kyotaku.sqlite)", 0, 0,
         &ServeOptions::db},
        {T::text, "rules", "--rules", "KYOTAKU_RULES",
         "ルールのディレクトリかバンドル (既定: 導入先の share/kyotaku/rules) / rules directory or bundle (default: share/kyotaku/rules beside the binary, else ./rules)",
         0, 0, &ServeOptions::rules, true},
        {T::text, "tls_dir", "--tls-dir", "KYOTAKU_TLS_DIR", "ca.pem, server.pem, server.key のあるディレクトリ / TLS files (default pki)", 0, 0,
         &ServeOptions::tls_dir},
        {T::integer, "threads", "--threads", "KYOTAKU_THREADS", "スレッド数 / worker threads (default 2)", 1, 64},
        {T::text, "public_url", "--public-url", "KYOTAKU_PUBLIC_URL", "施設URLの先頭 (既定 https://HOST:PORT) / base of facility URLs", 0, 0,
         &ServeOptions::public_url, true},
        {T::text, "web_root", "--web-root", "KYOTAKU_WEB_ROOT",
         "同意ページのファイル (既定: 実行ファイルの隣の web/) / the consent page's files (default: web/ beside the binary)", 0, 0, &ServeOptions::web_root,
         true},
        {T::text, "test_clock", "--test-clock", "KYOTAKU_TEST_CLOCK",
         "テスト・デモ用: サーバの「今日」をこの日から始める (運用者が POST /api/v1/admin/clock で動かせる) / tests and demos: start the "
         "server's day on DATE (the operator may move it)",
         0, 0, &ServeOptions::test_clock, true},
        {T::text, "trust", "--trust", "KYOTAKU_TRUST",
         "信頼する公開鍵 (PEM、繰り返し可、設定ファイルと環境変数ではカンマ区切り)。指定すると rules はその鍵で署名したバンドルでなければならず、同意ページも署名を確かめる / "
         "trusted public keys (PEM; repeat the flag, or a comma-separated list): the rules must be a bundle one of them signed",
         0, 0, nullptr, true},
        {T::text, "key_file", "--key-file", "KYOTAKU_KEY_FILE",
         "鍵ファイル (0600; ないときは作る)。URL 鍵とパスコードを守る / the key file (0600; created when missing) that seals the URL keys "
         "and keys the passcodes' hash (default: DB.key beside a SQLite database; required with PostgreSQL)",
         0, 0, &ServeOptions::key_file, true},
        {T::text, "spool_dir", "--spool-dir", "KYOTAKU_SPOOL_DIR",
         "大きなアップロードを一時的に置く専用ディレクトリ (0700) / private directory of spooled uploads (0700; default: DB.spool beside a "
         "SQLite database, else kyotaku-spool-UID in the temporary directory)",
         0, 0, &ServeOptions::spool_dir, true},
        {T::integer, "max_connections", "--max-connections", "KYOTAKU_MAX_CONNECTIONS",
         "同時接続数の上限 / connections open at once (default 256; lowered to what the descriptor limit allows)", 1, 100000},
    };
    return all;
}

std::optional<ListenAddress> parse_listen(std::string const& text, std::string& error) {
    std::string host, port;
    if (!text.empty() && text.front() == '[') {
        auto close = text.find(']');
        if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
            error = "[IPv6]:PORT の形で書いてください / expected [IPv6 address]:PORT";
            return std::nullopt;
        }
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
    } else {
        auto colon = text.rfind(':');
        if (colon == std::string::npos || text.find(':') != colon) {
            error = "ADDRESS:PORT の形で書いてください / expected ADDRESS:PORT (IPv6 in brackets)";
            return std::nullopt;
        }
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
    }
    boost::system::error_code ec;
    boost::asio::ip::make_address(host, ec);
    if (ec || host.empty()) {
        error = "\"" + host + "\" は IP アドレスではありません / not an IP address";
        return std::nullopt;
    }
    unsigned value = 0;
    auto [end, err] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || port.size() > 5 || err != std::errc() || end != port.data() + port.size() || value > 65535) {
        error = "ポート \"" + port + "\" は 0〜65535 の数字です / the port must be a number from 0 to 65535";
        return std::nullopt;
    }
    return ListenAddress{host, static_cast<unsigned short>(value)};
}

namespace {

// Applies one setting given as text; returns an error message (empty when applied).
std::string apply(ServeOptions& o, Setting const& s, std::string const& value) {
    std::string const key = s.key;
    if (s.type == Setting::Type::integer) {
        long n = 0;
        auto [end, err] = std::from_chars(value.data(), value.data() + value.size(), n);
        if (value.empty() || err != std::errc() || end != value.data() + value.size() || n < s.min || n > s.max)
            return "整数 " + std::to_string(s.min) + "〜" + std::to_string(s.max) + " を指定してください / must be an integer from " +
                   std::to_string(s.min) + " to " + std::to_string(s.max) + " (got \"" + value + "\")";
        if (key == "port") o.port = static_cast<unsigned short>(n);
        if (key == "threads") o.threads = int(n);
        if (key == "max_connections") o.limits.max_connections = int(n);
        return {};
    }
    if (key == "listen") {
        std::string error;
        auto l = parse_listen(value, error);
        if (!l) return error;
        o.host = l->host;
        o.port = l->port;
        o.any_address = true;
        return {};
    }
    if (value.empty() && !s.may_be_empty) return "空にはできません / must not be empty";
    if (key == "host") {
        o.host = value;
        o.any_address = false;
    }
    if (key == "test_clock" && !value.empty() && !parse_date(value).date) return "日付ではありません / not a date (YYYY-MM-DD)";
    if (key == "trust") {
        o.trust.clear();
        for (std::size_t at = 0; at <= value.size() && !value.empty();) {
            std::size_t const comma = std::min(value.find(',', at), value.size());
            if (comma == at) return "空の鍵のファイル名があります / an empty key file name in the list";
            o.trust.push_back(value.substr(at, comma - at));
            at = comma + 1;
        }
    }
    if (s.text) o.*s.text = value;
    return {};
}

// Within one source, `listen` and host/port say the same thing twice.
std::string both_listen_and_host(std::map<std::string, std::string> const& given) {
    if (given.count("listen") && (given.count("host") || given.count("port")))
        return "listen と host/port は同時に指定できません / give either listen or host and port, not both";
    return {};
}

struct Layer {
    std::map<std::string, std::string> values;  // key → text
    std::map<std::string, std::string> where;   // key → origin
};

Layer read_file(std::string const& path, std::vector<std::string>& errors) {
    Layer layer;
    toml::table doc;
    try {
        doc = toml::parse_file(path);
    } catch (toml::parse_error const& e) {
        auto const& at = e.source().begin;
        errors.push_back(path + ":" + std::to_string(at.line) + ":" + std::to_string(at.column) + ": " + std::string(e.description()));
        return layer;
    }
    auto where = [&](toml::node const& n) {
        return path + ":" + std::to_string(n.source().begin.line) + ":" + std::to_string(n.source().begin.column);
    };
    for (auto const& [k, node] : doc) {
        if (k.str() != "serve" || !node.is_table()) {
            errors.push_back(where(node) + ": " + std::string(k.str()) +
                             ": 知らない項目です ([serve] の表だけがあります) / unknown key (the file has one table, [serve])");
            continue;
        }
        for (auto const& [key, value] : *node.as_table()) {
            std::string const name(key.str());
            Setting const* s = nullptr;
            for (auto const& candidate : serve_settings())
                if (name == candidate.key) s = &candidate;
            if (!s) {
                errors.push_back(where(value) + ": serve." + name + ": 知らない項目です / unknown setting");
                continue;
            }
            if (s->type == Setting::Type::integer) {
                if (!value.is_integer()) {
                    errors.push_back(where(value) + ": serve." + name + ": 整数で書いてください / must be an integer");
                    continue;
                }
                layer.values[name] = std::to_string(value.as_integer()->get());
            } else {
                if (!value.is_string()) {
                    errors.push_back(where(value) + ": serve." + name + ": 文字列 (\"…\") で書いてください / must be a string");
                    continue;
                }
                layer.values[name] = value.as_string()->get();
            }
            layer.where[name] = where(value);
        }
    }
    return layer;
}

}  // namespace

ResolvedConfig resolve_serve_config(ConfigSources const& sources) {
    ResolvedConfig out;
    for (auto const& s : serve_settings()) out.origin[s.key] = "default";
    auto getenv = sources.getenv ? sources.getenv : [](char const* name) -> char const* { return std::getenv(name); };

    std::vector<Layer> layers;
    if (!sources.file.empty()) {
        if (!fs::is_regular_file(sources.file)) out.errors.push_back(sources.file + ": 設定ファイルがありません / no such configuration file");
        else layers.push_back(read_file(sources.file, out.errors));
    }
    Layer env;
    for (auto const& s : serve_settings())
        if (char const* v = getenv(s.env)) {
            env.values[s.key] = v;
            env.where[s.key] = s.env;
        }
    layers.push_back(env);
    Layer flags;
    for (auto const& [key, value] : sources.flags) {
        flags.values[key] = value;
        for (auto const& s : serve_settings())
            if (key == s.key) flags.where[key] = s.flag;
    }
    layers.push_back(flags);

    for (auto const& layer : layers) {
        if (auto e = both_listen_and_host(layer.values); !e.empty())
            out.errors.push_back(layer.where.at("listen") + ": " + e);
        // listen first, so that a port given beside it in a later source still applies
        for (auto const& s : serve_settings()) {
            auto it = layer.values.find(s.key);
            if (it == layer.values.end()) continue;
            if (auto e = apply(out.options, s, it->second); !e.empty()) {
                out.errors.push_back(layer.where.at(s.key) + ": " + s.key + ": " + e);
                continue;
            }
            out.origin[s.key] = layer.where.at(s.key);
            if (std::string(s.key) == "listen") out.origin["host"] = out.origin["port"] = layer.where.at(s.key);
        }
    }
    return out;
}

namespace {
fs::path exe_dir() {
    std::error_code ec;
    return fs::read_symlink("/proc/self/exe", ec).parent_path();
}
}  // namespace

std::string rules_path(ServeOptions const& o) {
    if (!o.rules.empty()) return o.rules;
    fs::path installed = exe_dir().parent_path() / "share/kyotaku/rules";
    if (fs::is_directory(installed)) return installed.string();
    return "rules";
}

std::string web_root_path(ServeOptions const& o) {
    if (!o.web_root.empty()) return o.web_root;
    fs::path const prefix = exe_dir().parent_path();
    for (fs::path candidate : {prefix / "web", prefix / "share/kyotaku/web"})
        if (fs::exists(candidate / "index.html")) return candidate.string();
    return {};
}

std::string default_spool_dir(std::string const& db) {
    bool const sqlite_file = !is_postgres_url(db) && db != ":memory:" && db.rfind("file:", 0) != 0;
    if (sqlite_file) return db + ".spool";
    std::error_code ec;
    auto tmp = std::filesystem::temp_directory_path(ec);
    return ((ec ? std::filesystem::path("/tmp") : tmp) / ("kyotaku-spool-" + std::to_string(::geteuid()))).string();
}

std::string redact_db(std::string const& location) {
    auto scheme = location.find("://");
    if (scheme == std::string::npos) return location;
    auto at = location.find('@', scheme);
    if (at == std::string::npos) return location;
    auto colon = location.find(':', scheme + 3);
    if (colon == std::string::npos || colon > at) return location;
    return location.substr(0, colon + 1) + "***" + location.substr(at);
}

namespace {

// The server's certificate and key, and the client CA: loaded as the server loads them. Notes expiry.
std::string check_tls(std::string const& dir, std::vector<std::string>& notes) {
    for (char const* f : {"ca.pem", "server.pem", "server.key"})
        if (!fs::exists(fs::path(dir) / f)) return (fs::path(dir) / f).string() + " がありません / missing";
    std::unique_ptr<SSL_CTX, void (*)(SSL_CTX*)> ctx(SSL_CTX_new(TLS_server_method()), SSL_CTX_free);
    std::string const cert = (fs::path(dir) / "server.pem").string(), key = (fs::path(dir) / "server.key").string(),
                      ca = (fs::path(dir) / "ca.pem").string();
    if (SSL_CTX_use_certificate_chain_file(ctx.get(), cert.c_str()) != 1) return cert + ": 証明書を読めません / cannot load the certificate chain";
    if (SSL_CTX_use_PrivateKey_file(ctx.get(), key.c_str(), SSL_FILETYPE_PEM) != 1) return key + ": 秘密鍵を読めないか、証明書と対応していません / cannot load the private key, or it does not match server.pem";
    if (SSL_CTX_check_private_key(ctx.get()) != 1) return key + ": 証明書と鍵が対応していません / the key does not match server.pem";
    if (SSL_CTX_load_verify_locations(ctx.get(), ca.c_str(), nullptr) != 1) return ca + ": CA 証明書を読めません / cannot load the client CA";
    X509 const* leaf = SSL_CTX_get0_certificate(ctx.get());
    std::time_t soon = std::time(nullptr) + 30 * 24 * 3600;
    if (X509_cmp_current_time(X509_get0_notAfter(leaf)) <= 0) return cert + ": 証明書の期限が切れています / the server certificate has expired";
    if (X509_cmp_time(X509_get0_notAfter(leaf), &soon) <= 0)
        notes.push_back("warning: " + cert + ": 30日以内に期限が切れます / the server certificate expires within 30 days");
    char name[256] = {};
    X509_NAME_oneline(X509_get_subject_name(leaf), name, sizeof name);
    notes.push_back("tls: server certificate " + std::string(name));
    if (!fs::exists(fs::path(dir) / "card-ca.pem"))
        notes.push_back("warning: " + (fs::path(dir) / "card-ca.pem").string() +
                        " がありません (カードでの同意登録はできません) / missing: consent registration by card is refused");
    return {};
}

std::string check_database(std::string const& location, std::vector<std::string>& notes) {
    bool const postgres = is_postgres_url(location);
    if (!postgres && !fs::exists(location)) {
        fs::path parent = fs::path(location).parent_path();
        if (parent.empty()) parent = ".";
        if (!fs::is_directory(parent)) return location + ": フォルダ " + parent.string() + " がありません / its folder does not exist";
        notes.push_back("database: " + location + " does not exist yet; it is created with the schema on start");
        return {};
    }
    // A file the server could open only read-only: it would start, then fail every write (restored as root, say).
    if (!postgres) {
        fs::path parent = fs::path(location).parent_path();
        if (parent.empty()) parent = ".";
        if (::access(location.c_str(), R_OK | W_OK) != 0 || ::access(parent.c_str(), W_OK | X_OK) != 0)
            return location + ": このユーザでは書き込めません (ファイルとフォルダの所有者と権限を確かめてください) / cannot be written by this user "
                              "(check the owner and mode of the file and its folder)";
    }
    try {
        auto db = open_database(location);
        SchemaState s = schema_state(*db);
        notes.push_back("database: " + db->backend() + ", " + std::to_string(s.applied.size()) + " migrations applied, " +
                        std::to_string(s.pending.size()) + " to apply on start");
        if (!s.unknown.empty())
            return redact_db(location) + ": " + schema_too_new_message(s);
    } catch (std::exception const& e) {
        return redact_db(location) + ": " + e.what();
    }
    return {};
}

// Whether the key file opens the URL keys a database holds sealed ("" when it does, or when there is nothing to
// open yet: no database, an empty one).
std::string check_key_opens_database(std::string const& key_path, std::string const& location) {
    bool const postgres = is_postgres_url(location);
    if (!postgres && !fs::exists(location)) return {};
    try {
        auto secrets = Secrets::from_key_file_for_check(key_path);
        auto db = open_database(location);
        if (db->query(postgres ? "SELECT 1 FROM information_schema.tables WHERE table_name = 'url_keys'"
                               : "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'url_keys'")
                .empty())
            return {};
        for (auto const& row : db->query("SELECT version, key_sealed FROM url_keys WHERE key_sealed IS NOT NULL ORDER BY version"))
            if (!secrets->open_url_key(std::uint32_t(as_int(row[0])), as_text(row[1])))
                return "このデータベースを封じた鍵ファイルではありません (URL 鍵 " + std::to_string(as_int(row[0])) +
                       " が開きません) / not the key file this database was sealed with (URL key " + std::to_string(as_int(row[0])) + " does not open)";
    } catch (std::exception const& e) {
        return e.what();
    }
    return {};
}

}  // namespace

int check_config(ResolvedConfig const& config) {
    ServeOptions const& o = config.options;
    for (auto const& s : serve_settings()) {
        std::string value;
        std::string const key = s.key;
        if (key == "listen") continue;
        if (key == "host") value = o.host;
        else if (key == "port") value = std::to_string(o.port);
        else if (key == "db") value = redact_db(o.db);
        else if (key == "rules") value = rules_path(o);
        else if (key == "tls_dir") value = o.tls_dir;
        else if (key == "threads") value = std::to_string(o.threads);
        else if (key == "public_url") value = o.public_url.empty() ? "(https://HOST:PORT)" : o.public_url;
        else if (key == "web_root") value = web_root_path(o).empty() ? "(none)" : web_root_path(o);
        else if (key == "test_clock") value = o.test_clock.empty() ? "(the machine's clock)" : o.test_clock;
        else if (key == "key_file")
            value = !o.key_file.empty() ? o.key_file : is_postgres_url(o.db) ? "(none: required with PostgreSQL)" : o.db + ".key";
        else if (key == "spool_dir") value = o.spool_dir.empty() ? default_spool_dir(o.db) : o.spool_dir;
        else if (key == "max_connections") value = std::to_string(o.limits.max_connections);
        else if (key == "trust") {
            for (std::size_t i = 0; i < o.trust.size(); ++i) value += (i ? "," : "") + o.trust[i];
            if (value.empty()) value = "(unsigned rules accepted)";
        }
        std::cout << key << " = " << value << "  (" << config.origin.at(s.key) << ")\n";
    }
    std::vector<std::string> errors = config.errors, notes;
    if (config.ok()) {
        boost::system::error_code ec;
        auto address = boost::asio::ip::make_address(o.host, ec);
        if (ec) errors.push_back("host " + o.host + ": アドレスではありません / not an IP address");
        else if (!address.is_loopback() && !o.any_address)
            errors.push_back("host " + o.host + ": ループバック以外は listen で明示してください / a non-loopback address needs listen = \"ADDRESS:PORT\"");
        if (auto e = check_tls(o.tls_dir, notes); !e.empty()) errors.push_back("tls: " + e);
        // The rules as serve loads them: with trusted keys, only a bundle one of them signed.
        std::vector<std::string> keys;
        for (auto const& path : o.trust) {
            PublicKey key = read_public_key(path);
            if (key.ok()) keys.push_back(key.raw);
            else errors.push_back("trust: " + path + ": " + key.error.text());
        }
        std::vector<Diagnostic> diags;
        auto rules = load_trusted_rules(rules_path(o), keys, &diags);
        if (!rules.program) {
            errors.push_back("rules: " + (diags.empty() ? rules_path(o) + ": " + rules.error : "\n" + format_diagnostics(diags)));
        } else {
            char hash[32];
            std::snprintf(hash, sizeof hash, "%016llx", static_cast<unsigned long long>(rules.program->source_hash));
            notes.push_back("rules: " + std::to_string(rules.program->files.size()) + " files, source hash " + hash);
        }
        if (auto e = check_database(o.db, notes); !e.empty()) errors.push_back("database: " + e);
        // The key file: required with PostgreSQL; when it exists, serve's own checks (a regular file of this user, 0600).
        bool const postgres = is_postgres_url(o.db);
        if (o.key_file.empty() && postgres) {
            errors.push_back("key_file: PostgreSQL では key_file が必要です / key_file is required with PostgreSQL");
        } else if (o.db != ":memory:" || !o.key_file.empty()) {
            std::string const path = o.key_file.empty() ? o.db + ".key" : o.key_file;
            struct stat st {};
            if (::lstat(path.c_str(), &st) != 0)
                notes.push_back("key_file: " + path + " はまだありません (最初の起動で 0600 で作ります) / does not exist yet: created 0600 on first start");
            else if (!S_ISREG(st.st_mode))
                errors.push_back("key_file: " + path + ": 通常のファイルではありません / not a regular file");
            else if (st.st_uid != ::geteuid() && ::geteuid() != 0)
                errors.push_back("key_file: " + path + ": 別のユーザのファイルです / owned by another user");
            else if (st.st_mode & 077)
                errors.push_back("key_file: " + path + ": 他のユーザが読み書きできます (chmod 600) / readable or writable by others (chmod 600)");
            else {
                // Checked as root (sudo): the file belongs to the service's user, which the check cannot know.
                if (st.st_uid != ::geteuid())
                    notes.push_back("key_file: " + path + " はユーザ " + std::to_string(st.st_uid) + " のファイルです (サービスのユーザであること) / owned by uid " +
                                    std::to_string(st.st_uid) + ": right when that is the service's user");
                // The key must open the URL keys this database holds sealed, as serve checks on start.
                if (auto e = check_key_opens_database(path, o.db); !e.empty()) errors.push_back("key_file: " + path + ": " + e);
            }
        }
        if (web_root_path(o).empty() || !fs::exists(fs::path(web_root_path(o)) / "index.html"))
            notes.push_back("warning: web_root: 同意ページのファイルがありません / the consent page's files were not found");
    }
    for (auto const& n : notes) std::cout << n << "\n";
    for (auto const& e : errors) std::cerr << "error: " << e << "\n";
    if (!errors.empty()) {
        std::cerr << errors.size() << " error(s): kyotaku serve would not start\n";
        return 1;
    }
    std::cout << "ok: kyotaku serve would start with this configuration\n";
    return 0;
}

}  // namespace kyotaku::server
