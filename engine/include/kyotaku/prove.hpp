// kyotaku prove: every invariant of a rule set (`invariant NAME: EXPR`) shown true for EVERY input of the declared
// domain, not for samples — or a counterexample.
//
// Method (engine/prove/prove.cpp): the compiled program itself — the instructions the evaluator runs — is translated
// to one SMT formula (Z3, Debian's libz3), instruction by instruction, from the semantics the opcode table states.
// Each let and decision becomes a term over the facts: its value, whether it has one (a version in force), and the
// clause that decided; jumps are forward only, so each function is a directed acyclic graph and every path is
// merged exactly (no loop to unroll, no path left out). The calendar (民法 periods, month ends, month arithmetic) is
// encoded exactly for every day: around the domain as trees over a table of the months' first days (fast for the
// solver), elsewhere with Howard Hinnant's civil-day algorithms (which the date library runs) as integer arithmetic
// by constants; check_calendar_encoding compares both with the date library on every day. The domain:
//   - every enum value, both truth values, every set of enum values;
//   - every date from the first day of the month a year before the earliest date the rules name up to the rules'
//     `horizon` (all facts of type date independently, in any order);
//   - every set of months within those dates (every "relevant set of reviewed claim months": months outside the
//     dates cannot be a fact the rules compare, see docs/rules-language.md);
//   - every fact present: a decision that lacks a fact is null, and a null answer grants nothing, so an invariant
//     that holds with every fact present holds with some absent (docs give the argument).
// Z3 answers "unsat" (proven: no input breaks it) or gives a model; the model is turned into facts, evaluated by the
// ordinary evaluator (which must agree it is a counterexample) and explained as `kyotaku explain` does.
// Library: kyotaku::prove (links libz3).
#pragma once

#include "kyotaku/engine.hpp"

#include <memory>
#include <string>
#include <vector>

namespace kyotaku {

struct ProveOptions {
    unsigned timeout_ms = 600000;  // per invariant; "unknown" after that (never "proven")
};

struct InvariantResult {
    enum class Status : std::uint8_t { proven, counterexample, unknown } status = Status::unknown;
    std::string name, label, location;  // location: file:line
    std::string facts;                  // a counterexample's facts (JSON, as kyotaku eval and explain take them)
    std::string explanation;            // the counterexample explained (kyotaku explain's compact form)
    std::string reason;                 // with unknown: why (the solver's reason, a timeout)
    double seconds = 0;
};

struct ProofReport {
    std::vector<InvariantResult> results;
    std::string domain;  // the domain proven, in words ("日付 2022-11-01〜2030-12-31 のすべての日、…")
    std::string error;   // the rules cannot be proven at all (no horizon, an instruction the prover does not know)
    double seconds = 0;
    bool ok() const;              // no error, and every invariant proven
    std::string summary() const;  // one line: "8 invariants proven (1.2 s)" or how many failed
};

ProofReport prove(std::shared_ptr<Program const> const& program, ProveOptions const& options = {});

// The calendar encoding checked against the date library the evaluator uses, for every day from `first` to `last`:
// month_of, month_end, period_start/period_end (3 months, both first-day rules) and add_months (±1..13 months, both
// roundings) evaluated by Z3 on each day must equal calendar.cpp's. Empty when they all agree; else the first
// disagreement. (The test suite runs it; it is the reason to trust the translation of the calendar instructions.)
std::string check_calendar_encoding(Date first, Date last);

// The report for people: for each invariant 「証明済み」, or 「反例」 with the counterexample's facts and its
// explanation.
std::string format_proofs(Program const& program, ProofReport const& report);

}  // namespace kyotaku
