#include "ops/config.hpp"
#include "ops/preflight.hpp"

#include "storage/database.hpp"
#include "kyotaku/engine.hpp"

#include <boost/asio/ip/address.hpp>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <iostream>

namespace kyotaku::server {

namespace fs = std::filesystem;

std::vector<Setting> const& serve_settings() {
    using T = Setting::Type;
    static std::vector<Setting> const all{
        {T::text, "listen", "--listen", "KYOTAKU_LISTEN",
         "待ち受けるアドレスとポート ADDRESS:PORT (ループバック以外も可) / address and port to listen on; the explicit "
         "way to listen beyond loopback"},
        {T::text, "host", "--host", "KYOTAKU_HOST",
         "待ち受けるアドレス (ループバックのみ) / loopback address to listen on (default 127.0.0.1)"},
        {T::integer, "port", "--port", "KYOTAKU_PORT",
         "ポート (0 は空いているポート) / port (0: any free port; default 8443)", 0, 65535},
        {T::text, "patient_listen", "--patient-listen", "KYOTAKU_PATIENT_LISTEN",
         "患者用の待ち受け ADDRESS:PORT: 同意ページとそのファイル・API だけを、クライアント証明書を求めない TLS で "
         "(施設URLと QR コードはこちらを指す) / the patients' listener ADDRESS:PORT: only the consent page, its files "
         "and its token routes, over TLS that asks for no client certificate (no certificate prompt on Android); "
         "facility URLs and QR codes point to it (default: none, the patients' side is on the main listener)",
         0, 0, nullptr, true},
        {T::text, "db", "--db", "KYOTAKU_DB",
         "SQLite のファイル、または postgresql:// の接続URL / SQLite file or PostgreSQL URL (default kyotaku.sqlite)",
         0, 0, &ServeOptions::db},
        {T::text, "rules", "--rules", "KYOTAKU_RULES",
         "ルールのディレクトリかバンドル (既定: 導入先の share/kyotaku/rules) / rules directory or bundle (default: "
         "share/kyotaku/rules beside the binary, else ./rules)",
         0, 0, &ServeOptions::rules, true},
        {T::text, "tls_dir", "--tls-dir", "KYOTAKU_TLS_DIR",
         "ca.pem, server.pem, server.key のあるディレクトリ / TLS files (default pki)", 0, 0, &ServeOptions::tls_dir},
        {T::integer, "threads", "--threads", "KYOTAKU_THREADS", "スレッド数 / worker threads (default 2)", 1, 64},
        {T::text, "public_url", "--public-url", "KYOTAKU_PUBLIC_URL",
         "施設URLの先頭 (既定 https://HOST:PORT) / base of facility URLs", 0, 0, &ServeOptions::public_url, true},
        {T::text, "web_root", "--web-root", "KYOTAKU_WEB_ROOT",
         "同意ページのファイル (既定: 実行ファイルの隣の web/) / the consent page's files (default: web/ beside the "
         "binary)",
         0, 0, &ServeOptions::web_root, true},
        {T::text, "test_clock", "--test-clock", "KYOTAKU_TEST_CLOCK",
         "テスト・デモ用: サーバの「今日」をこの日から始める (運用者が POST /api/v1/admin/clock で動かせる) / tests "
         "and demos: start the "
         "server's day on DATE (the operator may move it)",
         0, 0, &ServeOptions::test_clock, true},
        {T::text, "trust", "--trust", "KYOTAKU_TRUST",
         "信頼する公開鍵 (PEM、繰り返し可、設定ファイルと環境変数ではカンマ区切り)。指定すると rules "
         "はその鍵で署名したバンドルでなければならず、同意ページも署名を確かめる / "
         "trusted public keys (PEM; repeat the flag, or a comma-separated list): the rules must be a bundle one of "
         "them signed",
         0, 0, nullptr, true},
        {T::text, "key_file", "--key-file", "KYOTAKU_KEY_FILE",
         "鍵ファイル (0600; ないときは作る)。URL 鍵とパスコードを守る / the key file (0600; created when missing) that "
         "seals the URL keys "
         "and keys the passcodes' hash (default: DB.key beside a SQLite database; required with PostgreSQL)",
         0, 0, &ServeOptions::key_file, true},
        {T::text, "spool_dir", "--spool-dir", "KYOTAKU_SPOOL_DIR",
         "大きなアップロードを一時的に置く専用ディレクトリ (0700) / private directory of spooled uploads (0700; "
         "default: DB.spool beside a "
         "SQLite database, else kyotaku-spool-UID in the temporary directory)",
         0, 0, &ServeOptions::spool_dir, true},
        {T::integer, "max_connections", "--max-connections", "KYOTAKU_MAX_CONNECTIONS",
         "同時接続数の上限 / connections open at once (default 256; lowered to what the descriptor limit allows)", 1,
         100000},
        {T::integer, "patient_max_connections", "--patient-max-connections", "KYOTAKU_PATIENT_MAX_CONNECTIONS",
         "患者さん用の待ち受け (patient_listen) の同時接続数の上限 (listen とは別に数えます) / connections open at "
         "once on patient_listen, counted apart from listen's (default 256; both lowered to what the descriptor "
         "limit allows)",
         1, 100000},
        {T::integer, "upload_memory_mb", "--upload-memory-mb", "KYOTAKU_UPLOAD_MEMORY_MB",
         "64 KiB を超える本文をメモリに置く量の上限 (全接続の合計、MiB) / MiB of request bodies beyond 64 KiB held in "
         "memory at once, all "
         "connections together (default 256; beyond, 503 with Retry-After)",
         1, 1048576},
        {T::integer, "upload_spool_mb", "--upload-spool-mb", "KYOTAKU_UPLOAD_SPOOL_MB",
         "一時ファイルに置くアップロードの量の上限 (全接続の合計、MiB) / MiB of spooled uploads on disk at once, all "
         "connections together "
         "(default 4096; beyond, 503 with Retry-After)",
         1, 16777216},
        {T::integer, "uploads_per_facility", "--uploads-per-facility", "KYOTAKU_UPLOADS_PER_FACILITY",
         "1施設が同時に送れる大きな本文 (64 KiB 超) の数 / large uploads (bodies beyond 64 KiB) one facility may send "
         "at once (default 2; "
         "beyond, 429 with Retry-After)",
         1, 1000},
        {T::integer, "rollback_to", "--rollback-to", "KYOTAKU_ROLLBACK_TO",
         "ルールのリリースを意図して戻す: このデータベースで使ったものより古いリリース N を一度だけ受け入れ、記録する "
         "(戻し終えたら消す) / go back on purpose to the "
         "older rule release N: accepted although a newer one was served, logged, and N becomes the floor (remove it "
         "once done)",
         1, 9007199254740992L},
        {T::integer, "drain_seconds", "--drain-seconds", "KYOTAKU_DRAIN_SECONDS",
         "SIGTERM の後、処理中の要求を終えるまで待つ上限の秒数 / on SIGTERM, how long requests in flight may take to "
         "finish "
         "before the server exits (default 20; /readyz answers 503 meanwhile)",
         0, 3600},
        {T::text, "proxy_protocol_from", "--proxy-protocol-from", "KYOTAKU_PROXY_PROTOCOL_FROM",
         "PROXY プロトコル (v1) のヘッダを送る TCP ロードバランサのアドレス "
         "(カンマ区切り)。その接続では、ヘッダにある接続元を使う / "
         "addresses of TCP balancers that begin each connection with a PROXY protocol v1 header (HAProxy send-proxy; "
         "comma-separated): "
         "the client's address is read from it (default: none)",
         0, 0, nullptr, true},
        {T::integer, "handoffs_per_client", "--handoffs-per-client", "KYOTAKU_HANDOFFS_PER_CLIENT",
         "同意ページの引き継ぎを、1つの接続元 (IP アドレス、IPv6 は /64) が1施設で同時に開ける数 (0: 数えない) / open "
         "consent-page "
         "hand-offs per client address (IPv6: per /64) and facility (default 5; 0: no per-client budget, for a TCP "
         "balancer in "
         "passthrough, where every client has the balancer's address)",
         0, 1000},
        {T::integer, "batch_share", "--batch-share", "KYOTAKU_BATCH_SHARE",
         "対話の要求が続く間、一括照会が使う時間の割合 (%、残りは要求に譲る。100: 譲らない) / the share (percent) of "
         "the batch worker's time it keeps while interactive requests keep coming; it gives way for the rest "
         "(default 25; 100: it never gives way)",
         1, 100},
        {T::integer, "prove_at_once", "--prove-at-once", "KYOTAKU_PROVE_AT_ONCE",
         "ルールの作業台の証明 (kyotaku prove) を同時にいくつまで実行するか (0: 実行しない) / the rule workbench's "
         "proofs (kyotaku prove "
         "as a child process) at once (default 1; beyond, 503 with Retry-After; 0: none)",
         0, 64},
        {T::integer, "prove_seconds", "--prove-seconds", "KYOTAKU_PROVE_SECONDS",
         "作業台の証明1回の制限時間 (秒、経過時間と CPU 時間) / each workbench proof's limit in seconds, wall clock "
         "and CPU time "
         "(default 300; then it is killed and the answer says so)",
         1, 86400},
        {T::integer, "prove_memory_mb", "--prove-memory-mb", "KYOTAKU_PROVE_MEMORY_MB",
         "作業台の証明1回のアドレス空間の上限 (MiB) / each workbench proof's address space in MiB (RLIMIT_AS; default "
         "4096)",
         256, 1048576},
        {T::text, "prove_executable", "--prove-executable", "KYOTAKU_PROVE_EXECUTABLE",
         "作業台の証明を実行する kyotaku コマンド (既定: このサーバ自身の実行ファイル) / the kyotaku command that runs "
         "the workbench's proofs "
         "(default: the server's own executable)",
         0, 0, &ServeOptions::prove_executable, true},
    };
    return all;
}

namespace {

// An address that stands for every address of the machine (0.0.0.0, ::, and ::ffff:0.0.0.0, IPv4's in IPv6).
bool unspecified_address(boost::asio::ip::address const& a) {
    if (a.is_v6() && a.to_v6().is_v4_mapped())
        return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, a.to_v6()).is_unspecified();
    return a.is_unspecified();
}

// public_url as facility URLs and QR codes use it: https://HOST[:PORT], nothing after (a trailing "/" is dropped:
// "https://host//c/…" is a 404). The TLS goes through to this server (docs/operations.md 11.), so a path could never
// be taken off before the server sees it; and no phone can open an address that stands for every address.
std::optional<std::string> parse_public_url(std::string text, std::string& error) {
    if (!text.empty() && text.back() == '/') text.pop_back();
    std::string_view const scheme = "https://";
    if (text.rfind(scheme, 0) != 0) {
        error = "https:// で始めてください / must begin with https:// (got \"" + text + "\")";
        return std::nullopt;
    }
    std::string const authority = text.substr(scheme.size());
    if (authority.empty() || authority.find_first_of("/?#@\\ ") != std::string::npos ||
        std::any_of(authority.begin(), authority.end(), [](unsigned char c) { return c < 0x21 || c == 0x7f; })) {
        error = "https://ホスト名[:ポート] の形で、パスなどを付けずに書いてください / must be https://HOST[:PORT] with "
                "no path, query, fragment or user (got \"" +
                text + "\")";
        return std::nullopt;
    }
    std::string host = authority, port;
    if (authority.front() == '[') {
        auto const close = authority.find(']');
        if (close == std::string::npos || (close + 1 < authority.size() && authority[close + 1] != ':')) {
            error = "[IPv6]:PORT の形で書いてください / expected https://[IPv6 address]:PORT (got \"" + text + "\")";
            return std::nullopt;
        }
        host = authority.substr(1, close - 1);
        if (close + 1 < authority.size()) port = authority.substr(close + 2);
    } else if (auto const colon = authority.rfind(':'); colon != std::string::npos) {
        host = authority.substr(0, colon);
        port = authority.substr(colon + 1);
    }
    unsigned number = 0;
    if (auto const [end, err] = std::from_chars(port.data(), port.data() + port.size(), number);
        authority.back() == ':' ||
        (!port.empty() && (err != std::errc() || end != port.data() + port.size() || number == 0 || number > 65535))) {
        error = "ポートは 1〜65535 の数字です / the port must be a number from 1 to 65535 (got \"" + text + "\")";
        return std::nullopt;
    }
    boost::system::error_code ec;
    auto const address = boost::asio::ip::make_address(host, ec);
    if (host.empty() || (!ec && unspecified_address(address))) {
        error = "患者さんのスマートフォンが開けるアドレスにしてください / must name an address patients' phones can "
                "reach, not one that stands for every address (got \"" +
                text + "\")";
        return std::nullopt;
    }
    return text;
}

}  // namespace

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
            return "整数 " + std::to_string(s.min) + "〜" + std::to_string(s.max) +
                   " を指定してください / must be an integer from " + std::to_string(s.min) + " to " +
                   std::to_string(s.max) + " (got \"" + value + "\")";
        if (key == "port") o.port = static_cast<unsigned short>(n);
        if (key == "threads") o.threads = int(n);
        if (key == "max_connections") o.limits.max_connections = int(n);
        if (key == "patient_max_connections") o.limits.patient_max_connections = int(n);
        if (key == "upload_memory_mb") o.limits.upload_memory = std::uint64_t(n) << 20;
        if (key == "upload_spool_mb") o.limits.upload_spool = std::uint64_t(n) << 20;
        if (key == "uploads_per_facility") o.limits.uploads_per_facility = int(n);
        if (key == "rollback_to") o.rollback_to = std::uint64_t(n);
        if (key == "drain_seconds") o.drain = std::chrono::seconds(n);
        if (key == "handoffs_per_client") o.handoffs_per_client = int(n);
        if (key == "batch_share") o.batch_share = int(n);
        if (key == "prove_at_once") o.prove_at_once = int(n);
        if (key == "prove_seconds") o.prove_seconds = int(n);
        if (key == "prove_memory_mb") o.prove_memory_mb = int(n);
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
    if (key == "public_url") {
        o.public_url.clear();
        if (value.empty()) return {};
        std::string error;
        auto url = parse_public_url(value, error);
        if (!url) return error;
        o.public_url = *url;
        return {};
    }
    if (key == "patient_listen") {
        o.patient_listener = !value.empty();
        o.patient_host.clear();
        o.patient_port = 0;
        if (value.empty()) return {};
        std::string error;
        auto l = parse_listen(value, error);
        if (!l) return error;
        o.patient_host = l->host;
        o.patient_port = l->port;
        return {};
    }
    if (value.empty() && !s.may_be_empty) return "空にはできません / must not be empty";
    if (key == "host") {
        o.host = value;
        o.any_address = false;
    }
    if (key == "test_clock" && !value.empty() && !parse_date(value).date)
        return "日付ではありません / not a date (YYYY-MM-DD)";
    if (key == "trust") {
        o.trust.clear();
        for (std::size_t at = 0; at <= value.size() && !value.empty();) {
            std::size_t const comma = std::min(value.find(',', at), value.size());
            if (comma == at) return "空の鍵のファイル名があります / an empty key file name in the list";
            o.trust.push_back(value.substr(at, comma - at));
            at = comma + 1;
        }
    }
    if (key == "proxy_protocol_from") {
        o.limits.proxy_protocol_from.clear();
        for (std::size_t at = 0; at <= value.size() && !value.empty();) {
            std::size_t const comma = std::min(value.find(',', at), value.size());
            std::string const address = value.substr(at, comma - at);
            boost::system::error_code ec;
            auto parsed = boost::asio::ip::make_address(address, ec);
            if (ec) return "\"" + address + "\" は IP アドレスではありません / not an IP address";
            if (parsed.is_v6() && parsed.to_v6().is_v4_mapped())  // compared with the peer's address, IPv4 when mapped
                parsed = boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, parsed.to_v6());
            o.limits.proxy_protocol_from.push_back(parsed.to_string());
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
        errors.push_back(path + ":" + std::to_string(at.line) + ":" + std::to_string(at.column) + ": " +
                         std::string(e.description()));
        return layer;
    }
    auto where = [&](toml::node const& n) {
        return path + ":" + std::to_string(n.source().begin.line) + ":" + std::to_string(n.source().begin.column);
    };
    for (auto const& [k, node] : doc) {
        if (k.str() != "serve" || !node.is_table()) {
            errors.push_back(
                where(node) + ": " + std::string(k.str()) +
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
                    errors.push_back(where(value) + ": serve." + name +
                                     ": 文字列 (\"…\") で書いてください / must be a string");
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
        std::error_code ec;
        if (!fs::is_regular_file(sources.file, ec))
            out.errors.push_back(
                sources.file + (ec && ec != std::errc::no_such_file_or_directory
                                    ? ": 設定ファイルを読めません / cannot read the configuration file: " + ec.message()
                                    : ": 設定ファイルがありません / no such configuration file"));
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
fs::path install_prefix(ServeOptions const& o) {
    if (!o.install_prefix.empty()) return o.install_prefix;
    std::error_code ec;
    return fs::read_symlink("/proc/self/exe", ec).parent_path().parent_path();
}
}  // namespace

std::string rules_path(ServeOptions const& o) {
    if (!o.rules.empty()) return o.rules;
    fs::path installed = install_prefix(o) / "share/kyotaku/rules";
    std::error_code ec;
    if (fs::is_directory(installed, ec)) return installed.string();
    return "rules";
}

std::string web_root_path(ServeOptions const& o) {
    if (!o.web_root.empty()) return o.web_root;
    fs::path const prefix = install_prefix(o);
    std::error_code ec;
    for (fs::path candidate : {prefix / "web", prefix / "share/kyotaku/web"})
        if (fs::exists(candidate / "index.html", ec)) return candidate.string();
    return {};
}

std::string default_spool_dir(std::string const& db) {
    bool const sqlite_file = !is_postgres_url(db) && db != ":memory:" && db.rfind("file:", 0) != 0;
    if (sqlite_file) return db + ".spool";
    std::error_code ec;
    auto tmp = std::filesystem::temp_directory_path(ec);
    return ((ec ? std::filesystem::path("/tmp") : tmp) / ("kyotaku-spool-" + std::to_string(::geteuid()))).string();
}

namespace {

// The spans of `location` that hold a secret: the password of a URL's user information (scheme://user:PASSWORD@…,
// up to the last '@' before the query, so that an unencoded '@' in a password is still covered) and the value of
// every password=… or sslpassword=… (a URL's query parameter, or a key=value connection string).
std::vector<std::pair<std::size_t, std::size_t>> secret_spans(std::string const& location) {
    std::vector<std::pair<std::size_t, std::size_t>> spans;
    std::size_t const query = location.find('?');
    if (auto scheme = location.find("://"); scheme != std::string::npos && scheme < query) {
        std::size_t const start = scheme + 3;
        std::size_t const at = location.rfind('@', query == std::string::npos ? std::string::npos : query);
        if (at != std::string::npos && at > start) {
            std::size_t const colon = location.find(':', start);
            if (colon != std::string::npos && colon < at) spans.emplace_back(colon + 1, at);
        }
    }
    for (char const* key : {"password=", "sslpassword="}) {
        std::size_t const n = std::strlen(key);
        for (std::size_t at = location.find(key); at != std::string::npos; at = location.find(key, at + n)) {
            bool const starts = at == 0 || location[at - 1] == '?' || location[at - 1] == '&' ||
                                location[at - 1] == ' ' || location[at - 1] == '\t';
            if (!starts) continue;
            std::size_t const value = at + n;
            std::size_t end = value;
            while (end < location.size() && location[end] != '&' && location[end] != ' ' && location[end] != '\t')
                ++end;
            if (end > value) spans.emplace_back(value, end);
        }
    }
    return spans;
}

std::string percent_decoded(std::string const& s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
            std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
            out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
            i += 2;
        } else {
            out += s[i];
        }
    }
    return out;
}

}  // namespace

