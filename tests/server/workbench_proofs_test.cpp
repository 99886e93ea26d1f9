// The rule workbench's proofs on the server (issue 23 item 8: POST /api/v1/admin/rules/prove,
// http/workbench_proofs.hpp) through the routing table, with the real `kyotaku prove` as the child process: proven,
// a counterexample for a false invariant (explained, 和暦 dates), rule errors with their file:line:column, hostile
// names and sizes refused, callers other than the operator refused, places (429/503), and the child killed and reaped
// — on its CPU limit, on an injected wall-clock deadline, when the client goes — its folder always removed. And the
// bounded child process itself (ops/bounded_child.hpp).
#include "http/limits.hpp"
#include "ops/bounded_child.hpp"
#include "ops/config.hpp"
#include "ops/preflight.hpp"
#include "server_fixture.hpp"

#include <sys/socket.h>
#include <sys/wait.h>

namespace {

using json = nlohmann::json;

// A private work directory for one test, empty at the start.
struct WorkDir {
    std::string path;
    WorkDir() {
        std::string name = std::filesystem::temp_directory_path().string() + "/kyotaku-proofs-XXXXXX";
        path = ::mkdtemp(name.data());
    }
    ~WorkDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    std::size_t entries() const {
        std::size_t n = 0;
        for (auto const& e : std::filesystem::directory_iterator(path)) (void)e, ++n;
        return n;
    }
};

// No child left unreaped by this process.
bool no_children() {
    siginfo_t info{};
    return ::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) == -1 && errno == ECHILD;
}

json files_body(std::vector<std::pair<std::string, std::string>> const& files) {
    json list = json::array();
    for (auto const& [path, text] : files) list.push_back({{"path", path}, {"text", text}});
    return json{{"files", list}};
}

// The official rules as the workbench sends them: every file, by its path relative to the rule folder.
json official_rules() {
    std::vector<std::pair<std::string, std::string>> files;
    std::string const root = KYOTAKU_SOURCE_DIR "/rules";
    for (auto const& e : std::filesystem::recursive_directory_iterator(root))
        if (e.is_regular_file() && e.path().extension() == ".rules") {
            std::ifstream in(e.path());
            std::stringstream text;
            text << in.rdbuf();
            files.push_back({e.path().lexically_relative(root).generic_string(), text.str()});
        }
    return files_body(files);
}

// A small rule set with a date: one true invariant, and (`with_false`) one that a date in 2025 breaks.
std::string small_rules(bool with_false) {
    std::string text =
        "asof q\nfact q : date\nfact k : bool\nlet late : bool = q >= 2025-01-01\ndecision d : bool = k and late\n"
        "horizon 2026-12-31\n"
        "invariant 真 \"d なら k\": d implies k\n";
    if (with_false) text += "invariant 偽 \"d なら 2026 年以降 (誤り)\": d implies q >= 2026-01-01\n";
    return text;
}

class WorkbenchProofsTest : public ServerFixture {
protected:
    WorkDir work;
    ProofSettings settings() const {
        ProofSettings s;
        s.executable = KYOTAKU_EXECUTABLE;
        s.work_dir = work.path;
        s.wall = std::chrono::seconds(600);  // a loaded machine: the CPU limit and the injected deadlines decide
        s.cpu_seconds = 600;
        return s;
    }
    Caller operator_(std::string fingerprint = "aa") const {
        Caller c = admin;
        c.certificate = std::move(fingerprint);
        return c;
    }
    HttpResult post(WorkbenchProofs const& proofs, Caller const& c, std::string const& body, int client_fd = -1) {
        HttpRequest request{"POST", "/api/v1/admin/rules/prove", "application/json", body, {}, {}, client_fd};
        return Router(*service, Site{nullptr, nullptr, nullptr, &proofs}).handle(c, request);
    }
    // The answer as the session computes it: the route's checks, then the proof on the slow-work thread (here).
    HttpResult prove(WorkbenchProofs const& proofs, Caller const& c, std::string const& body, int client_fd = -1) {
        HttpResult r = post(proofs, c, body, client_fd);
        if (r.slow) r = r.slow();
        return r;
    }
};

