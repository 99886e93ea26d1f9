// libFuzzer target: any bytes as a line of facts for the official rules (kyotaku eval's input, from integrators'
// files). Every line gets exactly one answer — decisions or {"id":…,"error":…} — that is itself valid JSON; no
// crash, no hang, nothing read past the line.
#include "kyotaku/engine.hpp"
#include "kyotaku/jsonl.hpp"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>

namespace {
kyotaku::JsonlEvaluator& evaluator() {
    static auto compiled = kyotaku::compile_directory(KYOTAKU_FUZZ_RULES);
    if (!compiled.ok()) __builtin_trap();
    static kyotaku::JsonlEvaluator ev(compiled.program);
    return ev;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
    std::string line(reinterpret_cast<char const*>(data), size);
    if (line.find('\n') != std::string::npos) return 0;  // one line at a time, as kyotaku eval splits them
    std::string out;
    evaluator().answer_line(line, out);
    bool blank = line.find_first_not_of(" \t\r") == std::string::npos;
    if (blank) {
        if (!out.empty()) __builtin_trap();  // blank lines are skipped
        return 0;
    }
    if (out.empty() || out.back() != '\n' || out.find('\n') != out.size() - 1) __builtin_trap();  // one answer
    // The answer is JSON (RFC 8259: an id like 4444…4 of any length is a valid number, which simdjson's DOM
    // would refuse as a big integer, so a general validator checks it).
    if (!nlohmann::json::accept(std::string_view(out.data(), out.size() - 1))) __builtin_trap();
    return 0;
}
