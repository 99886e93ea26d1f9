// Identifiers of the real system and their check digits (interfaces.md section 2).
#pragma once

#include "core/error.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kyotaku::server {

// Modulus 10, weights 2,1,2,… from the right over the digits before the check digit (a two-digit product
// counts as the sum of its digits); check = (10 − sum mod 10) mod 10. Returns the expected check digit.
int modulus10_check_digit(std::string_view digits_without_check);

// 医療機関等コード: 10 digits (都道府県 2 + 点数表 1 + 郡市区 2 + 番号 4 + check 1).
bool valid_facility_code(std::string_view code);
// 保険者番号: 8 digits, or 6 for 国保 (accepted also as 8 with two leading zeros or spaces).
bool valid_insurer_number(std::string_view number);
// The canonical form of an insurer number: 6-digit 国保 numbers padded with spaces or zeros become 6 digits.
std::string canonical_insurer_number(std::string_view number);

// 記号・番号 may arrive full-width: normalise to ASCII and trim blanks before comparing.
std::string normalize_symbol(std::string_view s);

// Why a value was refused, naming `field`; nullopt when valid.
std::optional<Error> facility_code_error(std::string_view code, std::string const& field);
std::optional<Error> insurer_number_error(std::string_view number, std::string const& field);

// The card fields of a request or a file row as the caller sent them, each absent or text (insurer_number, symbol,
// number, branch, birthdate); card_from (usecases/desk_util.hpp) checks and canonicalises them.
struct CardFields {
    std::optional<std::string> insurer_number, symbol, number, branch, birthdate;
    friend bool operator==(CardFields const&, CardFields const&) = default;
};

// Whether `bytes` is well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
bool valid_utf8(std::string_view bytes);
// The length in bytes of the well-formed UTF-8 character at s[i] (its code point in `cp`), or 0 when there is none.
std::size_t utf8_char_at(std::string_view s, std::size_t i, std::uint32_t& cp);

}  // namespace kyotaku::server
