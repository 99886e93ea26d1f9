// A parsed rule file: the text as written, the width-normalised text the grammar read, the AST and the
// positions of its nodes. Diagnostics are made here from node positions.
#pragma once

#include "ast.hpp"
#include "config.hpp"
#include "kyotaku/diagnostics.hpp"

#include <memory>
#include <string>
#include <vector>

namespace kyotaku::syntax {
namespace x3 = boost::spirit::x3;

struct Span {
    std::uint16_t file = 0;
    std::uint32_t begin = 0, end = 0;  // byte offsets into the normalised text
};

struct ParsedFile {
    std::string path;  // for diagnostics
    std::string name;  // in the compiled program (SourceFile::name)
    std::string original;
    std::string text;  // normalised: full-width digits/letters/space → ASCII outside "strings"
    std::unique_ptr<grammar::position_cache> positions;
    ast::File ast;
    bool ok = false;

    std::vector<std::uint32_t> text_lines, original_lines;  // byte offset of each line's start (index 0: line 1)

    void index_lines();  // fills text_lines and original_lines (after text and original are set)
    Span span_of(x3::position_tagged const& node, std::uint16_t index) const;
    // line (1-based) and column (1-based, code points) of a byte offset
    std::pair<int, int> line_col(std::uint32_t offset) const;
    std::string line_text(int line) const;  // the original line
    std::string slice(Span s) const;        // original text of a span (same code points as the normalised one)
};

// Replaces full-width forms by ASCII outside string literals; keeps the code-point count of every line.
std::string normalize_source(std::string_view text);

// Parses one file; a syntax error is appended to `diags`.
std::unique_ptr<ParsedFile> parse_file(std::string path, std::string text, std::vector<Diagnostic>& diags);

Diagnostic make_diagnostic(ParsedFile const& f, Span s, DiagnosticKind kind, std::string ja, std::string en);

}  // namespace kyotaku::syntax
