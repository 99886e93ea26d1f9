// What a rule change does: both rule sets answer the same cases, and every answer that differs is counted per
// decision, grouped by the clause that decided it on each side (file:line), with the value transitions and a few
// example cases (`kyotaku diff`, and the rule workbench in the browser).
//
//   kyotaku::RuleDiff diff(old_rules, new_rules);
//   diff.add(line, 1); …                       // JSON Lines of facts, as `kyotaku eval` reads them
//   auto report = diff.report();
//   std::cout << kyotaku::diff_markdown(report);  // Japanese Markdown; diff_json for programs
#pragma once

#include "kyotaku/cxx20.hpp"  // first: a clear message for a C++17 consumer

#include "kyotaku/engine.hpp"

#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace kyotaku {

struct DiffOptions {
    std::size_t examples = 3;     // example cases kept per group
    std::size_t transitions = 8;  // value transitions listed per group (the others are counted together)
};

struct DiffExample {
    std::string id;        // the case's id as JSON ("null" when it has none)
    std::uint64_t line = 0;  // its line in the input (1-based)
    std::string from, to;  // the answers
    std::string facts;     // the line itself (cut at 2,000 bytes)
};

struct DiffTransition {
    std::string from, to;
    std::uint64_t count = 0;
};

// The changed answers of one decision that the same clause decided on the old side and the same clause on the new.
struct DiffGroup {
    std::string old_clause, new_clause;  // file:line, or "" when that side had no answer (null or an unreadable line)
    std::string old_source, new_source;  // the clause as written (first line)
    std::uint64_t count = 0;
    std::vector<DiffTransition> transitions;  // most frequent first, at most DiffOptions::transitions
    std::uint64_t other_transitions = 0;      // cases whose transition is not listed
    std::size_t distinct_transitions = 0;
    std::vector<DiffExample> examples;
};

struct DecisionDiff {
    std::string name;
    std::string label;  // its name for people, when the new (or old) rule file gives one
    std::uint64_t changed = 0;
    std::vector<DiffGroup> groups;  // largest first
};

struct DiffReport {
    std::string old_rules, new_rules, corpus;  // what was compared, as the caller names it
    std::uint64_t cases = 0;
    std::uint64_t changed_cases = 0;            // cases with at least one answer changed
    std::uint64_t unreadable_both = 0;          // lines neither rule set can read (not a change)
    std::vector<DecisionDiff> decisions;        // every decision present on both sides, in the new rules' order
    std::vector<std::string> only_old, only_new;  // decisions removed / added
    bool changed() const { return changed_cases > 0 || !only_old.empty() || !only_new.empty(); }
};

class RuleDiff {
public:
    RuleDiff(std::shared_ptr<Program const> old_rules, std::shared_ptr<Program const> new_rules, DiffOptions options = {});
    ~RuleDiff();
    RuleDiff(RuleDiff const&) = delete;
    RuleDiff& operator=(RuleDiff const&) = delete;

    // One case: a JSON object of facts (one line of JSON Lines). Blank lines are skipped.
    void add(std::string_view line, std::uint64_t line_number);
    // Every line of a JSON Lines stream (lines are capped at 1 MiB, as in kyotaku eval); the number of cases.
    std::uint64_t add_stream(std::FILE* in);

    DiffReport report() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// A corpus for comparing two rule sets without real cases: `cases` JSON lines (ids "gen-1" …) over the facts of
// both, covering every enum value (cycling through them), both truth values, absent facts, and dates placed
// around every boundary the rules name (versions' 施行日, date constants such as 運用開始日) and around month
// ends, with the other dates of a case set relative to the first (the next day, one to fifteen months later, at
// the end of that month …) and month sets complete, empty or missing one month. Deterministic for a seed.
void generate_corpus(Program const& a, Program const& b, std::size_t cases, std::uint64_t seed,
                     std::function<void(std::string_view line)> const& emit);

// The report for people (Japanese Markdown) and for programs (JSON).
std::string diff_markdown(DiffReport const& report);
std::string diff_json(DiffReport const& report);

}  // namespace kyotaku