TEST_F(WorkbenchProofsTest, ATrueInvariantIsProvenAndAFalseOneGetsItsCounterexampleExplainedWithWarekiDates) {
    WorkbenchProofs proofs(settings());
    HttpResult r = prove(proofs, operator_(), files_body({{"a.rules", small_rules(false)}}).dump());
    ASSERT_EQ(r.status, 200) << r.body;
    json body = json::parse(r.body);
    EXPECT_EQ(body["outcome"], "proved") << r.body;
    ASSERT_EQ(body["invariants"].size(), 1u);
    EXPECT_EQ(body["invariants"][0]["name"], "真");
    EXPECT_EQ(body["invariants"][0]["status"], "proven");
    EXPECT_EQ(body["invariants"][0]["location"], "a.rules:7");
    EXPECT_EQ(work.entries(), 0u) << "the temporary rule folder is removed";

    r = prove(proofs, operator_(), files_body({{"sub/a.rules", small_rules(true)}}).dump());
    ASSERT_EQ(r.status, 200) << r.body;
    body = json::parse(r.body);
    EXPECT_EQ(body["outcome"], "counterexample");
    ASSERT_EQ(body["invariants"].size(), 2u);
    EXPECT_EQ(body["invariants"][0]["status"], "proven");
    json const refuted = body["invariants"][1];
    EXPECT_EQ(refuted["status"], "counterexample");
    EXPECT_EQ(refuted["label"], "d なら 2026 年以降 (誤り)");
    // The counterexample: k, and a day of 2025 (the evaluator agreed before the child answered).
    ASSERT_TRUE(refuted["facts"].is_object()) << refuted.dump();
    EXPECT_EQ(refuted["facts"]["k"], true);
    EXPECT_EQ(refuted["facts"]["q"].get<std::string>().substr(0, 4), "2025") << refuted.dump();
    // Explained as kyotaku explain does: the decision, and the date in 和暦 (令和7年 is 2025).
    std::string const explanation = refuted["explanation"];
    EXPECT_NE(explanation.find("令和7年"), std::string::npos) << explanation;
    EXPECT_NE(body["message"].get<std::string>().find("反例"), std::string::npos);
    EXPECT_EQ(work.entries(), 0u);
    EXPECT_TRUE(no_children());

    std::string metrics;
    proofs.render_metrics(metrics);
    EXPECT_NE(metrics.find("kyotaku_workbench_proofs_total{outcome=\"proved\"} 1"), std::string::npos) << metrics;
    EXPECT_NE(metrics.find("kyotaku_workbench_proofs_total{outcome=\"counterexample\"} 1"), std::string::npos)
        << metrics;
    EXPECT_NE(metrics.find("kyotaku_workbench_proofs_running 0"), std::string::npos) << metrics;
}

TEST_F(WorkbenchProofsTest, RuleErrorsAreAnsweredWithTheirFileLineAndColumn) {
    WorkbenchProofs proofs(settings());
    std::string const text = "fact k : bool\ndecision d : bool = k and kk\n";
    HttpResult r = prove(proofs, operator_(), files_body({{"tests/b.rules", text}}).dump());
    ASSERT_EQ(r.status, 422) << r.body;
    json const body = json::parse(r.body);
    EXPECT_EQ(body["outcome"], "rule_errors");
    ASSERT_FALSE(body["diagnostics"].empty());
    json const d = body["diagnostics"][0];
    EXPECT_EQ(d["file"], "tests/b.rules") << "named as the workbench names it, not by the server's temporary folder";
    EXPECT_EQ(d["line"], 2);
    EXPECT_EQ(d["column"], 27);
    EXPECT_EQ(d["severity"], "error");
    EXPECT_NE(d["ja"].get<std::string>().find("kk"), std::string::npos) << d.dump();
    EXPECT_EQ(r.body.find(work.path), std::string::npos) << "the server's folders are not told";
    EXPECT_EQ(work.entries(), 0u);
}

