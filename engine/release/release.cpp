// kyotaku release: check, format, tests, proofs and the diff against the previous release, then the signature.
#include "kyotaku/release.hpp"

#include "kyotaku/prove.hpp"
#include "kyotaku/signing.hpp"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace kyotaku {

namespace fs = std::filesystem;

std::string release_report_path(std::string const& output) {
    std::string const ext = ".bundle";
    if (output.size() > ext.size() && output.compare(output.size() - ext.size(), ext.size(), ext) == 0)
        return output.substr(0, output.size() - ext.size()) + ".diff.md";
    return output + ".diff.md";
}

namespace {
std::string read_all(std::string const& path, bool& ok) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    ok = bool(in) || in.eof();
    return ss.str();
}

// Writes a file whole or not at all: a temporary beside it, renamed over it.
bool write_whole(std::string const& path, std::string const& bytes) {
    std::string const tmp = path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        if (!out || !out.write(bytes.data(), std::streamsize(bytes.size())) || !out.flush()) {
            std::error_code ec;
            fs::remove(tmp, ec);
            return false;
        }
    }
    std::error_code ec;
    fs::rename(tmp, path, ec);
    return !ec;
}

std::string plural(std::size_t n, char const* what) { return std::to_string(n) + " " + what; }
}  // namespace

