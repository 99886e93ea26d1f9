// Reading a JSON request body: each route names the fields it accepts, and an unknown field is a 400 naming it
// (so nothing a route does not document — a PIN under any name — is ever read, logged or stored). The readers
// check types and formats and throw `Error` naming the field.
#pragma once

#include "core/codes.hpp"
#include "core/error.hpp"
#include "formats/field_values.hpp"
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

// A JSON array as such a list.
std::vector<std::optional<std::string>> text_list(Fields const& f, char const* field);

// The card fields of a body (insurer_number, symbol, number, branch, birthdate), each absent or text.
CardFields card_fields(Fields const& f);

// Every string of a JSON value (keys and values, at any depth) checked like a text field (check_text), the error
// naming `field`; no recursion (the depth of a body is bounded when it is parsed, not here).
void check_texts_in(nlohmann::json const& value, char const* field, std::size_t max_chars);

// One line of JSON Lines: `value` dumped, with U+2028 and U+2029 written as \u2028 and \u2029 (JSON allows them
// raw, but line-based readers — JavaScript's among them — take them for line ends).
std::string json_line(nlohmann::json const& value);

}  // namespace kyotaku::server