TEST_F(WorkbenchProofsTest, HostileNamesSizesAndFieldsAreRefusedBeforeAnythingIsWritten) {
    WorkbenchProofs proofs(settings());
    std::string const ok = small_rules(false);
    for (std::string const& name :
         std::vector<std::string>{"../a.rules", "/etc/a.rules", "a/../b.rules", "./a.rules", ".a.rules", "a/.b/c.rules",
                                  "a.txt", ".rules", "a/.rules", "a\\b.rules", "a b.rules", "a//b.rules",
                                  std::string("a\0b.rules", 9), "a/b/c/d/e.rules", std::string(300, 'a') + ".rules",
                                  "a;rm -rf ~.rules", "$(id).rules"}) {
        HttpResult const r = post(proofs, operator_(), files_body({{name, ok}}).dump());
        EXPECT_EQ(r.status, 400) << name << ": " << r.body;
        EXPECT_FALSE(r.slow) << name;
        EXPECT_NE(r.body.find("files[0].path"), std::string::npos) << r.body;
    }
    // Names other languages than English write (日本語) and folders are fine.
    EXPECT_TRUE(post(proofs, operator_(), files_body({{"方針/窓.rules", ok}}).dump()).slow);
    // The same name twice, or a file where another's folder is.
    EXPECT_EQ(post(proofs, operator_("b1"), files_body({{"a.rules", ok}, {"a.rules", ok}}).dump()).status, 400);
    EXPECT_EQ(post(proofs, operator_("b2"), files_body({{"a.rules", ok}, {"a.rules/b.rules", ok}}).dump()).status, 400);
    // Only the documented fields.
    EXPECT_EQ(post(proofs, operator_("b3"), R"({"files":[{"path":"a.rules","text":"x"}],"executable":"/bin/sh"})")
                  .status,
              400);
    EXPECT_EQ(post(proofs, operator_("b4"), R"({"files":[{"path":"a.rules","text":"x","mode":"0777"}]})").status, 400);
    EXPECT_EQ(post(proofs, operator_("b5"), R"({"files":[]})").status, 400);
    EXPECT_EQ(post(proofs, operator_("b6"), R"({"files":"a.rules"})").status, 400);
    EXPECT_EQ(post(proofs, operator_("b7"), R"({"files":[{"path":"a.rules","text":3}]})").status, 400);
    EXPECT_EQ(post(proofs, operator_("b8"), "[1,2]").status, 400);
    // Too many files, too many bytes together.
    std::vector<std::pair<std::string, std::string>> many;
    for (int i = 0; i < 65; ++i) many.push_back({"f" + std::to_string(i) + ".rules", "fact k : bool\n"});
    EXPECT_EQ(post(proofs, operator_("b9"), files_body(many).dump()).status, 413);
    EXPECT_EQ(post(proofs, operator_("b10"),
                   files_body({{"a.rules", std::string(600000, '#')}, {"b.rules", std::string(600000, '#')}}).dump())
                  .status,
              413);
    EXPECT_EQ(work.entries(), 0u) << "nothing written for a refused request";
    // The session reads no more than the route takes (plan_body: 413 before the body is read).
    ConnectionLimits limits;
    EXPECT_EQ(plan_body(operator_(), "POST", "/api/v1/admin/rules/prove", limits).limit,
              proof_body_limit(ProofSettings{}));
    EXPECT_LT(proof_body_limit(ProofSettings{}), limits.memory_body);
}