ReleaseOutcome make_release(ReleaseOptions const& o, std::function<void(ReleaseStep const&)> const& progress) {
    ReleaseOutcome out;
    auto step = [&](std::string name, bool ok, std::string summary, std::string detail = {}) {
        out.steps.push_back(ReleaseStep{std::move(name), ok, std::move(summary), std::move(detail)});
        if (progress) progress(out.steps.back());
        return ok;
    };
    bool all_ok = true;

    // The signing key: its public half checks the previous release unless other keys are trusted.
    PublicKey const signer = public_key_of_private(o.sign_key);
    if (!signer.ok()) {
        step("sign", false, "署名の鍵を読めません / cannot read the signing key", signer.error.text());
        return out;
    }
    out.key_id = key_fingerprint(signer.raw);

    // The new rules: compiled with no error and no warning.
    std::vector<Diagnostic> io;
    auto sources = read_rule_sources(o.rules, io);
    std::shared_ptr<Program const> program;
    if (!io.empty()) {
        all_ok = step("check --strict", false, "ルールを読めません / cannot read the rules", format_diagnostics(io));
    } else {
        auto c = compile(sources);
        program = c.program;
        std::size_t const warnings = count_warnings(c.diagnostics), errors = c.diagnostics.size() - warnings;
        all_ok &= step("check --strict", c.ok() && warnings == 0,
                       c.ok() && warnings == 0 ? plural(sources.size(), "files") + ", no error, no warning"
                                               : plural(errors, "error(s)") + ", " + plural(warnings, "warning(s)"),
                       format_diagnostics(c.diagnostics));
    }
    // Canonical format.
    if (io.empty()) {
        std::string unformatted;
        for (auto const& src : sources) {
            auto f = format_source(src);
            if (!f.ok() || f.text != src.text)
                unformatted += src.path + ": 整形されていません (kyotaku fmt -w) / not formatted\n";
        }
        all_ok &=
            step("fmt --check", unformatted.empty(), unformatted.empty() ? "canonical" : "not canonical", unformatted);
    }
    if (!program) return out;

    // The rules' own tests.
    TestReport const tests = run_tests(program);
    std::string failures;
    for (auto const& f : tests.failures) failures += f.location + ": 失敗 FAIL 「" + f.test + "」: " + f.message + "\n";
    all_ok &= step("test", tests.failed == 0 && tests.passed > 0,
                   std::to_string(tests.passed) + " passed, " + std::to_string(tests.failed) + " failed", failures);

    // The invariants, proven for every input of their domain.
    ProofReport const proofs = prove(program);
    all_ok &=
        step("prove", proofs.ok(), proofs.summary(), proofs.ok() ? std::string() : format_proofs(*program, proofs));

    // The previous release: signed by a trusted key (the signing key unless others are given); its number.
    std::shared_ptr<Program const> previous;
    std::error_code ec;
    bool read_ok = false;
    std::string const previous_bytes =
        fs::is_regular_file(o.previous, ec) ? read_all(o.previous, read_ok) : std::string();
    if (read_ok && previous_bytes.rfind("KYTKBNDL", 0) == 0) {
        std::vector<std::string> const trusted =
            o.trusted_keys.empty() ? std::vector<std::string>{signer.raw} : o.trusted_keys;
        bool const is_signed = split_bundle(previous_bytes).is_signed();
        Message const refusal = is_signed ? check_bundle_signature(previous_bytes, trusted) : Message{};
        auto loaded = refusal.empty() ? load_bundle(previous_bytes) : LoadResult{};
        if (!refusal.empty() || !loaded.program) {
            step("previous", false, "前のリリースを使えません / the previous release cannot be used",
                 o.previous + ": " + (refusal.empty() ? loaded.describe() : refusal.text()));
            return out;
        }
        previous = loaded.program;
        out.previous_release = is_signed ? loaded.release.release : 0;
    } else {
        auto loaded = load_rules(o.previous);
        if (!loaded.program) {
            step("previous", false, "前のリリースを読めません / cannot read the previous release",
                 o.previous + ": " + loaded.describe());
            return out;
        }
        previous = loaded.program;
    }
    out.release = o.release ? o.release : out.previous_release + 1;
    if (out.previous_release == 0 && o.release == 0) {
        step("previous", false, "前のリリースに番号がありません / the previous rules carry no release number",
             o.previous +
                 " は署名したリリースではありません。最初のリリースなら --release 1 のように番号を指定してください / " +
                 o.previous + " is not a signed release: for a first release, give the number (--release 1)");
        return out;
    }
    if (out.release <= out.previous_release) {
        step("previous", false, "リリース番号が前のリリース以下です / the release number does not move forward",
             "release " + std::to_string(out.release) + " <= previous release " + std::to_string(out.previous_release));
        return out;
    }
    step("previous", true,
         (out.previous_release ? "release " + std::to_string(out.previous_release) : std::string("unnumbered rules")) +
             " → release " + std::to_string(out.release));

    // What the change does, against the previous release.
    RuleDiff diff(previous, program);
    std::string described;
    if (o.corpus == "realistic") {
        std::uint64_t n = 0;
        generate_realistic_corpus(*previous, *program, o.cases, o.seed,
                                  [&](std::string_view line, std::string const& cls) { diff.add(line, ++n, cls); });
        described = "現実的な事例 (ルールの assume を満たし、入力がそろった事例、seed " + std::to_string(o.seed) + ")";
    } else if (o.corpus == "generated") {
        std::uint64_t n = 0;
        generate_corpus(*previous, *program, o.cases, o.seed, [&](std::string_view line) { diff.add(line, ++n); });
        described = "生成した事例 (すべての enum の値、日付の境目と月末、seed " + std::to_string(o.seed) + ")";
    } else {
        std::FILE* in = std::fopen(o.corpus.c_str(), "rb");
        if (!in) {
            step("diff", false, "事例のファイルを開けません / cannot open the corpus", o.corpus);
            return out;
        }
        diff.add_stream(in);
        std::fclose(in);
        described = o.corpus;
    }
    DiffReport report = diff.report();
    report.old_rules = o.previous;
    report.new_rules = o.rules;
    report.corpus = described;
    all_ok &= step("diff", !report.corpus_error(),
                   report.corpus_error()
                       ? "the corpus cannot be compared (no case, or unreadable lines)"
                       : std::to_string(report.cases) + " cases, " + std::to_string(report.changed_cases) +
                             " with a changed answer, " + std::to_string(report.values.size()) + " param(s) changed",
                   report.corpus_error() ? diff_markdown(report) : std::string());
    if (!all_ok) {
        step("sign", false, "一つでも失敗したので署名しません / not signed: a step failed");
        return out;
    }

    // The report, with the steps that passed, then the bundle that names its hash.
    std::string text = "# リリース " + std::to_string(out.release) + " (kyotaku release)\n\n";
    text += "- 前のリリース: " + (out.previous_release ? std::to_string(out.previous_release) : std::string("なし")) +
            " (`" + o.previous + "`)\n";
    text += "- ルール: `" + o.rules + "` (ソースのハッシュ " + source_hash_hex(program->source_hash) + ")\n";
    text += "- 署名の鍵: " + out.key_id + "\n";
    for (auto const& s : out.steps) text += "- " + s.name + ": " + s.summary + "\n";
    text += "\n" + diff_markdown(report);
    out.report_path = release_report_path(o.output);
    out.report_sha256 = sha256_hex(text);
    SignResult signed_bundle =
        sign_bundle(save_bundle(*program, ReleaseInfo{out.release, {}, out.report_sha256}), o.sign_key);
    if (!signed_bundle.ok()) {
        step("sign", false, "署名できません / cannot sign", signed_bundle.error.text());
        return out;
    }
    if (!write_whole(out.report_path, text) || !write_whole(o.output, signed_bundle.bundle)) {
        step("sign", false, "書き込めません / cannot write", out.report_path + ", " + o.output);
        return out;
    }
    out.ok = step("sign", true,
                  "release " + std::to_string(out.release) + ", key " + out.key_id + ", report " + out.report_path);
    return out;
}

}  // namespace kyotaku
