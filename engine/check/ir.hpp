// The checked, typed intermediate form between the checker and the compiler.
#pragma once

#include "../syntax/source.hpp"
#include "kyotaku/program.hpp"

#include <optional>
#include <vector>

namespace kyotaku::check {

using syntax::Span;

enum class BinOp : std::uint8_t {
    Add, Sub, Mul, Eq, Ne, Lt, Le, Gt, Ge,
    EnumIn, EnumNotIn,      // enum in set<enum>
    MonthIn, MonthNotIn,    // month in set<month> (a fact)
    RangeIn, RangeNotIn,    // month in a .. b
    AddMonths,              // date + int months, with a rounding policy
};

enum class Builtin : std::uint8_t { PeriodStart, PeriodEnd, MonthEnd, MonthEndOfMonth, MonthOf, AllIn, FirstMissing };

struct Node {
    enum class Kind : std::uint8_t {
        Const,
        Fact,
        Param,
        Slot,
        Not,
        Neg,
        And,
        Or,
        Binary,
        Call,
        If,
        Match,
        Range,
        Reason
    };
    Kind kind = Kind::Const;
    Type type;
    std::int64_t value = 0;  // Const: the value; Fact/Param/Slot/Reason: the id
    BinOp op = BinOp::Add;
    Builtin builtin = Builtin::MonthOf;
    int rounding = 0;                // AddMonths: 0 clamp, 1 up
    std::vector<Node> kids;
    std::vector<std::uint64_t> arm_masks;  // Match: the values each arm takes
    Span span;
};

struct Clause {
    std::optional<Node> condition;  // none: otherwise
    Node value;
    std::vector<TextPiece> because;
    Span span;
    std::uint32_t id = 0;  // index into Program::clauses
};

struct Version {
    VersionInfo info;
    std::vector<Clause> clauses;
};

struct Slot {
    std::vector<Version> versions;  // a body without 施行日 is one version covering every date
    bool versioned = false;
};

struct Checked {
    Program program;  // everything but the code
    std::vector<Slot> slots;
};

// Checks parsed files; nullopt when any diagnostic was produced.
std::optional<Checked> check(std::vector<std::unique_ptr<syntax::ParsedFile>> const& files,
                             std::vector<Diagnostic>& diags);

}  // namespace kyotaku::check
