// Reading a JSON request body: each route names the fields it accepts, and an unknown field is a 400 naming it
// (so nothing a route does not document — a PIN under any name — is ever read, logged or stored). The readers
// check types and formats and throw `Error` naming the field.
#pragma once

#include "core/codes.hpp"
#include "core/error.hpp"
#include "kyotaku/program.hpp"

#include <nlohmann/json.hpp>

#include <initializer_list>
#include <optional>
#include <string>
#include <utility>
#include <string_view>
#include <vector>

namespace kyotaku::server {

using json = nlohmann::json;

class Fields {
public:
    // Refuses a body that is not an object or carries a field outside `allowed`.
    Fields(json const& body, std::initializer_list<std::string_view> allowed);

    bool has(char const* field) const;
    std::string text(char const* field) const;                 // required string
    std::string optional_text(char const* field) const;        // "" when absent or null
    std::optional<std::string> maybe_text(char const* field) const;  // nullopt when absent or null
    bool boolean(char const* field, bool fallback) const;
    std::string date(char const* field) const;                 // required; ISO or 和暦 → ISO
    std::string optional_date(char const* field) const;        // "" when absent
    // A value of one of the rule set's enums (the rules own the values): `fact` names the fact whose type it is.
    std::string enum_value(Program const& rules, char const* field, char const* fact) const;
    std::vector<std::string> enum_list(Program const& rules, char const* field, char const* fact) const;
    json const& raw(char const* field) const;                  // required, any type
    json const& body() const { return body_; }

private:
    json const& body_;
};

// A value (a list of values: nullopt for an entry that is not text) of one of the rule set's enums, or the error
// naming `field` and the values allowed; `fact` names the fact whose type it is. The list comes back without repeats.
std::string enum_value(Program const& rules, char const* field, char const* fact, std::string const& value);
std::vector<std::string> enum_list(Program const& rules, char const* field, char const* fact,
                                   std::vector<std::optional<std::string>> const& values);
// A JSON array as such a list.
std::vector<std::optional<std::string>> text_list(Fields const& f, char const* field);

// The card fields of a body (insurer_number, symbol, number, branch, birthdate), each absent or text.
CardFields card_fields(Fields const& f);

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

// Every string of a JSON value (keys and values, at any depth) checked like a text field (check_text), the error
// naming `field`; no recursion (the depth of a body is bounded when it is parsed, not here).
void check_texts_in(nlohmann::json const& value, char const* field, std::size_t max_chars);

// One line of JSON Lines: `value` dumped, with U+2028 and U+2029 written as \u2028 and \u2029 (JSON allows them
// raw, but line-based readers — JavaScript's among them — take them for line ends).
std::string json_line(nlohmann::json const& value);

// One line of a CSV file split at commas (the files of this system quote nothing).
std::vector<std::string> split_csv_line(std::string const& line);

// Text fields must be UTF-8 without refused characters (above) and of bounded length; `max_chars` counts characters,
// not bytes.
void check_text(std::string const& value, char const* field, std::size_t max_chars);

}  // namespace kyotaku::server
