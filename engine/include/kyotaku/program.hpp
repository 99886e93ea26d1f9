// The compiled rule program: immutable after compilation, shareable across threads (cel-cpp style).
// Everything here is plain data so that a bundle (cereal) can carry it whole.
#pragma once

#include "kyotaku/cxx20.hpp"  // first: a clear message for a C++17 consumer

#include "kyotaku/opcodes.hpp"

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace kyotaku {

enum class TypeKind : std::uint8_t { Bool, Int, Date, Month, Text, Enum, EnumSet, MonthSet, MonthRange };

struct Type {
    TypeKind kind = TypeKind::Bool;
    std::int16_t enum_id = -1;  // for Enum and EnumSet
    friend bool operator==(Type const&, Type const&) = default;
};

struct SourceLoc {
    std::uint16_t file = 0;
    std::uint32_t line = 0;
    std::uint32_t column = 0;
};

struct EnumInfo {
    std::string name;
    std::vector<std::string> values;
};

struct FactInfo {
    std::string name;
    std::string label;  // a name for people ("照会日"), when the rule file gives one
    Type type;
    bool has_default = false;  // only when the rule file states one (`fact x : T = value`)
    std::int64_t default_value = 0;
    SourceLoc loc;
};

struct ParamInfo {
    std::string name;
    Type type;
    std::int64_t value = 0;
    SourceLoc loc;
};

// A piece of a reason text: literal text, or `{name}` filled in with a fact's, param's or slot's value.
struct TextPiece {
    enum class Kind : std::uint8_t { Literal, Fact, Param, Slot } kind = Kind::Literal;
    std::string literal;
    std::uint32_t id = 0;
    Type type;
};

struct ClauseInfo {
    std::uint32_t slot = 0;
    std::uint32_t version = 0;
    bool otherwise = false;
    SourceLoc loc;
    std::string source;              // the clause's source text, as written
    std::vector<TextPiece> because;  // empty when the clause gives no reason
};

struct VersionInfo {
    std::string label;
    std::int64_t from = std::numeric_limits<std::int64_t>::min();   // 施行日 (days), inclusive
    std::int64_t until = std::numeric_limits<std::int64_t>::max();  // inclusive
    std::uint32_t entry = 0;                                          // first instruction
    SourceLoc loc;
};

// A let or a decision.
struct SlotInfo {
    std::string name;
    std::string label;  // a name for people ("再照会できるか"), when the rule file gives one
    bool decision = false;
    bool exported = false;  // `export let`: a program asks for it by name (the consent page, the server)
    Type type;
    SourceLoc loc;
    std::string source;  // the declaration's first line, as written
    std::uint16_t result_reg = 0;
    std::uint32_t entry = 0;
    std::vector<VersionInfo> versions;  // empty: one body without 施行日
    std::uint64_t fact_deps = 0;        // facts this slot may read, directly or through other slots
};

// A value in a rule-file test (given or expected).
struct TestValue {
    bool is_null = false;
    std::int64_t scalar = 0;
    std::vector<std::int64_t> months;  // for set<month>
    std::string text;                  // for `reason ~ "text"`
};

struct TestBinding {
    enum class Target : std::uint8_t { Fact, Param, Slot } target = Target::Fact;
    std::uint32_t id = 0;
    bool contains = false;  // `~`: the rendered text contains `value.text`
    TestValue value;
    SourceLoc loc;
};

struct TestCase {
    std::string name;
    SourceLoc loc;
    std::int32_t fixture = -1;  // index into Program::fixtures, applied before `given`
    std::vector<TestBinding> given;
    std::vector<TestBinding> expect;
};

// An invariant (`invariant NAME: EXPR`): a property of the rules, compiled as a bool let, that `kyotaku prove` shows
// true for every input of the declared domain (engine/prove). A null value (a decision it reads has no answer)
// counts as holding: a decision without an answer grants nothing.
struct InvariantInfo {
    std::string name;
    std::string label;       // the property in words, when the rule file gives one
    std::uint32_t slot = 0;  // the bool let that computes it
    SourceLoc loc;
    std::string source;  // the declaration as written (first line)
};

struct Program {
    std::vector<std::string> files;  // rule files, in the order they were read
    std::vector<EnumInfo> enums;     // enums[0] is the built-in 初日 {初日不算入, 初日算入}
    std::vector<FactInfo> facts;     // at most 64
    std::vector<ParamInfo> params;
    std::vector<SlotInfo> slots;
    std::vector<ClauseInfo> clauses;
    std::vector<std::uint32_t> outputs;  // decision slots, in declaration order
    std::vector<Instr> code;
    std::vector<std::int64_t> consts;
    std::vector<std::string> strings;  // text literals
    std::vector<TestCase> tests;
    std::vector<std::vector<TestBinding>> fixtures;  // shared `given` bindings of rule-file tests
    std::vector<InvariantInfo> invariants;
    // `assume NAME: EXPR`: what a realistic case satisfies (kyotaku diff --corpus realistic); compiled like invariants.
    std::vector<InvariantInfo> assumptions;
    std::int32_t asof_fact = -1;       // the fact whose date selects versions (施行日); -1 when none
    // `horizon DATE`: the last day `kyotaku prove` covers (every date from a year before the earliest date the rules
    // name up to it); max when the rules declare none.
    std::int64_t horizon = std::numeric_limits<std::int64_t>::max();
    std::uint32_t num_regs = 0;
    std::uint64_t source_hash = 0;     // FNV-1a over the rule files' paths and bytes

    int find_fact(std::string_view name) const;
    int find_slot(std::string_view name) const;
    int find_param(std::string_view name) const;
    int find_enum_value(int enum_id, std::string_view value) const;
    std::string location(SourceLoc const& loc) const;  // file:line
    std::size_t memory_bytes() const;                  // approximate heap footprint of the loaded program
    std::string disassemble() const;                   // the instructions of every slot, one a line
};

// The instructions that may run after code[pc] within its function, from the opcode table: the next one (unless
// the instruction ends the path), its jump target, and for VERSION the entries of the slot's versions.
// f(next_pc, jumped) is called for each.
template <typename F>
void for_each_successor(Program const& p, std::uint32_t pc, F&& f) {
    Instr const& i = p.code[pc];
    OpInfo const& info = op_info(i.op);
    if (info.flow != OpFlow::end) f(pc + 1, false);
    if (info.operands[3] == OperandKind::jump) f(std::uint32_t(i.d), true);
    if (i.op == Op::VERSION && i.a < p.slots.size())
        for (auto const& v : p.slots[i.a].versions) f(v.entry, true);
}

}  // namespace kyotaku
