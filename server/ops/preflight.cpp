#include "ops/preflight.hpp"

#include "core/card_signature.hpp"
#include "core/secrets.hpp"
#include "contract/rule_contract.hpp"
#include "ops/tls.hpp"
#include "kyotaku/engine.hpp"
#include "kyotaku/signing.hpp"
#include "ops/rule_releases.hpp"
#include "ops/runtime.hpp"
#include "storage/database.hpp"
#include "storage/facility_urls.hpp"
#include "storage/rule_release_floor.hpp"
#include "storage/server_probes.hpp"

#include <boost/asio/ip/address.hpp>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>

namespace kyotaku::server {

namespace fs = std::filesystem;

namespace {

std::string check_database(std::string const& location, std::vector<std::string>& notes) {
    bool const postgres = is_postgres_url(location);
    std::error_code ec;
    if (!postgres && location != ":memory:" && !fs::exists(location, ec)) {
        if (ec) return location + ": 読めません / cannot be read: " + ec.message();
        fs::path parent = fs::path(location).parent_path();
        if (parent.empty()) parent = ".";
        if (!fs::is_directory(parent, ec))
            return location + ": フォルダ " + parent.string() + " がありません / its folder does not exist";
        if (::access(parent.c_str(), W_OK | X_OK) != 0)
            return location + ": フォルダ " + parent.string() +
                   " に書き込めません / cannot create it: its folder is not writable by this user";
        notes.push_back("database: " + location + " does not exist yet; it is created with the schema on start");
        return {};
    }
    // A file the server could open only read-only: it would start, then fail every write (restored as root, say).
    if (!postgres && location != ":memory:") {
        fs::path parent = fs::path(location).parent_path();
        if (parent.empty()) parent = ".";
        if (::access(location.c_str(), R_OK | W_OK) != 0 || ::access(parent.c_str(), W_OK | X_OK) != 0)
            return location + ": このユーザでは書き込めません (ファイルとフォルダの所有者と権限を確かめてください) / "
                              "cannot be written by this user "
                              "(check the owner and mode of the file and its folder)";
    }
    try {
        auto db = open_database(location);
        SchemaState s = schema_state(*db);
        notes.push_back("database: " + db->backend() + ", " + std::to_string(s.applied.size()) +
                        " migrations applied, " + std::to_string(s.pending.size()) + " to apply on start");
        if (!s.unknown.empty()) return redact_db(location) + ": " + schema_too_new_message(s);
    } catch (std::exception const& e) {
        return redact_db(location) + ": " + redact_secrets(e.what(), location);
    }
    return {};
}

// Whether a database holds the fingerprint of another key file (none stored yet: ""): the refusal, naming both.
std::string another_key(std::optional<std::string> const& stored, Secrets const& secrets) {
    if (!stored || *stored == secrets.fingerprint()) return {};
    return "このデータベースは別の鍵ファイルで使われています (データベースの鍵の指紋 " + *stored + "、この鍵の指紋 " +
           secrets.fingerprint() +
           ")。配備のすべてのサーバに同じ鍵ファイルを置いてください / another key file is this database's (its key's "
           "fingerprint " +
           *stored + ", this key's " + secrets.fingerprint() +
           "): every server of a deployment needs the same key file";
}

// Whether the key file opens the URL keys a database holds sealed ("" when it does, or when there is nothing to
// open yet: no database, an empty one).
std::string check_key_opens_database(Secrets const& secrets, std::string const& location) {
    bool const postgres = is_postgres_url(location);
    std::error_code ec;
    if (location == ":memory:" || (!postgres && !fs::exists(location, ec))) return {};
    try {
        auto db = open_database(location);
        for (StoredUrlKey const& key : FacilityUrls(*db).sealed_keys())
            if (!secrets.open_url_key(key.version, key.sealed))
                return "このデータベースを封じた鍵ファイルではありません (URL 鍵 " + std::to_string(key.version) +
                       " が開きません) / not the key file this database was sealed with (URL key " +
                       std::to_string(key.version) + " does not open)";
        return another_key(stored_key_fingerprint(*db), secrets);
    } catch (std::exception const& e) {
        return redact_secrets(e.what(), location);
    }
}

// The key file: required with PostgreSQL; made on first start when missing; else what serve loads (a regular file
// of this user, 0600, 64 hex digits) and one that opens the database's URL keys.
void check_key_file(ServeOptions const& o, Preflight::Asker asker, Preflight& out) {
    if (o.key_file.empty() && is_postgres_url(o.db)) {
        out.errors.push_back("key_file: PostgreSQL では鍵ファイルが必要です / --key-file is required with PostgreSQL "
                             "(key_file, KYOTAKU_KEY_FILE)");
        return;
    }
    if (o.key_file.empty() && o.db == ":memory:") return;  // a key that lives as long as the database
    std::string const path = o.key_file.empty() ? o.db + ".key" : o.key_file;
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
        if (errno != ENOENT) {
            out.errors.push_back("key_file: " + path + ": 読めません / cannot be read: " + std::strerror(errno));
            return;
        }
        fs::path parent = fs::path(path).parent_path();
        if (parent.empty()) parent = ".";
        if (::access(parent.c_str(), W_OK | X_OK) != 0)
            out.errors.push_back("key_file: " + path + ": ないうえ、フォルダ " + parent.string() +
                                 " に作れません / missing, and its folder is not writable");
        else
            out.notes.push_back(
                "key_file: " + path +
                " はまだありません (最初の起動で 0600 で作ります) / does not exist yet: created 0600 on first start");
        return;
    }
    if (st.st_uid != ::geteuid()) {
        // Checked as root (sudo) for the service: the file belongs to the service's user, which the check cannot know.
        if (asker == Preflight::by_operator && ::geteuid() == 0) {
            out.notes.push_back("key_file: " + path + " はユーザ " + std::to_string(st.st_uid) +
                                " のファイルです (サービスのユーザであること) / owned by uid " +
                                std::to_string(st.st_uid) + ": right when that is the service's user");
        } else {
            out.errors.push_back("key_file: " + path + ": 別のユーザのファイルです / owned by another user");
            return;
        }
    }
    try {
        auto secrets = Secrets::from_key_file_for_check(path);  // what serve loads, but for the owner (above)
        if (auto e = check_key_opens_database(*secrets, o.db); !e.empty())
            out.errors.push_back("key_file: " + path + ": " + e);
        else out.notes.push_back("key_file: " + path + ": fingerprint " + secrets->fingerprint());
    } catch (std::exception const& e) {
        out.errors.push_back(std::string("key_file: ") + e.what());
    }
}

// The spool directory: used as it is when it is private to this user, made (0700) on start when missing.
void check_spool_dir(ServeOptions const& o, Preflight& out) {
    std::string const dir = o.spool_dir.empty() ? default_spool_dir(o.db) : o.spool_dir;
    struct stat st {};
    if (::lstat(dir.c_str(), &st) != 0) {
        fs::path parent = fs::path(dir).parent_path();
        if (parent.empty()) parent = ".";
        if (errno != ENOENT || ::access(parent.c_str(), W_OK | X_OK) != 0)
            out.errors.push_back("spool_dir: " + dir + ": 作れません / cannot create it: " +
                                 (errno != ENOENT ? std::strerror(errno) : "its folder is not writable"));
        return;
    }
    if (auto problem = spool_dir_problem(st); !problem.empty())
        out.errors.push_back("spool_dir: " + dir + ": " + problem);
    // The spool budget is disk: less free than it, and uploads beyond the free space are refused (503).
    if (auto free = free_disk_bytes(dir); free && *free < o.limits.upload_spool)
        out.notes.push_back(
            "warning: spool_dir: " + dir + " のディスクの空き (" + std::to_string(*free >> 20) +
            " MiB) は upload_spool_mb (" + std::to_string(o.limits.upload_spool >> 20) +
            ") より少ないです / has less free space than upload_spool_mb: uploads beyond it are refused (503)");
}

// The rules' release against the database's floor, as serve will judge it (without recording anything).
void check_release(std::string const& location, ReleaseInfo const& release, std::uint64_t source_hash,
                   std::uint64_t rollback_to, std::vector<std::string>& notes, std::vector<std::string>& errors) {
    ReleaseFloor floor;
    if (location != ":memory:" && (is_postgres_url(location) || fs::exists(location))) {
        try {
            auto db = open_database(location);
            floor = RuleReleaseFloor(*db).read_if_migrated();
        } catch (std::exception const&) {
            return;  // check_database says why the database cannot be read
        }
    }
    notes.push_back("rules release floor: " +
                    (floor.release ? "release " + std::to_string(floor.release) + " (since " + floor.set_at + ")"
                                   : std::string("none yet (no release served from this database)")));
    ReleaseAdmission const a = judge_release(floor, release, source_hash, rollback_to);
    if (!a.accepted) errors.push_back("rules: " + a.refusal.text());
    if (a.rollback)
        notes.push_back("warning: rollback_to = " + std::to_string(rollback_to) + ": starting goes back from release " +
                        std::to_string(floor.release) + " to release " + std::to_string(release.release) +
                        " (logged as rules_rollback; the floor becomes " + std::to_string(release.release) +
                        ") / 意図した巻き戻し");
    if (!a.note.empty()) notes.push_back("warning: " + a.note.text());
}

void check_rules(ServeOptions const& o, Preflight& out) {
    std::vector<std::string> keys;
    for (auto const& path : o.trust) {
        PublicKey key = read_public_key(path);
        if (key.ok()) keys.push_back(key.raw);
        else out.errors.push_back("trust: " + path + ": " + key.error.text());
    }
    std::string const path = rules_path(o);
    // As serve loads them: with trusted keys, only a bundle one of them signed; then bound to the server's contract.
    std::vector<Diagnostic> diags;
    ServingRules serving = load_serving_rules(path, keys, &diags);
    if (!serving.loaded.program) {
        out.errors.push_back(
            "rules: " + (diags.empty() ? path + ": " + serving.loaded.describe() : "\n" + format_diagnostics(diags)));
        return;
    }
    auto bound = RuleContract::bind(serving.loaded.program);
    if (auto const* error = std::get_if<Message>(&bound)) {
        out.errors.push_back("rules: " + path + ": ルールがサーバの契約を満たしません: " + error->ja +
                             " / the rules do not fulfil the server's contract: " + error->en);
        return;
    }
    LoadResult const& rules = serving.loaded;
    out.notes.push_back(
        "rules: " + std::to_string(rules.program->files.size()) + " files, source hash " +
        source_hash_hex(rules.program->source_hash) + ", " +
        (rules.release.release ? "release " + std::to_string(rules.release.release)
                               : std::string("not a release (release 0)")) +
        (rules.release.key_id.empty() ? std::string(", unsigned") : ", signed by key " + rules.release.key_id));
    check_release(o.db, rules.release, rules.program->source_hash, o.rollback_to, out.notes, out.errors);
}

}  // namespace

