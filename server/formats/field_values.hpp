// The values of request fields, whatever the wire format: required texts, dates as callers write them (ISO or
// 和暦), values of the rule set's enums, texts of bounded length without refused characters. Each check throws an
// `Error` naming the field. No JSON here: formats/fields.hpp reads JSON bodies with these, and the use cases check
// their typed requests with them.
#pragma once

#include "core/error.hpp"
#include "kyotaku/program.hpp"

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kyotaku::server {

// The error naming a required field as missing.
Error missing_field(char const* field);

// A value (a list of values: nullopt for an entry that is not text) of one of the rule set's enums, or the error
// naming `field` and the values allowed; `fact` names the fact whose type it is. The list comes back without repeats.
std::string enum_value(Program const& rules, char const* field, char const* fact, std::string const& value);
std::vector<std::string> enum_list(Program const& rules, char const* field, char const* fact,
                                   std::vector<std::optional<std::string>> const& values);
// The value of a required field, or the error naming it as missing (the same as a Fields reader's).
std::string const& required(char const* field, std::optional<std::string> const& value);
// A date as a caller writes it (ISO or 和暦) → ISO, or the error naming `field`.
std::string iso_date(char const* field, std::string const& text);

// The longest prefix of valid UTF-8 `text` of at most `max_bytes` that ends on a character boundary (for echoes).
std::string utf8_prefix(std::string const& text, std::size_t max_bytes);

// The first character of valid UTF-8 `text` that no field of this system takes, as a code point: a control
// character (C0 but tab and line breaks, DEL, C1), a non-character (U+FDD0..U+FDEF, U+xFFFE, U+xFFFF: not allowed in
// XML, so one stored would make every later XML answer that carries it not well-formed) or a bidirectional
// control (U+061C, U+200E, U+200F, U+202A..U+202E, U+2066..U+2069: they reorder what staff read beside them).
std::optional<char32_t> refused_character(std::string_view text);
// "U+FFFE (非文字)" and its English: how a message names a refused character.
std::pair<std::string, std::string> describe_character(char32_t cp);

// `text` with every refused character (above) and every byte that is not part of well-formed UTF-8 written as 〓
// (U+3013, the substitute the real system's files use); `replaced` counts them. For answers built from stored text
// that an older server let in before the door check (outsider 24, F3): XML 1.0 cannot carry U+FFFE or U+0001.
std::string without_refused_characters(std::string_view text, std::size_t& replaced);

// One line of a CSV file split at commas (the files of this system quote nothing).
std::vector<std::string> split_csv_line(std::string const& line);

// Text fields must be UTF-8 without refused characters (above) and of bounded length; `max_chars` counts characters,
// not bytes.
void check_text(std::string const& value, char const* field, std::size_t max_chars);

// A text field that is one line (a name, a key, an identifier): check_text's checks, and no tab or line break, which
// the text fields that may hold several lines (a reason) let through.
void check_line(std::string const& value, char const* field, std::size_t max_chars);

}  // namespace kyotaku::server
