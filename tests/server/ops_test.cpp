// Operating the server (issue 12): configuration sources and their errors, the schema guard, rule reloads by
// generation, readiness, metrics, route patterns for logs, and Idempotency-Key answers (the relay's exactly-once).
#include "ops/config.hpp"
#include "ops/preflight.hpp"
#include "core/secrets.hpp"
#include "storage/database.hpp"
#include "http/router.hpp"
#include "http/idempotency.hpp"
#include "ops/observability.hpp"
#include "ops/runtime.hpp"
#include "ops/rule_releases.hpp"
#include "contract/rule_contract.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <string_view>
#include <thread>

using namespace kyotaku;
using namespace kyotaku::server;
namespace fs = std::filesystem;

namespace {
struct TempDir {
    fs::path path;
    TempDir() {
        char tmpl[] = "/tmp/kyotaku-ops.XXXXXX";
        path = mkdtemp(tmpl);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    std::string write(std::string const& name, std::string const& text) const {
        std::ofstream(path / name, std::ios::binary) << text;
        return (path / name).string();
    }
};

ConfigSources sources(std::string file, std::map<std::string, std::string> env,
                      std::map<std::string, std::string> flags = {}) {
    ConfigSources s;
    s.file = std::move(file);
    s.flags = std::move(flags);
    auto shared = std::make_shared<std::map<std::string, std::string>>(std::move(env));
    s.getenv = [shared](char const* name) -> char const* {
        auto it = shared->find(name);
        return it == shared->end() ? nullptr : it->second.c_str();
    };
    return s;
}

std::string joined(std::vector<std::string> const& v) {
    std::string out;
    for (auto const& s : v) out += s + "\n";
    return out;
}
}  // namespace

TEST(Config, FileThenEnvironmentThenFlags) {
    TempDir t;
    std::string file = t.write(
        "k.toml",
        "# comment\n[serve]\nport = 9000\ndb = \"/var/lib/kyotaku/a.sqlite\"\nthreads = 4\ntls_dir = \"/etc/t\"\n");
    auto c = resolve_serve_config(
        sources(file, {{"KYOTAKU_DB", "postgresql://k@db/k"}, {"KYOTAKU_THREADS", "3"}}, {{"threads", "8"}}));
    ASSERT_TRUE(c.ok()) << joined(c.errors);
    EXPECT_EQ(c.options.port, 9000);
    EXPECT_EQ(c.options.db, "postgresql://k@db/k");  // the environment over the file
    EXPECT_EQ(c.options.threads, 8);                 // the flag over both
    EXPECT_EQ(c.options.tls_dir, "/etc/t");
    EXPECT_EQ(c.options.host, "127.0.0.1");
    EXPECT_EQ(c.origin["port"], file + ":3:8");
    EXPECT_EQ(c.origin["db"], "KYOTAKU_DB");
    EXPECT_EQ(c.origin["threads"], "--threads");
    EXPECT_EQ(c.origin["host"], "default");
}

TEST(Config, EveryErrorNamesWhereItIs) {
    TempDir t;
    std::string file = t.write("k.toml", "[serve]\nport = \"8443\"\nthreds = 2\nthreads = 99\n[other]\nx = 1\n");
    auto c = resolve_serve_config(sources(file, {{"KYOTAKU_PORT", "80a"}}, {{"listen", "127.0.0.1:99999"}}));
    std::string all = joined(c.errors);
    EXPECT_NE(all.find(file + ":2:8: serve.port: "), std::string::npos) << all;   // wrong type
    EXPECT_NE(all.find(file + ":3:10: serve.threds: "), std::string::npos) << all;  // unknown key
    EXPECT_NE(all.find(file + ":4:11: threads: "), std::string::npos) << all;       // out of range
    EXPECT_NE(all.find(file + ":5:1: other: "), std::string::npos) << all;          // unknown table
    EXPECT_NE(all.find("KYOTAKU_PORT: port: "), std::string::npos) << all;
    EXPECT_NE(all.find("--listen: listen: "), std::string::npos) << all;
    EXPECT_EQ(c.errors.size(), 6u) << all;

    std::string broken = t.write("b.toml", "[serve]\nport = = 1\n");
    auto b = resolve_serve_config(sources(broken, {}));
    ASSERT_EQ(b.errors.size(), 1u);
    EXPECT_EQ(b.errors[0].rfind(broken + ":2:", 0), 0u) << b.errors[0];
    auto missing = resolve_serve_config(sources((t.path / "none.toml").string(), {}));
    ASSERT_EQ(missing.errors.size(), 1u);
}

// Interactive first (batch_share): a percent from 1 to 100, 25 unless set.
TEST(Config, TheBatchShareIsAPercent) {
    TempDir t;
    std::string file = t.write("k.toml", "[serve]\nbatch_share = 40\n");
    auto c = resolve_serve_config(sources(file, {}));
    ASSERT_TRUE(c.ok()) << joined(c.errors);
    EXPECT_EQ(c.options.batch_share, 40);
    EXPECT_EQ(resolve_serve_config(sources("", {})).options.batch_share, 25);
    EXPECT_EQ(resolve_serve_config(sources("", {{"KYOTAKU_BATCH_SHARE", "100"}})).options.batch_share, 100);
    EXPECT_FALSE(resolve_serve_config(sources("", {{"KYOTAKU_BATCH_SHARE", "0"}})).ok());
    EXPECT_FALSE(resolve_serve_config(sources("", {}, {{"batch_share", "101"}})).ok());
}

// The settings issue 10 and 13 brought (key_file, spool_dir, max_connections, trust) are settings like the others.
TEST(Config, TheSecuritySettingsAreSettingsToo) {
    TempDir t;
    std::string file =
        t.write("k.toml",
                "[serve]\nkey_file = \"/var/lib/kyotaku/k.key\"\nmax_connections = 64\ntrust = \"a.pub,b.pub\"\n");
    auto c =
        resolve_serve_config(sources(file, {{"KYOTAKU_SPOOL_DIR", "/var/lib/kyotaku/spool"}}, {{"trust", "c.pub"}}));
    ASSERT_TRUE(c.ok()) << joined(c.errors);
    EXPECT_EQ(c.options.key_file, "/var/lib/kyotaku/k.key");
    EXPECT_EQ(c.options.limits.max_connections, 64);
    EXPECT_EQ(c.options.spool_dir, "/var/lib/kyotaku/spool");
    EXPECT_EQ(c.options.trust, (std::vector<std::string>{"c.pub"}));  // the flag over the file, whole
    auto from_file = resolve_serve_config(sources(file, {}));
    ASSERT_TRUE(from_file.ok()) << joined(from_file.errors);
    EXPECT_EQ(from_file.options.trust, (std::vector<std::string>{"a.pub", "b.pub"}));
    EXPECT_EQ(from_file.origin["trust"], file + ":4:9");
    // An empty name in the list, a cap out of range: refused, naming where.
    for (std::string const bad : {"a.pub,", ",b.pub", "a.pub,,b.pub"}) {
        auto r = resolve_serve_config(sources("", {{"KYOTAKU_TRUST", bad}}));
        ASSERT_FALSE(r.ok()) << bad;
        EXPECT_NE(joined(r.errors).find("KYOTAKU_TRUST: trust: "), std::string::npos) << joined(r.errors);
    }
    for (std::string const bad : {"0", "100001", "many"}) {
        auto r = resolve_serve_config(sources("", {}, {{"max_connections", bad}}));
        ASSERT_FALSE(r.ok()) << bad;
        EXPECT_NE(joined(r.errors).find("--max-connections: max_connections: "), std::string::npos) << joined(r.errors);
    }
    // No trust at all: unsigned rules are accepted (an empty list).
    auto none = resolve_serve_config(sources("", {}));
    EXPECT_TRUE(none.options.trust.empty());
}

TEST(Config, ListenIsTheExplicitWayBeyondLoopback) {
    auto c = resolve_serve_config(sources("", {{"KYOTAKU_LISTEN", "0.0.0.0:443"}}, {{"port", "8443"}}));
    ASSERT_TRUE(c.ok()) << joined(c.errors);
    EXPECT_EQ(c.options.host, "0.0.0.0");
    EXPECT_EQ(c.options.port, 8443);  // a port flag over the listen of the environment
    EXPECT_TRUE(c.options.any_address);
    auto h = resolve_serve_config(sources("", {{"KYOTAKU_LISTEN", "0.0.0.0:443"}}, {{"host", "10.0.0.1"}}));
    EXPECT_FALSE(h.options.any_address);  // --host is loopback-only, whatever came before
    auto both = resolve_serve_config(sources("", {}, {{"listen", "127.0.0.1:1"}, {"port", "2"}}));
    EXPECT_FALSE(both.ok());

    std::string error;
    auto v6 = parse_listen("[::1]:8443", error);
    ASSERT_TRUE(v6) << error;
    EXPECT_EQ(v6->host, "::1");
    EXPECT_EQ(v6->port, 8443);
    for (char const* bad : {"127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:1e3", "127.0.0.1:-1",
                            "localhost:80", "::1:80", "[::1]80", ":80", "127.0.0.1:0080000"})
        EXPECT_FALSE(parse_listen(bad, error)) << bad;
    EXPECT_TRUE(parse_listen("127.0.0.1:0", error));
}

// public_url is where facility URLs and QR codes point: https://HOST[:PORT] and nothing after it (a trailing "/" made
// every URL "https://host//c/…", a 404), never an address that stands for every address; without it, a listener on
// such an address is warned about (facility URLs would name it).
TEST(Config, PublicUrlIsAnOriginPhonesCanOpen) {
    auto url = [](std::string const& value) { return resolve_serve_config(sources("", {}, {{"public_url", value}})); };
    for (auto const& [given, kept] :
         std::vector<std::pair<std::string, std::string>>{{"https://kyotaku.example.jp", "https://kyotaku.example.jp"},
                                                          {"https://kyotaku.example.jp/", "https://kyotaku.example.jp"},
                                                          {"https://kyotaku.example.jp:8444",
                                                           "https://kyotaku.example.jp:8444"},
                                                          {"https://127.0.0.1:8444/", "https://127.0.0.1:8444"},
                                                          {"https://[2001:db8::1]:443", "https://[2001:db8::1]:443"},
                                                          {"", ""}}) {
        auto c = url(given);
        ASSERT_TRUE(c.ok()) << given << ": " << joined(c.errors);
        EXPECT_EQ(c.options.public_url, kept);
    }
    for (char const* bad :
         {"kyotaku.example.jp", "http://kyotaku.example.jp", "https://", "https:///c",
          "https://kyotaku.example.jp/kyotaku", "https://kyotaku.example.jp?x=1", "https://kyotaku.example.jp#top",
          "https://user@kyotaku.example.jp", "https://kyotaku.example.jp:", "https://kyotaku.example.jp:0",
          "https://kyotaku.example.jp:99999", "https://kyotaku.example.jp:44a", "https://0.0.0.0:8443",
          "https://[::]:443", "https://[::ffff:0.0.0.0]:443", "https://[::1", "https://a b",
          "https://kyotaku.example.jp//"}) {
        auto c = url(bad);
        EXPECT_FALSE(c.ok()) << bad;
        EXPECT_NE(joined(c.errors).find("public_url"), std::string::npos) << bad << ": " << joined(c.errors);
    }

    auto listen = [](std::string const& main, std::string const& patients) {
        std::map<std::string, std::string> flags{{"listen", main}};
        if (!patients.empty()) flags["patient_listen"] = patients;
        return resolve_serve_config(sources("", {}, flags)).options;
    };
    for (auto const& [main, patients] :
         std::vector<std::pair<std::string, std::string>>{{"0.0.0.0:8443", ""},
                                                          {"[::]:8443", ""},
                                                          {"[::ffff:0.0.0.0]:8443", ""},
                                                          {"127.0.0.1:8443", "0.0.0.0:443"},
                                                          {"127.0.0.1:8443", "[::]:443"}}) {
        auto const o = listen(main, patients);
        std::string const warning = facility_urls_unreachable(o);
        EXPECT_NE(warning.find("public_url is not set"), std::string::npos) << main << " " << patients;
        EXPECT_NE(warning.find(patients.empty() ? "and listen is on" : "and patient_listen is on"), std::string::npos)
            << warning;
    }
    EXPECT_EQ(facility_urls_unreachable(listen("0.0.0.0:8443", "127.0.0.1:443")), "");  // patients' is a real address
    EXPECT_EQ(facility_urls_unreachable(listen("127.0.0.1:8443", "")), "");
    auto with_url = resolve_serve_config(
        sources("", {}, {{"listen", "0.0.0.0:8443"}, {"public_url", "https://kyotaku.example.jp"}}));
    EXPECT_EQ(facility_urls_unreachable(with_url.options), "");
}

// patient_listen (the patients' listener, no CertificateRequest) is a setting like the others: file, variable, flag;
// empty is none; a bad address is refused naming where; a server beyond loopback without it is warned about.
TEST(Config, PatientListenIsASettingLikeTheOthers) {
    TempDir t;
    std::string file = t.write("k.toml", "[serve]\nlisten = \"0.0.0.0:8443\"\npatient_listen = \"0.0.0.0:443\"\n");
    auto c = resolve_serve_config(sources(file, {}));
    ASSERT_TRUE(c.ok()) << joined(c.errors);
    EXPECT_TRUE(c.options.patient_listener);
    EXPECT_EQ(c.options.patient_host, "0.0.0.0");
    EXPECT_EQ(c.options.patient_port, 443);
    EXPECT_EQ(c.origin["patient_listen"], file + ":3:18");
    EXPECT_EQ(patients_on_certificate_listener(c.options), "");
    auto env = resolve_serve_config(sources(file, {{"KYOTAKU_PATIENT_LISTEN", "[::1]:0"}}));
    ASSERT_TRUE(env.ok()) << joined(env.errors);
    EXPECT_EQ(env.options.patient_host, "::1");
    EXPECT_EQ(env.options.patient_port, 0);
    EXPECT_EQ(env.origin["patient_listen"], "KYOTAKU_PATIENT_LISTEN");
    // The flag, empty: none, over the file's.
    auto off = resolve_serve_config(sources(file, {}, {{"patient_listen", ""}}));
    ASSERT_TRUE(off.ok()) << joined(off.errors);
    EXPECT_FALSE(off.options.patient_listener);
    EXPECT_EQ(off.origin["patient_listen"], "--patient-listen");
    // Beyond loopback without it: the warning names the listener and the setting.
    std::string const warning = patients_on_certificate_listener(off.options);
    EXPECT_NE(warning.find("patient_listen is not set"), std::string::npos) << warning;
    EXPECT_NE(warning.find("0.0.0.0:8443"), std::string::npos) << warning;
    // On loopback (the demo, the tests) nothing to warn about.
    EXPECT_EQ(patients_on_certificate_listener(resolve_serve_config(sources("", {})).options), "");
    for (std::string const bad : {"localhost:443", "127.0.0.1", "127.0.0.1:70000"}) {
        auto r = resolve_serve_config(sources("", {{"KYOTAKU_PATIENT_LISTEN", bad}}));
        ASSERT_FALSE(r.ok()) << bad;
        EXPECT_NE(joined(r.errors).find("KYOTAKU_PATIENT_LISTEN: patient_listen: "), std::string::npos)
            << joined(r.errors);
    }
    // The same address and port as listen cannot both bind: refused before start (an unspecified address covers all).
    for (auto const& [listen, patients] : {std::pair("127.0.0.1:9443", "127.0.0.1:9443"),
                                           std::pair("0.0.0.0:9443", "127.0.0.1:9443")}) {
        auto same = resolve_serve_config(sources("", {}, {{"listen", listen}, {"patient_listen", patients}}));
        ASSERT_TRUE(same.ok()) << joined(same.errors);
        std::string const errors = joined(preflight(same.options).errors);
        EXPECT_NE(errors.find("patient_listen " + std::string(patients).substr(0, std::string(patients).find(':'))),
                  std::string::npos)
            << errors;
    }
    auto apart =
        resolve_serve_config(sources("", {}, {{"listen", "127.0.0.1:9443"}, {"patient_listen", "127.0.0.2:9443"}}));
    EXPECT_EQ(joined(preflight(apart.options).errors).find("patient_listen"), std::string::npos);
}

TEST(Config, PasswordsNeverPrinted) {
    EXPECT_EQ(redact_db("postgresql://kyotaku:s3cret@db:5432/k"), "postgresql://kyotaku:***@db:5432/k");
    EXPECT_EQ(redact_db("postgresql://kyotaku@db/k"), "postgresql://kyotaku@db/k");
    EXPECT_EQ(redact_db("/var/lib/kyotaku/kyotaku.sqlite"), "/var/lib/kyotaku/kyotaku.sqlite");
    // Issue 22 item 8: every way libpq takes a password.
    EXPECT_EQ(redact_db("postgresql://kyotaku@db/k?password=s3cret"), "postgresql://kyotaku@db/k?password=***");
    EXPECT_EQ(redact_db("postgresql://db/k?sslmode=require&password=s3cret&connect_timeout=5"),
              "postgresql://db/k?sslmode=require&password=***&connect_timeout=5");
    EXPECT_EQ(redact_db("postgresql://db/k?sslpassword=s3cret"), "postgresql://db/k?sslpassword=***");
    EXPECT_EQ(redact_db("postgresql://kyotaku:s3@cret@db/k"), "postgresql://kyotaku:***@db/k");  // an unencoded '@'
    EXPECT_EQ(redact_db("postgresql://kyotaku:a@db/k?password=b"), "postgresql://kyotaku:***@db/k?password=***");
    EXPECT_EQ(redact_db("host=db password=s3cret dbname=k"), "host=db password=*** dbname=k");
    EXPECT_EQ(redact_db("postgresql://db/k?application_name=x_password=y"),
              "postgresql://db/k?application_name=x_password=y");
    // In a message: the location redacted, and the secret wherever else it appears (raw or percent-decoded).
    std::string const url = "postgresql://kyotaku:p%40ss1@db/k";
    EXPECT_EQ(redact_secrets("cannot connect to " + url + ": bad password p@ss1 or p%40ss1", url),
              "cannot connect to postgresql://kyotaku:***@db/k: bad password *** or ***");
    EXPECT_EQ(redact_secrets("nothing secret here", "/var/lib/kyotaku/kyotaku.sqlite"), "nothing secret here");
}

// Several servers start at once on an empty database: one applies the migrations, one migration to a
// transaction, while another's preflight looks at the schema. That one found url_keys made but its key_sealed column
// not yet added and refused to start with an SQL error (failover.sessions_terminated, 1 run in 30 under load).
TEST(Preflight, AKeyFileChecksADatabaseHalfWayThroughItsMigrations) {
    TempDir t;
    std::string const db = (t.path / "half.sqlite").string();
    open_database(db)->script("CREATE TABLE url_keys (version INTEGER PRIMARY KEY)");
    bool created = false;
    std::string const key = (t.path / "k.key").string();
    Secrets::from_key_file(key, created);
    ServeOptions o;
    o.db = db;
    o.key_file = key;
    for (auto const& e : preflight(o).errors) EXPECT_NE(e.rfind("key_file:", 0), 0u) << e;
}

// A request's log line is written directly (log_request), not through a JSON document: it must be the line log_line
// writes for the same fields — escapes, invalid UTF-8 replaced, null for no facility or route, nlohmann's numbers —
// but for its time. Both go to a pipe in place of stdout.
TEST(Logs, ARequestsLineIsTheLineLogLineWritesForItsFields) {
    auto as_log_line = [](RequestRecord const& r) {
        log_line({{"event", "request"},
                  {"request_id", r.request_id},
                  {"facility", r.facility.empty() ? LogFields() : LogFields(r.facility)},
                  {"role", r.role},
                  {"method", r.method},
                  {"route", r.route.empty() ? LogFields() : LogFields(r.route)},
                  {"status", r.status},
                  {"duration_ms", std::round(r.seconds * 1e6) / 1e3},
                  {"bytes_in", r.bytes_in},
                  {"bytes_out", r.bytes_out},
                  {"listener", r.listener}});
    };
    std::vector<RequestRecord> records(5);
    records[0] = {"0123456789abcdef", "0110113719", "facility", "POST", "/api/v1/reinquiry", 200, 0.0012345, 120, 2048,
                  "main"};
    records[1] = {"", "", "anonymous", "other", "", 400, 0, 0, 0, "patients"};
    records[2] = {"id", "\"q\\\b\f\n\r\t\x01\x1f\x7f end", "役割 ロール", "GET", "/c/{token}", 503, 12345.6789,
                  std::uint64_t(-1), 7, "main"};
    records[3] = {"id", std::string("bad \xff\xfe utf-8 \xe3\x81"), "r", "GET", "/x", -1, 1e15, 1, 2, "\xc0\xaf"};
    records[4] = {"id", "f", "r", "GET", "/x", 200, 3.0, 1, 2, "main"};
    int pipe_fds[2];
    ASSERT_EQ(::pipe(pipe_fds), 0);
    int const saved = ::dup(STDOUT_FILENO);
    ASSERT_GE(saved, 0);
    ASSERT_GE(::dup2(pipe_fds[1], STDOUT_FILENO), 0);
    for (auto const& r : records) {
        log_request(r);
        as_log_line(r);
    }
    ::dup2(saved, STDOUT_FILENO);
    ::close(saved);
    ::close(pipe_fds[1]);
    std::string out;
    char buffer[4096];
    for (ssize_t n; (n = ::read(pipe_fds[0], buffer, sizeof buffer)) > 0;) out.append(buffer, std::size_t(n));
    ::close(pipe_fds[0]);
    std::vector<std::string> lines;
    for (std::size_t at = 0, end; (end = out.find('\n', at)) != std::string::npos; at = end + 1)
        lines.push_back(out.substr(at, end - at));
    ASSERT_EQ(lines.size(), 2 * records.size()) << out;
    // {"time":"2026-12-07T12:00:00.000000Z", … : the same length, one time apart
    std::size_t const time_end = std::string(R"({"time":"2026-12-07T12:00:00.000000Z")").size();
    for (std::size_t i = 0; i < records.size(); ++i) {
        std::string const& direct = lines[2 * i];
        std::string const& through_json = lines[2 * i + 1];
        ASSERT_GT(direct.size(), time_end) << direct;
        EXPECT_EQ(direct.substr(time_end), through_json.substr(time_end)) << i;
        EXPECT_EQ(direct.substr(0, 9), through_json.substr(0, 9));
        EXPECT_TRUE(LogFields::accept(direct)) << direct;
    }
    EXPECT_NE(lines[0].find(R"("facility":"0110113719")"), std::string::npos) << lines[0];
    EXPECT_NE(lines[2].find(R"("facility":null)"), std::string::npos) << lines[2];
    EXPECT_NE(lines[4].find(R"(\u0001\u001f)"), std::string::npos) << lines[4];
}

TEST(Metrics, AUnixTimeKeepsEveryDigit) {
    // kyotaku_start_time_seconds was printed with 9 significant digits: up to 10 s off.
    std::string out;
    metric_sample(out, "kyotaku_start_time_seconds", {}, 1765012345.678);
    EXPECT_EQ(out, "kyotaku_start_time_seconds 1765012345.678\n");
    for (double v : {0.1, 0.30000000000000004, 1e-9, 123456789012345678.0, 3.0}) {
        std::string line;
        metric_sample(line, "m", {}, v);
        EXPECT_EQ(std::stod(line.substr(2)), v) << line;
    }
}

TEST(Schema, ANewerDatabaseIsRefused) {
    auto db = open_sqlite(":memory:");
    migrate(*db);
    SchemaState s = schema_state(*db);
    EXPECT_TRUE(s.pending.empty());
    EXPECT_TRUE(s.unknown.empty());
    // Every migration but PostgreSQL's own (113_person_lines.postgresql.sql), which SQLite neither applies nor awaits.
    EXPECT_EQ(s.applied.size(), migrations().size() - 1);
    for (auto const& m : migrations())
        EXPECT_NE(std::find(s.applied.begin(), s.applied.end(), m.name) != s.applied.end(),
                  std::string_view(m.name).ends_with(".postgresql.sql"))
            << m.name;
    db->query("INSERT INTO schema_migrations (name, applied_at) VALUES ('999_from_a_newer_kyotaku.sql', 'x')");
    EXPECT_EQ(schema_state(*db).unknown, std::vector<std::string>{"999_from_a_newer_kyotaku.sql"});
    try {
        migrate(*db);
        FAIL() << "a newer schema was accepted";
    } catch (DatabaseError const& e) {
        EXPECT_NE(std::string(e.what()).find("999_from_a_newer_kyotaku.sql"), std::string::npos) << e.what();
    }
}

namespace {
class RuntimeFixture : public ::testing::Test {
protected:
    void SetUp() override {
        fs::copy(KYOTAKU_SOURCE_DIR "/rules", rules, fs::copy_options::recursive);
        db = open_sqlite(":memory:");
        migrate(*db);
        auto loaded = load_rules(rules.string());
        ASSERT_TRUE(loaded.program) << loaded.describe();
        service = std::make_unique<Service>(*db, loaded.program, clock);
        rt = std::make_unique<Runtime>(*db, *service, rules.string());
    }
    TempDir dir;
    fs::path rules = dir.path / "rules";
    std::unique_ptr<Database> db;
    TestClock clock{*Date::from_ymd(2024, 7, 31)};
    std::unique_ptr<Service> service;
    std::unique_ptr<Runtime> rt;
    void append(std::string const& file, std::string const& text) {
        std::ofstream(rules / file, std::ios::app) << text;
    }
};
}  // namespace

TEST_F(RuntimeFixture, AReloadServesNewRequestsWhileRequestsInFlightKeepTheirRules) {
    auto in_flight = service->context.rules();  // what a request that started before the reload works on
    std::string const old_bundle = *service->consent.rules_bundle();
    std::string const old_hash = rt->rules().hash;
    append("10_service.rules", "\n# 改定\n");
    ASSERT_TRUE(rt->reload_rules());
    EXPECT_NE(rt->rules().hash, old_hash);
    EXPECT_NE(service->context.rules(), in_flight);
    EXPECT_EQ(save_bundle(*in_flight->program), old_bundle);       // it finishes on the old program
    EXPECT_NE(*service->consent.rules_bundle(), old_bundle);        // later requests get the new one
    EXPECT_NE(rt->metrics_text().find("kyotaku_rules_info{compiler=\"" + std::string(compiler_version) + "\",files=\""),
              std::string::npos);
    EXPECT_NE(rt->metrics_text().find("hash=\"" + rt->rules().hash + "\""), std::string::npos);
}

TEST_F(RuntimeFixture, ARuleSetThatFailsToCompileIsRefusedAndTheOldOneKept) {
    auto before = service->context.rules();
    std::string const hash = rt->rules().hash;
    append("10_service.rules", "\nこれは ルール では ない\n");
    EXPECT_FALSE(rt->reload_rules());
    EXPECT_EQ(service->context.rules(), before);
    EXPECT_EQ(rt->rules().hash, hash);
    EXPECT_NE(rt->metrics_text().find("kyotaku_rules_reloads_total{result=\"failed\"} 1"), std::string::npos);
    EXPECT_EQ(rt->readiness()["status"], "ready");  // the old rules still serve
}

TEST_F(RuntimeFixture, ARuleSetWithoutWhatTheServerNeedsIsRefused) {
    auto before = service->context.rules();
    fs::remove(rules / "40_viewing.rules");  // medical_info_viewable, which the server asks
    fs::remove(rules / "tests/viewing_test.rules");
    fs::remove(rules / "60_invariants.rules");  // the invariants name medical_info_viewable too
    ASSERT_TRUE(load_rules(rules.string()).program);  // it compiles …
    EXPECT_FALSE(rt->reload_rules());                 // … but does not fulfil the rule contract
    EXPECT_EQ(service->context.rules(), before);
    EXPECT_NE(rt->metrics_text().find("kyotaku_rules_reloads_total{result=\"failed\"} 1"), std::string::npos);
}

TEST_F(RuntimeFixture, ALetTheServerReadsMustBeAnExportLet) {
    // kyotaku diff compares decisions and export lets: a let the server reads by name must be one of them.
    auto before = service->context.rules();
    auto path = rules / "30_reinquiry.rules";
    std::ifstream in(path);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto at = text.find("export let 継続的な関係");
    ASSERT_NE(at, std::string::npos);
    text.replace(at, std::string("export let").size(), "let");
    std::ofstream(path, std::ios::trunc) << text;
    ASSERT_TRUE(load_rules(rules.string()).program);
    auto refused = RuleContract::bind(load_rules(rules.string()).program);
    ASSERT_TRUE(std::holds_alternative<Message>(refused));
    EXPECT_NE(std::get<Message>(refused).en.find(
                  "継続的な関係 is read by name by the server and the consent page: declare it `export let`"),
              std::string::npos);
    EXPECT_FALSE(rt->reload_rules());
    EXPECT_EQ(service->context.rules(), before);
}

// Rule releases move forward only (issue 23): what the database's floor says of a release.
TEST(Releases, TheFloorRefusesAnOlderReleaseAndOtherRulesUnderAServedNumberNamingBoth) {
    ReleaseFloor floor{5, source_hash_hex(0xabc), "0011223344556677", "2026-12-06T00:00:00Z"};
    auto judge = [&](std::uint64_t release, std::uint64_t hash, std::uint64_t rollback_to = 0) {
        return judge_release(floor, ReleaseInfo{release, "0011223344556677", ""}, hash, rollback_to);
    };
    EXPECT_TRUE(judge(6, 0xdef).accepted);
    EXPECT_TRUE(judge(6, 0xdef).raises_floor);
    EXPECT_TRUE(judge(5, 0xabc).accepted);  // the same release again (a restart, another server)
    EXPECT_FALSE(judge(5, 0xabc).raises_floor);
    auto other = judge(5, 0xdef);
    EXPECT_FALSE(other.accepted);
    EXPECT_NE(other.refusal.en.find("release 5 was served from other rules"), std::string::npos);
    auto older = judge(4, 0x123);
    EXPECT_FALSE(older.accepted);
    EXPECT_NE(older.refusal.en.find("release 4 is older than release 5"), std::string::npos);
    EXPECT_NE(older.refusal.ja.find("リリース 4 は、このデータベースで使った最も新しいリリース 5 より古い"),
              std::string::npos);
    EXPECT_FALSE(judge(0, 0x123).accepted);  // rule sources after a release: older too
    auto back = judge(4, 0x123, 4);
    EXPECT_TRUE(back.accepted);
    EXPECT_TRUE(back.rollback);
    EXPECT_FALSE(judge(3, 0x123, 4).accepted);  // rollback_to names one release only
    auto unused = judge(6, 0xdef, 4);
    EXPECT_TRUE(unused.accepted);
    EXPECT_NE(unused.note.en.find("rollback_to = 4 is not in use now"), std::string::npos);
    // No release served yet: anything goes, and sources (release 0) are never refused on an empty floor.
    floor = {};
    EXPECT_TRUE(judge(0, 0x1).accepted);
    EXPECT_TRUE(judge(1, 0x1).raises_floor);
}

TEST(Releases, TheFloorIsRecordedInTheDatabaseWithItsHistory) {
    auto db = open_sqlite(":memory:");
    migrate(*db);
    EXPECT_EQ(read_release_floor(*db).release, 0u);
    EXPECT_TRUE(admit_release(*db, ReleaseInfo{2, "k", ""}, 0x2, 0, "test").raises_floor);
    EXPECT_EQ(read_release_floor(*db).release, 2u);
    EXPECT_FALSE(admit_release(*db, ReleaseInfo{1, "k", ""}, 0x1, 0, "test").accepted);
    EXPECT_EQ(read_release_floor(*db).release, 2u);  // a refusal records nothing
    EXPECT_TRUE(admit_release(*db, ReleaseInfo{1, "k", ""}, 0x1, 1, "test").rollback);
    EXPECT_EQ(read_release_floor(*db).release, 1u);
    auto history = db->query("SELECT event, release_number, from_release FROM rule_release_history ORDER BY rowid");
    ASSERT_EQ(history.size(), 2u);
    EXPECT_EQ(as_text(history[1][0]), "rollback");
    EXPECT_EQ(as_int(history[1][2]), 2);
}

TEST_F(RuntimeFixture, ReloadsUnderLoadNeverBreakARequest) {
    std::atomic<bool> stop{false};
    std::atomic<int> answered{0}, failed{0};
    Caller nobody;
    std::vector<std::thread> clients;
    for (int i = 0; i < 3; ++i)
        clients.emplace_back([&] {
            while (!stop) {
                HttpResult r = Router(*service).handle(nobody, "GET", "/web/rules.bundle", "", "");
                (r.status == 200 && !r.body.empty() ? answered : failed)++;
            }
        });
    for (int i = 0; i < 10; ++i) {
        append("10_service.rules", "\n# " + std::to_string(i) + "\n");
        EXPECT_TRUE(rt->reload_rules());
    }
    stop = true;
    for (auto& t : clients) t.join();
    EXPECT_EQ(failed, 0);
    EXPECT_GT(answered, 0);
}

TEST_F(RuntimeFixture, ReadinessFailsOnASchemaNewerThanTheBinary) {
    EXPECT_EQ(rt->readiness()["status"], "ready");
    EXPECT_EQ(as_int(db->query("SELECT COUNT(*) FROM server_probes")[0][0]), 1);  // the probe wrote
    db->query("INSERT INTO schema_migrations (name, applied_at) VALUES ('999_newer.sql', 'x')");
    EXPECT_EQ(rt->readiness()["status"], "ready");  // the answer is kept for a while …
    rt->readiness_kept = std::chrono::milliseconds(0);
    auto ready = rt->readiness();                    // … then checked again
    EXPECT_EQ(ready["status"], "not ready");
    EXPECT_EQ(ready["checks"]["database"], "ok");
    EXPECT_NE(ready["checks"]["schema"], "ok");
}

TEST_F(RuntimeFixture, ReadinessSaysEachCheckInJapaneseAndEnglishApart) {
    auto ready = rt->readiness();
    for (char const* check : {"database", "schema", "rules"}) {
        EXPECT_EQ(ready["checks"][check], "ok") << check;
        EXPECT_EQ(ready["checks_ja"][check], "ok") << check;
        EXPECT_EQ(ready["checks_en"][check], "ok") << check;
    }
    db->query("INSERT INTO schema_migrations (name, applied_at) VALUES ('999_newer.sql', 'x')");
    rt->readiness_kept = std::chrono::milliseconds(0);
    ready = rt->readiness();
    EXPECT_EQ(ready["checks_ja"]["schema"], "この kyotaku より新しいスキーマです");
    EXPECT_EQ(ready["checks_en"]["schema"], "the schema is newer than this kyotaku");
    EXPECT_EQ(ready["checks"]["schema"], "この kyotaku より新しいスキーマです / the schema is newer than this kyotaku")
        << "checks keeps the one line it always had";
    rt->draining = true;
    ready = rt->readiness();
    EXPECT_EQ(ready["status"], "not ready");
    EXPECT_EQ(ready["checks_ja"]["draining"], "停止中です");
    EXPECT_EQ(ready["checks_en"]["draining"], "stopping (SIGTERM)");
}

TEST_F(RuntimeFixture, MetricsAreValidPrometheusText) {
    RequestRecord r{"id", "0110113719", "facility", "POST", "/api/v1/reinquiry", 200, 0.003, 100, 200};
    rt->requests.record(r);
    r.seconds = 0.2;
    r.status = 400;
    rt->requests.record(r);
    std::string text = rt->metrics_text();
    EXPECT_NE(text.find("kyotaku_http_requests_total{listener=\"main\",method=\"POST\",route=\"/api/v1/reinquiry\","
                        "status=\"200\"} 1\n"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("kyotaku_http_request_duration_seconds_bucket{le=\"0.005\",method=\"POST\",route=\"/api/v1/"
                        "reinquiry\"} 1\n"),
              std::string::npos);
    EXPECT_NE(text.find("kyotaku_http_request_duration_seconds_bucket{le=\"0.25\",method=\"POST\",route=\"/api/v1/"
                        "reinquiry\"} 2\n"),
              std::string::npos);
    EXPECT_NE(text.find("kyotaku_http_request_duration_seconds_count{method=\"POST\",route=\"/api/v1/reinquiry\"} 2\n"),
              std::string::npos);
    EXPECT_NE(text.find("kyotaku_batch_rows{state=\"pending\"} 0\n"), std::string::npos);
    // 外字 written as 〓 (issue 24 item 2)
    EXPECT_NE(text.find("kyotaku_oqs_unmappable_characters_total 0\n"), std::string::npos);
    EXPECT_NE(text.find("kyotaku_db_pool_connections{state=\"idle\"} 1\n"), std::string::npos);
    EXPECT_NE(text.find("kyotaku_consent_registrations 0\n"), std::string::npos);
    // Every line is a comment or `name{labels} value`.
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
        if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) continue;
        EXPECT_EQ(line.rfind("kyotaku_", 0), 0u) << line;
        EXPECT_NE(line.find(' '), std::string::npos) << line;
    }
}