TEST_F(WorkbenchProofsTest, OnlyTheOperatorsCertificateMayAskAndPlacesAreBounded) {
    WorkbenchProofs proofs(settings());
    std::string const body = files_body({{"a.rules", small_rules(false)}}).dump();
    // A facility's 管理者, a 職員, a モバイル端末 session, nobody: refused (403), nothing run.
    Caller mobile;
    mobile.kind = Caller::Kind::mobile;
    mobile.facility_code = "0110113719";
    for (Caller const& c : {a, facility("0110113719", Caller::Role::staff), mobile, Caller{}}) {
        HttpResult const r = post(proofs, c, body);
        EXPECT_EQ(r.status, 403) << r.body;
        EXPECT_FALSE(r.slow);
    }
    // One proof per certificate (429), at_once in all (503), both with Retry-After; a place comes back with its answer.
    HttpResult first = post(proofs, operator_("one"), body);
    ASSERT_TRUE(first.slow) << first.body;
    HttpResult const again = post(proofs, operator_("one"), body);
    EXPECT_EQ(again.status, 429) << again.body;
    HttpResult const other = post(proofs, operator_("two"), body);
    EXPECT_EQ(other.status, 503) << other.body;
    auto const retry = [](HttpResult const& r) {
        return std::any_of(r.headers.begin(), r.headers.end(), [](auto const& h) { return h.first == "Retry-After"; });
    };
    EXPECT_TRUE(retry(again));
    EXPECT_TRUE(retry(other));
    EXPECT_EQ(json::parse(first.slow().body)["outcome"], "proved");
    first = HttpResult{};  // the answer sent: the place is free
    EXPECT_TRUE(post(proofs, operator_("two"), body).slow);
    // An answer never computed (the client went before its turn) frees its place and its folder too.
    EXPECT_EQ(work.entries(), 0u);
    // Turned off (prove_at_once = 0), or no proofs on this server: 503.
    ProofSettings off = settings();
    off.at_once = 0;
    WorkbenchProofs none(off);
    EXPECT_EQ(post(none, operator_(), body).status, 503);
    EXPECT_EQ(Router(*service, Site{})
                  .handle(operator_(), "POST", "/api/v1/admin/rules/prove", "application/json", body)
                  .status,
              503);
}

