// libFuzzer target, grammar-aware: the fuzzer's bytes choose the productions of a rule-file generator, so every
// input is (nearly) a well-formed rule set — deep nesting up to the grammar's limit and beyond it, long chains of
// lets in either order, versions, matches, sets, reasons with {names}, tests — and reaches the checker, the
// compiler, the evaluator and the bundle validator instead of stopping at the first syntax error. Then:
//   - what compiles must format, and the formatted text must compile to the same decisions;
//   - evaluating generated facts never crashes; bundles round-trip;
//   - one instruction of the compiled program is altered at random: the validator either refuses the bundle or
//     the altered program evaluates without any memory error (AddressSanitizer) or undefined behaviour.
#include "kyotaku/engine.hpp"

#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace {

struct Gen {
    FuzzedDataProvider& in;
    std::string out;
    int lets = 0;
    int depth = 0;

    int pick(int n) { return in.ConsumeIntegralInRange(0, n - 1); }
    std::string let_name(int i) { return "l" + std::to_string(i); }
    std::string name_ref() {
        switch (pick(6)) {
            case 0: return "n";
            case 1: return "q";
            case 2: return "c";
            case 3: return "p";
            default: return lets > 0 ? let_name(pick(lets + 3)) : "n";  // may name a later let (a forward reference)
        }
    }
    // An expression; `type` is a hint only: type errors are allowed (they are diagnostics, not crashes).
    std::string expr(int type) {
        if (in.remaining_bytes() == 0 || depth > 120) return type == 1 ? "true" : "1";
        ++depth;
        std::string s;
        switch (pick(14)) {
            case 0: s = std::to_string(in.ConsumeIntegralInRange(-3, 40)); break;
            case 1: s = name_ref(); break;
            case 2: s = "(" + expr(type) + ")"; break;
            case 3: s = expr(0) + " + " + expr(0); break;
            case 4: s = expr(0) + (pick(2) ? " < " : " == ") + expr(0); break;
            case 5: s = expr(1) + (pick(2) ? " and " : " or ") + expr(1); break;
            case 6: s = "not " + expr(1); break;
            case 7: s = "if " + expr(1) + " then " + expr(type) + " else " + expr(type); break;
            case 8:
                s = "match c { 赤 => " + expr(type) + ", 青 => " + expr(type) +
                    (pick(2) ? ", _ => " + expr(type) : std::string()) + " }";
                break;
            case 9: s = "c in {赤" + std::string(pick(2) ? ", 緑" : "") + "}"; break;
            case 10: s = "q + " + expr(0) + " days"; break;
            case 11: s = "month_end(q)"; break;
            case 12: s = "period_end(q, " + expr(0) + ", 初日不算入)"; break;
            default: {  // a long run of operators
                int n = pick(300);
                s = expr(0);
                for (int i = 0; i < n; ++i) s += " * 1";
            }
        }
        --depth;
        return s;
    }
    std::string text() {
        std::string t = "\"理由";
        if (pick(2)) t += " {" + name_ref() + "}";
        return t + "\"";
    }
    void slot(bool decision) {
        std::string name = decision ? "d" + std::to_string(lets) : let_name(lets);
        ++lets;
        out += decision ? "decision " + name + " : " + (pick(2) ? "int" : "bool") : "let " + name;
        if (pick(4) == 0) out += " \"名前\"";
        switch (pick(3)) {
            case 0: out += " = " + expr(pick(2)) + (pick(3) == 0 ? " because " + text() : std::string()) + "\n"; break;
            case 1: {
                out += " {\n";
                for (int i = pick(4); i > 0; --i)
                    out += "  when " + expr(1) + " => " + expr(0) + " because " + text() + "\n";
                out += "  otherwise => " + expr(0) + "\n}\n";
                break;
            }
            default:
                out += "\n  version \"a\" until 2024-09-30 { otherwise => " + expr(0) + " }\n"
                       "  version \"b\" from 2024-10-01 { otherwise => " + expr(0) + " }\n";
        }
    }
    std::string file() {
        out = "asof q\nenum 色 { 赤, 青, 緑 }\nfact n : int\nfact q : date\nfact c : 色\nparam p = 3\n";
        while (in.remaining_bytes() > 0 && lets < 5000) {
            switch (pick(8)) {
                case 0: slot(true); break;
                case 1: {  // a chain of lets, each using the next or the previous one
                    int n = in.ConsumeIntegralInRange(1, 2000);
                    bool forward = pick(2);
                    for (int i = 0; i < n; ++i, ++lets)
                        out += "let " + let_name(lets) + " = " +
                               (forward ? let_name(lets + 1)
                                : lets  ? let_name(lets - 1)
                                        : "n") +
                               " + 1\n";
                    if (forward) out += "let " + let_name(lets++) + " = n\n";
                    break;
                }
                case 2: {  // parentheses around the grammar's nesting limit
                    int n = in.ConsumeIntegralInRange(90, 110);
                    out += "let " + let_name(lets++) + " = " + std::string(std::size_t(n), '(') + "n" +
                           std::string(std::size_t(n), ')') + "\n";
                    break;
                }
                case 3:
                    out += "test \"t\" { given n = " + std::to_string(pick(9)) +
                           " q = 2024-10-01 c = 青 expect d0 = " + std::to_string(pick(3)) + " }\n";
                    break;
                case 4: out += "# コメント\n"; break;
                default: slot(false);
            }
        }
        return out;
    }
};