TEST(Routes, ThePatternNotThePathIsWhatLogsSee) {
    auto db = open_sqlite(":memory:");
    migrate(*db);
    auto c = compile_directory(KYOTAKU_SOURCE_DIR "/rules");
    TestClock clock{*Date::from_ymd(2024, 7, 31)};
    Service service(*db, c.program, clock);
    Caller nobody;
    Router const router(service);
    EXPECT_EQ(router.handle(nobody, "GET", "/api/v1/devices/abc/checks", "", "").route,
              "/api/v1/devices/{device_id}/checks");
    EXPECT_EQ(router.handle(nobody, "GET", "/c/SECRET-TOKEN", "", "").route, "/c/{token}");
    EXPECT_EQ(router.handle(nobody, "GET", "/api/v1/consent/page?token=SECRET", "", "").route, "/api/v1/consent/page");
    EXPECT_EQ(router.handle(nobody, "DELETE", "/api/v1/settings", "", "").route, "/api/v1/settings");
    EXPECT_EQ(router.handle(nobody, "GET", "/no/such/thing", "", "").route, "");
    EXPECT_EQ(router.handle(nobody, "GET", "/metrics", "", "").status, 403);  // not for anyone
    EXPECT_EQ(router.handle(nobody, "GET", "/readyz", "", "").status, 503);   // no runtime: not serving
}

