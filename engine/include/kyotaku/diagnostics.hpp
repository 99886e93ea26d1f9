// Diagnostics in the style of clang: file:line:column, the source line, a caret under the span, and the
// message in Japanese and English. Errors are values: parsing, checking and loading return them.
#pragma once

#include <string>
#include <vector>

namespace kyotaku {

struct Diagnostic {
    std::string kind;  // syntax, unknown-name, type-mismatch, non-exhaustive, unreachable,
                       // ambiguous-month-arithmetic, overlapping-versions, version-gap, invalid-date, duplicate,
                       // cycle, missing-otherwise, limit, io
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

// Renders one diagnostic as text, clang style, with a caret line under the span (wide characters count two).
std::string format_diagnostic(Diagnostic const& d);
std::string format_diagnostics(std::vector<Diagnostic> const& ds);

}  // namespace kyotaku
