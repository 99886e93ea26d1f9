// The public API of the rule engine: compile rule sources (or load a bundle) once, evaluate many times.
//
//   auto compiled = kyotaku::compile_directory("rules");      // parse → check → compile
//   if (!compiled.ok()) std::cerr << kyotaku::format_diagnostics(compiled.diagnostics);
//   kyotaku::Evaluator ev(compiled.program);
//   kyotaku::Activation facts(*compiled.program);              // reusable input buffer
//   facts.set_date("first_visit", *kyotaku::Date::from_ymd(2024, 4, 15)); …
//   ev.evaluate(facts);                                         // no allocation per decision
//   ev.outcome(i)                                               // one per output decision
//
// Nothing here throws across the API: errors come back as values.
#pragma once

#include "kyotaku/cxx20.hpp"  // first: a clear message for a C++17 consumer

#include "kyotaku/calendar.hpp"
#include "kyotaku/diagnostics.hpp"
#include "kyotaku/program.hpp"

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kyotaku {

inline constexpr char const* compiler_version = "kyotaku-rules 0.1.0";
// 2: names for people (labels); 3: the release, export lets, invariants
inline constexpr std::uint32_t bundle_format_version = 3;

struct SourceFile {
    std::string path;  // where it was read; diagnostics name it (the author's own disk)
    std::string text;
    // The name the compiled rules give the file (reasons, explain, bundles, the consent page's rules): relative to
    // the rule folder, so that no path of the machine that compiled them leaves it. Empty: `path`.
    std::string name = {};
};

struct CompileResult {
    std::shared_ptr<Program const> program;  // null when there are errors
    std::vector<Diagnostic> diagnostics;
    bool ok() const { return program != nullptr; }
};

CompileResult compile(std::vector<SourceFile> sources);
// Reads every `*.rules` file under `dir` (sorted by path) and compiles them as one rule set.
CompileResult compile_directory(std::string const& dir);
// Reads the rule files of a directory (or one file); an I/O error comes back as a diagnostic. Each file's `name`
// is its path relative to the directory (a single file: its file name).
std::vector<SourceFile> read_rule_sources(std::string const& path, std::vector<Diagnostic>& errors);
std::uint64_t hash_sources(std::vector<SourceFile> const& sources);

// What makes a bundle a release (kyotaku release, kyotaku compile --release N --sign KEY). It sits in the bundle's
// header, inside the part the signature covers, so that nobody can renumber a signed bundle: a server remembers the
// highest release it has served and refuses an older one (TUF's rollback protection).
struct ReleaseInfo {
    std::uint64_t release = 0;  // 1, 2, …; 0: not a release (rule sources, or a bundle compiled without --release)
    std::string key_id;         // the fingerprint (key_fingerprint) of the key that signed it; stamped by sign_bundle
    std::string report_sha256;  // the SHA-256 (hex) of the diff report kyotaku release wrote beside it; "" when none
};

// Bundles: a cereal binary of the Program with a format version, the compiler version, the source hash and the
// release.
std::string save_bundle(Program const& program, ReleaseInfo const& release = {});
struct LoadResult {
    std::shared_ptr<Program const> program;
    Message message;                      // why program is null
    std::vector<Diagnostic> diagnostics;  // when rule sources did not compile: their diagnostics
    ReleaseInfo release;                  // from a bundle's header; empty for rule sources
    // For a person or a log: the diagnostics when there are some, otherwise the message ("ja / en").
    std::string describe() const;
};

// A bundle's header, read without its payload (nullopt with `error` when it is not one this kyotaku reads).
struct BundleHeader {
    std::uint32_t format = 0;
    std::string compiler;
    std::uint64_t source_hash = 0;
    ReleaseInfo release;
};
std::optional<BundleHeader> read_bundle_header(std::string_view bytes, Message* error = nullptr);
// The same bundle (without a signature trailer) with `key_id` written into its header: what sign_bundle signs.
std::optional<std::string> stamp_bundle_key_id(std::string_view bytes, std::string const& key_id);
// A source hash as people and logs show it: 16 hex digits, zero-padded.
std::string source_hash_hex(std::uint64_t hash);
// Refuses a bundle of another format or compiler version, a damaged bundle, and — when `expected_source_hash`
// is given — a bundle compiled from other rule sources. A signed bundle (kyotaku/signing.hpp) loads like an
// unsigned one: checking its signature is the caller's choice (load_trusted_rules, the consent page).
LoadResult load_bundle(std::string_view bytes, std::optional<std::uint64_t> expected_source_hash = std::nullopt);

// A bundle's parts when it carries a signature trailer ("KYTKSIG1", Ed25519 public key, signature); otherwise
// `signed_bytes` is all of it and the key and signature are empty.
struct BundleParts {
    std::string_view signed_bytes;  // what the signature covers: the bundle without its trailer
    std::string_view public_key;    // 32 bytes
    std::string_view signature;     // 64 bytes
    bool is_signed() const { return !signature.empty(); }
};
inline constexpr std::size_t bundle_trailer_size = 8 + 32 + 64;
BundleParts split_bundle(std::string_view bytes);
// A directory or .rules file is compiled; a file starting with the bundle magic is loaded.
LoadResult load_rules(std::string const& path, std::vector<Diagnostic>* diagnostics = nullptr);

// A 1,024-month bit set starting at 2000-01 (months 2000-01 .. 2085-04).
struct MonthBits {
    static constexpr std::int64_t base = 2000 * 12;
    static constexpr std::int64_t size = 1024;
    std::uint64_t words[size / 64] = {};
    bool set(std::int64_t month_index);  // false when outside the supported range
    bool has(std::int64_t month_index) const {
        std::int64_t i = month_index - base;
        return i >= 0 && i < size && ((words[i >> 6] >> (i & 63)) & 1u);
    }
    bool all(std::int64_t lo, std::int64_t hi) const;
    std::int64_t first_missing(std::int64_t lo, std::int64_t hi) const;
    void clear();
};

// The facts of one evaluation: a reusable buffer (set, evaluate, clear, set again). Every change is counted, and
// each Activation has its own identity, so an Evaluator never answers from values memoised for other facts.
class Activation {
public:
    explicit Activation(Program const& program);
    Activation(Activation const& other);
    Activation(Activation&& other) noexcept;
    Activation& operator=(Activation const& other);
    Activation& operator=(Activation&& other) noexcept;
    void clear();
    bool has(int fact) const { return (present_ >> fact) & 1u; }
    std::uint64_t present() const { return present_; }
    std::int64_t raw(int fact) const { return values_[std::size_t(fact)]; }
    std::int64_t const* values() const { return values_.data(); }
    MonthBits const& months(int fact) const { return month_sets_[std::size_t(month_slot_[std::size_t(fact)])]; }
    // This buffer's identity and how many times it has changed: (identity, changes) names one record.
    std::uint64_t identity() const { return identity_; }
    std::uint64_t changes() const { return changes_; }

    // Typed setters by index (fast path) …
    void set_raw(int fact, std::int64_t value) {
        values_[std::size_t(fact)] = value;
        present_ |= std::uint64_t(1) << fact;
        ++changes_;
    }
    void unset(int fact) {
        present_ &= ~(std::uint64_t(1) << fact);
        ++changes_;
    }
    // Cleared, marked present; fill it with set() before the next evaluation (the reference is not kept).
    MonthBits& month_set(int fact) {
        present_ |= std::uint64_t(1) << fact;
        ++changes_;
        auto& bits = month_sets_[std::size_t(month_slot_[std::size_t(fact)])];
        bits.clear();
        return bits;
    }
    // … and by name, checked (false: no such fact, wrong type, unknown enum value, month out of range).
    bool set_bool(std::string_view fact, bool v);
    bool set_int(std::string_view fact, std::int64_t v);
    bool set_date(std::string_view fact, Date v);
    bool set_month(std::string_view fact, Month v);
    bool set_enum(std::string_view fact, std::string_view value);
    bool set_enum_set(std::string_view fact, std::vector<std::string_view> const& values);
    bool set_month_set(std::string_view fact, std::vector<Month> const& months);

private:
    Program const* program_;
    std::vector<std::int64_t> values_;
    std::vector<int> month_slot_;
    std::vector<MonthBits> month_sets_;
    std::uint64_t present_ = 0;
    std::uint64_t defaults_ = 0;  // the facts with a default (set again by clear())
    std::uint64_t identity_;
    std::uint64_t changes_ = 0;
};

enum class Status : std::uint8_t {
    ok,
    missing_facts,  // a fact the decision needed is absent: the value is null
    no_version,     // no version is in force on the as-of date: the value is null
};

struct Outcome {
    std::int64_t value = 0;
    Status status = Status::ok;
    std::uint32_t clause = 0;   // the clause that decided (ClauseInfo index)
    std::uint32_t version = 0;  // the version that applied (index into SlotInfo::versions)
    std::uint64_t missing = 0;  // facts the decision may read that were absent (with missing_facts)
    std::uint32_t failed_slot = 0;  // with no_version: the slot without a version in force
};

// One step of a trace: a slot's value, or a clause condition tested.
struct TraceEvent {
    enum class Kind : std::uint8_t { Slot, Condition, Decided, Failed } kind;
    std::uint32_t id;    // slot or clause
    std::int64_t value;  // the slot's value or the condition's truth
};

// Evaluates a program. Not thread-safe; make one Evaluator per thread (the Program is shared).
class Evaluator {
public:
    explicit Evaluator(std::shared_ptr<Program const> program);
    Program const& program() const { return *program_; }

    // Overrides a named parameter (rule-file tests use it); false if there is no such param.
    bool set_param(std::uint32_t param, std::int64_t value);
    void reset_params();

    // Evaluates every output decision. Allocation-free unless a trace is attached.
    void evaluate(Activation const& facts);
    Outcome const& outcome(std::size_t output_index) const { return outcomes_[output_index]; }
    std::span<Outcome const> outcomes() const { return outcomes_; }

    // Evaluates a batch; `results` receives program().outputs.size() outcomes per record, record-major.
    void evaluate_batch(std::span<Activation const> records, std::span<Outcome> results);

    // Evaluates one decision (or let) over a batch of records: results[i] is record i's outcome.
    void evaluate_slot_batch(std::span<Activation const> records, std::uint32_t slot, std::span<Outcome> results);

    // Starts a new record: forgets every memoised let and decision. (Optional: evaluate_slot notices by itself
    // when it is given other facts, or the same Activation changed since, and starts afresh.)
    void begin(Activation const& facts) { begin_record(facts); }
    // Evaluates one slot (a let or a decision) for these facts; lets and decisions computed for the same,
    // unchanged facts (and the same params) are reused. The slot's outcome.
    Outcome evaluate_slot(Activation const& facts, std::uint32_t slot);

    // Renders a value of the given type (ISO dates, month YYYY-MM, enum names, {a, b} sets, text).
    std::string format_value(Type type, std::int64_t value, Activation const& facts);
    // Renders a text value (a clause's reason with its {placeholders} filled in, then " (file:line)").
    std::string render_text(std::int64_t text, Activation const& facts, bool with_location = true);
    // The same two, appended to `out` (no string of their own: for writers of many answers).
    void append_value(std::string& out, Type type, std::int64_t value, Activation const& facts);
    void append_text(std::string& out, std::int64_t text, Activation const& facts, bool with_location = true);
    // The same with the values of lets and decisions taken from elsewhere (rules compiled ahead of time,
    // GeneratedRules::slot_value with its memo): `value(context, slot, v)` gives a slot's value, false when null.
    using SlotValue = bool (*)(void* context, std::uint32_t slot, std::int64_t& value);
    void append_text(std::string& out, std::int64_t text, Activation const& facts, SlotValue value, void* context);
    // The named parameters' values, in Program order (what GeneratedRules' functions take as `params`).
    std::span<std::int64_t const> params() const { return params_; }

    void set_trace(std::vector<TraceEvent>* trace) { trace_ = trace; }

private:
    bool run(std::uint32_t s);
    bool slot(std::uint32_t s) { return done_[s] || run(s); }
    void begin_record(Activation const& facts);
    void same_record(Activation const& facts) {
        if (facts_ != &facts || facts_identity_ != facts.identity() || facts_changes_ != facts.changes())
            begin_record(facts);
    }
    void decide(std::uint32_t s, Activation const& facts, Outcome& out);

    std::shared_ptr<Program const> program_;
    std::vector<std::int64_t> params_;
    std::vector<std::int64_t> regs_;
    std::vector<std::uint8_t> done_;
    std::vector<std::uint32_t> clause_of_;
    std::vector<std::uint32_t> version_of_;
    std::vector<Outcome> outcomes_;
    Activation const* facts_ = nullptr;
    std::uint64_t facts_identity_ = 0, facts_changes_ = 0;  // the record the memoised values belong to
    std::uint64_t missing_hit_ = 0;
    bool no_version_ = false;
    std::uint32_t failed_slot_ = 0;
    std::vector<TraceEvent>* trace_ = nullptr;
    SlotValue slot_value_ = nullptr;  // with append_text(…, value, context): where the slots' values come from
    void* slot_context_ = nullptr;
    struct Frame {
        std::uint32_t return_pc;
        std::uint32_t slot;
        std::uint16_t target;
        bool reason;  // REASON: the caller wants the deciding clause, not the value
    };
    std::vector<Frame> frames_;
};

// Rule-file tests.
struct TestFailure {
    std::string test;
    std::string location;  // file:line of the failing expectation
    std::string message;
};
struct TestReport {
    int passed = 0;
    int failed = 0;
    std::vector<TestFailure> failures;
};
TestReport run_tests(std::shared_ptr<Program const> program);

// A Japanese, human-readable trace of one case (the facts as a JSON object), with the rule-file lines: compact
// (each value once, the values each condition compared, names for people), or `full` (every decision with all
// its intermediate values).
std::string explain(std::shared_ptr<Program const> program, std::string_view json_facts,
                    std::vector<SourceFile> const* sources = nullptr, bool full = false);

// Canonical formatting of one rule file; idempotent. Fails (returns the diagnostics) on a syntax error.
struct FormatResult {
    std::string text;
    std::vector<Diagnostic> diagnostics;
    bool ok() const { return diagnostics.empty(); }
};
FormatResult format_source(SourceFile const& file);

}  // namespace kyotaku
