// Iterator and context types of the grammar, kept in one place (calc9 style): the grammar is instantiated in
// exactly one translation unit (grammar.cpp) with these types.
#pragma once

#include <boost/spirit/home/x3.hpp>
#include <boost/spirit/home/x3/support/utility/error_reporting.hpp>

#include <string>

namespace kyotaku::grammar {
namespace x3 = boost::spirit::x3;

using iterator_type = std::string::const_iterator;
using position_cache = x3::position_cache<std::vector<iterator_type>>;
}  // namespace kyotaku::grammar