std::string redact_db(std::string const& location) {
    auto spans = secret_spans(location);
    std::sort(spans.begin(), spans.end());
    std::string out;
    std::size_t at = 0;
    for (auto const& [from, to] : spans) {
        if (from < at) continue;  // inside a span already replaced
        out.append(location, at, from - at);
        out += "***";
        at = to;
    }
    out.append(location, at, std::string::npos);
    return out;
}

std::string redact_secrets(std::string const& text, std::string const& location) {
    std::string out = text;
    std::string const redacted = redact_db(location);
    if (!location.empty())
        for (std::size_t at = out.find(location); at != std::string::npos;
             at = out.find(location, at + redacted.size()))
            out.replace(at, location.size(), redacted);
    for (auto const& [from, to] : secret_spans(location)) {
        std::string const raw = location.substr(from, to - from);
        for (std::string const& secret : {raw, percent_decoded(raw)}) {
            // too short to tell from ordinary text (the location itself is redacted above)
            if (secret.size() < 3) continue;
            for (std::size_t at = out.find(secret); at != std::string::npos; at = out.find(secret, at + 3))
                out.replace(at, secret.size(), "***");
        }
    }
    return out;
}

std::string patients_on_certificate_listener(ServeOptions const& o) {
    if (o.patient_listener) return {};
    boost::system::error_code ec;
    auto const address = boost::asio::ip::make_address(o.host, ec);
    if (ec || address.is_loopback()) return {};
    return "warning: patient_listen が設定されていません。患者さんのスマートフォンは"
           "クライアント証明書を求める待ち受けで同意ページを開き、Android では証明書を選ぶ画面が出ます。"
           "実際の運用では patient_listen を設定してください / "
           "patient_listen is not set: patients open the consent page on " +
           o.host + ":" + std::to_string(o.port) +
           ", which asks for client certificates, and Android shows them a certificate prompt; set patient_listen "
           "for a real deployment (docs/operations.md 2.)";
}

