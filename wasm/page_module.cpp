// The consent page's WebAssembly module (kyotaku-page.wasm): the compiled rules and the consent flow
// (consent_flow.hpp) behind three C functions. No embind and no JSON library: the page downloads this module on
// a phone's mobile connection before its first usable screen, so it carries only the bundle loader, the
// evaluator and the flow (web/engine.js is the one JavaScript facade over it). Lists travel as lines of text.
//
//   kp_open(bundle, size, facility_kind, home_care_feature, online_feature, today) → "" or "refused"
//   kp_get(what, arg)   → a value: a list (one per line), a text, "1"/"" for a yes/no
//   kp_do(action, arg)  → "" when the step was accepted, otherwise "refused"
// Why the last kp_open or kp_do refused is kept as a kyotaku::Message: kp_get("problem", "ja") and
// kp_get("problem", "en") give its two texts, apart (nobody splits a joined string).
#include "consent_flow.hpp"

#include <emscripten/emscripten.h>

#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace {

using kyotaku::Message;
using kyotaku::consent::Flow;

std::shared_ptr<kyotaku::Program const> program;
std::unique_ptr<Flow> flow;
std::string answer;    // the last answer; valid until the next call
Message last_problem;  // why the last kp_open or kp_do refused

char const* give(std::string text) {
    answer = std::move(text);
    return answer.c_str();
}

std::string lines(std::vector<std::string> const& list) {
    std::string out;
    for (auto const& s : list) out += (out.empty() ? "" : "\n") + s;
    return out;
}

std::vector<std::string> split_lines(std::string_view text) {
    std::vector<std::string> out;
    while (!text.empty()) {
        auto nl = text.find('\n');
        out.emplace_back(text.substr(0, nl));
        text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    }
    return out;
}

// "" when accepted; otherwise "refused", with the reason kept for kp_get("problem", …).
char const* problem(Message p) {
    last_problem = std::move(p);
    return give(last_problem.empty() ? "" : "refused");
}

}  // namespace

extern "C" {

EMSCRIPTEN_KEEPALIVE char const* kp_open(std::uint8_t const* bundle, int size, char const* facility_kind,
                                         int home_care_feature, int online_feature, char const* today) {
    flow.reset();
    auto loaded = kyotaku::load_bundle(std::string_view(reinterpret_cast<char const*>(bundle), std::size_t(size)));
    if (!loaded.program)
        return problem({"ルールを読み込めません: " + loaded.message.ja, "cannot load the rules: " + loaded.message.en});
    program = loaded.program;
    auto day = kyotaku::parse_date(today);
    if (!day.date) return problem({"today: " + day.message.ja, "today: " + day.message.en});
    // The rule contract, bound once: rules the server's contract refuses are refused here too, naming what they lack.
    auto bound = kyotaku::RuleContract::bind(program);
    if (auto* refused = std::get_if<Message>(&bound)) return problem(std::move(*refused));
    flow = std::make_unique<Flow>(
        std::move(std::get<kyotaku::RuleContract>(bound)),
        kyotaku::consent::Facility{facility_kind, home_care_feature != 0, online_feature != 0}, *day.date);
    return problem({});
}

EMSCRIPTEN_KEEPALIVE char const* kp_get(char const* what_c, char const* arg_c) {
    std::string_view const what = what_c;
    std::string const arg = arg_c;
    if (what == "wareki") return give(kyotaku::consent::wareki_of(arg));
    if (what == "problem") return give(arg == "en" ? last_problem.en : last_problem.ja);
    if (!flow) return give("");
    if (what == "step") return give(kyotaku::consent::to_string(flow->step()));
    if (what == "online") return give(flow->online() ? "1" : "");
    if (what == "staff_present") return give(flow->staff_present() ? "1" : "");
    if (what == "visit_kinds") return give(lines(flow->visit_kinds()));
    if (what == "visit_kind_note") return give(flow->visit_kind_note(arg));
    if (what == "unavailable_reason") return give(flow->unavailable_reason());
    if (what == "choices") return give(lines(flow->choices()));
    if (what == "chosen") return give(lines(flow->chosen()));
    if (what == "items") return give(lines(flow->items()));
    if (what == "identity_methods") return give(lines(flow->identity_methods()));
    if (what == "visit_kind") return give(flow->visit_kind());
    if (what == "identity_method") return give(flow->identity_method());
    if (what == "appointment") return give(flow->appointment());
    if (what == "today") return give(flow->today().iso());
    if (what == "last_appointment") {
        auto last = flow->last_appointment();
        return give(last ? last->iso() : std::string());
    }
    return give("");
}

EMSCRIPTEN_KEEPALIVE char const* kp_do(char const* action_c, char const* arg_c) {
    std::string_view const action = action_c;
    std::string const arg = arg_c;
    if (!flow) return problem({"準備ができていません", "the flow is not open"});
    if (action == "visit_kind") return problem(flow->choose_visit_kind(arg));
    if (action == "appointment") return problem(flow->set_appointment(arg));
    if (action == "items") return problem(flow->choose_items(split_lines(arg)));
    if (action == "identity") return problem(flow->choose_identity(arg));
    if (action == "finish") {
        flow->finish();
        return problem({});
    }
    if (action == "back") return problem(flow->back() ? Message{} : Message{"戻れません", "no step to go back to"});
    return problem({"不明な操作です", "unknown action"});
}

}  // extern "C"
