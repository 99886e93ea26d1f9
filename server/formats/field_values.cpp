#include "formats/field_values.hpp"

#include "core/codes.hpp"
#include "kyotaku/calendar.hpp"

#include <algorithm>
#include <cstdio>

namespace kyotaku::server {

namespace {
std::size_t utf8_chars(std::string const& s) {
    std::size_t n = 0;
    for (char ch : s) n += (static_cast<unsigned char>(ch) & 0xC0) != 0x80;
    return n;
}
}  // namespace

Error missing_field(char const* field) {
    return invalid(field, std::string("項目 ") + field + " がありません",
                   std::string("field ") + field + " is missing");
}

std::string const& required(char const* field, std::optional<std::string> const& value) {
    if (!value) throw missing_field(field);
    return *value;
}

std::string iso_date(char const* field, std::string const& text) {
    auto r = parse_date(text);
    if (!r.date) {
        throw invalid(field, std::string("項目 ") + field + ": " + r.message.ja,
                      std::string("field ") + field + ": " + r.message.en);
    }
    return r.date->iso();
}

namespace {
int enum_of(Program const& rules, char const* fact) {
    int f = rules.find_fact(fact);
    return f < 0 ? -1 : rules.facts[std::size_t(f)].type.enum_id;
}
std::string allowed_values(Program const& rules, int enum_id) {
    std::string out;
    if (enum_id >= 0)
        for (auto const& v : rules.enums[std::size_t(enum_id)].values) out += (out.empty() ? "" : ", ") + v;
    return out;
}
}  // namespace

std::string enum_value(Program const& rules, char const* field, char const* fact, std::string const& v) {
    int e = enum_of(rules, fact);
    if (e < 0 || rules.find_enum_value(e, v) < 0)
        throw invalid(field,
                      std::string("項目 ") + field + " の値「" + v + "」は使えません (" + allowed_values(rules, e) +
                          ")",
                      std::string("unknown value for ") + field + " (" + allowed_values(rules, e) + ")");
    return v;
}

std::vector<std::string> enum_list(Program const& rules, char const* field, char const* fact,
                                   std::vector<std::optional<std::string>> const& values) {
    int e = enum_of(rules, fact);
    std::vector<std::string> out;
    for (auto const& item : values) {
        if (!item || e < 0 || rules.find_enum_value(e, *item) < 0)
            throw invalid(field,
                          std::string("項目 ") + field + " に使えない値があります (" + allowed_values(rules, e) + ")",
                          std::string("unknown value in ") + field + " (" + allowed_values(rules, e) + ")");
        if (std::find(out.begin(), out.end(), *item) == out.end()) out.push_back(*item);
    }
    return out;
}

std::string without_refused_characters(std::string_view s, std::size_t& replaced) {
    std::string out;
    out.reserve(s.size());
    std::uint32_t cp = 0;
    for (std::size_t i = 0; i < s.size();) {
        std::size_t const n = utf8_char_at(s, i, cp);
        if (n == 0 || refused_character(s.substr(i, n))) {
            out += "〓";
            ++replaced;
            i += n == 0 ? 1 : n;
            continue;
        }
        out.append(s.substr(i, n));
        i += n;
    }
    return out;
}

std::string utf8_prefix(std::string const& text, std::size_t max_bytes) {
    if (text.size() <= max_bytes) return text;
    std::size_t end = max_bytes;
    while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;  // not inside a character
    return text.substr(0, end);
}

std::optional<char32_t> refused_character(std::string_view s) {
    for (std::size_t i = 0; i < s.size();) {
        auto const c = static_cast<unsigned char>(s[i]);
        std::size_t const n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        char32_t cp = n == 1 ? c : n == 2 ? c & 0x1F : n == 3 ? c & 0x0F : c & 0x07;
        for (std::size_t k = 1; k < n && i + k < s.size(); ++k)
            cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
        i += n;
        bool const control = (cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') || (cp >= 0x7F && cp <= 0x9F);
        bool const noncharacter = (cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFE) == 0xFFFE;
        bool const bidi = cp == 0x061C || cp == 0x200E || cp == 0x200F || (cp >= 0x202A && cp <= 0x202E) ||
                          (cp >= 0x2066 && cp <= 0x2069);
        if (control || noncharacter || bidi) return cp;
    }
    return std::nullopt;
}

std::pair<std::string, std::string> describe_character(char32_t cp) {
    char hex[16];
    std::snprintf(hex, sizeof hex, "U+%04X", unsigned(cp));
    bool const noncharacter = (cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFE) == 0xFFFE;
    bool const control = cp < 0x20 || (cp >= 0x7F && cp <= 0x9F);
    return {std::string(hex) + (control        ? " (制御文字)"
                                : noncharacter ? " (非文字)"
                                               : " (双方向制御文字)"),
            std::string(hex) + (control        ? " (a control character)"
                                : noncharacter ? " (a non-character)"
                                               : " (a bidirectional control)")};
}

void check_text(std::string const& value, char const* field, std::size_t max_chars) {
    if (!valid_utf8(value))
        throw invalid(field, std::string("項目 ") + field + " が UTF-8 ではありません",
                      std::string("field ") + field + " is not UTF-8");
    // No NUL (libpq would cut the text there), no other control character but tabs and line breaks, no character that
    // XML cannot carry or that reorders the text around it.
    if (auto cp = refused_character(value)) {
        auto [ja, en] = describe_character(*cp);
        throw invalid(field, std::string("項目 ") + field + " に使えない文字 " + ja + " があります",
                      std::string("field ") + field + " holds " + en);
    }
    if (utf8_chars(value) > max_chars)
        throw invalid(field, std::string("項目 ") + field + " は " + std::to_string(max_chars) + " 文字までです",
                      std::string("field ") + field + " is at most " + std::to_string(max_chars) + " characters");
}

void check_line(std::string const& value, char const* field, std::size_t max_chars) {
    check_text(value, field, max_chars);
    if (value.find_first_of("\t\r\n") != std::string::npos)
        throw invalid(field, std::string("項目 ") + field + " にタブや改行は使えません",
                      std::string("field ") + field + " holds a tab or a line break");
}

std::vector<std::string> split_csv_line(std::string const& line) {
    std::vector<std::string> f;
    std::size_t at = 0;
    for (;;) {
        std::size_t comma = line.find(',', at);
        f.push_back(line.substr(at, comma == std::string::npos ? std::string::npos : comma - at));
        if (comma == std::string::npos) break;
        at = comma + 1;
    }
    return f;
}

}  // namespace kyotaku::server
