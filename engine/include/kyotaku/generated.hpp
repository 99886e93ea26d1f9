// Rules compiled ahead of time into C++ (`kyotaku compile RULES --emit-cpp rules.cpp [--namespace NS]`): for
// integrators who evaluate large batches and can build the rule set into their program. The generated code is a
// transliteration of the compiled Program — the same instructions, each one C++ statement, jumps as gotos, slots as
// functions memoised per record — so it decides exactly as the Evaluator does (a test compares them on every slot of
// a corpus), only without the interpreter's dispatch. No traces: `explain` stays with the Evaluator. The generated
// file names the source hash of the rules; `matches()` tells whether a loaded Program is the same rule set.
//
// The file defines one object, `NS::generated_rules` (NS is `kyotaku` unless --namespace names another), and
// nothing else with external linkage, so several rule sets (say this year's and next year's) link into one program:
//     namespace rules2024 { extern kyotaku::GeneratedRules const generated_rules; }
#pragma once

#include "kyotaku/cxx20.hpp"  // first: a clear message for a C++17 consumer

#include "kyotaku/engine.hpp"

#include <cstdint>
#include <span>

namespace kyotaku {

struct GeneratedRules {
    std::uint64_t source_hash;
    std::uint32_t num_slots;
    /// Evaluates slot `slot` of one record (params: the rule set's named parameters, in Program order).
    void (*evaluate_slot)(Activation const& facts, std::int64_t const* params, std::uint32_t slot, Outcome& out);
    /// The same for many records: results[i] is record i's outcome.
    void (*evaluate_slot_batch)(std::span<Activation const> records, std::int64_t const* params, std::uint32_t slot,
                                std::span<Outcome> results);

    /// How many output decisions the rules have (Program::outputs), and their slots in that order.
    std::uint32_t num_outputs;
    std::uint32_t const* outputs;
    /// Every output decision of one record: out[o] is the outcome of outputs[o] (num_outputs of them), as
    /// Evaluator::evaluate gives them. The lets that several decisions read are computed once.
    void (*evaluate)(Activation const& facts, std::int64_t const* params, Outcome* out);
    /// The same for many records: results[i * num_outputs + o] is record i's outcome of outputs[o] (records whose
    /// outcomes do not all fit in `results` are left out).
    void (*evaluate_batch)(std::span<Activation const> records, std::int64_t const* params, std::span<Outcome> results);

    /// For writers of reasons (`kyotaku eval`): evaluate_into is evaluate with the record's memo kept in `memo`
    /// (memo_size bytes, aligned as std::max_align_t), so that slot_value reads the value of any let or decision
    /// of that record afterwards — computed then when no decision read it — as the reason texts need. slot_value
    /// returns false when the slot is null for the record.
    std::size_t memo_size;
    void (*evaluate_into)(Activation const& facts, std::int64_t const* params, Outcome* out, void* memo);
    bool (*slot_value)(void* memo, std::uint32_t slot, std::int64_t& value);

    bool matches(Program const& p) const {
        return p.source_hash == source_hash && p.slots.size() == num_slots && p.outputs.size() == num_outputs;
    }
};

/// Whether `ns` can name the generated code's namespace: C++ identifiers joined by `::` (`acme`, `acme::rules2024`),
/// none a keyword or reserved, not `std`.
bool valid_cpp_namespace(std::string_view ns);

/// C++ source defining `GeneratedRules const <ns>::<variable>` for the program (ns: see valid_cpp_namespace).
std::string emit_cpp(Program const& program, std::string const& ns, std::string const& variable);

}  // namespace kyotaku
