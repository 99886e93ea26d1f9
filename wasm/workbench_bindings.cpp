// The rule workbench's engine in WebAssembly (embind): the same parser, checker, compiler, test runner, explain
// and diff as the `kyotaku` command, for a policy officer editing rule files in the browser. A module of its own
// (kyotaku-workbench.js, the .wasm embedded): the consent page never loads it.
//
// Everything goes in and out as JSON text, so the page needs no knowledge of the engine's types:
//   setFiles('[{"path":"20_window.rules","text":"…"}, …]') → {"ok","errors","warnings","diagnostics":[…],"summary"}
//   runTests() → {"passed","failed","failures":[{"test","location","message"}]}
//   explain(facts, full) → text · sampleFacts() → one generated case (JSON)
//   setBaselineFiles(files) / setBaselineBundle(Uint8Array) → {"ok","error"} · diff(cases, seed) → diff_json, or
//   {"error","diagnostics"} when there is nothing to compare (the edited rules' errors)
//   format(path) → {"ok","text","diagnostics"}
//   searchInvariants(cases, seed) → {"cases","invariants":[{"name","label","location","checked","counterexample"}]}
#include "kyotaku/diff.hpp"
#include "kyotaku/engine.hpp"
#include "kyotaku/jsonl.hpp"

#include <emscripten/bind.h>
#include <emscripten/val.h>
#include <nlohmann/json.hpp>

#include <memory>
#include <optional>
#include <string>

namespace {

using kyotaku::Diagnostic;
using kyotaku::SourceFile;

std::vector<SourceFile> files_from_json(std::string const& text, std::string& error) {
    std::vector<SourceFile> files;
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (!j.is_array()) {
        error = "files: JSON の配列ではありません / not a JSON array";
        return files;
    }
    for (auto const& f : j) {
        if (!f.is_object() || !f.contains("path") || !f.contains("text") || !f["path"].is_string() ||
            !f["text"].is_string()) {
            error = "files: 各要素は {\"path\",\"text\"} です / each item is {\"path\",\"text\"}";
            return {};
        }
        files.push_back(SourceFile{f["path"].get<std::string>(), f["text"].get<std::string>()});
    }
    return files;
}

std::string result_json(bool ok, std::string const& error) {
    std::string out = std::string("{\"ok\":") + (ok ? "true" : "false") + ",\"error\":";
    kyotaku::append_json_string(out, error);
    return out + "}";
}

class Workbench {
public:
    // The rule files being edited: compiled at once; the diagnostics (errors and warnings) as JSON.
    std::string setFiles(std::string const& files_json) {
        std::string error;
        sources_ = files_from_json(files_json, error);
        if (!error.empty()) return result_json(false, error);
        auto result = kyotaku::compile(sources_);
        program_ = result.program;
        diagnostics_ = result.diagnostics;
        std::size_t const warnings = kyotaku::count_warnings(result.diagnostics);
        std::string out = std::string("{\"ok\":") + (program_ ? "true" : "false") +
                          ",\"errors\":" + std::to_string(result.diagnostics.size() - warnings) +
                          ",\"warnings\":" + std::to_string(warnings) +
                          ",\"diagnostics\":" + kyotaku::diagnostics_json(result.diagnostics) + ",\"summary\":";
        if (program_)
            out += "{\"files\":" + std::to_string(program_->files.size()) +
                   ",\"decisions\":" + std::to_string(program_->outputs.size()) +
                   ",\"lets\":" + std::to_string(program_->slots.size() - program_->outputs.size()) +
                   ",\"tests\":" + std::to_string(program_->tests.size()) + "}";
        else
            out += "null";
        return out + "}";
    }

    std::string runTests() const {
        if (!program_)
            return "{\"passed\":0,\"failed\":0,\"failures\":[],\"error\":\"ルールにエラーがあります / the rules have "
                   "errors\"}";
        auto report = kyotaku::run_tests(program_);
        std::string out = "{\"passed\":" + std::to_string(report.passed) +
                          ",\"failed\":" + std::to_string(report.failed) + ",\"failures\":[";
        for (std::size_t i = 0; i < report.failures.size(); ++i) {
            auto const& f = report.failures[i];
            if (i) out += ",";
            out += "{\"test\":";
            kyotaku::append_json_string(out, f.test);
            out += ",\"location\":";
            kyotaku::append_json_string(out, f.location);
            out += ",\"message\":";
            kyotaku::append_json_string(out, f.message);
            out += "}";
        }
        return out + "]}";
    }

    std::string explain(std::string const& facts, bool full) const {
        if (!program_) return "ルールにエラーがあります。先に直してください。\n";
        return kyotaku::explain(program_, facts, &sources_, full);
    }

    // One generated case over the edited rules' facts (to start explaining from).
    std::string sampleFacts(int index) const {
        if (!program_) return "{}";
        std::string line;
        int n = 0;
        kyotaku::generate_corpus(*program_, *program_, std::size_t(index) + 1, 1, [&](std::string_view l) {
            if (n++ == index) line = l;
        });
        return line;
    }

    std::string setBaselineFiles(std::string const& files_json) {
        std::string error;
        auto files = files_from_json(files_json, error);
        if (!error.empty()) return result_json(false, error);
        auto result = kyotaku::compile(std::move(files));
        baseline_ = result.program;
        return result_json(baseline_ != nullptr, baseline_ ? "" : kyotaku::format_diagnostics(result.diagnostics));
    }

    // The bundle the server runs (/web/rules.bundle): what the edited rules are compared with.
    std::string setBaselineBundle(emscripten::val bytes) {
        std::vector<std::uint8_t> const data = emscripten::convertJSArrayToNumberVector<std::uint8_t>(bytes);
        auto loaded = kyotaku::load_bundle(std::string_view(reinterpret_cast<char const*>(data.data()), data.size()));
        baseline_ = loaded.program;
        return result_json(baseline_ != nullptr, loaded.describe());
    }

