// The rule-file grammar (declaration). Definitions live in grammar_def.hpp, instantiated once in grammar.cpp.
#pragma once

#include "ast.hpp"
#include "config.hpp"

#include <optional>
#include <string>

namespace kyotaku::grammar {

struct SyntaxError {
    iterator_type where;
    std::string expected;  // what the parser expected there
};

// Parses normalised rule text. On success the AST's nodes are tagged in `positions`.
// Never throws; a syntax error is returned as a value.
struct ParseOutcome {
    bool ok = false;
    ast::File file;
    std::optional<SyntaxError> error;
};
ParseOutcome parse(std::string const& text, position_cache& positions);

}  // namespace kyotaku::grammar
