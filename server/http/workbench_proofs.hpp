// The rule workbench's proofs (issue 23 item 8): the browser has no Z3, so the server proves the change set being
// edited — POST /api/v1/admin/rules/prove, for the operator's certificate (kyotaku-admin) only, like the workbench.
//
// The body is {"files":[{"path":"20_window.rules","text":"…"}, …]} and nothing else: at most max_files files of
// max_bytes together, each path relative (segments of letters, digits, "_", "-", "." or any non-ASCII character,
// none empty, "." or "..", none beginning with "."), at most max_path_bytes and max_depth folders deep, ending in
// ".rules", each once; the texts valid UTF-8. They are written to a fresh private directory (0700, in the spool
// directory) and `kyotaku prove --json rules` runs there as a bounded child process (ops/bounded_child.hpp: no
// shell, CPU time, address space, a wall-clock deadline; killed and reaped when that passes or the client goes); the
// directory is removed whatever happens. At most `at_once` proofs run at once (503 with Retry-After beyond) and one
// per operator certificate (429). They run on threads of their own, not the request threads (HttpResult::slow).
//
// The answer (docs/api.md): "outcome" — proved | counterexample | unknown | rule_errors | timeout — with a Japanese
// "message", and per invariant its name, label, file:line, status, the counterexample's facts and its explanation
// (kyotaku explain's form: 和暦 dates); for rule_errors the diagnostics with file, line and column (422). One JSON
// log line per proof (event workbench_proof) and the counters of /metrics (kyotaku_workbench_proofs_*). On SIGTERM the
// proofs running are killed (stop).
#pragma once

#include "http/http_result.hpp"
#include "usecases/context.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace kyotaku::server {

struct ProofSettings {
    std::string executable;  // the kyotaku command (serve: its own executable, or prove_executable)
    std::string work_dir;    // a private directory (the spool directory) for the temporary rule folders
    int at_once = 1;         // proofs at once; 0: the route is off (503)
    std::chrono::seconds wall{300};
    std::uint64_t cpu_seconds = 300;
    std::uint64_t memory_bytes = 4ull << 30;
    std::size_t max_files = 64;
    std::size_t max_bytes = 1u << 20;  // the texts together
    std::size_t max_path_bytes = 200;
    std::size_t max_depth = 3;  // folders above a file
};
// Checks a request's body as the route does (Error: 400 naming the field, 413) without running anything: a server
// without proofs (prove_at_once = 0, or none configured) refuses a bad body as any server does, before its 503.
void check_proof_request(std::string const& body, ProofSettings const& settings = {});
// The largest request body the route reads: the texts, their paths and the JSON around them (escapes included).
std::uint64_t proof_body_limit(ProofSettings const& settings);

class WorkbenchProofs {
public:
    explicit WorkbenchProofs(ProofSettings settings);
    // Checks the request (Error: 400 naming the field, 413, 429, 503) and takes a place; the answer is computed by the
    // returned result's `slow` (never throws), which runs the proof, watching `client_fd` for the client going.
    HttpResult start(Caller const& caller, std::string const& body, int client_fd) const;
    // kyotaku_workbench_proofs_total{outcome}, kyotaku_workbench_proofs_running, kyotaku_workbench_proof_seconds_total.
    void render_metrics(std::string& out) const;
    ProofSettings const& settings() const { return settings_; }
    // The server is stopping: every proof running is killed at once (answered 503), and no new one starts.
    void stop();

private:
    struct State;
    ProofSettings settings_;
    std::shared_ptr<State> state_;
};

}  // namespace kyotaku::server
