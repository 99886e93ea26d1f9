#include "eval_command.hpp"

#include "kyotaku/generated.hpp"
#include "kyotaku/jsonl.hpp"

#include <cstdio>
#include <filesystem>
#include <iostream>

// The official rules compiled into the command (cli/CMakeLists.txt): `kyotaku eval` decides with them when its
// --rules are these rules.
namespace kyotaku::cli {
extern kyotaku::GeneratedRules const generated_rules;
extern std::string_view const official_bundle;  // the same rules' bundle
}

namespace kyotaku::cli {

namespace {
// The rules for eval: a rule folder whose sources hash as the official rules built into this command is loaded from
// their bundle, built with the command from the same sources, instead of being compiled again (2-4 ms of start-up);
// anything else as `load` loads it.
std::shared_ptr<Program const> load_for_eval(EvalOptions const& options, RulesLoader load) {
    std::error_code ec;
    if (options.trust.empty() && std::filesystem::is_directory(options.rules, ec)) {
        std::vector<Diagnostic> diags;
        auto const sources = read_rule_sources(options.rules, diags);
        if (diags.empty() && hash_sources(sources) == generated_rules.source_hash)
            if (auto r = load_bundle(official_bundle, generated_rules.source_hash); r.program) return r.program;
    }
    return load(options.rules, options.trust);
}
}  // namespace

void add_trust_option(CLI::App* command, std::vector<std::string>& trust) {
    command
        ->add_option("--trust", trust,
                     "信頼する公開鍵 (PEM)。指定すると、その鍵で署名したバンドルしか読み込まない (繰り返し指定可) / "
                     "trusted public key: only bundles it signed are loaded (repeatable)")
        ->allow_extra_args(false);  // one key per --trust: the next argument is not another key
}

CLI::App* add_eval_command(CLI::App& app, EvalOptions& options) {
    auto* eval =
        app.add_subcommand("eval", "JSON Lines の事実を読み、判定を JSON Lines で返す / evaluate JSON Lines of facts");
    eval->add_option("--rules", options.rules,
                     "ルールのディレクトリ、.rules ファイル、またはバンドル / rules directory, file or bundle")
        ->capture_default_str();
    eval->add_option("--input,-i", options.input, "入力ファイル (既定: 標準入力) / input file (default: stdin)");
    add_trust_option(eval, options.trust);
    eval->add_flag("--interpret", options.interpret,
                   "組み込みの公式ルール (C++) を使わずインタプリタで判定 (答えは同じ) / decide with the interpreter "
                   "even when the "
                   "rules are the official rules built into this command (the answers are the same)");
    eval->add_option("--threads", options.threads,
                     "並行して判定するスレッド数 (出力の順序と内容は同じ) / how many threads answer lines at once (the "
                     "output is the same, in "
                     "the same order)")
        ->check(CLI::Range(1u, 64u))
        ->capture_default_str();
    return eval;
}

std::shared_ptr<Program const> reported(std::string const& path, LoadResult const& result,
                                        std::vector<Diagnostic> const& diagnostics) {
    if (!result.program) {
        if (!diagnostics.empty()) std::cerr << format_diagnostics(diagnostics);
        else std::cerr << "kyotaku: " << path << ": " << result.describe() << "\n";
    }
    return result.program;
}

int cmd_eval(EvalOptions const& options, RulesLoader load) {
    auto program = load_for_eval(options, load);
    if (!program) return 2;
    Input in(options.input);
    if (!in.file) return 2;
    JsonlEvaluator ev(program, options.interpret ? nullptr : &generated_rules);
    ev.run(in.file, stdout, options.threads);
    return 0;
}

}  // namespace kyotaku::cli
