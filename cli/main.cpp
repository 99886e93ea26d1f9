// The `kyotaku` command: a thin main over the engine library (style.md, habit 9).
#include "eval_command.hpp"
#include "kyotaku/diff.hpp"
#include "kyotaku/engine.hpp"
#include "kyotaku/generated.hpp"
#include "kyotaku/jsonl.hpp"
#include "kyotaku/prove.hpp"
#include "kyotaku/release.hpp"
#include "kyotaku/signing.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#ifdef KYOTAKU_WITH_SERVER
#include "app/app.hpp"
#include "ops/preflight.hpp"
#include "ops/relay.hpp"
#include "ops/set_aside_journal.hpp"
#endif

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>

namespace {

using namespace kyotaku;
using kyotaku::cli::Input;

// The file name of the shared library the running process's malloc comes from, as the dynamic linker finds it:
// libtcmalloc_minimal.so.4 when the command links tcmalloc (KYOTAKU_ALLOCATOR), libc.so.6 with the C library's, the
// preloaded one's under LD_PRELOAD; "unknown" when the linker cannot tell.
std::string malloc_library() {
    Dl_info info{};
    void* found = dlsym(RTLD_DEFAULT, "malloc");
    if (found == nullptr || dladdr(found, &info) == 0 || info.dli_fname == nullptr) return "unknown";
    return std::filesystem::path(info.dli_fname).filename().string();
}

std::string slurp(std::istream& in) {
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// The raw public keys of --trust (empty: no key configured); prints why and exits 2 when one cannot be read.
std::vector<std::string> trusted_keys(std::vector<std::string> const& paths) {
    std::vector<std::string> keys;
    for (auto const& path : paths) {
        PublicKey k = read_public_key(path);
        if (!k.ok()) {
            std::cerr << "kyotaku: --trust " << path << ": " << k.error.text() << "\n";
            std::exit(2);
        }
        keys.push_back(k.raw);
    }
    return keys;
}

// Loads a rule directory, a .rules file or a compiled bundle (with --trust: only a bundle signed by a trusted
// key); prints diagnostics and returns null on failure.
std::shared_ptr<Program const> load_or_report(std::string const& path, std::vector<std::string> const& trust = {}) {
    std::vector<Diagnostic> diags;
    auto r = load_trusted_rules(path, trusted_keys(trust), &diags);
    return kyotaku::cli::reported(path, r, diags);
}

int cmd_test(std::string const& rules, bool verbose, std::vector<std::string> const& trust) {
    auto program = load_or_report(rules, trust);
    if (!program) return 2;
    auto report = run_tests(program);
    for (auto const& f : report.failures)
        std::cout << f.location << ": 失敗 FAIL 「" << f.test << "」: " << f.message << "\n";
    if (verbose)
        for (auto const& t : program->tests) std::cout << program->location(t.loc) << ": " << t.name << "\n";
    std::cout << report.passed << " passed, " << report.failed << " failed\n";
    return report.failed == 0 && report.passed > 0 ? 0 : 1;
}

// Diagnostics, then the invariants proven (unless --no-prove). Warnings (unused lets, params, facts) do not fail the
// check unless --strict (for CI); a counterexample to an invariant does.
int cmd_check(std::string const& rules, bool strict, bool json, bool no_prove) {
    std::vector<Diagnostic> diags;
    auto sources = read_rule_sources(rules, diags);
    std::shared_ptr<Program const> program;
    if (diags.empty()) {
        auto c = compile(sources);
        diags = c.diagnostics;
        program = c.program;
    }
    std::size_t const warnings = count_warnings(diags), errors = diags.size() - warnings;
    std::optional<ProofReport> proofs;
    if (program && !no_prove && !program->invariants.empty()) proofs = prove(program);
    bool const fail = errors > 0 || (strict && warnings > 0) || (proofs && !proofs->ok());
    if (json) {
        std::cout << "{\"ok\":" << (fail ? "false" : "true") << ",\"errors\":" << errors << ",\"warnings\":" << warnings
                  << ",\"diagnostics\":" << diagnostics_json(diags);
        if (proofs) {
            std::cout << ",\"proofs\":[";
            for (std::size_t i = 0; i < proofs->results.size(); ++i) {
                auto const& r = proofs->results[i];
                std::string line = i ? "," : "";
                line += "{\"invariant\":";
                append_json_string(line, r.name);
                line += ",\"location\":";
                append_json_string(line, r.location);
                line += std::string(",\"status\":\"") +
                        (r.status == InvariantResult::Status::proven           ? "proven"
                         : r.status == InvariantResult::Status::counterexample ? "counterexample"
                                                                               : "unknown") +
                        "\",\"counterexample\":" + (r.facts.empty() ? "null" : r.facts) + "}";
                std::cout << line;
            }
            std::cout << "],\"proof_error\":";
            std::string e;
            append_json_string(e, proofs->error);
            std::cout << e;
        }
        std::cout << "}\n";
        return fail ? 1 : 0;
    }
    std::cerr << format_diagnostics(diags);
    if (proofs) (proofs->ok() ? std::cout : std::cerr) << format_proofs(*program, *proofs);
    if (program)
        std::cout << "ok: " << program->files.size() << " files, " << program->outputs.size() << " decisions, "
                  << program->slots.size() - program->outputs.size() << " lets, " << program->tests.size() << " tests"
                  << (warnings ? ", " + std::to_string(warnings) + " warning(s)" : std::string()) << "\n";
    if (errors)
        std::cerr << errors << " error(s)"
                  << (warnings ? ", " + std::to_string(warnings) + " warning(s)" : std::string()) << "\n";
    else if (fail) std::cerr << "--strict: 警告をエラーとして扱います / warnings are errors with --strict\n";
    return fail ? 1 : 0;
}

int cmd_explain(std::string const& rules, std::string const& json, std::string const& input, bool full,
                std::vector<std::string> const& trust) {
    auto program = load_or_report(rules, trust);
    if (!program) return 2;
    std::string facts = json;
    if (facts.empty()) {
        if (!input.empty() && input != "-") {
            std::ifstream f(input);
            if (!f) {
                std::cerr << "kyotaku: " << input << ": 読み込めません / cannot open\n";
                return 2;
            }
            facts = slurp(f);
        } else {
            facts = slurp(std::cin);
        }
    }
    while (!facts.empty() && (facts.back() == '\n' || facts.back() == '\r')) facts.pop_back();
    std::string out = explain(program, facts, nullptr, full);
    std::cout << out;
    return out.rfind("入力エラー", 0) == 0 ? 1 : 0;
}

int cmd_fmt(std::vector<std::string> const& files, bool write, bool check) {
    int status = 0;
    for (auto const& path : files) {
        std::vector<Diagnostic> diags;
        auto sources = read_rule_sources(path, diags);
        for (auto const& src : sources) {
            auto r = format_source(src);
            if (!r.ok()) {
                diags.insert(diags.end(), r.diagnostics.begin(), r.diagnostics.end());
                continue;
            }
            if (check) {
                if (r.text != src.text) {
                    std::cout << src.path << ": 整形されていません / not formatted\n";
                    status = 1;
                }
            } else if (write) {
                if (r.text != src.text) {
                    std::ofstream out(src.path, std::ios::binary | std::ios::trunc);
                    out << r.text;
                }
            } else {
                std::cout << r.text;
            }
        }
        if (!diags.empty()) {
            std::cerr << format_diagnostics(diags);
            status = 1;
        }
    }
    return status;
}

// Rule-file tests before signing: a signature says "policy staff checked this", so rules whose own tests fail are
// never signed. Prints the failures; false when any failed.
bool tests_pass_before_signing(std::shared_ptr<Program const> const& program, char const* command) {
    TestReport const report = run_tests(program);
    if (report.failed == 0) return true;
    for (auto const& f : report.failures)
        std::cerr << f.location << ": 失敗 FAIL 「" << f.test << "」: " << f.message << "\n";
    std::cerr << command << ": ルールのテストが " << report.failed << " 件失敗しているので署名しません / "
              << report.failed << " rule test(s) fail: not signed\n";
    return false;
}

int cmd_compile(std::string const& rules, std::string const& output, std::string const& emit_cpp_path,
                std::string const& cpp_namespace, std::string const& sign_key, bool strict, std::uint64_t release) {
    if (!valid_cpp_namespace(cpp_namespace)) {
        std::cerr << "kyotaku compile: --namespace \"" << cpp_namespace
                  << "\": C++ の名前空間名ではありません (英数字と _ の識別子を :: でつなぐ。予約語・std は不可) / not "
                     "a C++ namespace "
                     "(identifiers of letters, digits and _ joined by ::; no keyword, no std)\n";
        return 2;
    }
    std::vector<Diagnostic> diags;
    auto sources = read_rule_sources(rules, diags);
    if (!diags.empty()) {
        std::cerr << format_diagnostics(diags);
        return 1;
    }
    auto c = compile(sources);
    std::cerr << format_diagnostics(c.diagnostics);  // errors, or warnings only
    if (!c.ok()) return 1;
    if (strict && count_warnings(c.diagnostics)) {
        std::cerr << "--strict: 警告をエラーとして扱います / warnings are errors with --strict\n";
        return 1;
    }
    if (!emit_cpp_path.empty()) {
        std::ofstream cpp(emit_cpp_path, std::ios::trunc);
        if (!cpp || !(cpp << emit_cpp(*c.program, cpp_namespace, "generated_rules"))) {
            std::cerr << "kyotaku: " << emit_cpp_path << ": 書き込めません / cannot write\n";
            return 1;
        }
        std::cout << emit_cpp_path << ": C++ for " << cpp_namespace << "::generated_rules (source hash "
                  << source_hash_hex(c.program->source_hash) << ")\n";
        if (output.empty()) return 0;
    }
    if (!sign_key.empty() && !tests_pass_before_signing(c.program, "kyotaku compile --sign")) return 1;
    std::string bytes = save_bundle(*c.program, ReleaseInfo{release, {}, {}});
    std::string signed_by;
    if (!sign_key.empty()) {
        SignResult s = sign_bundle(bytes, sign_key);
        if (!s.ok()) {
            std::cerr << "kyotaku compile: --sign " << sign_key << ": " << s.error.text() << "\n";
            return 1;
        }
        bytes = std::move(s.bundle);
        signed_by = ", signed by key " + key_fingerprint(split_bundle(bytes).public_key);
    }
    std::ofstream out(output, std::ios::binary | std::ios::trunc);
    if (!out || !out.write(bytes.data(), std::streamsize(bytes.size()))) {
        std::cerr << "kyotaku: " << output << ": 書き込めません / cannot write\n";
        return 1;
    }
    std::cout << output << ": " << bytes.size() << " bytes, source hash " << source_hash_hex(c.program->source_hash)
              << ", " << compiler_version << (release ? ", release " + std::to_string(release) : std::string())
              << signed_by << "\n";
    return 0;
}

int cmd_verify_bundle(std::string const& bundle, std::string const& sources_dir, std::string const& report_path,
                      std::vector<std::string> const& trust) {
    std::ifstream in(bundle, std::ios::binary);
    if (!in) {
        std::cerr << "kyotaku: " << bundle << ": 読み込めません / cannot open\n";
        return 2;
    }
    std::string bytes = slurp(in);
    std::optional<std::uint64_t> hash;
    if (!sources_dir.empty()) {
        std::vector<Diagnostic> diags;
        auto sources = read_rule_sources(sources_dir, diags);
        if (!diags.empty()) {
            std::cerr << format_diagnostics(diags);
            return 2;
        }
        hash = hash_sources(sources);
    }
    auto const keys = trusted_keys(trust);
    if (!keys.empty())
        if (Message m = check_bundle_signature(bytes, keys); !m.empty()) {
            std::cerr << "kyotaku: " << bundle << ": " << m.text() << "\n";
            return 1;
        }
    auto r = load_bundle(bytes, hash);
    if (!r.program) {
        std::cerr << "kyotaku: " << bundle << ": " << r.describe() << "\n";
        return 1;
    }
    if (!report_path.empty()) {
        std::ifstream report(report_path, std::ios::binary);
        if (!report) {
            std::cerr << "kyotaku: " << report_path << ": 読み込めません / cannot open\n";
            return 2;
        }
        std::string const digest = sha256_hex(slurp(report));
        if (r.release.report_sha256.empty() || digest != r.release.report_sha256) {
            std::cerr << "kyotaku: " << report_path << ": このバンドルの差分レポートではありません (SHA-256 " << digest
                      << "、バンドルには "
                      << (r.release.report_sha256.empty() ? std::string("なし") : r.release.report_sha256)
                      << ") / not this bundle's diff report\n";
            return 1;
        }
    }
    BundleParts const parts = split_bundle(bytes);
    std::cout << bundle << ": ok (" << r.program->outputs.size() << " decisions, source hash "
              << source_hash_hex(r.program->source_hash) << ", "
              << (r.release.release ? "release " + std::to_string(r.release.release)
                                    : std::string("not a release (release 0)"))
              << (parts.is_signed() ? std::string(keys.empty() ? ", signed by key " : ", signature verified, key ") +
                                          key_fingerprint(parts.public_key)
                                    : std::string(", unsigned"))
              << (r.release.report_sha256.empty() ? std::string() : ", diff report sha256 " + r.release.report_sha256)
              << (report_path.empty() ? std::string() : ", report matches") << ")\n";
    return 0;
}

// Both rule sets over one corpus; the report on stdout. Exit 1 when an answer, a param or a fact default changed, 0
// when none did, 2 when the comparison means nothing (no case, or lines neither rule set can read).
int cmd_diff(std::string const& old_rules, std::string const& new_rules, std::string const& corpus,
             std::string const& input, std::size_t cases, std::uint64_t seed, std::string const& format,
             std::size_t examples, std::vector<std::string> const& trust) {
    auto old_program = load_or_report(old_rules, trust);
    auto new_program = load_or_report(new_rules, trust);
    if (!old_program || !new_program) return 2;
    DiffOptions options;
    options.examples = examples;
    RuleDiff diff(old_program, new_program, options);
    std::string described;
    if (corpus == "generated") {
        std::uint64_t n = 0;
        generate_corpus(*old_program, *new_program, cases, seed, [&](std::string_view line) { diff.add(line, ++n); });
        described = "生成した事例 (すべての enum の値、日付の境目と月末、seed " + std::to_string(seed) + ")";
    } else if (corpus == "realistic") {
        std::uint64_t n = 0;
        generate_realistic_corpus(*old_program, *new_program, cases, seed,
                                  [&](std::string_view line, std::string const& cls) { diff.add(line, ++n, cls); });
        described = "現実的な事例 (ルールの assume を満たし、入力がそろった事例、seed " + std::to_string(seed) + ")";
    } else {
        Input in(input);
        if (!in.file) return 2;
        diff.add_stream(in.file);
        described = input.empty() || input == "-" ? "標準入力の JSON Lines" : input;
    }
    DiffReport report = diff.report();
    report.old_rules = old_rules;
    report.new_rules = new_rules;
    report.corpus = described;
    std::cout << (format == "json" ? diff_json(report) : diff_markdown(report));
    // A comparison over no case, or over lines neither rule set reads, says nothing: an error, not "no change".
    if (report.cases == 0) {
        std::cerr << "kyotaku diff: 事例がありません (入力が空です)。何も比べていません / no cases: the input is "
                     "empty, nothing was compared\n";
        return 2;
    }
    if (report.unreadable_both) {
        std::cerr << "kyotaku diff: どちらのルールでも読めない行が " << report.unreadable_both
                  << " 件あります (最初: 行 " << report.unreadable_examples.front().line << ": "
                  << report.unreadable_examples.front().error << ") / " << report.unreadable_both
                  << " line(s) neither rule set can read\n";
        return 2;
    }
    return report.changed() ? 1 : 0;
}

// A new Ed25519 key pair for signing bundles: NAME.key (private, mode 0600) and NAME.pub (public, for --trust).
int cmd_keygen(std::string const& name) {
    KeyPair pair = generate_key_pair();
    if (!pair.error.empty()) {
        std::cerr << "kyotaku keygen: " << pair.error.text() << "\n";
        return 1;
    }
    std::string const priv = name + ".key", pub = name + ".pub";
    for (auto const& path : {priv, pub})
        if (std::ifstream(path)) {
            std::cerr << "kyotaku keygen: " << path
                      << ": すでにあります (上書きしません) / already exists (not overwritten)\n";
            return 1;
        }
    {
        std::ofstream out(priv, std::ios::binary);
        std::filesystem::permissions(priv, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write,
                                     std::filesystem::perm_options::replace);
        out << pair.private_pem;
        if (!out) {
            std::cerr << "kyotaku keygen: " << priv << ": 書き込めません / cannot write\n";
            return 1;
        }
    }
    std::ofstream(pub, std::ios::binary) << pair.public_pem;
    PublicKey k = read_public_key(pub);
    std::cout << priv << ": 秘密鍵 (署名に使う、外に出さない) / private key\n"
              << pub << ": 公開鍵 (--trust に渡す) / public key, fingerprint " << key_fingerprint(k.raw) << "\n";
    return 0;
}

// A counterexample's fact as people read it (the workbench shows these): dates in 和暦 with ISO in brackets, months
// as 令和6年4月 (2024-04), lists joined with 、, はい / いいえ.
std::string shown_fact(nlohmann::ordered_json const& v) {
    if (v.is_boolean()) return v.get<bool>() ? "はい" : "いいえ";
    if (v.is_array()) {
        std::string out;
        for (auto const& e : v) out += (out.empty() ? "" : "、") + shown_fact(e);
        return out.empty() ? "(なし)" : out;
    }
    if (!v.is_string()) return v.dump();
    std::string const text = v.get<std::string>();
    if (auto const d = parse_iso_date_fast(text)) return wareki_with_iso(*d);
    if (text.size() == 7 && text[4] == '-')
        if (auto const m = parse_month(text); m.month) {
            std::string const day = wareki(m.month->first_day());  // "令和6年4月1日"
            return day.substr(0, day.size() - std::string("1日").size()) + " (" + text + ")";
        }
    return text;
}

std::string proofs_json(ProofReport const& report, std::vector<Diagnostic> const& diags) {
    nlohmann::ordered_json out;
    out["ok"] = diags.empty() && report.ok();
    out["error"] = report.error;
    out["domain"] = report.domain;
    out["seconds"] = report.seconds;
    out["diagnostics"] = nlohmann::ordered_json::parse(diagnostics_json(diags));
    out["invariants"] = nlohmann::ordered_json::array();
    for (auto const& r : report.results)
        out["invariants"].push_back(
            {{"name", r.name},
             {"label", r.label},
             {"location", r.location},
             {"status", r.status == InvariantResult::Status::proven           ? "proven"
                        : r.status == InvariantResult::Status::counterexample ? "counterexample"
                                                                              : "unknown"},
             {"facts", r.facts.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json::parse(r.facts)},
             {"shown", nlohmann::ordered_json::array()},
             {"explanation", r.explanation},
             {"reason", r.reason},
             {"seconds", r.seconds}});
    for (auto& i : out["invariants"])
        if (i["facts"].is_object())
            for (auto const& [fact, value] : i["facts"].items())
                if (fact != "id") i["shown"].push_back({{"fact", fact}, {"value", shown_fact(value)}});
    return out.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

// kyotaku prove: every invariant proven for every input of its domain, or a counterexample. Exit 0 when all are
// proven, 1 when one has a counterexample (or the solver could not decide), 2 when the rules cannot be proven.
// --json (for tools: the server's workbench route runs it): one JSON object on stdout — "ok", the rules' errors as
// `kyotaku check --json` gives them ("diagnostics", file:line:column), "error" when the rules cannot be proven at all,
// the domain, and per invariant its name, label, file:line, status (proven | counterexample | unknown), the
// counterexample's facts (an object, as eval and explain take them) and as people read them ("shown": 和暦 dates),
// its explanation (explain's compact form, 和暦 dates) and, for unknown, why. The exit codes are the same.
int cmd_prove(std::string const& rules, std::vector<std::string> const& trust, bool json) {
    if (json) {
        std::vector<Diagnostic> diags;
        auto r = load_trusted_rules(rules, trusted_keys(trust), &diags);
        if (!r.program) {
            ProofReport none;
            none.error = diags.empty() ? r.describe() : "ルールにエラーがあります / the rules have errors";
            std::cout << proofs_json(none, diags);
            return 2;
        }
        ProofReport const report = prove(r.program);
        std::cout << proofs_json(report, {});
        if (!report.error.empty()) return 2;
        return report.ok() ? 0 : 1;
    }
    auto program = load_or_report(rules, trust);
    if (!program) return 2;
    ProofReport const report = prove(program);
    std::cout << format_proofs(*program, report);
    if (!report.error.empty()) return 2;
    return report.ok() ? 0 : 1;
}

// kyotaku release: every check, then the signed bundle and its diff report; nothing is written when one fails.
int cmd_release(ReleaseOptions options, std::vector<std::string> const& trust) {
    options.trusted_keys = trusted_keys(trust);
    ReleaseOutcome const r = make_release(options, [](ReleaseStep const& s) {
        std::cout << (s.ok ? "ok   " : "FAIL ") << s.name << ": " << s.summary << "\n";
        if (!s.ok && !s.detail.empty()) std::cout << s.detail << (s.detail.back() == '\n' ? "" : "\n");
    });
    if (!r.ok) {
        std::cerr << "kyotaku release: 署名していません。上の FAIL を直してからもう一度実行してください / nothing was "
                     "signed: fix what failed above and run it again\n";
        return 1;
    }
    std::cout << options.output << ": release " << r.release << " (previous " << r.previous_release
              << "), signed by key " << r.key_id << "\n"
              << r.report_path << ": diff report, sha256 " << r.report_sha256 << " (inside the signed bundle)\n";
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"kyotaku — 居宅同意取得型 オンライン資格確認のルールエンジン (rule engine for home-visit online "
                 "eligibility verification)"};
    app.require_subcommand(1);
    // `kyotaku --version`: the package's version and the rule compiler's (what a bundle records), and the library
    // malloc comes from, then exit 0.
    app.set_version_flag("--version",
                         std::string("kyotaku ") + KYOTAKU_VERSION + " (" + compiler_version + ")\nmalloc: " +
                             malloc_library(),
                         "版を表示して終わる / print the version and exit");
    std::string rules = "rules", input, json, output, sources;
    bool verbose = false, write = false, check = false, strict = false, full = false, check_json = false;
    std::vector<std::string> files, trust;
    auto add_trust = [&](CLI::App* cmd) { kyotaku::cli::add_trust_option(cmd, trust); };

    kyotaku::cli::EvalOptions eval_options;
    auto* eval = kyotaku::cli::add_eval_command(app, eval_options);

    auto* test = app.add_subcommand("test", "ルールファイル内のテストを実行する / run the tests written in rule files");
    test->add_option("rules", rules, "ルールのディレクトリ / rules directory")->capture_default_str();
    test->add_flag("--list,-v", verbose, "テストの一覧も表示する / also list the tests");
    add_trust(test);

    auto* chk = app.add_subcommand("check", "ルールを検査し診断だけを表示する / check rules, print diagnostics only");
    chk->add_option("rules", rules, "ルールのディレクトリ / rules directory")->capture_default_str();
    chk->add_flag(
        "--strict", strict,
        "警告 (使われていない let・param・fact) もエラーにする (CI 向け) / treat warnings as errors (for CI)");
    chk->add_flag("--json", check_json, "診断を JSON で出す / print the diagnostics as JSON");
    bool no_prove = false;
    chk->add_flag("--no-prove", no_prove, "不変条件の証明をしない / do not prove the invariants");

    auto* exp =
        app.add_subcommand("explain", "一件の事例について判定の過程を日本語で説明する / explain one case in Japanese");
    exp->add_option("--rules", rules, "ルールのディレクトリ / rules directory")->capture_default_str();
    exp->add_option("facts", json, "事実の JSON (省略時は --input か標準入力) / facts as a JSON object");
    exp->add_option("--input,-i", input, "事実の JSON ファイル / file holding the facts");
    exp->add_flag("--full", full,
                  "長い形式 (判定ごとにすべての途中の値) / the long form (every intermediate value per decision)");
    add_trust(exp);

    auto* fmt = app.add_subcommand("fmt", "ルールファイルを標準の書式に整える / format rule files canonically");
    fmt->add_option("files", files, "ファイルまたはディレクトリ / files or directories")->required();
    fmt->add_flag("--write,-w", write, "ファイルを書き換える / rewrite the files in place");
    fmt->add_flag("--check", check, "整形済みか確かめる (違えば終了コード 1) / exit 1 if not formatted");

    auto* comp = app.add_subcommand("compile", "ルールをバンドルにコンパイルする / compile rules into a bundle");
    comp->add_option("rules", rules, "ルールのディレクトリ / rules directory")->capture_default_str();
    std::string emit_cpp_path;
    comp->add_option("-o,--output", output, "出力するバンドル / bundle to write");
    comp->add_option(
        "--emit-cpp", emit_cpp_path,
        "ルールを C++ のソースとしても書き出す (kyotaku/generated.hpp) / also write the rules as C++ source");
    std::string cpp_namespace = "kyotaku";
    comp->add_option("--namespace", cpp_namespace,
                     "--emit-cpp の GeneratedRules を置く名前空間 (既定 "
                     "kyotaku。二つのルールセットを一つのプログラムに) / the namespace of "
                     "the emitted generated_rules (default kyotaku; two rule sets in one program)");
    std::string sign_key;
    comp->add_option(
        "--sign", sign_key,
        "Ed25519 の秘密鍵 (PEM) でバンドルに署名する / sign the bundle with this Ed25519 private key (PEM)");
    comp->add_flag("--strict", strict, "警告もエラーにする / treat warnings as errors");
    std::uint64_t release_number = 0;
    comp->add_option("--release", release_number,
                     "リリース番号 (署名する部分に入る。サーバはこれより古い番号を拒む。ふつうは kyotaku release "
                     "を使う) / release number, inside "
                     "the signed part (servers refuse an older one; kyotaku release sets it for you)")
        ->check(CLI::Range(std::uint64_t(1), std::uint64_t(1) << 53));

    auto* dis =
        app.add_subcommand("disasm", "コンパイルした命令列を表示する (開発者向け) / print the compiled instructions");
    dis->add_option("rules", rules, "ルールのディレクトリかバンドル / rules directory or bundle")
        ->capture_default_str();
    add_trust(dis);

    auto* ver =
        app.add_subcommand("verify-bundle", "バンドルを検証する / check that a bundle loads (and matches sources)");
    ver->add_option("bundle", output, "バンドル / bundle")->required();
    ver->add_option("--sources", sources,
                    "このルールから作られたかも確かめる / also require it was built from these rules");
    std::string report_path;
    ver->add_option("--report", report_path,
                    "kyotaku release が書いた差分レポートがこのバンドルのものか確かめる / check that this diff report "
                    "is the one the release names");
    add_trust(ver);

    std::string old_rules, new_rules, corpus = "stdin", diff_format = "markdown";
    std::size_t cases = 100000, examples = 1;
    std::uint64_t seed = 1;
    auto* dif = app.add_subcommand("diff", "二つのルールの答えを事例ごとに比べ、変わった答えを数える / what a rule "
                                           "change does: compare two rule sets over a corpus");
    dif->add_option("--old", old_rules,
                    "変更前のルール (ディレクトリ、ファイル、バンドル) / the rules before the change")
        ->required();
    dif->add_option("--new", new_rules, "変更後のルール / the rules after the change")->required();
    dif->add_option(
           "--corpus", corpus,
           "事例: stdin (JSON Lines、既定)、generated (境目を突く生成器)、realistic (ルールの assume "
           "を満たす現実的な事例) / cases: stdin (JSON "
           "Lines), generated (boundary-seeking) or realistic (cases that satisfy the rules' assume declarations)")
        ->check(CLI::IsMember({"stdin", "generated", "realistic"}))
        ->capture_default_str();
    dif->add_option("--input,-i", input,
                    "事例の JSON Lines ファイル (既定: 標準入力) / JSON Lines file of cases (default: stdin)");
    dif->add_option("--cases", cases, "生成する事例の数 / how many cases to generate")
        ->capture_default_str()
        ->check(CLI::Range(1, 100000000));
    dif->add_option("--seed", seed, "生成の種 / generator seed")->capture_default_str();
    dif->add_option("--format", diff_format,
                    "markdown (人向け、日本語) か json (プログラム向け) / markdown (people) or json (programs)")
        ->check(CLI::IsMember({"markdown", "json"}))
        ->capture_default_str();
    dif->add_option("--examples", examples, "グループごとの例の数 / example cases per group")
        ->capture_default_str()
        ->check(CLI::Range(0, 100));
    add_trust(dif);

    auto* prv = app.add_subcommand("prove", "ルールの不変条件 (invariant) を、すべての入力について証明する "
                                            "(Z3)。反例があれば示して終了コード 1 / prove every invariant "
                                            "for every input of its domain (Z3); a counterexample exits 1");
    prv->add_option("rules", rules, "ルールのディレクトリかバンドル / rules directory or bundle")
        ->capture_default_str();
    bool prove_json = false;
    prv->add_flag("--json", prove_json, "結果を JSON で (ツール向け) / the result as one JSON object (for tools)");
    add_trust(prv);

    ReleaseOptions release_options;
    auto* rel_cmd = app.add_subcommand(
        "release", "ルールをリリースする: 検査・書式・テスト・前のリリースとの差分がすべて通ったときだけ署名する / "
                   "release rules: signed only "
                   "when check --strict, fmt --check, the tests and the diff against the previous release all pass");
    rel_cmd
        ->add_option("--previous", release_options.previous,
                     "前のリリース (署名したバンドル。最初のリリースはルールのディレクトリと --release) / the previous "
                     "release (a signed bundle)")
        ->required();
    rel_cmd->add_option("--rules", release_options.rules, "新しいルールのディレクトリ / the new rules (a directory)")
        ->required();
    rel_cmd->add_option("--sign", release_options.sign_key, "Ed25519 の秘密鍵 (PEM) / the Ed25519 private key (PEM)")
        ->required();
    rel_cmd
        ->add_option("-o,--output", release_options.output,
                     "書き出すバンドル。差分レポートはその隣 (x.bundle → x.diff.md) / the bundle to write; the diff "
                     "report goes beside it")
        ->required();
    rel_cmd->add_option("--release", release_options.release,
                        "リリース番号 (既定: 前のリリース + 1) / the release number (default: the previous one's + 1)")
        ->check(CLI::Range(std::uint64_t(1), std::uint64_t(1) << 53));
    rel_cmd
        ->add_option("--corpus", release_options.corpus,
                     "差分の事例: realistic (既定)、generated、または JSON Lines のファイル / the diff's cases: "
                     "realistic (default), generated or a JSON Lines file")
        ->capture_default_str();
    rel_cmd->add_option("--cases", release_options.cases, "生成する事例の数 / how many cases to generate")
        ->capture_default_str()
        ->check(CLI::Range(1, 100000000));
    add_trust(rel_cmd);

    std::string key_name;
    auto* keygen = app.add_subcommand("keygen", "バンドルに署名する Ed25519 の鍵を作る (NAME.key と NAME.pub) / create "
                                                "an Ed25519 key pair for signing bundles");
    keygen->add_option("name", key_name, "鍵のファイル名 (拡張子なし) / file name without extension")->required();

#ifdef KYOTAKU_WITH_SERVER
    // Every setting of `serve` is also a key of the configuration file's [serve] table and a KYOTAKU_* variable
    // (server/ops/config.hpp); flags given here win over both.
    auto* srv =
        app.add_subcommand("serve", "資格確認の参照サーバを起動する (HTTPS) / run the reference verification server");
    std::map<std::string, std::string> serve_values;
    std::vector<std::pair<std::string, CLI::Option*>> serve_flags;
    std::vector<std::string> serve_trust;  // repeatable on the command line; a comma-separated list elsewhere
    for (auto const& s : kyotaku::server::serve_settings())
        serve_flags.emplace_back(s.key,
                                 std::string(s.key) == "trust"
                                     ? srv->add_option(s.flag, serve_trust, std::string(s.help) + " [" + s.env + "]")
                                     : srv->add_option(s.flag, serve_values[s.key],
                                                       std::string(s.help) + " [" + s.env + "]"));
    std::string config_file;
    bool check_config = false;
    srv->add_option("--config", config_file, "設定ファイル (TOML) / configuration file (TOML) [KYOTAKU_CONFIG]")
        ->envname("KYOTAKU_CONFIG");
    srv->add_flag(
        "--check-config", check_config,
        "設定を確かめて表示し、起動せずに終わる / check and print the configuration, then exit without serving");
    kyotaku::server::RelayOptions relay_options;
    auto* rel = app.add_subcommand(
        "relay", "req フォルダの要求ファイルをサーバに送り、結果を res に書く / the folder relay of receipt computers");
    rel->add_option("--dir", relay_options.dir, "req と res のあるフォルダ / the folder holding req and res")
        ->required();
    rel->add_option("--server", relay_options.server, "サーバ / server URL")->capture_default_str();
    rel->add_option("--ca", relay_options.ca, "サーバの CA 証明書 / the server's CA certificate")->required();
    rel->add_option("--cert", relay_options.cert, "施設のクライアント証明書 / the facility's client certificate")
        ->required();
    rel->add_option("--key", relay_options.key, "その秘密鍵 / its private key")->required();
    rel->add_option("--settle-ms", relay_options.settle_ms,
                    "書き込みが終わったとみなす静止時間 / quiet time before a file is read")
        ->capture_default_str();
    rel->add_option("--connect-timeout-ms", relay_options.connect_timeout_ms,
                    "名前解決・接続・TLS ハンドシェイクそれぞれの期限 / deadline of each of resolving, connecting and "
                    "the TLS handshake")
        ->capture_default_str()
        ->check(CLI::Range(1, 3'600'000));
    rel->add_option("--answer-timeout-ms", relay_options.answer_timeout_ms,
                    "要求の送信と応答の受信それぞれの期限 / deadline of sending the request, and of reading the answer")
        ->capture_default_str()->check(CLI::Range(1, 3'600'000));
    rel->add_option("--retry-ms", relay_options.retry_ms,
                    "失敗の後の最初の待ち時間 (毎回倍、最大1分) / first wait after a failure (doubled each time, at "
                    "most a minute)")
        ->capture_default_str()
        ->check(CLI::Range(1, 60'000));
    rel->add_option("--attempts", relay_options.max_attempts,
                    "送信の試行回数 (超えるとエラー結果) / send attempts before the file gets an error result")
        ->capture_default_str()->check(CLI::Range(1, 1000));
    rel->add_flag("--once", relay_options.once,
                  "今ある要求に答えたら終わる。終了コード 0 すべて回答、1 エラー結果あり、2 起動できない、3 req "
                  "に残った要求あり、4 SIGTERM で中断 / "
                  "answer what is there, then exit: 0 all answered, 1 some error results, 2 could not start, 3 some "
                  "left in req/, 4 stopped by SIGTERM");
    // A journal the server set aside at start (docs/operations.md 8.): read, and its good records applied.
    kyotaku::server::SetAsideJournalOptions journal_options;
    auto* jrn = app.add_subcommand("audit-journal",
                                   "退避された監査ジャーナル (<db>-audit.damaged-N) を読む・反映する / read or apply "
                                   "an audit journal the server set aside");
    jrn->require_subcommand(1);
    auto* jrn_check = jrn->add_subcommand(
        "check", "記録ごとに正常か破損 (バイト位置と理由) かを表示する。何も変えない。終了コード 0 すべて正常、1 "
                 "破損あり、2 読めない / print each record, good or damaged (its byte offset and why), changing "
                 "nothing: exit 0 all good, 1 some damaged, 2 cannot read");
    jrn_check->add_option("file", journal_options.file, "退避されたジャーナル / the set-aside journal")->required();
    auto* jrn_apply = jrn->add_subcommand(
        "apply", "正常な記録をすべて資格確認履歴に反映する (既にある行はそのまま。二度実行しても、サーバの稼働中でも"
                 "安全)。終了コード 0 すべて反映、1 破損は飛ばした、2 失敗 / apply every good record to the history "
                 "(a line already there is left as it is; safe to run twice and while the server runs): exit 0 all "
                 "applied, 1 damaged records skipped, 2 failed");
    jrn_apply->add_option("file", journal_options.file, "退避されたジャーナル / the set-aside journal")->required();
    jrn_apply->add_option("--db", journal_options.db, "SQLite のデータベース (作成はしない) / the SQLite database "
                                                      "(never created)")
        ->required();
    jrn_apply->add_flag("--remove", journal_options.remove,
                        "すべての記録が正常で反映済みならファイルを消す / remove the file once every record of it is "
                        "in the database (never when one is damaged)");
#endif
    try {
        app.parse(argc, argv);
    } catch (CLI::ParseError const& e) {
        return app.exit(e);
    }
    if (*eval) return kyotaku::cli::cmd_eval(eval_options, load_or_report);
    if (*test) return cmd_test(rules, verbose, trust);
    if (*chk) return cmd_check(rules, strict, check_json, no_prove);
    if (*exp) return cmd_explain(rules, json, input, full, trust);
    if (*dif) return cmd_diff(old_rules, new_rules, corpus, input, cases, seed, diff_format, examples, trust);
    if (*keygen) return cmd_keygen(key_name);
    if (*rel_cmd) return cmd_release(release_options, trust);
    if (*prv) return cmd_prove(rules, trust, prove_json);
    if (*fmt) return cmd_fmt(files, write, check);
    if (*comp) {
        if (output.empty() && emit_cpp_path.empty()) {
            std::cerr << "kyotaku compile: -o か --emit-cpp が必要です / -o or --emit-cpp is required\n";
            return 2;
        }
        return cmd_compile(rules, output, emit_cpp_path, cpp_namespace, sign_key, strict, release_number);
    }
    if (*ver) return cmd_verify_bundle(output, sources, report_path, trust);
#ifdef KYOTAKU_WITH_SERVER
    if (*srv) {
        kyotaku::server::ConfigSources sources;
        sources.file = config_file;
        for (auto const& [key, option] : serve_flags)
            if (option->count() > 0) {
                std::string value = serve_values[key];
                if (key == "trust")
                    for (std::size_t i = 0; i < serve_trust.size(); ++i) value += (i ? "," : "") + serve_trust[i];
                sources.flags[key] = value;
            }
        auto config = kyotaku::server::resolve_serve_config(sources);
        if (check_config) return kyotaku::server::check_config(config);
        return kyotaku::server::start_server(config);
    }
    if (*rel) return kyotaku::server::relay(relay_options);
    if (*jrn_check) return kyotaku::server::check_set_aside_journal(journal_options, std::cout, std::cerr);
    if (*jrn_apply) return kyotaku::server::apply_set_aside_journal(journal_options, std::cout, std::cerr);
#endif
    if (*dis) {
        auto program = load_or_report(rules, trust);
        if (!program) return 2;
        std::cout << program->disassemble();
        return 0;
    }
    return 0;
}
