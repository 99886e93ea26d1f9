// The only translation unit that instantiates the grammar templates.
#include "grammar_def.hpp"

namespace kyotaku::grammar {

namespace {
// Blanks and `#` comments. ASCII only: the ideographic space was normalised to ' ' before parsing.
auto const skipper = x3::char_(" \t\r\n") | x3::lexeme['#' >> *(x3::char_ - x3::eol)];
}

ParseOutcome parse(std::string const& text, position_cache& positions) {
    ParseOutcome out;
    iterator_type first = text.begin();
    iterator_type const last = text.end();
    int depth = 0;
    auto const parser = x3::with<depth_tag>(std::ref(depth))[x3::with<position_tag>(std::ref(positions))[file]];
    try {
        bool ok = x3::phrase_parse(first, last, parser, skipper, out.file);
        if (!ok || first != last) {
            out.error =
                SyntaxError{first,
                            "宣言 declaration (enum, fact, param, asof, let, decision, export let, fixture, test)"};
            return out;
        }
        out.ok = true;
    } catch (x3::expectation_failure<iterator_type> const& e) {
        out.error = SyntaxError{e.where(), e.which()};
    }
    return out;
}

}  // namespace kyotaku::grammar