TEST_F(WorkbenchProofsTest, TheChildIsKilledAndReapedOnItsCpuLimitOnTheDeadlineAndWhenTheClientGoes) {
    std::string const official = official_rules().dump();
    // The official rules take Z3 seconds of CPU time: one second's limit kills the child (SIGXCPU), however loaded
    // the machine is.
    ProofSettings cpu = settings();
    cpu.cpu_seconds = 1;
    WorkbenchProofs short_of_cpu(cpu);
    HttpResult r = prove(short_of_cpu, operator_(), official);
    EXPECT_EQ(r.status, 504) << r.body;
    EXPECT_EQ(json::parse(r.body)["outcome"], "timeout");
    EXPECT_NE(json::parse(r.body)["message"].get<std::string>().find("kyotaku prove"), std::string::npos) << r.body;
    EXPECT_TRUE(no_children());
    EXPECT_EQ(work.entries(), 0u);
    // An injected wall-clock deadline (0 s: already passed when the child starts).
    ProofSettings wall = settings();
    wall.wall = std::chrono::seconds(0);
    WorkbenchProofs no_time(wall);
    r = prove(no_time, operator_(), official);
    EXPECT_EQ(r.status, 504) << r.body;
    EXPECT_TRUE(no_children());
    EXPECT_EQ(work.entries(), 0u);
    // The client closes its connection: the child is killed at once.
    int pair[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
    WorkbenchProofs proofs(settings());
    HttpResult pending = post(proofs, operator_(), official, pair[0]);
    ASSERT_TRUE(pending.slow);
    ::close(pair[1]);
    r = pending.slow();
    EXPECT_EQ(json::parse(r.body)["outcome"], "client_gone") << r.body;
    pending = HttpResult{};  // answered (to nobody): its place is free
    ::close(pair[0]);
    EXPECT_TRUE(no_children());
    // The server stopping: killed too.
    HttpResult stopping = post(proofs, operator_("x"), official);
    ASSERT_TRUE(stopping.slow);
    proofs.stop();
    EXPECT_EQ(stopping.slow().status, 503);
    EXPECT_EQ(post(proofs, operator_("y"), official).status, 503) << "no new proof once stopping";
    stopping = HttpResult{};
    EXPECT_EQ(work.entries(), 0u);
    std::string metrics;
    short_of_cpu.render_metrics(metrics);
    EXPECT_NE(metrics.find("kyotaku_workbench_proofs_total{outcome=\"timeout\"} 1"), std::string::npos) << metrics;
}

TEST(WorkbenchProofsConfig, AProveExecutableThatCannotRunIsRefusedAtStart) {
    auto const prove_errors = [](ServeOptions const& o) {
        std::vector<std::string> out;
        for (auto const& e : preflight(o, Preflight::by_operator).errors)
            if (e.rfind("prove_executable:", 0) == 0) out.push_back(e);
        return out;
    };
    ServeOptions o;
    EXPECT_TRUE(prove_errors(o).empty()) << "the default: the server's own executable";
    o.prove_executable = KYOTAKU_EXECUTABLE;
    EXPECT_TRUE(prove_errors(o).empty());
    o.prove_executable = KYOTAKU_SOURCE_DIR "/README.md";
    EXPECT_EQ(prove_errors(o).size(), 1u);
    o.prove_at_once = 0;  // no proofs: nothing runs it
    EXPECT_TRUE(prove_errors(o).empty());
}

TEST(WorkbenchProofsConfig, AFolderAKilledServerLeftIsRemovedAtTheNextStart) {
    WorkDir spool;
    ASSERT_EQ(::chmod(spool.path.c_str(), 0700), 0);
    std::filesystem::create_directories(spool.path + "/prove-Ab12Cd/rules/tests");
    std::ofstream(spool.path + "/prove-Ab12Cd/rules/tests/a.rules") << "fact k : bool\n";
    std::ofstream(spool.path + "/kept.txt") << "not ours";
    EXPECT_EQ(prepare_spool_dir(spool.path), "");
    EXPECT_FALSE(std::filesystem::exists(spool.path + "/prove-Ab12Cd"));
    EXPECT_TRUE(std::filesystem::exists(spool.path + "/kept.txt"));
}

TEST(BoundedChild, RunsWithoutAShellWithinItsLimitsAndIsAlwaysReaped) {
    auto const far = std::chrono::steady_clock::now() + std::chrono::minutes(10);
    ChildLimits limits;
    limits.deadline = far;
    // Arguments are passed as they are: no shell reads them.
    ChildRun run = run_bounded({KYOTAKU_EXECUTABLE, "prove", "--json", "$(touch /tmp/kyotaku-never); no such dir"}, {},
                               "/", limits);
    EXPECT_EQ(run.end, ChildRun::End::exited);
    EXPECT_EQ(run.exit_code, 2);
    EXPECT_FALSE(std::filesystem::exists("/tmp/kyotaku-never"));
    EXPECT_NE(run.out.find("\"ok\":false"), std::string::npos) << run.out;
    // A program that is not there: execve fails in the child (127).
    run = run_bounded({"/nonexistent/kyotaku"}, {}, "/", limits);
    EXPECT_EQ(run.end, ChildRun::End::exited);
    EXPECT_EQ(run.exit_code, 127);
    // More output than allowed: killed.
    limits.max_output = 16;
    run = run_bounded({KYOTAKU_EXECUTABLE, "--help"}, {}, "/", limits);
    EXPECT_EQ(run.end, ChildRun::End::output_limit);
    EXPECT_LE(run.out.size(), 16u);
    EXPECT_TRUE(no_children());
}

}  // namespace