std::string facility_urls_unreachable(ServeOptions const& o) {
    if (!o.public_url.empty()) return {};
    std::string const& host = o.patient_listener ? o.patient_host : o.host;
    boost::system::error_code ec;
    auto const address = boost::asio::ip::make_address(host, ec);
    if (ec || !unspecified_address(address)) return {};
    std::string const shown = address.is_v6() ? "[" + host + "]" : host;
    return "warning: public_url が設定されていません。施設URLとQRコードが https://" + shown +
           ":… で始まり、患者さんのスマートフォンでは開けません。public_url を設定してください / "
           "public_url is not set and " +
           std::string(o.patient_listener ? "patient_listen" : "listen") + " is on " + shown +
           ": facility URLs and QR codes would begin with https://" + shown +
           ":PORT, which no phone can open; set public_url to the address patients reach (docs/operations.md 2.)";
}

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
        else if (key == "public_url")
            value = !o.public_url.empty()  ? o.public_url
                    : o.patient_listener ? "(https://HOST:PORT of patient_listen)"
                                         : "(https://HOST:PORT)";
        else if (key == "patient_listen") {
            std::string const h = o.patient_host.find(':') != std::string::npos ? "[" + o.patient_host + "]"
                                                                                  : o.patient_host;
            value = o.patient_listener ? h + ":" + std::to_string(o.patient_port)
                                       : "(none: patients are served on the listener that asks for client "
                                         "certificates)";
        }
        else if (key == "web_root") value = web_root_path(o).empty() ? "(none)" : web_root_path(o);
        else if (key == "test_clock") value = o.test_clock.empty() ? "(the machine's clock)" : o.test_clock;
        else if (key == "key_file")
            value = !o.key_file.empty()     ? o.key_file
                    : is_postgres_url(o.db) ? "(none: required with PostgreSQL)"
                                            : o.db + ".key";
        else if (key == "spool_dir") value = o.spool_dir.empty() ? default_spool_dir(o.db) : o.spool_dir;
        else if (key == "max_connections") value = std::to_string(o.limits.max_connections);
        else if (key == "patient_max_connections") value = std::to_string(o.limits.patient_max_connections);
        else if (key == "upload_memory_mb") value = std::to_string(o.limits.upload_memory >> 20);
        else if (key == "upload_spool_mb") value = std::to_string(o.limits.upload_spool >> 20);
        else if (key == "uploads_per_facility") value = std::to_string(o.limits.uploads_per_facility);
        else if (key == "rollback_to")
            value = o.rollback_to ? std::to_string(o.rollback_to) : "(none: older releases are refused)";
        else if (key == "drain_seconds") value = std::to_string(o.drain.count());
        else if (key == "handoffs_per_client") value = std::to_string(o.handoffs_per_client);
        else if (key == "batch_share") value = std::to_string(o.batch_share);
        else if (key == "prove_at_once") value = std::to_string(o.prove_at_once);
        else if (key == "prove_seconds") value = std::to_string(o.prove_seconds);
        else if (key == "prove_memory_mb") value = std::to_string(o.prove_memory_mb);
        else if (key == "prove_executable")
            value = o.prove_executable.empty() ? "(the server's own executable)" : o.prove_executable;
        else if (key == "proxy_protocol_from") {
            for (std::size_t i = 0; i < o.limits.proxy_protocol_from.size(); ++i)
                value += (i ? "," : "") + o.limits.proxy_protocol_from[i];
            if (value.empty()) value = "(none)";
        }
        else if (key == "trust") {
            for (std::size_t i = 0; i < o.trust.size(); ++i) value += (i ? "," : "") + o.trust[i];
            if (value.empty()) value = "(unsigned rules accepted)";
        }
        std::cout << key << " = " << value << "  (" << config.origin.at(s.key) << ")\n";
    }
    std::vector<std::string> errors = config.errors, notes;
    if (config.ok()) {  // the checks serve makes before it starts (preflight.hpp)
        Preflight checked = preflight(o, Preflight::by_operator);
        errors.insert(errors.end(), checked.errors.begin(), checked.errors.end());
        notes = std::move(checked.notes);
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
