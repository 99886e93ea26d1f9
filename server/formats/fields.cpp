#include "formats/fields.hpp"

#include "kyotaku/calendar.hpp"

#include <algorithm>
#include <cstdio>

namespace kyotaku::server {

Fields::Fields(json const& body, std::initializer_list<std::string_view> allowed) : body_(body) {
    if (!body.is_object()) throw invalid("", "本文は JSON のオブジェクトです", "the body must be a JSON object");
    for (auto const& [key, value] : body.items())
        if (std::find(allowed.begin(), allowed.end(), std::string_view(key)) == allowed.end())
            throw invalid(key, "この API では使えない項目です: " + key, "unknown field: " + key);
}

bool Fields::has(char const* field) const {
    auto it = body_.find(field);
    return it != body_.end() && !it->is_null();
}

json const& Fields::raw(char const* field) const {
    auto it = body_.find(field);
    if (it == body_.end() || it->is_null()) throw missing_field(field);
    return *it;
}

std::optional<std::string> Fields::maybe_text(char const* field) const {
    if (!has(field)) return std::nullopt;
    return text(field);
}

CardFields card_fields(Fields const& f) {
    return {f.maybe_text("insurer_number"), f.maybe_text("symbol"), f.maybe_text("number"), f.maybe_text("branch"),
            f.maybe_text("birthdate")};
}

std::string Fields::text(char const* field) const {
    json const& v = raw(field);
    if (!v.is_string())
        throw invalid(field, std::string("項目 ") + field + " は文字列です",
                      std::string("field ") + field + " must be a string");
    return v.get<std::string>();
}

std::string Fields::optional_text(char const* field) const { return has(field) ? text(field) : std::string(); }

bool Fields::boolean(char const* field, bool fallback) const {
    if (!has(field)) return fallback;
    json const& v = raw(field);
    if (!v.is_boolean())
        throw invalid(field, std::string("項目 ") + field + " は true か false です",
                      std::string("field ") + field + " must be true or false");
    return v.get<bool>();
}

std::string Fields::date(char const* field) const { return iso_date(field, text(field)); }

std::string Fields::optional_date(char const* field) const { return has(field) ? date(field) : std::string(); }

std::string Fields::enum_value(Program const& rules, char const* field, char const* fact) const {
    return server::enum_value(rules, field, fact, text(field));
}

std::vector<std::optional<std::string>> text_list(Fields const& f, char const* field) {
    json const& v = f.raw(field);
    if (!v.is_array())
        throw invalid(field, std::string("項目 ") + field + " は配列です",
                      std::string("field ") + field + " must be an array");
    std::vector<std::optional<std::string>> out;
    for (auto const& item : v)
        out.push_back(item.is_string() ? std::optional<std::string>(item.get<std::string>()) : std::nullopt);
    return out;
}

std::vector<std::string> Fields::enum_list(Program const& rules, char const* field, char const* fact) const {
    return server::enum_list(rules, field, fact, text_list(*this, field));
}

void check_texts_in(nlohmann::json const& value, char const* field, std::size_t max_chars) {
    std::vector<nlohmann::json const*> left{&value};
    while (!left.empty()) {
        nlohmann::json const* v = left.back();
        left.pop_back();
        if (v->is_string()) check_text(v->get_ref<std::string const&>(), field, max_chars);
        else if (v->is_array())
            for (auto const& e : *v) left.push_back(&e);
        else if (v->is_object())
            for (auto const& [key, e] : v->items()) {
                check_text(key, field, max_chars);
                left.push_back(&e);
            }
    }
}

std::string json_line(nlohmann::json const& value) {
    std::string line = value.dump();
    for (auto const& [raw, escaped] :
         {std::pair<char const*, char const*>{"\xE2\x80\xA8", "\\u2028"}, {"\xE2\x80\xA9", "\\u2029"}})
        for (std::size_t at = 0; (at = line.find(raw, at)) != std::string::npos; at += 6) line.replace(at, 3, escaped);
    return line + "\n";
}

}  // namespace kyotaku::server
