// The `kyotaku` command: a thin main over the engine library (style.md, habit 9).
#include "kyotaku/engine.hpp"
#include "kyotaku/generated.hpp"
#include "kyotaku/jsonl.hpp"

#include <CLI/CLI.hpp>

#ifdef KYOTAKU_WITH_SERVER
#include "http_server.hpp"
#include "relay.hpp"
#endif

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

namespace {

using namespace kyotaku;

std::string slurp(std::istream& in) {
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// Loads a rule directory, a .rules file or a compiled bundle; prints diagnostics and returns null on failure.
std::shared_ptr<Program const> load_or_report(std::string const& path) {
    std::vector<Diagnostic> diags;
    auto r = load_rules(path, &diags);
    if (!r.program) {
        if (!diags.empty()) std::cerr << format_diagnostics(diags);
        else std::cerr << "kyotaku: " << path << ": " << r.error << "\n";
    }
    return r.program;
}

int cmd_eval(std::string const& rules, std::string const& input) {
    auto program = load_or_report(rules);
    if (!program) return 2;
    std::FILE* in = stdin;
    if (!input.empty() && input != "-") {
        in = std::fopen(input.c_str(), "rb");
        if (!in) {
            std::cerr << "kyotaku: " << input << ": 読み込めません / cannot open\n";
            return 2;
        }
    }
    JsonlEvaluator ev(program);
    ev.run(in, stdout);
    if (in != stdin) std::fclose(in);
    return 0;
}

int cmd_test(std::string const& rules, bool verbose) {
    auto program = load_or_report(rules);
    if (!program) return 2;
    auto report = run_tests(program);
    for (auto const& f : report.failures) std::cout << f.location << ": 失敗 FAIL 「" << f.test << "」: " << f.message << "\n";
    if (verbose)
        for (auto const& t : program->tests) std::cout << program->location(t.loc) << ": " << t.name << "\n";
    std::cout << report.passed << " passed, " << report.failed << " failed\n";
    return report.failed == 0 && report.passed > 0 ? 0 : 1;
}

int cmd_check(std::string const& rules) {
    std::vector<Diagnostic> diags;
    auto sources = read_rule_sources(rules, diags);
    if (diags.empty()) {
        auto c = compile(sources);
        diags = c.diagnostics;
        if (c.ok()) {
            std::cout << "ok: " << c.program->files.size() << " files, " << c.program->outputs.size() << " decisions, "
                      << c.program->slots.size() - c.program->outputs.size() << " lets, " << c.program->tests.size()
                      << " tests\n";
            return 0;
        }
    }
    std::cerr << format_diagnostics(diags);
    std::cerr << diags.size() << " error(s)\n";
    return 1;
}

int cmd_explain(std::string const& rules, std::string const& json, std::string const& input) {
    auto program = load_or_report(rules);
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
    std::string out = explain(program, facts);
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

int cmd_compile(std::string const& rules, std::string const& output, std::string const& emit_cpp_path) {
    std::vector<Diagnostic> diags;
    auto sources = read_rule_sources(rules, diags);
    if (!diags.empty()) {
        std::cerr << format_diagnostics(diags);
        return 1;
    }
    auto c = compile(sources);
    if (!c.ok()) {
        std::cerr << format_diagnostics(c.diagnostics);
        return 1;
    }
    if (!emit_cpp_path.empty()) {
        std::ofstream cpp(emit_cpp_path, std::ios::trunc);
        if (!cpp || !(cpp << emit_cpp(*c.program, "generated_rules"))) {
            std::cerr << "kyotaku: " << emit_cpp_path << ": 書き込めません / cannot write\n";
            return 1;
        }
        std::cout << emit_cpp_path << ": C++ for kyotaku::generated_rules (source hash " << std::hex << c.program->source_hash << std::dec << ")\n";
        if (output.empty()) return 0;
    }
    std::string bytes = save_bundle(*c.program);
    std::ofstream out(output, std::ios::binary | std::ios::trunc);
    if (!out || !out.write(bytes.data(), std::streamsize(bytes.size()))) {
        std::cerr << "kyotaku: " << output << ": 書き込めません / cannot write\n";
        return 1;
    }
    std::cout << output << ": " << bytes.size() << " bytes, source hash " << std::hex << c.program->source_hash << std::dec
              << ", " << compiler_version << "\n";
    return 0;
}

int cmd_verify_bundle(std::string const& bundle, std::string const& sources_dir) {
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
    auto r = load_bundle(bytes, hash);
    if (!r.program) {
        std::cerr << "kyotaku: " << bundle << ": " << r.error << "\n";
        return 1;
    }
    std::cout << bundle << ": ok (" << r.program->outputs.size() << " decisions)\n";
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"kyotaku — 居宅同意取得型 オンライン資格確認のルールエンジン (rule engine for home-visit online eligibility verification)"};
    app.require_subcommand(1);
    std::string rules = "rules", input, json, output, sources;
    bool verbose = false, write = false, check = false;
    std::vector<std::string> files;

    auto* eval = app.add_subcommand("eval", "JSON Lines の事実を読み、判定を JSON Lines で返す / evaluate JSON Lines of facts");
    eval->add_option("--rules", rules, "ルールのディレクトリ、.rules ファイル、またはバンドル / rules directory, file or bundle")->capture_default_str();
    eval->add_option("--input,-i", input, "入力ファイル (既定: 標準入力) / input file (default: stdin)");

    auto* test = app.add_subcommand("test", "ルールファイル内のテストを実行する / run the tests written in rule files");
    test->add_option("rules", rules, "ルールのディレクトリ / rules directory")->capture_default_str();
    test->add_flag("--list,-v", verbose, "テストの一覧も表示する / also list the tests");

    auto* chk = app.add_subcommand("check", "ルールを検査し診断だけを表示する / check rules, print diagnostics only");
    chk->add_option("rules", rules, "ルールのディレクトリ / rules directory")->capture_default_str();

    auto* exp = app.add_subcommand("explain", "一件の事例について判定の過程を日本語で説明する / explain one case in Japanese");
    exp->add_option("--rules", rules, "ルールのディレクトリ / rules directory")->capture_default_str();
    exp->add_option("facts", json, "事実の JSON (省略時は --input か標準入力) / facts as a JSON object");
    exp->add_option("--input,-i", input, "事実の JSON ファイル / file holding the facts");

    auto* fmt = app.add_subcommand("fmt", "ルールファイルを標準の書式に整える / format rule files canonically");
    fmt->add_option("files", files, "ファイルまたはディレクトリ / files or directories")->required();
    fmt->add_flag("--write,-w", write, "ファイルを書き換える / rewrite the files in place");
    fmt->add_flag("--check", check, "整形済みか確かめる (違えば終了コード 1) / exit 1 if not formatted");

    auto* comp = app.add_subcommand("compile", "ルールをバンドルにコンパイルする / compile rules into a bundle");
    comp->add_option("rules", rules, "ルールのディレクトリ / rules directory")->capture_default_str();
    std::string emit_cpp_path;
    comp->add_option("-o,--output", output, "出力するバンドル / bundle to write");
    comp->add_option("--emit-cpp", emit_cpp_path,
                     "ルールを C++ のソースとしても書き出す (kyotaku/generated.hpp) / also write the rules as C++ source");

    auto* dis = app.add_subcommand("disasm", "コンパイルした命令列を表示する (開発者向け) / print the compiled instructions");
    dis->add_option("rules", rules, "ルールのディレクトリかバンドル / rules directory or bundle")->capture_default_str();

    auto* ver = app.add_subcommand("verify-bundle", "バンドルを検証する / check that a bundle loads (and matches sources)");
    ver->add_option("bundle", output, "バンドル / bundle")->required();
    ver->add_option("--sources", sources, "このルールから作られたかも確かめる / also require it was built from these rules");

#ifdef KYOTAKU_WITH_SERVER
    kyotaku::server::ServeOptions serve_options;
    auto* srv = app.add_subcommand("serve", "資格確認の参照サーバを起動する (HTTPS, ループバックのみ) / run the reference verification server");
    srv->add_option("--host", serve_options.host, "待ち受けるアドレス (ループバックのみ) / loopback address to listen on")->capture_default_str();
    srv->add_option("--port", serve_options.port, "ポート (0 は空いているポート) / port (0: any free port)")->capture_default_str();
    srv->add_option("--db", serve_options.db, "SQLite のファイル、または postgresql:// の接続URL / SQLite file or PostgreSQL URL")->capture_default_str();
    srv->add_option("--rules", serve_options.rules, "ルールのディレクトリかバンドル / rules directory or bundle")->capture_default_str();
    srv->add_option("--tls-dir", serve_options.tls_dir, "ca.pem, server.pem, server.key のあるディレクトリ / TLS files")->capture_default_str();
    srv->add_option("--public-url", serve_options.public_url, "施設URLの先頭 (既定 https://HOST:PORT) / base of facility URLs");
    srv->add_option("--web-root", serve_options.web_root, "同意ページのファイル (既定: 実行ファイルの隣の web/) / the consent page's files (default: web/ beside the binary)");
    srv->add_option("--threads", serve_options.threads, "スレッド数 / worker threads")->capture_default_str()->check(CLI::Range(1, 64));
    srv->add_option("--test-clock", serve_options.test_clock,
                    "テスト・デモ用: サーバの「今日」をこの日から始める (運用者が POST /api/v1/admin/clock で動かせる) / tests and demos: start the "
                    "server's day on DATE (the operator may move it)");
    srv->add_option("--key-file", serve_options.key_file,
                    "鍵ファイル (0600; ないときは作る)。URL 鍵とパスコードを守る / the key file (0600; created when missing) that seals the URL keys "
                    "and keys the passcodes' hash (default: DB.key beside a SQLite database; required with PostgreSQL)");
    srv->add_option("--spool-dir", serve_options.spool_dir,
                    "大きなアップロードを一時的に置く専用ディレクトリ (0700) / private directory of spooled uploads (0700; default: DB.spool beside a "
                    "SQLite database, else kyotaku-spool-UID in the temporary directory)");
    srv->add_option("--max-connections", serve_options.limits.max_connections, "同時接続数の上限 / connections open at once")
        ->capture_default_str()
        ->check(CLI::Range(1, 100000));
    kyotaku::server::RelayOptions relay_options;
    auto* rel = app.add_subcommand("relay", "req フォルダの要求ファイルをサーバに送り、結果を res に書く / the folder relay of receipt computers");
    rel->add_option("--dir", relay_options.dir, "req と res のあるフォルダ / the folder holding req and res")->required();
    rel->add_option("--server", relay_options.server, "サーバ / server URL")->capture_default_str();
    rel->add_option("--ca", relay_options.ca, "サーバの CA 証明書 / the server's CA certificate")->required();
    rel->add_option("--cert", relay_options.cert, "施設のクライアント証明書 / the facility's client certificate")->required();
    rel->add_option("--key", relay_options.key, "その秘密鍵 / its private key")->required();
    rel->add_option("--settle-ms", relay_options.settle_ms, "書き込みが終わったとみなす静止時間 / quiet time before a file is read")->capture_default_str();
    rel->add_flag("--once", relay_options.once, "今ある要求に答えたら終わる / answer what is there, then exit");
#endif
    try {
        app.parse(argc, argv);
    } catch (CLI::ParseError const& e) {
        return app.exit(e);
    }
    if (*eval) return cmd_eval(rules, input);
    if (*test) return cmd_test(rules, verbose);
    if (*chk) return cmd_check(rules);
    if (*exp) return cmd_explain(rules, json, input);
    if (*fmt) return cmd_fmt(files, write, check);
    if (*comp) {
        if (output.empty() && emit_cpp_path.empty()) {
            std::cerr << "kyotaku compile: -o か --emit-cpp が必要です / -o or --emit-cpp is required\n";
            return 2;
        }
        return cmd_compile(rules, output, emit_cpp_path);
    }
    if (*ver) return cmd_verify_bundle(output, sources);
#ifdef KYOTAKU_WITH_SERVER
    if (*srv) return kyotaku::server::serve(serve_options);
    if (*rel) return kyotaku::server::relay(relay_options);
#endif
    if (*dis) {
        auto program = load_or_report(rules);
        if (!program) return 2;
        std::cout << program->disassemble();
        return 0;
    }
    return 0;
}
