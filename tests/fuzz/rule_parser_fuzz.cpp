// libFuzzer target: any bytes as a rule file. Parsing, checking, compiling, formatting and (when it compiles)
// evaluating must never crash or hang; errors must come back as diagnostics.
#include "kyotaku/engine.hpp"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
    std::string text(reinterpret_cast<char const*>(data), size);
    auto formatted = kyotaku::format_source({"fuzz.rules", text});
    auto r = kyotaku::compile({{"fuzz.rules", text}});
    if (!r.ok()) {
        if (r.diagnostics.empty()) __builtin_trap();  // a failure must say why
        (void)kyotaku::format_diagnostics(r.diagnostics);
        return 0;
    }
    if (!formatted.ok()) __builtin_trap();  // what compiles must format
    // The formatted text must mean the same program.
    auto again = kyotaku::compile({{"fuzz.rules", formatted.text}});
    if (!again.ok()) __builtin_trap();
    kyotaku::Evaluator ev(r.program);
    kyotaku::Activation facts(*r.program);
    ev.evaluate(facts);
    (void)kyotaku::run_tests(r.program);
    auto bundle = kyotaku::save_bundle(*r.program);
    if (!kyotaku::load_bundle(bundle).program) __builtin_trap();
    return 0;
}