void claim_key_fingerprint(Database& db, Secrets const& secrets, std::string const& at) {
    // The first server to get here stores its key's fingerprint; a second that races it, with another key, finds
    // the first one's.
    if (auto e = another_key(store_key_fingerprint(db, secrets.fingerprint(), at), secrets); !e.empty())
        throw std::runtime_error("key_file: " + e);
}

Preflight preflight(ServeOptions const& o, Preflight::Asker asker) {
    Preflight out;
    // Each check on its own: one that throws all the same (out of memory, a library's surprise) is an error of
    // its setting, and the others still run.
    auto guarded = [&](char const* what, auto&& check) {
        try {
            check();
        } catch (std::exception const& e) {
            out.errors.push_back(std::string(what) + ": " + redact_secrets(e.what(), o.db));
        }
    };
    guarded("host", [&] {
        boost::system::error_code ec;
        auto address = boost::asio::ip::make_address(o.host, ec);
        if (ec) out.errors.push_back("host " + o.host + ": アドレスではありません / not an IP address");
        else if (!address.is_loopback() && !o.any_address)
            out.errors.push_back("host " + o.host +
                                 ": ループバック以外に待ち受けるには listen (--listen ADDRESS:PORT) で明示してください "
                                 "/ a non-loopback address needs "
                                 "listen = \"ADDRESS:PORT\" (--listen)");
    });
    guarded("public_url", [&] {
        if (auto warning = facility_urls_unreachable(o); !warning.empty()) out.notes.push_back(warning);
    });
    guarded("patient_listen", [&] {
        if (!o.patient_listener) {
            if (auto warning = patients_on_certificate_listener(o); !warning.empty()) out.notes.push_back(warning);
            return;
        }
        // Two listeners on one port of one address cannot both bind (an unspecified address covers every other).
        boost::system::error_code ec;
        auto const main = boost::asio::ip::make_address(o.host, ec);
        auto const patients = boost::asio::ip::make_address(o.patient_host, ec);
        if (!ec && o.port != 0 && o.port == o.patient_port &&
            (main == patients || main.is_unspecified() || patients.is_unspecified()))
            out.errors.push_back("patient_listen " + o.patient_host + ":" + std::to_string(o.patient_port) +
                                 ": listen と同じアドレスとポートです / the same address and port as listen: the "
                                 "patients' listener needs a port of its own");
        else
            out.notes.push_back("patient_listen: " + o.patient_host + ":" + std::to_string(o.patient_port) +
                                " serves the consent page, its files and its token routes without asking for a client "
                                "certificate; facility URLs and QR codes begin with " +
                                (o.public_url.empty() ? std::string("https://HOST:PORT of patient_listen")
                                                      : o.public_url + " (public_url: make it reach this listener)"));
    });
    guarded("tls", [&] {
        ServerTls tls = load_server_tls(o.tls_dir);
        if (!tls.ok()) out.errors.push_back("tls: " + tls.error);
        out.notes.insert(out.notes.end(), tls.notes.begin(), tls.notes.end());
        std::string const card_ca = (fs::path(o.tls_dir) / "card-ca.pem").string();
        std::error_code ec;
        if (!fs::exists(card_ca, ec))
            out.notes.push_back(
                "warning: " + card_ca +
                " がありません (カードでの同意登録はできません) / missing: consent registration by card is refused");
        else if (!loads_as_ca_file(card_ca))
            out.notes.push_back("warning: " + card_ca +
                                " に証明書がありません (カードでの同意登録はできません) / holds no certificate: "
                                "consent registration by card is refused");
    });
    guarded("rules", [&] { check_rules(o, out); });
    guarded("database", [&] {
        if (auto e = check_database(o.db, out.notes); !e.empty()) out.errors.push_back("database: " + e);
    });
    guarded("key_file", [&] { check_key_file(o, asker, out); });
    guarded("spool_dir", [&] { check_spool_dir(o, out); });
    guarded("prove_executable", [&] {
        // The workbench's proofs run this command; one that is not an executable file would fail every proof (500).
        if (o.prove_at_once > 0 && !o.prove_executable.empty() && ::access(o.prove_executable.c_str(), X_OK) != 0)
            out.errors.push_back(
                "prove_executable: " + o.prove_executable +
                ": 実行できるファイルではありません / not an executable file (the workbench's proofs run it)");
    });
    guarded("web_root", [&] {
        std::error_code ec;
        std::string const web = web_root_path(o);
        if (web.empty() || !fs::exists(fs::path(web) / "index.html", ec))
            out.notes.push_back(
                "warning: web_root: 同意ページのファイルがありません / the consent page's files were not found");
    });
    return out;
}

}  // namespace kyotaku::server
