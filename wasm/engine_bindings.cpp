// The rule engine in WebAssembly (embind): loads a compiled rule bundle (no rule parser in the browser) and
// evaluates facts with the same evaluator and the same JSON Lines writer as `kyotaku eval`; the parity test
// compares the two byte for byte. (The consent page uses the smaller kyotaku-page module: page_module.cpp.)
#include "kyotaku/engine.hpp"
#include "kyotaku/jsonl.hpp"

#include <emscripten/bind.h>
#include <emscripten/val.h>

#include <memory>
#include <string>

namespace {

class Rules {
public:
    // `bundle`: a Uint8Array with the bytes of `kyotaku compile` output.
    explicit Rules(emscripten::val bundle) {
        std::vector<std::uint8_t> const bytes = emscripten::convertJSArrayToNumberVector<std::uint8_t>(bundle);
        auto loaded = kyotaku::load_bundle(std::string_view(reinterpret_cast<char const*>(bytes.data()), bytes.size()));
        if (!loaded.program) {
            error_ = loaded.message.text();
            return;
        }
        program_ = loaded.program;
        jsonl_ = std::make_unique<kyotaku::JsonlEvaluator>(program_);
    }

    bool ok() const { return program_ != nullptr; }
    std::string error() const { return error_; }

    // JSON Lines of facts in, JSON Lines of decisions out: exactly `kyotaku eval`'s contract.
    std::string evalLines(std::string const& text) {
        std::string out;
        if (!jsonl_) return out;
        std::size_t start = 0;
        while (start <= text.size()) {
            std::size_t end = text.find('\n', start);
            if (end == std::string::npos) end = text.size();
            jsonl_->answer_line(std::string_view(text).substr(start, end - start), out);
            start = end + 1;
        }
        return out;
    }

    // One JSON object of facts → one JSON object of decisions (no newline).
    std::string evaluate(std::string const& facts_json) {
        std::string out;
        if (!jsonl_) return "{\"error\":\"no rules\"}";
        jsonl_->answer_line(facts_json, out);
        if (!out.empty() && out.back() == '\n') out.pop_back();
        return out;
    }

    // For the speed figure the tests report: reads the valid lines of `text` once, then evaluates every decision
    // of each record, `rounds` times over. Returns the number of records evaluated.
    double repeat(std::string const& text, int rounds) {
        if (!program_) return 0;
        std::vector<kyotaku::Activation> records;
        std::size_t start = 0;
        std::string id;
        while (start < text.size()) {
            std::size_t end = text.find('\n', start);
            if (end == std::string::npos) end = text.size();
            kyotaku::Activation facts(*program_);
            if (jsonl_->read_facts(std::string_view(text).substr(start, end - start), facts, id).empty())
                records.push_back(std::move(facts));
            start = end + 1;
        }
        kyotaku::Evaluator ev(program_);
        volatile int sink = 0;
        for (int i = 0; i < rounds; ++i)
            for (auto const& r : records) {
                ev.evaluate(r);
                sink = sink + int(ev.outcome(0).status);
            }
        return double(records.size()) * rounds;
    }

    std::shared_ptr<kyotaku::Program const> program() const { return program_; }

private:
    std::shared_ptr<kyotaku::Program const> program_;
    std::unique_ptr<kyotaku::JsonlEvaluator> jsonl_;
    std::string error_;
};

}  // namespace

EMSCRIPTEN_BINDINGS(kyotaku_engine) {
    emscripten::class_<Rules>("Rules")
        .constructor<emscripten::val>()
        .function("ok", &Rules::ok)
        .function("error", &Rules::error)
        .function("evalLines", &Rules::evalLines)
        .function("evaluate", &Rules::evaluate)
        .function("repeat", &Rules::repeat);
}
