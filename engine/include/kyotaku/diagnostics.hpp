// Diagnostics in the style of clang: file:line:column, the source line, a caret under the span, and the
// message in Japanese and English. Errors are values: parsing, checking and loading return them.
#pragma once

#include "kyotaku/cxx20.hpp"  // first: a clear message for a C++17 consumer

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kyotaku {

enum class Severity : std::uint8_t { error, warning };

// What a diagnostic is about. Tools match on the stable code (to_string: "type-mismatch"), people read the label.
enum class DiagnosticKind : std::uint8_t {
    syntax,                      // syntax: the grammar did not accept the text
    unknown_name,                // unknown-name
    type_mismatch,               // type-mismatch
    non_exhaustive,              // non-exhaustive: a match or a decision leaves values without an answer
    unreachable,                 // unreachable: a clause no case can reach
    ambiguous_month_arithmetic,  // ambiguous-month-arithmetic: a month addition without a rounding policy
    overlapping_versions,        // overlapping-versions
    version_gap,                 // version-gap
    invalid_date,                // invalid-date
    duplicate,                   // duplicate
    cycle,                       // cycle
    missing_otherwise,           // missing-otherwise
    limit,                       // limit: an input too large or too deep
    io,                          // io
    test,                        // test: a rule-file test that cannot be run
    unused,                      // unused (a warning): a let, param or fact no answer depends on
};
// The stable code ("type-mismatch") and the Japanese label (型の不一致) of a kind.
std::string_view to_string(DiagnosticKind kind);
std::string_view kind_label_ja(DiagnosticKind kind);

struct Diagnostic {
    DiagnosticKind kind = DiagnosticKind::syntax;
    Severity severity = Severity::error;
    std::string file;
    int line = 0;             // 1-based; 0 when the diagnostic is not about a place in a file
    int column = 0;           // 1-based, in characters (code points)
    int end_column = 0;       // exclusive, on the same line
    std::string source_line;  // the line as written (before width normalisation)
    std::string message_ja;
    std::string message_en;
};

// "Did you mean …?": the candidate nearest to a misspelt name (edit distance in characters: at most one edit for
// names of one or two characters, two otherwise), or "" when none is near.
std::string nearest_name(std::string_view name, std::vector<std::string> const& candidates);
std::size_t edit_distance(std::string_view a, std::string_view b);

// How many terminal columns a text takes: East Asian wide and full-width characters take two.
int display_width(std::string_view text);

// Whether any diagnostic is an error (warnings alone do not stop a rule set from compiling).
bool has_errors(std::vector<Diagnostic> const& ds);
std::size_t count_warnings(std::vector<Diagnostic> const& ds);

// The diagnostics as a JSON array: [{"severity","kind","file","line","column","end_column","source_line","ja","en"}]
std::string diagnostics_json(std::vector<Diagnostic> const& ds);

// Renders one diagnostic as text, clang style, with a caret line under the span (wide characters count two).
std::string format_diagnostic(Diagnostic const& d);
std::string format_diagnostics(std::vector<Diagnostic> const& ds);

}  // namespace kyotaku
