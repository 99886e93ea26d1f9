// The instruction set of the compiled rule program (one table, Lua's lopcodes.h style).
//
// Registers hold 64-bit integers. A value's meaning follows from its static type, which the checker fixed:
//   bool 0/1 · int · date = days since 1970-01-01 · month = year*12 + month-1 · enum = value index ·
//   set<enum> = bit mask · text = clause id (>= 0, "the reason of that clause") or -(string id)-1 ·
//   初日 (first-day rule) = enum index (0 初日不算入, 1 初日算入).
// Month sets are never in registers: instructions name the fact that holds one (a 1,024-month bit set).
// Each let/decision ("slot") owns a register window; its result lives in its first register.
#pragma once

#include <cstdint>

namespace kyotaku {

enum class Op : std::uint16_t {
    // op        operands        meaning
    LOADK,    // a k             r[a] = consts[k]
    LOADF,    // a f             r[a] = fact f; the slot fails ("missing fact") when f is absent
    LOADP,    // a p             r[a] = params[p]
    SLOT,     // a s             r[a] = value of slot s (evaluated on first use, then memoised per record;
              //                 the evaluator keeps its own call stack, so rule depth never grows the C++ stack)
    MOV,      // a b             r[a] = r[b]
    NOT,      // a b             r[a] = !r[b]
    NEG,      // a b             r[a] = -r[b]
    JMP,      // d               pc = d
    JMPF,     // a d             if (!r[a]) pc = d
    JMPT,     // a d             if (r[a]) pc = d
    COND,     // a c d           clause c's condition is r[a] (recorded in a trace); if (!r[a]) pc = d
    ADD,      // a b c           r[a] = r[b] + r[c]
    SUB,      // a b c           r[a] = r[b] - r[c]
    MUL,      // a b c           r[a] = r[b] * r[c]
    EQ,       // a b c           r[a] = r[b] == r[c]
    NE,       // a b c           r[a] = r[b] != r[c]
    LT,       // a b c           r[a] = r[b] < r[c]
    LE,       // a b c           r[a] = r[b] <= r[c]
    EIN,      // a b c           r[a] = enum r[b] is in set r[c]
    ADDK,     // a b d           r[a] = r[b] + consts[d]      (the K forms take a constant right operand)
    SUBK,     // a b d           r[a] = r[b] - consts[d]
    EQK,      // a b d           r[a] = r[b] == consts[d]
    NEK,      // a b d           r[a] = r[b] != consts[d]
    LTK,      // a b d           r[a] = r[b] < consts[d]
    LEK,      // a b d           r[a] = r[b] <= consts[d]
    GTK,      // a b d           r[a] = r[b] > consts[d]
    GEK,      // a b d           r[a] = r[b] >= consts[d]
    EINK,     // a b d           r[a] = enum r[b] is in the set consts[d]
    MIN,      // a b f           r[a] = month r[b] is in month-set fact f
    MALL,     // a b c f         r[a] = every month r[b]..r[c] is in month-set fact f (true for an empty range)
    MMISS,    // a b c f         r[a] = first month of r[b]..r[c] not in fact f, or r[c]+1 when none is missing
    PSTART,   // a b c           r[a] = 起算日 of a period from date r[b] with first-day rule r[c] (民法140)
    PEND,     // a b c d         r[a] = 満了日 of r[c] months from date r[b], first-day rule r[d] (民法143)
    ADDM,     // a b c d         r[a] = date r[b] + r[c] months, a missing day rounded by d (0 clamp, 1 up)
    MEND,     // a b             r[a] = last day of the month of date r[b]
    MENDM,    // a b             r[a] = last day of month r[b]
    MOF,      // a b             r[a] = month of date r[b]
    REASON,   // a s             r[a] = the clause that decided slot s (evaluated first), as a text value
    VERSION,  // s               jump to the code of slot s's version in force on the as-of date, or fail
    RET,      // s c             slot s was decided by clause c; its value is in its result register
    RETK,     // s c d           the same, with the constant consts[d] as the value
    TABLE,    // a b c d         r[a] = consts[d + r[b]] for an enum r[b] < c (a match whose arms are constants)
    CONDLT,   // a b c d         clause a's condition is r[b] < r[c]; if false, pc = d
    CONDLE,   // a b c d         clause a's condition is r[b] <= r[c]; if false, pc = d
    CONDNOT,  // a b d           clause a's condition is !r[b]; if false, pc = d
};

struct Instr {
    Op op;
    std::uint16_t a = 0, b = 0, c = 0;
    std::int32_t d = 0;
};

}  // namespace kyotaku
