// Diagnostics in the style of clang: file:line:column, the source line, a caret under the span, and the
// message in Japanese and English. Errors are values: parsing, checking and loading return them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kyotaku {

enum class Severity : std::uint8_t { error, warning };

struct Diagnostic {
    std::string kind;  // a stable code: syntax, unknown-name, type-mismatch, non-exhaustive, unreachable,
                       // ambiguous-month-arithmetic, overlapping-versions, version-gap, invalid-date, duplicate,
                       // cycle, missing-otherwise, limit, io; warnings: unused
    Severity severity = Severity::error;
    std::string file;
    int line = 0;          // 1-based; 0 when the diagnostic is not about a place in a file
    int column = 0;        // 1-based, in characters (code points)
    int end_column = 0;    // exclusive, on the same line
    std::string source_line;  // the line as written (before width normalisation)
    std::string message_ja;
    std::string message_en;
};

// The Japanese label of a diagnostic kind (型の不一致 for type-mismatch, …).
std::string kind_label_ja(std::string const& kind);

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