    // The baseline against the edited rules over `cases` generated cases (kyotaku diff --corpus generated), for
    // the page (JSON) or to download (Markdown).
    std::string diff(int cases, int seed) const {
        auto r = compare(cases, seed);
        if (r) return kyotaku::diff_json(*r);
        // Nothing to compare: say why, pointing at the edited rules' errors (the page lists them, each a link).
        std::string out = "{\"error\":";
        if (!program_)
            kyotaku::append_json_string(
                out, "編集中のルールにエラーが " +
                         std::to_string(diagnostics_.size() - kyotaku::count_warnings(diagnostics_)) +
                         " 件あります。直すと比べられます / the edited rules have errors: fix them to compare");
        else
            kyotaku::append_json_string(out, "比べる相手 (公式ルール) を読み込んでいません / no baseline rules loaded");
        return out +
               ",\"diagnostics\":" + kyotaku::diagnostics_json(program_ ? std::vector<Diagnostic>{} : diagnostics_) +
               "}";
    }
    std::string diffMarkdown(int cases, int seed) const {
        auto r = compare(cases, seed);
        return r ? kyotaku::diff_markdown(*r) : "";
    }

    // The invariants (invariant NAME: EXPR) searched for a counterexample over `cases` generated cases. Z3 is not in
    // the page (no WebAssembly build of it in Debian): this can refute an invariant — a counterexample found here is
    // one — but never prove it; `kyotaku prove` (and `kyotaku check`, `kyotaku release`) proves it for every input.
    std::string searchInvariants(int cases, int seed) const {
        if (!program_) return "{\"error\":\"ルールにエラーがあります / the rules have errors\",\"invariants\":[]}";
        struct Found {
            std::string facts;
            std::uint64_t checked = 0;
        };
        std::vector<Found> found(program_->invariants.size());
        kyotaku::JsonlEvaluator reader(program_);
        kyotaku::Evaluator ev(program_);
        kyotaku::Activation facts(*program_);
        std::string id;
        kyotaku::generate_corpus(*program_, *program_, std::size_t(cases), std::uint64_t(seed),
                                 [&](std::string_view line) {
                                     if (!reader.read_facts(line, facts, id).empty()) return;
                                     for (std::size_t i = 0; i < found.size(); ++i) {
                                         if (!found[i].facts.empty()) continue;
                                         ++found[i].checked;
                                         kyotaku::Outcome const o =
                                             ev.evaluate_slot(facts, program_->invariants[i].slot);
                                         if (o.status == kyotaku::Status::ok && o.value == 0)
                                             found[i].facts = std::string(line);
                                     }
                                 });
        std::string out = "{\"cases\":" + std::to_string(cases) + ",\"invariants\":[";
        for (std::size_t i = 0; i < found.size(); ++i) {
            auto const& inv = program_->invariants[i];
            if (i) out += ",";
            out += "{\"name\":";
            kyotaku::append_json_string(out, inv.name);
            out += ",\"label\":";
            kyotaku::append_json_string(out, inv.label);
            out += ",\"location\":";
            kyotaku::append_json_string(out, program_->location(inv.loc));
            out += ",\"checked\":" + std::to_string(found[i].checked) + ",\"counterexample\":";
            if (found[i].facts.empty()) out += "null";
            else kyotaku::append_json_string(out, found[i].facts);
            out += "}";
        }
        return out + "]}";
    }

    std::string format(std::string const& path) const {
        for (auto const& s : sources_) {
            if (s.path != path) continue;
            auto r = kyotaku::format_source(s);
            std::string out = std::string("{\"ok\":") + (r.ok() ? "true" : "false") + ",\"text\":";
            kyotaku::append_json_string(out, r.text);
            return out + ",\"diagnostics\":" + kyotaku::diagnostics_json(r.diagnostics) + "}";
        }
        return "{\"ok\":false,\"text\":\"\",\"diagnostics\":[]}";
    }

private:
    std::optional<kyotaku::DiffReport> compare(int cases, int seed) const {
        if (!baseline_ || !program_) return std::nullopt;
        kyotaku::RuleDiff d(baseline_, program_);
        std::uint64_t n = 0;
        kyotaku::generate_corpus(*baseline_, *program_, std::size_t(cases), std::uint64_t(seed),
                                 [&](std::string_view line) { d.add(line, ++n); });
        auto report = d.report();
        report.old_rules = "読み込んだ公式ルール";
        report.new_rules = "編集中のルール";
        report.corpus = "生成した事例 (すべての enum の値、日付の境目と月末)";
        return report;
    }

    std::vector<SourceFile> sources_;
    std::vector<Diagnostic> diagnostics_;
    std::shared_ptr<kyotaku::Program const> program_, baseline_;
};

}  // namespace

EMSCRIPTEN_BINDINGS(kyotaku_workbench) {
    emscripten::class_<Workbench>("Workbench")
        .constructor<>()
        .function("setFiles", &Workbench::setFiles)
        .function("runTests", &Workbench::runTests)
        .function("explain", &Workbench::explain)
        .function("sampleFacts", &Workbench::sampleFacts)
        .function("setBaselineFiles", &Workbench::setBaselineFiles)
        .function("setBaselineBundle", &Workbench::setBaselineBundle)
        .function("diff", &Workbench::diff)
        .function("diffMarkdown", &Workbench::diffMarkdown)
        .function("searchInvariants", &Workbench::searchInvariants)
        .function("format", &Workbench::format);
}