void evaluate_some(std::shared_ptr<kyotaku::Program const> const& p) {
    kyotaku::Evaluator ev(p);
    kyotaku::Activation facts(*p);
    ev.evaluate(facts);
    facts.set_int("n", 7);
    facts.set_date("q", *kyotaku::Date::from_ymd(2024, 10, 1));
    facts.set_enum("c", "青");
    ev.evaluate(facts);
    for (std::uint32_t s = 0; s < p->slots.size() && s < 64; ++s) (void)ev.evaluate_slot(facts, s);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
    FuzzedDataProvider in(data, size);
    std::uint32_t const mutation = in.ConsumeIntegral<std::uint32_t>();
    Gen gen{in, {}, 0, 0};
    std::string const text = gen.file();
    auto r = kyotaku::compile({{"gen.rules", text}});
    if (!r.ok()) {
        if (!kyotaku::has_errors(r.diagnostics)) __builtin_trap();  // a failure must say why
        (void)kyotaku::format_diagnostics(r.diagnostics);
        return 0;
    }
    auto formatted = kyotaku::format_source({"gen.rules", text});
    if (!formatted.ok()) __builtin_trap();
    auto again = kyotaku::compile({{"gen.rules", formatted.text}});
    if (!again.ok() || again.program->outputs.size() != r.program->outputs.size()) __builtin_trap();
    evaluate_some(r.program);
    (void)kyotaku::run_tests(r.program);
    (void)r.program->disassemble();
    std::string bundle = kyotaku::save_bundle(*r.program);
    if (!kyotaku::load_bundle(bundle).program) __builtin_trap();
    // One instruction altered: refused, or harmless.
    kyotaku::Program altered = *r.program;
    if (!altered.code.empty()) {
        auto& i = altered.code[mutation % altered.code.size()];
        switch ((mutation >> 16) % 6) {
            case 0: i.a = std::uint16_t(i.a + 1 + (mutation >> 24)); break;
            case 1: i.b = std::uint16_t(i.b + 1 + (mutation >> 24)); break;
            case 2: i.c = std::uint16_t(i.c ^ (mutation >> 24 | 1)); break;
            case 3: i.d = std::int32_t(i.d + 1 - int((mutation >> 24) & 3)); break;
            case 4:
                i.op =
                    kyotaku::Op(std::uint16_t((std::uint32_t(i.op) + 1 + (mutation >> 24)) % (kyotaku::op_count + 2)));
                break;
            default: altered.code.pop_back(); break;
        }
    }
    auto loaded = kyotaku::load_bundle(kyotaku::save_bundle(altered));
    if (loaded.program) evaluate_some(loaded.program);
    return 0;
}