// The patients' listener serves only what anyone may call: a route that needs a certificate is refused there whoever
// calls (even the operator), as it is to a caller without one; the consent page's routes are served.
TEST(Routes, ThePatientsListenerServesOnlyWhatAnyoneMayCall) {
    auto db = open_sqlite(":memory:");
    migrate(*db);
    auto c = compile_directory(KYOTAKU_SOURCE_DIR "/rules");
    TestClock clock{*Date::from_ymd(2024, 7, 31)};
    Service service(*db, c.program, clock);
    Router const router(service);
    Caller admin;
    admin.kind = Caller::Kind::admin;
    admin.subject = "kyotaku-admin";
    auto on = [&](bool patients, Caller const& who, std::string const& method, std::string const& target,
                  std::string const& body = "") {
        HttpRequest r{method, target, body.empty() ? "" : "application/json", body, {}, {}, -1, patients};
        return router.handle(who, r);
    };
    std::string const facility = R"({"code":"0110113719","name":"A","kind":"医科"})";
    EXPECT_EQ(on(true, admin, "POST", "/api/v1/admin/facilities", facility).status, 403);
    EXPECT_EQ(on(true, admin, "GET", "/metrics").status, 403);
    EXPECT_EQ(on(true, admin, "GET", "/admin/workbench/").status, 403);
    EXPECT_EQ(on(true, admin, "GET", "/api/v1/admin/consents?facility_code=0110113719").status, 403);
    // The main listener, the same caller: served (the refusal above is the listener's, not the caller's).
    EXPECT_EQ(on(false, admin, "POST", "/api/v1/admin/facilities", facility).status, 201);
    // What the patients' browser needs is served there.
    EXPECT_EQ(on(true, Caller{}, "GET", "/healthz").status, 200);
    EXPECT_EQ(on(true, Caller{}, "GET", "/api/v1/consent/page?token=nothing").status, 404);  // an unusable token
    EXPECT_EQ(on(true, Caller{}, "GET", "/api/v1/consent/page?token=nothing").route, "/api/v1/consent/page");
    EXPECT_EQ(on(true, Caller{}, "GET", "/c/nothing").route, "/c/{token}");
    // Its route table: the routes anyone may call, the consent page's among them, and nothing else.
    std::vector<std::string> paths;
    for (auto const& r : patient_route_table()) {
        EXPECT_EQ(r.access, Access::anyone) << r.path;
        EXPECT_FALSE(r.discloses) << r.path;
        paths.push_back(r.method + " " + r.path);
    }
    for (char const* needed : {"GET /c/{token}", "GET /web/{file}", "GET /api/v1/consent/page",
                               "POST /api/v1/consent/challenge", "POST /api/v1/consent/register",
                               "POST /api/v1/consent/handoff", "POST /api/v1/consent/handoff/claim"})
        EXPECT_NE(std::find(paths.begin(), paths.end(), needed), paths.end()) << needed;
}

