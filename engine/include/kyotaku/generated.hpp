// Rules compiled ahead of time into C++ (`kyotaku compile RULES --emit-cpp rules.cpp`): for integrators who
// evaluate large batches and can build the rule set into their program. The generated code is a transliteration
// of the compiled Program — the same instructions, each one C++ statement, jumps as gotos, slots as functions —
// so it decides exactly as the Evaluator does (a test compares them on every output decision of a corpus), only
// without the interpreter's dispatch. No traces: `explain` stays with the Evaluator. The generated file names the
// source hash of the rules; `matches()` tells whether a loaded Program is the same rule set.
#pragma once

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

    bool matches(Program const& p) const { return p.source_hash == source_hash && p.slots.size() == num_slots; }
};

/// C++ source defining `kyotaku::GeneratedRules const <variable>` for the program.
std::string emit_cpp(Program const& program, std::string const& variable);

}  // namespace kyotaku
