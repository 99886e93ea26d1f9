// The rule engine in WebAssembly (embind): loads a compiled rule bundle (no rule parser in the browser) and
// evaluates facts with the same evaluator and the same JSON Lines writer as `kyotaku eval`; the parity test
// compares the two byte for byte.
#include "consent_flow.hpp"
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
            error_ = loaded.error;
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
            if (jsonl_->read_facts(std::string_view(text).substr(start, end - start), facts, id).empty()) records.push_back(std::move(facts));
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

emscripten::val to_js(std::vector<std::string> const& list) {
    emscripten::val out = emscripten::val::array();
    for (auto const& s : list) out.call<void>("push", s);
    return out;
}

// The consent page's flow (consent_flow.hpp) for JavaScript. Construction errors (rules without the page's
// lets, a bad date) leave error() non-empty.
class PageFlow {
public:
    PageFlow(Rules const& rules, std::string facility_kind, bool home_care_feature, bool online_feature, std::string today) {
        auto d = kyotaku::parse_date(today);
        if (!rules.program() || !d.date) {
            error_ = !rules.program() ? "ルールがありません / no rules" : "today: " + d.error;
            return;
        }
        try {
            flow_ = std::make_unique<kyotaku::consent::Flow>(rules.program(),
                kyotaku::consent::Facility{std::move(facility_kind), home_care_feature, online_feature}, *d.date);
        } catch (std::exception const& e) {
            error_ = e.what();
        }
    }
    std::string error() const { return error_; }
    std::string step() const { return flow_ ? kyotaku::consent::to_string(flow_->step()) : "error"; }
    bool online() const { return flow_ && flow_->online(); }
    emscripten::val visitKinds() const { return to_js(flow_ ? flow_->visit_kinds() : std::vector<std::string>{}); }
    std::string unavailableReason() const { return flow_ ? flow_->unavailable_reason() : error_; }
    std::string chooseVisitKind(std::string const& v) { return flow_ ? flow_->choose_visit_kind(v) : error_; }
    std::string setAppointment(std::string const& d) { return flow_ ? flow_->set_appointment(d) : error_; }
    emscripten::val choices() const { return to_js(flow_ ? flow_->choices() : std::vector<std::string>{}); }
    std::string chooseItems(emscripten::val chosen) {
        return flow_ ? flow_->choose_items(emscripten::vecFromJSArray<std::string>(chosen)) : error_;
    }
    emscripten::val identityMethods() const { return to_js(flow_ ? flow_->identity_methods() : std::vector<std::string>{}); }
    std::string chooseIdentity(std::string const& m) { return flow_ ? flow_->choose_identity(m) : error_; }
    void finish() {
        if (flow_) flow_->finish();
    }
    bool back() { return flow_ && flow_->back(); }
    emscripten::val chosen() const { return to_js(flow_ ? flow_->chosen() : std::vector<std::string>{}); }
    emscripten::val items() const { return to_js(flow_ ? flow_->items() : std::vector<std::string>{}); }
    std::string visitKind() const { return flow_ ? flow_->visit_kind() : ""; }
    std::string identityMethod() const { return flow_ ? flow_->identity_method() : ""; }
    std::string registration() const { return flow_ ? flow_->registration_json() : "{}"; }

private:
    std::unique_ptr<kyotaku::consent::Flow> flow_;
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
    emscripten::class_<PageFlow>("PageFlow")
        .constructor<Rules const&, std::string, bool, bool, std::string>()
        .function("error", &PageFlow::error)
        .function("step", &PageFlow::step)
        .function("online", &PageFlow::online)
        .function("visitKinds", &PageFlow::visitKinds)
        .function("unavailableReason", &PageFlow::unavailableReason)
        .function("chooseVisitKind", &PageFlow::chooseVisitKind)
        .function("setAppointment", &PageFlow::setAppointment)
        .function("choices", &PageFlow::choices)
        .function("chooseItems", &PageFlow::chooseItems)
        .function("identityMethods", &PageFlow::identityMethods)
        .function("chooseIdentity", &PageFlow::chooseIdentity)
        .function("finish", &PageFlow::finish)
        .function("back", &PageFlow::back)
        .function("chosen", &PageFlow::chosen)
        .function("items", &PageFlow::items)
        .function("visitKind", &PageFlow::visitKind)
        .function("identityMethod", &PageFlow::identityMethod)
        .function("registration", &PageFlow::registration);
}