TEST(Idempotency, TheSameKeyGetsTheFirstAnswerAndNothingIsDoneTwice) {
    auto db = open_sqlite(":memory:");
    migrate(*db);
    db->query("INSERT INTO facilities (code, name, kind, created_at) VALUES ('0110113719', 'A', '医科', 'x')");
    Caller a;
    a.kind = Caller::Kind::facility;
    a.facility_code = "0110113719";
    int runs = 0;
    auto run = [&] {
        ++runs;
        db->query("INSERT INTO url_keys (version, key_hex, created_at) VALUES ($1, 'k', 'x')", {std::int64_t(runs)});
        // Shift_JIS bytes too
        HttpResult r{200, "application/xml", std::string("<?xml?>\x82\xa0") + std::to_string(runs)};
        r.route = "/api/v1/oqs/OQSmuquc01req";
        return r;
    };
    std::string const key = "0123456789abcdef0123";
    IdempotentAnswers store(*db);
    SystemClock clock;
    HttpResult first = answer_once(store, clock, a, "/api/v1/oqs/OQSmuquc01req", key, "<XmlMsg/>", run);
    HttpResult again = answer_once(store, clock, a, "/api/v1/oqs/OQSmuquc01req", key, "<XmlMsg/>", run);
    EXPECT_EQ(runs, 1);
    EXPECT_EQ(again.body, first.body);
    EXPECT_EQ(again.status, 200);
    EXPECT_EQ(again.route, "/api/v1/oqs/OQSmuquc01req");
    ASSERT_EQ(again.headers.size(), 1u);
    EXPECT_EQ(again.headers[0].first, "Idempotent-Replayed");
    EXPECT_EQ(as_int(db->query("SELECT COUNT(*) FROM url_keys")[0][0]), 1);
    EXPECT_EQ(answer_once(store, clock, a, "/api/v1/oqs/OQSmuquc01req", key, "<XmlMsg>other</XmlMsg>", run).status,
              422);
    EXPECT_EQ(answer_once(store, clock, a, "/api/v1/oqs/OQSmuquc01req", "short", "<XmlMsg/>", run).status, 400);
    answer_once(store, clock, a, "/api/v1/oqs/OQSmuquc01req", "another-key-0123456789", "<XmlMsg/>", run);
    EXPECT_EQ(runs, 2);
    EXPECT_TRUE(idempotent_route("POST", "/api/v1/oqs/OQSmuquc01req"));
    EXPECT_FALSE(idempotent_route("POST", "/api/v1/oqs/OQSmuquc02req"));
    EXPECT_FALSE(idempotent_route("POST", "/api/v1/reinquiry"));
}

