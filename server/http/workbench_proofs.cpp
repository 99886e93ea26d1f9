#include "http/workbench_proofs.hpp"

#include "http/json_codec.hpp"
#include "ops/bounded_child.hpp"
#include "ops/observability.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <vector>

namespace kyotaku::server {

namespace {
using json = nlohmann::json;

struct RuleFile {
    std::string path, text;
};

// "" when `path` is a name the route takes (workbench_proofs.hpp), else what is wrong with it (English).
std::string path_problem(std::string const& path, ProofSettings const& s) {
    if (path.empty()) return "empty";
    if (path.size() > s.max_path_bytes) return "longer than " + std::to_string(s.max_path_bytes) + " bytes";
    std::size_t const suffix = std::string(".rules").size();
    if (path.size() <= suffix || path.compare(path.size() - suffix, suffix, ".rules") != 0 ||
        path[path.size() - suffix - 1] == '/')
        return "not a .rules file name";
    std::size_t depth = 0, start = 0;
    for (std::size_t i = 0; i <= path.size(); ++i) {
        if (i < path.size() && path[i] != '/') {
            unsigned char const c = static_cast<unsigned char>(path[i]);
            bool const ok = c >= 0x80 || (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                            c == '_' || c == '-' || c == '.';
            if (!ok) return "a character that is not a letter, a digit, _, - or .";
            continue;
        }
        std::string_view const segment(path.data() + start, i - start);
        if (segment.empty()) return "an empty folder name (// or a leading /)";
        if (segment.front() == '.') return "a name beginning with . (., .., hidden files)";
        if (i < path.size()) ++depth;
        start = i + 1;
    }
    if (depth > s.max_depth) return "more than " + std::to_string(s.max_depth) + " folders deep";
    return {};
}

// The request's files, checked: only "files", each only "path" and "text".
std::vector<RuleFile> read_request(std::string const& body, ProofSettings const& s) {
    json const request = parse_json_body(body);
    for (auto const& [key, value] : request.items())
        if (key != "files")
            throw invalid(key,
                          "「" + key +
                              "」は受け取りません。受け取るのは files (ルールファイルの path と text の配列) だけです",
                          "unknown field " + key + ": the body is {\"files\":[{\"path\",\"text\"}, …]}");
    auto const files = request.find("files");
    if (files == request.end() || !files->is_array() || files->empty())
        throw invalid("files", "files に、証明するルールファイル (path と text) を一つ以上入れてください",
                      "files must be a non-empty array of {\"path\",\"text\"}");
    if (files->size() > s.max_files)
        throw Error(Error::Kind::too_large, "files",
                    "ルールファイルが多すぎます (" + std::to_string(s.max_files) + " 個まで)",
                    "too many files (at most " + std::to_string(s.max_files) + ")");
    std::vector<RuleFile> out;
    std::size_t total = 0;
    for (std::size_t i = 0; i < files->size(); ++i) {
        auto const& f = (*files)[i];
        std::string const at = "files[" + std::to_string(i) + "]";
        if (!f.is_object())
            throw invalid(at, at + " は {\"path\", \"text\"} のオブジェクトです",
                          at + " must be an object {\"path\",\"text\"}");
        for (auto const& [key, value] : f.items())
            if (key != "path" && key != "text")
                throw invalid(at + "." + key, at + " の「" + key + "」は受け取りません (path と text だけです)",
                              "unknown field " + at + "." + key);
        auto const path = f.find("path"), text = f.find("text");
        if (path == f.end() || !path->is_string())
            throw invalid(at + ".path", at + ".path (ファイル名) がありません", at + ".path must be a string");
        if (text == f.end() || !text->is_string())
            throw invalid(at + ".text", at + ".text (ファイルの中身) がありません", at + ".text must be a string");
        RuleFile file{path->get<std::string>(), text->get<std::string>()};
        if (auto const problem = path_problem(file.path, s); !problem.empty())
            throw invalid(at + ".path",
                          at + ".path は使えないファイル名です。英数字・_・-・. (と日本語) のフォルダ名とファイル名を "
                               "/ でつなぎ、.rules で終えてください",
                          at + ".path is not a rule file name the route takes: " + problem);
        for (auto const& other : out)
            if (other.path == file.path || other.path.rfind(file.path + "/", 0) == 0 ||
                file.path.rfind(other.path + "/", 0) == 0)
                throw invalid(at + ".path", at + ".path 「" + file.path + "」が他のファイルと重なっています",
                              at + ".path repeats or contains another file's path");
        total += file.text.size();
        if (total > s.max_bytes)
            throw Error(Error::Kind::too_large, "files",
                        "ルールファイルが大きすぎます (合わせて " + std::to_string(s.max_bytes >> 10) + " KiB まで)",
                        "the rule files are too large together (at most " + std::to_string(s.max_bytes) + " bytes)");
        out.push_back(std::move(file));
    }
    return out;
}

// A fresh private folder under the work directory, removed with everything in it when dropped.
struct TempDir {
    std::string path;
    explicit TempDir(std::string const& parent) {
        std::string name = parent + "/prove-XXXXXX";
        if (::mkdtemp(name.data())) path = name;
    }
    ~TempDir() {
        std::error_code ec;
        if (!path.empty()) std::filesystem::remove_all(path, ec);
    }
    TempDir(TempDir const&) = delete;
    TempDir& operator=(TempDir const&) = delete;
};

// Writes the files under dir/rules; false when the file system refuses one (no partial success is used).
bool write_files(std::string const& dir, std::vector<RuleFile> const& files) {
    std::string const root = dir + "/rules";
    if (::mkdir(root.c_str(), 0700) != 0) return false;
    for (auto const& f : files) {
        for (std::size_t slash = f.path.find('/'); slash != std::string::npos; slash = f.path.find('/', slash + 1))
            if (::mkdir((root + "/" + f.path.substr(0, slash)).c_str(), 0700) != 0 && errno != EEXIST) return false;
        int const fd =
            ::open((root + "/" + f.path).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) return false;
        std::size_t at = 0;
        while (at < f.text.size()) {
            ssize_t const n = ::write(fd, f.text.data() + at, f.text.size() - at);
            if (n <= 0 && errno == EINTR) continue;
            if (n <= 0) break;
            at += std::size_t(n);
        }
        if (::close(fd) != 0 || at != f.text.size()) return false;
    }
    return true;
}

HttpResult with_outcome(int status, json body) {
    HttpResult r = json_result(status, body);
    r.headers.push_back({"Cache-Control", "no-store"});
    return r;
}
}  // namespace

namespace {
// The request's files, its size checked first.
std::vector<RuleFile> checked_files(std::string const& body, ProofSettings const& settings) {
    if (body.size() > proof_body_limit(settings))
        throw Error(Error::Kind::too_large, "", "本文が大きすぎます",
                    "body too large (at most " + std::to_string(proof_body_limit(settings)) + " bytes)");
    return read_request(body, settings);
}
}  // namespace

void check_proof_request(std::string const& body, ProofSettings const& settings) { checked_files(body, settings); }

std::uint64_t proof_body_limit(ProofSettings const& s) {
    // Every byte of text escaped (\u0000: 6 bytes), plus the paths and the JSON around each file.
    return std::uint64_t(s.max_bytes) * 6 + std::uint64_t(s.max_files) * (s.max_path_bytes * 6 + 64) + 1024;
}

struct WorkbenchProofs::State {
    int stop_pipe[2] = {-1, -1};  // readable once stop() has written to it
    State() {
        if (::pipe2(stop_pipe, O_CLOEXEC) != 0) stop_pipe[0] = stop_pipe[1] = -1;
    }
    ~State() {
        for (int fd : stop_pipe)
            if (fd >= 0) ::close(fd);
    }
    State(State const&) = delete;
    State& operator=(State const&) = delete;
    std::atomic<bool> stopping{false};
    std::mutex mutex;
    int running = 0;
    std::map<std::string, int> per_caller;
    std::map<std::string, std::uint64_t> outcomes;  // outcome → proofs
    double seconds = 0;
    void count(std::string const& outcome, double s) {
        std::lock_guard lock(mutex);
        ++outcomes[outcome];
        seconds += s;
    }
};

WorkbenchProofs::WorkbenchProofs(ProofSettings settings)
    : settings_(std::move(settings)), state_(std::make_shared<State>()) {}

void WorkbenchProofs::stop() {
    state_->stopping = true;
    if (state_->stop_pipe[1] >= 0) (void)!::write(state_->stop_pipe[1], "x", 1);
}

namespace {
// The proof's answer from the child's JSON (a run that finished with it), field by field: the route answers only
// what it documents. `outcome` names it for the metrics and the log.
HttpResult child_answer(json const& parsed, ChildRun const& run, std::string& outcome) {
    json invariants = json::array(), diagnostics = json::array();
    std::size_t proven = 0, refuted = 0;
    for (auto const& i : parsed["invariants"]) {
        std::string const status = i.value("status", "unknown");
        proven += status == "proven";
        refuted += status == "counterexample";
        invariants.push_back(
            {{"name", i.value("name", "")},
             {"label", i.value("label", "")},
             {"location", i.value("location", "")},
             {"status", status},
             {"facts", i.contains("facts") ? i["facts"] : json()},
             {"shown", i.contains("shown") && i["shown"].is_array() ? i["shown"] : json::array()},
             {"explanation", i.value("explanation", "")},
             {"reason", i.value("reason", "")}});
    }
    for (auto const& d : parsed["diagnostics"]) {
        std::string file = d.value("file", "");
        // relative to the rule folder, as the workbench names it
        if (file.rfind("rules/", 0) == 0) file = file.substr(6);
        diagnostics.push_back({{"severity", d.value("severity", "error")},
                               {"file", file},
                               {"line", d.value("line", 0)},
                               {"column", d.value("column", 0)},
                               {"end_column", d.value("end_column", 0)},
                               {"source_line", d.value("source_line", "")},
                               {"ja", d.value("ja", "")},
                               {"en", d.value("en", "")}});
    }
    std::string const error = parsed.value("error", "");
    json body{{"invariants", invariants},
              {"diagnostics", diagnostics},
              {"domain", parsed.value("domain", "")},
              {"seconds", run.seconds}};
    int status = 200;
    if (run.exit_code == 2) {
        outcome = "rule_errors";
        status = 422;
        body["message"] = diagnostics.empty() ? "証明できません: " + error
                                              : "ルールにエラーが " + std::to_string(diagnostics.size()) +
                                                    " 件あります。直してから証明してください";
    } else if (refuted) {
        outcome = "counterexample";
        body["message"] = "不変条件 " + std::to_string(invariants.size()) + " 個のうち " +
                          std::to_string(refuted) + " 個に反例があります";
    } else if (run.exit_code == 1) {
        outcome = "unknown";
        body["message"] = "証明済み " + std::to_string(proven) + " 個、決められなかったもの " +
                          std::to_string(invariants.size() - proven) + " 個";
    } else {
        outcome = "proved";
        body["message"] = invariants.empty() ? std::string("不変条件はありません")
                                             : "不変条件 " + std::to_string(invariants.size()) +
                                                   " 個をすべて証明しました (証明済み)";
    }
    body["outcome"] = outcome;
    return with_outcome(status, body);
}

// The answer to a proof's run, however the child ended: a deadline (504), a stopping server, a client gone, a child
// that failed or answered nothing usable (logged, 500), else its own answer. `outcome` names it.
HttpResult proof_answer(ChildRun const& run, ProofSettings const& settings, std::string& outcome) {
    HttpResult answer;
    json parsed;
    bool const finished = run.end == ChildRun::End::exited && run.exit_code >= 0 && run.exit_code <= 2;
    if (finished) {
        parsed = json::parse(run.out, nullptr, false);
        if (!parsed.is_object() || !parsed.contains("invariants") || !parsed.contains("diagnostics"))
            parsed = json();
    }
    if (run.end == ChildRun::End::deadline || run.end == ChildRun::End::cpu_limit) {
        outcome = "timeout";
        long const limit =
            run.end == ChildRun::End::deadline ? long(settings.wall.count()) : long(settings.cpu_seconds);
        Error e(Error::Kind::unavailable, "",
                "証明が制限時間 (" + std::to_string(limit) +
                    " 秒) 内に終わりませんでした。変更を小さくして試すか、kyotaku prove rules で "
                    "(時間の制限なしに) 証明してください",
                std::string("the proof did not finish within the ") +
                    (run.end == ChildRun::End::deadline ? "wall-clock" : "CPU-time") + " limit of " +
                    std::to_string(limit) + " s (prove_seconds): run kyotaku prove");
        answer = error_result(e);
        json body = json::parse(answer.body);
        body["outcome"] = outcome;
        body["message"] = e.message.ja;
        answer = with_outcome(504, body);
    } else if (run.end == ChildRun::End::stopped) {
        outcome = "stopped";
        answer = error_result(
            Error(Error::Kind::unavailable, "",
                  "サーバが停止するため、証明を中止しました。少し待ってから、もう一度「証明する」を押してください",
                  "the server is stopping: the proof was abandoned, retry shortly"));
    } else if (run.end == ChildRun::End::client_gone) {
        outcome = "client_gone";
        // (nobody reads it: nginx's "client closed request")
        answer = with_outcome(499, json{{"outcome", outcome}});
    } else if (!finished || parsed.is_null()) {
        outcome = "failed";
        std::string const tail = run.err.size() > 400 ? run.err.substr(run.err.size() - 400) : run.err;
        log_error("workbench_proof", std::string("kyotaku prove ended ") + end_name(run.end) + " (exit " +
                                         std::to_string(run.exit_code) + ", signal " + std::to_string(run.signal) +
                                         (run.error.empty() ? "" : ", " + run.error) + "): " + tail);
        answer = error_result(Error(
            Error::Kind::internal, "",
            "サーバで証明を実行できませんでした。運用者にお知らせください (kyotaku prove rules でも証明できます)",
            "the proof could not be run (logged)"));
    } else {
        answer = child_answer(parsed, run, outcome);
    }
    return answer;
}
}  // namespace

HttpResult WorkbenchProofs::start(Caller const& caller, std::string const& body, int client_fd) const {
    std::vector<RuleFile> files = checked_files(body, settings_);  // a bad body is refused as such, whatever else holds
    if (state_->stopping)
        throw Error(Error::Kind::unavailable, "",
                    "サーバが停止するところです。少し待ってから、もう一度「証明する」を押してください",
                    "the server is stopping: retry shortly");
    if (settings_.at_once <= 0 || settings_.executable.empty())
        throw Error(Error::Kind::unavailable, "",
                    "このサーバでは証明を実行しません (prove_at_once = 0)。kyotaku prove rules で証明してください",
                    "proofs are turned off on this server (prove_at_once = 0): run kyotaku prove");
    std::size_t bytes = 0;
    for (auto const& f : files) bytes += f.text.size();
    // A place: one proof per certificate (429), at most at_once in all (503).
    std::string const who = caller.certificate.empty() ? caller.subject : caller.certificate;
    {
        std::lock_guard lock(state_->mutex);
        if (state_->per_caller.count(who)) {
            ++state_->outcomes["refused_caller"];
            throw too_many("", "前の証明がまだ終わっていません。終わってから、もう一度「証明する」を押してください",
                           "a proof of this certificate is still running: retry when it has finished", 10);
        }
        if (state_->running >= settings_.at_once) {
            ++state_->outcomes["refused_busy"];
            Error busy(Error::Kind::unavailable, "",
                       "ほかの証明を実行中です。少し待ってから、もう一度「証明する」を押してください",
                       "the server is running as many proofs as it may (prove_at_once): retry shortly");
            busy.retry_after = 15;
            throw busy;
        }
        ++state_->running;
        ++state_->per_caller[who];
    }
    auto place = std::shared_ptr<void>(nullptr, [state = state_, who](void*) {
        std::lock_guard lock(state->mutex);
        --state->running;
        if (auto const it = state->per_caller.find(who); it != state->per_caller.end() && --it->second <= 0)
            state->per_caller.erase(it);
    });
    auto dir = std::make_shared<TempDir>(settings_.work_dir);
    if (dir->path.empty() || !write_files(dir->path, files)) {
        log_error("workbench_proof",
                  "cannot write the rule files under " + settings_.work_dir + ": " + std::strerror(errno));
        throw Error(Error::Kind::internal, "", "サーバの一時ディレクトリにルールを書けません",
                    "cannot write the rules to the work directory");
    }
    std::string const request_id = current_request_id();
    HttpResult r;
    r.slow = [settings = settings_, state = state_, place, dir, client_fd, request_id, n = files.size(),
              bytes]() -> HttpResult {
        ChildLimits limits;
        limits.deadline = std::chrono::steady_clock::now() + settings.wall;
        limits.cpu_seconds = settings.cpu_seconds;
        limits.address_space = settings.memory_bytes;
        ChildRun const run = run_bounded({settings.executable, "prove", "--json", "rules"}, {"LC_ALL=C.UTF-8"},
                                         dir->path, limits, client_fd, state->stop_pipe[0]);
        std::string outcome;
        HttpResult answer = proof_answer(run, settings, outcome);
        state->count(outcome, run.seconds);
        log_line({{"event", "workbench_proof"},
                  {"request_id", request_id},
                  {"outcome", outcome},
                  {"files", n},
                  {"bytes", bytes},
                  {"child_end", end_name(run.end)},
                  {"exit_code", run.exit_code},
                  {"duration_ms", std::round(run.seconds * 1e6) / 1e3}},
                 outcome == "failed" ? "error" : outcome == "timeout" ? "warning" : "info");
        return answer;
    };
    return r;
}

void WorkbenchProofs::render_metrics(std::string& out) const {
    std::lock_guard lock(state_->mutex);
    metric_header(out, "kyotaku_workbench_proofs_total", "counter",
                  "The workbench's proofs (POST /api/v1/admin/rules/prove) by outcome: proved, counterexample, "
                  "unknown, rule_errors, timeout, "
                  "client_gone, stopped, failed, refused_busy, refused_caller.");
    for (char const* o : {"proved", "counterexample", "unknown", "rule_errors", "timeout", "client_gone", "stopped",
                          "failed", "refused_busy", "refused_caller"}) {
        auto const it = state_->outcomes.find(o);
        metric_sample(out, "kyotaku_workbench_proofs_total", {{"outcome", o}},
                      double(it == state_->outcomes.end() ? 0 : it->second));
    }
    metric_header(out, "kyotaku_workbench_proofs_running", "gauge",
                  "The workbench's proofs running now (at most prove_at_once).");
    metric_sample(out, "kyotaku_workbench_proofs_running", {}, state_->running);
    metric_header(out, "kyotaku_workbench_proof_seconds_total", "counter",
                  "Wall-clock seconds the workbench's proofs have taken, together.");
    metric_sample(out, "kyotaku_workbench_proof_seconds_total", {}, state_->seconds);
}

}  // namespace kyotaku::server
