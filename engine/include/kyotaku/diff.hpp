// What a rule change does: both rule sets answer the same cases, and every answer that differs is counted per
// decision and per exported let (what the server and the consent page read by name), grouped by the clause that
// decided it on each side (file:line), with the value transitions and a few example cases (`kyotaku diff`, the
// release command and the rule workbench in the browser). Beyond the cases: every param and fact default is
// compared as a value, and a decision or exported let that depends only on a few enum and bool facts is compared on
// every combination of them, so that a change is reported even when no case shows it.
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

// One fact of an example, as people read it: its name for people, and its value (和暦 with ISO in brackets).
struct DiffFact {
    std::string name, label, value;
};

struct DiffExample {
    std::string id;        // the case's id as JSON ("null" when it has none)
    std::uint64_t line = 0;  // its line in the input (1-based); 0 for a combination the diff made itself
    std::string from, to;  // the answers
    std::string facts;     // the line itself (cut at 2,000 bytes), as JSON: `kyotaku explain` takes it
    std::vector<DiffFact> shown;  // the facts the decision reads on either side, with their values
};

struct DiffTransition {
    std::string from, to;
    std::uint64_t count = 0;
};

// The answers of one decision that the same clause decided on the old side and the same clause on the new.
struct DiffGroup {
    enum class Kind : std::uint8_t {
        changed,         // both sides answered, with different values
        became_unknown,  // the old rules answered, the new answer null (a fact they now need is missing)
        became_known,    // the old answer was null, the new rules answer
    } kind = Kind::changed;
    std::string old_clause, new_clause;  // file:line, or "" when that side had no answer (null or an unreadable line)
    std::string old_source, new_source;  // the clause as written (first line)
    std::string old_reason, new_reason;  // the clause's reason as written, with {名前} where values go ("" when none)
    std::string missing;                 // for null answers: the facts that were missing (names, comma-separated)
    std::uint64_t count = 0;
    std::vector<DiffTransition> transitions;  // most frequent first, at most DiffOptions::transitions
    std::uint64_t other_transitions = 0;      // cases whose transition is not listed
    std::size_t distinct_transitions = 0;
    std::vector<DiffExample> examples;
    // with a realistic corpus: its cases by class, most first
    std::vector<std::pair<std::string, std::uint64_t>> classes;
};

struct DecisionDiff {
    std::string name;
    std::string label;      // its name for people, when the new (or old) rule file gives one
    bool exported = false;  // an `export let` (what a program reads by name), not a decision
    TypeKind type = TypeKind::Bool;
    std::uint64_t changed = 0;         // cases whose answer changed value
    std::uint64_t became_unknown = 0;  // cases the new rules no longer answer (null)
    std::uint64_t became_known = 0;    // cases only the new rules answer
    std::vector<DiffGroup> groups;     // largest first
    // When it depends only on enum and bool facts with few combinations: every combination compared.
    std::uint64_t combinations = 0, combinations_changed = 0;
    std::vector<DiffExample> combination_examples;
    std::uint64_t total() const { return changed + became_unknown + became_known; }
};

// A param (or a fact's stated default) whose value differs, or that one side lacks ("" on that side).
struct ValueChange {
    std::string name, kind;  // kind: "param" or "fact default"
    std::string from, to;
};

// A line neither rule set can read: the corpus itself is wrong (a misspelt key, a broken line).
struct DiffError {
    std::uint64_t line = 0;
    std::string id, error;
};

struct DiffReport {
    std::string old_rules, new_rules, corpus;  // what was compared, as the caller names it
    std::uint64_t cases = 0;
    std::uint64_t changed_cases = 0;            // cases with at least one answer changed (value, or known ↔ null)
    std::uint64_t unreadable_both = 0;          // lines neither rule set can read (not compared: an error)
    std::vector<DiffError> unreadable_examples;  // the first of them
    // every decision and export let present on both sides, in the new rules' order
    std::vector<DecisionDiff> decisions;
    std::vector<std::string> only_old, only_new;  // decisions and export lets removed / added
    std::vector<ValueChange> values;            // params and fact defaults that differ
    std::vector<std::pair<std::string, std::uint64_t>> classes;  // case classes of a realistic corpus, with counts
    bool changed() const;
    // The comparison cannot be trusted: no case at all, or lines neither side can read. `kyotaku diff` exits 2.
    bool corpus_error() const { return cases == 0 || unreadable_both > 0; }
};

class RuleDiff {
public:
    RuleDiff(std::shared_ptr<Program const> old_rules, std::shared_ptr<Program const> new_rules,
             DiffOptions options = {});
    ~RuleDiff();
    RuleDiff(RuleDiff const&) = delete;
    RuleDiff& operator=(RuleDiff const&) = delete;

    // One case: a JSON object of facts (one line of JSON Lines). Blank lines are skipped. A key that is a fact of
    // neither rule set makes the line unreadable (with the nearest fact's name).
    void add(std::string_view line, std::uint64_t line_number);
    // The same, counted in a case class (the realistic corpus labels its cases).
    void add(std::string_view line, std::uint64_t line_number, std::string const& case_class);
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

// A realistic corpus (`kyotaku diff --corpus realistic`, the release's default): every case satisfies the `assume`
// declarations of both rule sets (what each facility kind offers …), has all its facts (those with a stated default
// are sometimes left to it), a first date inside the period the rules are about (from the earliest date they name to
// their horizon), the as-of date some time after it (the same day, within 3 months, 3–6 months, 6 months to 2 years)
// and reviewed claim months from the first date's month up to a month or two before the as-of date's (every month,
// one missing — a late claim —, none, or all but the first). Each case is labelled with its class (the date
// scenario and the claims' shape). Deterministic for a seed.
void generate_realistic_corpus(Program const& a, Program const& b, std::size_t cases, std::uint64_t seed,
                               std::function<void(std::string_view line, std::string const& case_class)> const& emit);

// The report for people (Japanese Markdown: a summary first, names for people, 和暦 dates with ISO in brackets,
// examples as short tables of the facts that matter) and for programs (JSON).
std::string diff_markdown(DiffReport const& report);
std::string diff_json(DiffReport const& report);

}  // namespace kyotaku