// Outsider 24, F0: a replayed key handed a patient's eligibility out again after the consent was withdrawn, days
// later, to another certificate of the facility — asking no rule and writing no history entry. A route whose answer
// discloses is never replayed (the session answers it anew: the rules of today, a history entry with its actor), and
// a stored answer is given only to the certificate that made it.
TEST(Idempotency, ADisclosingRouteIsNeverReplayedAndAnAnswerOnlyToItsOwnCertificate) {
    int disclosing = 0;
    for (auto const& r : route_table())
        if (r.discloses) {
            ++disclosing;
            EXPECT_FALSE(idempotent_route(r.method, r.path)) << r.method << " " << r.path;
        }
    EXPECT_GE(disclosing, 6);
    EXPECT_FALSE(idempotent_route("POST", "/api/v1/oqs/OQSsiquc01req"));
    for (char const* making : {"OQSmuquc01req", "OQSmuhvq01req", "OQSmuonq01req", "OQSsiimm01req", "OQSmuimm01req"})
        EXPECT_TRUE(idempotent_route("POST", std::string("/api/v1/oqs/") + making + "?x=1")) << making;
    EXPECT_FALSE(idempotent_route("GET", "/api/v1/oqs/OQSmuquc01req"));

    auto db = open_sqlite(":memory:");
    migrate(*db);
    db->query("INSERT INTO facilities (code, name, kind, created_at) VALUES ('0110113719', 'A', '医科', 'x')");
    Caller first;
    first.kind = Caller::Kind::facility;
    first.facility_code = "0110113719";
    first.subject = "0110113719 職員 資格確認端末 SHA256:1111111111111111";
    first.certificate = std::string(64, '1');
    Caller other = first;  // another terminal of the facility, the same subject but another certificate
    other.certificate = std::string(64, '2');
    Caller unlabelled = first;
    unlabelled.subject = "0110113719 SHA256:3333333333333333";
    unlabelled.certificate = std::string(64, '3');
    int runs = 0;
    auto run = [&] { return HttpResult{200, "application/xml", "<answer " + std::to_string(++runs) + "/>"}; };
    IdempotentAnswers store(*db);
    SystemClock clock;
    std::string const key = "outsider24-replay-0001";
    std::string const route = "/api/v1/oqs/OQSmuhvq01req";
    HttpResult const answer = answer_once(store, clock, first, route, key, "<XmlMsg/>", run);
    // its own certificate: replayed
    EXPECT_EQ(answer_once(store, clock, first, route, key, "<XmlMsg/>", run).body, answer.body);
    for (Caller const& c : {other, unlabelled}) {
        HttpResult r = answer_once(store, clock, c, route, key, "<XmlMsg/>", run);
        EXPECT_EQ(r.status, 422) << c.subject;
        EXPECT_EQ(r.body.find("<answer"), std::string::npos) << r.body;
    }
    EXPECT_EQ(runs, 1);
}

