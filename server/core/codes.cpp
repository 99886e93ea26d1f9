#include "core/codes.hpp"

#include "kyotaku/calendar.hpp"

#include <simdjson.h>

#include <cstring>

namespace kyotaku::server {

namespace {
bool all_digits(std::string_view s) {
    if (s.empty()) return false;
    for (char c : s)
        if (c < '0' || c > '9') return false;
    return true;
}
}  // namespace

int modulus10_check_digit(std::string_view digits) {
    int sum = 0;
    bool weight_two = true;  // the digit left of the check digit weighs 2
    for (auto it = digits.rbegin(); it != digits.rend(); ++it) {
        int p = (*it - '0') * (weight_two ? 2 : 1);
        sum += p / 10 + p % 10;
        weight_two = !weight_two;
    }
    return (10 - sum % 10) % 10;
}

bool valid_facility_code(std::string_view code) { return !facility_code_error(code, "").has_value(); }

std::optional<Error> facility_code_error(std::string_view code, std::string const& field) {
    if (code.size() != 10 || !all_digits(code))
        return invalid(field, "医療機関等コードは10桁の数字です", "the facility code is 10 digits");
    if (modulus10_check_digit(code.substr(0, 9)) != code[9] - '0')
        return invalid(field, "医療機関等コードの検証番号が合いません",
                       "the facility code's check digit does not match");
    return std::nullopt;
}

std::string canonical_insurer_number(std::string_view raw) {
    std::string s = normalize_symbol(raw);
    // 国保 6-digit numbers padded to 8 with leading spaces or zeros: both are accepted (interfaces.md §1).
    // No 8-digit insurer number starts with 00 (法別番号 00 does not exist), so the padding is unambiguous.
    if (s.size() == 8 && (s.rfind("  ", 0) == 0 || s.rfind("00", 0) == 0)) {
        std::string six = s.substr(2);
        if (all_digits(six)) return six;
    }
    return s;
}

bool valid_insurer_number(std::string_view number) { return !insurer_number_error(number, "").has_value(); }

std::optional<Error> insurer_number_error(std::string_view raw, std::string const& field) {
    std::string s = canonical_insurer_number(raw);
    if ((s.size() != 8 && s.size() != 6) || !all_digits(s))
        return invalid(field, "保険者番号は8桁 (国保は6桁) の数字です", "the insurer number is 8 digits (6 for 国保)");
    if (modulus10_check_digit(std::string_view(s).substr(0, s.size() - 1)) != s.back() - '0')
        return invalid(field, "保険者番号の検証番号が合いません", "the insurer number's check digit does not match");
    return std::nullopt;
}

std::string normalize_symbol(std::string_view s) {
    std::string n = normalize_width(s);
    std::size_t a = n.find_first_not_of(' '), b = n.find_last_not_of(' ');
    return a == std::string::npos ? std::string() : n.substr(a, b - a + 1);
}

// The length in bytes of the well-formed UTF-8 character at s[i] (its code point in `cp`), or 0 when there is none.
std::size_t utf8_char_at(std::string_view s, std::size_t i, std::uint32_t& cp) {
    auto const c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
        cp = c;
        return 1;
    }
    std::size_t n = 0;
    if ((c & 0xE0) == 0xC0) n = 1, cp = c & 0x1F;
    else if ((c & 0xF0) == 0xE0) n = 2, cp = c & 0x0F;
    else if ((c & 0xF8) == 0xF0) n = 3, cp = c & 0x07;
    else return 0;
    if (i + n >= s.size()) return 0;
    for (std::size_t k = 1; k <= n; ++k) {
        auto const cc = static_cast<unsigned char>(s[i + k]);
        if ((cc & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (cc & 0x3F);
    }
    // No overlong forms, no surrogates, nothing above U+10FFFF.
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n + 1;
}

bool valid_utf8(std::string_view s) {
    // simdjson's check (the SIMD kernel of the machine it runs on; the same rules: no overlong forms, no surrogates,
    // nothing above U+10FFFF): every text the database is given is checked, a batch's stored rows and 資格確認履歴
    // details too, and the check byte by byte past the first non-ASCII byte was some 3 % of a batch's CPU.
    return simdjson::validate_utf8(s.data(), s.size());
}

}  // namespace kyotaku::server
