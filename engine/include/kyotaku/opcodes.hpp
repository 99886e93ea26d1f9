// The instruction set of the compiled rule program: ONE table (Lua's lopcodes.h style) from which the enum, the
// disassembler, the bundle validator, the evaluator's dispatch and the C++ emitter are all derived.
//
// Registers hold 64-bit integers. A value's meaning follows from its static type, which the checker fixed:
//   bool 0/1 · int · date = days since 1970-01-01 · month = year*12 + month-1 · enum = value index ·
//   set<enum> = bit mask · text = clause id (>= 0, "the reason of that clause") or -(string id)-1 ·
//   初日 (first-day rule) = enum index (0 初日不算入, 1 初日算入).
// Month sets are never in registers: instructions name the fact that holds one (a 1,024-month bit set).
// Each let/decision ("slot") is one function over its own register window; its result lives in its first register.
//
// The table: X(NAME, FLOW, A, B, C, D, semantics…)
//   FLOW  next  — falls through to the next instruction (jumps, if any, are forward and inside the function)
//         end   — never falls through (JMP, VERSION, RET, RETK)
//         call  — may call another slot (pushes one frame on the evaluator's own call stack; its RET pops it)
//   A–D   what each operand is; the validator checks each by its kind:
//         _ unused (must be 0) · R register read · W register written · K constant index · F fact (not a month
//         set) · M month-set fact · P param · S another slot · O the function's own slot · C clause of the
//         function's own slot · J jump target (forward, inside the function) · N a small literal (checked per op)
//   semantics — for every instruction but the five "control" ones (SLOT, REASON, VERSION, RET, RETK), the C++
//         statement that IS the instruction: the evaluator expands it in its dispatch loop and the C++ emitter
//         prints it with the operands as literals. It is written with A B C D (operands), r[…] (registers),
//         K(i) (constant i), V(f) (fact f's value), P(i) (param i), MONTHS(f) (fact f's month set),
//         NEED(f) (the slot fails as "missing fact" unless f is present), JUMP(pc), FAIL() (corrupt record: the
//         slot fails) and TRACE_COND(clause, truth) (explain's trace); vm:: helpers wrap integer overflow and
//         bound shifts so that no input is undefined behaviour.
#pragma once

#include "kyotaku/cxx20.hpp"  // first: a clear message for a C++17 consumer

#include <cstddef>
#include <cstdint>

#define KYOTAKU_OPCODES(X)                                                                                        \
    X(LOADK, next, W, _, _, K, r[A] = K(D))                                                                       \
    X(LOADF, next, W, F, _, _, NEED(B); r[A] = V(B))                                                              \
    X(LOADP, next, W, P, _, _, r[A] = P(B))                                                                       \
    X(SLOT, call, W, S, _, _, )  /* r[a] = value of slot b (evaluated on first use, then memoised per record) */ \
    X(MOV, next, W, R, _, _, r[A] = r[B])                                                                         \
    X(NOT, next, W, R, _, _, r[A] = !r[B])                                                                        \
    X(NEG, next, W, R, _, _, r[A] = vm::sub(0, r[B]))                                                             \
    X(JMP, end, _, _, _, J, JUMP(D))                                                                              \
    X(JMPF, next, R, _, _, J, if (!r[A]) JUMP(D))                                                                 \
    X(JMPT, next, R, _, _, J, if (r[A]) JUMP(D))                                                                  \
    X(COND, next, R, C, _, J, TRACE_COND(B, r[A]); if (!r[A]) JUMP(D))                                            \
    X(ADD, next, W, R, R, _, r[A] = vm::add(r[B], r[C]))                                                          \
    X(SUB, next, W, R, R, _, r[A] = vm::sub(r[B], r[C]))                                                          \
    X(MUL, next, W, R, R, _, r[A] = vm::mul(r[B], r[C]))                                                          \
    X(EQ, next, W, R, R, _, r[A] = r[B] == r[C])                                                                  \
    X(NE, next, W, R, R, _, r[A] = r[B] != r[C])                                                                  \
    X(LT, next, W, R, R, _, r[A] = r[B] < r[C])                                                                   \
    X(LE, next, W, R, R, _, r[A] = r[B] <= r[C])                                                                  \
    X(EIN, next, W, R, R, _, r[A] = vm::bit(r[C], r[B]))                                                          \
    X(ADDK, next, W, R, _, K, r[A] = vm::add(r[B], K(D)))                                                         \
    X(SUBK, next, W, R, _, K, r[A] = vm::sub(r[B], K(D)))                                                         \
    X(EQK, next, W, R, _, K, r[A] = r[B] == K(D))                                                                 \
    X(NEK, next, W, R, _, K, r[A] = r[B] != K(D))                                                                 \
    X(LTK, next, W, R, _, K, r[A] = r[B] < K(D))                                                                  \
    X(LEK, next, W, R, _, K, r[A] = r[B] <= K(D))                                                                 \
    X(GTK, next, W, R, _, K, r[A] = r[B] > K(D))                                                                  \
    X(GEK, next, W, R, _, K, r[A] = r[B] >= K(D))                                                                 \
    X(EINK, next, W, R, _, K, r[A] = vm::bit(K(D), r[B]))                                                         \
    X(MIN, next, W, R, M, _, NEED(C); r[A] = MONTHS(C).has(r[B]))                                                 \
    X(MALL, next, W, R, R, M, NEED(D); r[A] = MONTHS(D).all(r[B], r[C]))                                          \
    X(MMISS, next, W, R, R, M, NEED(D); r[A] = MONTHS(D).first_missing(r[B], r[C]))                               \
    X(PSTART, next, W, R, R, _, r[A] = period_start(Date::from_days(r[B]), FirstDay(r[C] != 0)).days())           \
    X(PEND, next, W, R, R, R, r[A] = period_end(Date::from_days(r[B]), r[C], FirstDay(r[D] != 0)).days())         \
    X(ADDM, next, W, R, R, N, r[A] = add_months(Date::from_days(r[B]), r[C], Rounding(D)).days())                 \
    X(MEND, next, W, R, _, _, r[A] = month_end(Date::from_days(r[B])).days())                                     \
    X(MENDM, next, W, R, _, _, r[A] = Month::from_index(r[B]).last_day().days())                                  \
    X(MOF, next, W, R, _, _, r[A] = Month::of(Date::from_days(r[B])).index())                                     \
    X(REASON, call, W, S, _, _, )    /* r[a] = the clause that decided slot b (evaluated first), as text */        \
    X(VERSION, end, O, _, _, _, )    /* jump to the version of slot a in force on the as-of date, or fail */       \
    X(RET, end, O, C, _, _, )        /* slot a was decided by clause b; its value is in its result register */     \
    X(RETK, end, O, C, _, K, )       /* the same, with constant d as the value */                                  \
    X(TABLE, next, W, R, N, K, if (std::uint64_t(r[B]) >= C) FAIL(); r[A] = K(D + r[B]))                          \
    X(CONDLT, next, C, R, R, J, { bool const t = r[B] < r[C]; TRACE_COND(A, t); if (!t) JUMP(D); })               \
    X(CONDLE, next, C, R, R, J, { bool const t = r[B] <= r[C]; TRACE_COND(A, t); if (!t) JUMP(D); })              \
    X(CONDNOT, next, C, R, _, J, { bool const t = !r[B]; TRACE_COND(A, t); if (!t) JUMP(D); })