// The Idempotency-Key's refusals are errors like every other: the one shape, both languages apart, the field named.
TEST(Idempotency, RefusalsAreErrorsInTheOneShape) {
    auto db = open_sqlite(":memory:");
    migrate(*db);
    db->query("INSERT INTO facilities (code, name, kind, created_at) VALUES ('0110113719', 'A', '医科', 'x')");
    Caller a;
    a.kind = Caller::Kind::facility;
    a.facility_code = "0110113719";
    IdempotentAnswers store(*db);
    SystemClock clock;
    auto run = [] { return HttpResult{200, "application/xml", "<?xml?>"}; };
    std::string const key = "0123456789abcdef0123";
    answer_once(store, clock, a, "/api/v1/oqs/OQSmuquc01req", key, "<XmlMsg/>", run);
    for (auto const& [r, status] :
         {std::pair{answer_once(store, clock, a, "/api/v1/oqs/OQSmuquc01req", "short", "<XmlMsg/>", run), 400},
          std::pair{answer_once(store, clock, a, "/api/v1/oqs/OQSmuquc01req", key, "<XmlMsg>other</XmlMsg>", run),
                    422}}) {
        EXPECT_EQ(r.status, status);
        auto const body = nlohmann::json::parse(r.body);
        EXPECT_EQ(body["field"], "Idempotency-Key");
        EXPECT_FALSE(body["message_ja"].get<std::string>().empty()) << r.body;
        EXPECT_FALSE(body["message_en"].get<std::string>().empty()) << r.body;
        EXPECT_EQ(body["error"], body["message_ja"].get<std::string>() + " / " + body["message_en"].get<std::string>());
    }
}