namespace kyotaku {

enum class Op : std::uint16_t {
#define KYOTAKU_OP_ENUM(name, ...) name,
    KYOTAKU_OPCODES(KYOTAKU_OP_ENUM)
#undef KYOTAKU_OP_ENUM
};

struct Instr {
    Op op;
    std::uint16_t a = 0, b = 0, c = 0;
    std::int32_t d = 0;
};

// What the table says about one opcode.
enum class OpFlow : std::uint8_t { next, end, call };
enum class OperandKind : std::uint8_t {
    none,
    reg_read,
    reg_write,
    constant,
    fact,
    month_set,
    param,
    slot,
    own_slot,
    clause,
    jump,
    literal
};

struct OpInfo {
    char const* name;
    OpFlow flow;
    OperandKind operands[4];  // a, b, c, d
    char const* semantics;  // empty for the control instructions
};

namespace opcode_detail {
inline constexpr OperandKind operand_kind(char k) {
    switch (k) {
        case 'R': return OperandKind::reg_read;
        case 'W': return OperandKind::reg_write;
        case 'K': return OperandKind::constant;
        case 'F': return OperandKind::fact;
        case 'M': return OperandKind::month_set;
        case 'P': return OperandKind::param;
        case 'S': return OperandKind::slot;
        case 'O': return OperandKind::own_slot;
        case 'C': return OperandKind::clause;
        case 'J': return OperandKind::jump;
        case 'N': return OperandKind::literal;
        default: return OperandKind::none;
    }
}
}  // namespace opcode_detail

inline constexpr OpInfo op_table[] = {
#define KYOTAKU_OP_INFO(name, flow, a, b, c, d, ...)                                 \
    OpInfo{#name,                                                                    \
           OpFlow::flow,                                                             \
           {opcode_detail::operand_kind(#a[0]), opcode_detail::operand_kind(#b[0]),  \
            opcode_detail::operand_kind(#c[0]), opcode_detail::operand_kind(#d[0])}, \
           #__VA_ARGS__},
    KYOTAKU_OPCODES(KYOTAKU_OP_INFO)
#undef KYOTAKU_OP_INFO
};
inline constexpr std::size_t op_count = sizeof op_table / sizeof op_table[0];
inline constexpr OpInfo const& op_info(Op op) { return op_table[std::size_t(op)]; }
inline constexpr bool valid_op(Op op) { return std::size_t(op) < op_count; }

// The arithmetic of the instruction set: two's-complement wrap-around (never undefined behaviour, whatever a
// fact or a bundle holds) and membership tests whose bit index is bounded.
namespace vm {
inline constexpr std::int64_t add(std::int64_t a, std::int64_t b) {
    return std::int64_t(std::uint64_t(a) + std::uint64_t(b));
}
inline constexpr std::int64_t sub(std::int64_t a, std::int64_t b) {
    return std::int64_t(std::uint64_t(a) - std::uint64_t(b));
}
inline constexpr std::int64_t mul(std::int64_t a, std::int64_t b) {
    return std::int64_t(std::uint64_t(a) * std::uint64_t(b));
}
// Whether value `index` is in the set `mask` (a set<enum> holds at most 64 values).
inline constexpr std::int64_t bit(std::int64_t mask, std::int64_t index) {
    return std::uint64_t(index) < 64 && ((std::uint64_t(mask) >> index) & 1u);
}
}  // namespace vm

}  // namespace kyotaku
