// JSON Lines in and out. Input is parsed with simdjson's On-Demand API (no allocation per field); output is
// written by hand into one reusable buffer, with the JSON spellings of names and enum values prepared once.
#include "kyotaku/jsonl.hpp"

#if KYOTAKU_JSONL_SIMDJSON
#include <simdjson.h>
#else
#include <nlohmann/json.hpp>
#endif

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <date/date.h>

namespace kyotaku {

void append_json_string(std::string& out, std::string_view s) {
    out += '"';
    for (char ch : s) {
        auto c = static_cast<unsigned char>(ch);
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", c);
                    out += buf;
                } else {
                    out += ch;
                }
        }
    }
    out += '"';
}

namespace {
void append_2(std::string& out, unsigned v) {
    out += char('0' + v / 10);
    out += char('0' + v % 10);
}
void append_year(std::string& out, int y) {
    if (y >= 0 && y <= 9999) {
        out += char('0' + y / 1000);
        out += char('0' + (y / 100) % 10);
        out += char('0' + (y / 10) % 10);
        out += char('0' + y % 10);
    } else {
        out += std::to_string(y);
    }
}
void append_date(std::string& out, std::int64_t days) {
    date::year_month_day ymd{date::sys_days{date::days{days}}};
    out += '"';
    append_year(out, int(ymd.year()));
    out += '-';
    append_2(out, unsigned(ymd.month()));
    out += '-';
    append_2(out, unsigned(ymd.day()));
    out += '"';
}
void append_month(std::string& out, std::int64_t index) {
    Month m = Month::from_index(index);
    out += '"';
    append_year(out, m.year());
    out += '-';
    append_2(out, m.month());
    out += '"';
}
void append_int(std::string& out, std::int64_t v) {
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, std::size_t(r.ptr - buf));
}

// A JSON number exactly (RFC 8259): -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
bool is_json_number(std::string_view t) {
    std::size_t i = 0;
    auto digits = [&] {
        std::size_t const from = i;
        while (i < t.size() && t[i] >= '0' && t[i] <= '9') ++i;
        return i > from;
    };
    if (i < t.size() && t[i] == '-') ++i;
    if (i < t.size() && t[i] == '0') ++i;
    else if (!digits()) return false;
    if (i < t.size() && t[i] == '.') {
        ++i;
        if (!digits()) return false;
    }
    if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
        ++i;
        if (i < t.size() && (t[i] == '+' || t[i] == '-')) ++i;
        if (!digits()) return false;
    }
    return i == t.size();
}

std::optional<std::int64_t> fast_month(std::string_view t) {
    if (t.size() != 7 || t[4] != '-') return std::nullopt;
    for (std::size_t i : {0, 1, 2, 3, 5, 6})
        if (unsigned(t[i]) - '0' >= 10u) return std::nullopt;
    int y = (t[0] - '0') * 1000 + (t[1] - '0') * 100 + (t[2] - '0') * 10 + (t[3] - '0');
    int m = (t[5] - '0') * 10 + (t[6] - '0');
    if (m < 1 || m > 12) return std::nullopt;
    return std::int64_t(y) * 12 + (m - 1);
}
}  // namespace

struct JsonlEvaluator::Impl {
    std::shared_ptr<Program const> program;
    Evaluator evaluator;
    Activation facts;
#if KYOTAKU_JSONL_SIMDJSON
    simdjson::ondemand::parser parser;
#endif
    std::vector<std::string> keys;                        // "name": for each output decision
    std::vector<std::vector<std::string>> enum_json;      // "value" for each enum value
    std::vector<std::pair<std::string_view, int>> index;  // fact name → fact
    std::vector<std::string> known;    // every key a line may hold: id and the facts (for did-you-mean)
    std::vector<std::string> allowed;  // keys that are no fact of these rules but are accepted (allow_keys)
    std::string id_json;
    std::string padded;  // a copy of a line with simdjson's padding, when the caller's buffer has none

    explicit Impl(std::shared_ptr<Program const> p) : program(p), evaluator(p), facts(*p) {
        for (auto s : p->outputs) {
            std::string k;
            append_json_string(k, p->slots[s].name);
            keys.push_back(k + ":");
        }
        for (auto const& e : p->enums) {
            enum_json.emplace_back();
            for (auto const& v : e.values) {
                std::string q;
                append_json_string(q, v);
                enum_json.back().push_back(q);
            }
        }
        for (std::size_t f = 0; f < p->facts.size(); ++f) index.emplace_back(p->facts[f].name, int(f));
        known.push_back("id");
        for (auto const& f : p->facts) known.push_back(f.name);
    }

    std::string enum_list(int e) const {
        std::string s;
        for (auto const& v : program->enums[std::size_t(e)].values) s += (s.empty() ? "" : ", ") + v;
        return s;
    }

#if KYOTAKU_JSONL_SIMDJSON
    std::string read(simdjson::padded_string_view json, Activation& out, std::string& id);
    std::string read_fields(simdjson::padded_string_view json, Activation& out, std::string& id);
    void find_id(simdjson::padded_string_view json, std::string& id);
#else
    std::string read(std::string_view json, Activation& out, std::string& id);
#endif
    void write_outcomes(std::string& out);
};

namespace {
// The reader's view of one JSON value. Two adapters implement it: simdjson's On-Demand values (the native
// build) and nlohmann/json (the WebAssembly build, where simdjson's compiled part is not available). The
// conversion of facts below is written once, over either adapter, so both builds answer alike.
//   is_null(), as_bool(), as_int(), as_string() → std::optional, each(f) → false when not an array,
//   kind() → 's' string, 'n' number, '0' null, '?' other, raw_number() → the number's text.

template <typename Value, typename Self, typename FieldError>
void convert_fact(Self const& self, Activation& out, int f, std::string_view key, Value& value, FieldError&& field_error) {
    auto const& info = self.program->facts[std::size_t(f)];
    if (value.is_null()) {
        out.unset(f);
        if (info.has_default) out.set_raw(f, info.default_value);
        return;
    }
    switch (info.type.kind) {
        case TypeKind::Bool: {
            if (auto b = value.as_bool()) out.set_raw(f, *b);
            else field_error(key, "true か false が必要です / expected true or false");
            break;
        }
        case TypeKind::Int: {
            if (auto v = value.as_int()) out.set_raw(f, *v);
            else field_error(key, "整数が必要です / expected an integer");
            break;
        }
        case TypeKind::Date: {
            auto s = value.as_string();
            if (!s) {
                field_error(key, "日付の文字列が必要です (YYYY-MM-DD) / expected a date string (YYYY-MM-DD)");
                break;
            }
            if (auto d = parse_iso_date_fast(*s)) {
                out.set_raw(f, d->days());
                break;
            }
            auto r = parse_date(*s);
            if (r.date) out.set_raw(f, r.date->days());
            else field_error(key, r.error);
            break;
        }
        case TypeKind::Month: {
            auto s = value.as_string();
            if (!s) {
                field_error(key, "月の文字列が必要です (YYYY-MM) / expected a month string (YYYY-MM)");
                break;
            }
            auto r = parse_month(*s);
            if (r.month) out.set_raw(f, r.month->index());
            else field_error(key, r.error);
            break;
        }
        case TypeKind::Enum: {
            auto s = value.as_string();
            if (!s) {
                field_error(key, "文字列が必要です (" + self.enum_list(info.type.enum_id) + ") / expected a string");
                break;
            }
            int v = self.program->find_enum_value(info.type.enum_id, *s);
            if (v < 0) field_error(key, "不明な値「" + std::string(*s) + "」(" + self.enum_list(info.type.enum_id) + " のいずれか) / unknown value \"" + std::string(*s) + "\"");
            else out.set_raw(f, v);
            break;
        }
        case TypeKind::EnumSet: {
            std::uint64_t mask = 0;
            bool ok = true;
            bool const is_array = value.each([&](auto& item) {
                auto s = item.as_string();
                if (!s) {
                    field_error(key, "配列の要素は文字列です / array items must be strings");
                    return ok = false;
                }
                int v = self.program->find_enum_value(info.type.enum_id, *s);
                if (v < 0) {
                    field_error(key, "不明な値「" + std::string(*s) + "」(" + self.enum_list(info.type.enum_id) + " のいずれか) / unknown value \"" + std::string(*s) + "\"");
                    return ok = false;
                }
                mask |= std::uint64_t(1) << v;
                return true;
            });
            if (!is_array) field_error(key, "配列が必要です / expected an array");
            else if (ok) out.set_raw(f, std::int64_t(mask));
            break;
        }
        case TypeKind::MonthSet: {
            auto& bits = out.month_set(f);
            bool const is_array = value.each([&](auto& item) {
                auto s = item.as_string();
                if (!s) {
                    field_error(key, "月は \"YYYY-MM\" の文字列です / months are \"YYYY-MM\" strings");
                    return false;
                }
                std::optional<std::int64_t> m = fast_month(*s);
                if (!m) {
                    auto r = parse_month(*s);
                    if (!r.month) {
                        field_error(key, r.error);
                        return false;
                    }
                    m = r.month->index();
                }
                if (!bits.set(*m)) {
                    field_error(key, "月 " + std::string(*s) + " は対応範囲 2000-01〜2085-04 の外です / month outside 2000-01..2085-04");
                    return false;
                }
                return true;
            });
            if (!is_array) field_error(key, "月の配列が必要です / expected an array of months");
            break;
        }
        case TypeKind::Text:
        case TypeKind::MonthRange: break;
    }
}

// One field of the line: the id, a fact of these rules, or something else (ignored).
template <typename Value, typename Self, typename FieldError>
void read_field(Self const& self, Activation& out, std::string& id, std::string_view key, Value& value, FieldError&& field_error) {
    if (key == "id") {
        switch (value.kind()) {
            case 's':
                if (auto s = value.as_string()) {
                    id.clear();
                    append_json_string(id, *s);
                } else {
                    field_error("id", "文字列が不正です / invalid string");
                }
                break;
            case 'n': {
                // The id is echoed as written (1.50 stays 1.50), so it must be a JSON number exactly, and a finite
                // one: 1e999 is valid JSON that common parsers refuse or turn into infinity.
                std::string raw = value.raw_number();
                if (is_json_number(raw) && std::isfinite(std::strtod(raw.c_str(), nullptr))) id = std::move(raw);
                else field_error("id", "数値が不正です / invalid number");
                break;
            }
            case '0': break;
            default: field_error("id", "文字列か数値でなければなりません / must be a string or a number");
        }
        return;
    }
    for (auto const& [name, i] : self.index)
        if (name == key) return convert_fact(self, out, i, key, value, field_error);
    // A key that is no fact of these rules is an error, never silently dropped: a misspelt fact would otherwise make
    // every decision that needs it null (or a corpus compare less than it seems). Keys the caller allows (the
    // other rule set's facts, in kyotaku diff) are skipped.
    for (auto const& allowed : self.allowed)
        if (allowed == key) return;
    std::string const near = nearest_name(key, self.known);
    field_error(key, "このルールにない項目です" + (near.empty() ? std::string() : " (「" + near + "」のことですか?)") + " / not a fact of these rules" +
                         (near.empty() ? std::string() : " (did you mean '" + near + "'?)"));
}
}  // namespace

#if KYOTAKU_JSONL_SIMDJSON
namespace {
struct SimdValue {
    simdjson::ondemand::value& v;
    bool is_null() {
        bool n = false;
        return v.is_null().get(n) == simdjson::SUCCESS && n;
    }
    std::optional<bool> as_bool() {
        bool b;
        if (v.get_bool().get(b)) return std::nullopt;
        return b;
    }
    std::optional<std::int64_t> as_int() {
        std::int64_t i;
        if (v.get_int64().get(i)) return std::nullopt;
        return i;
    }
    std::optional<std::string_view> as_string() {
        std::string_view s;
        if (v.get_string().get(s)) return std::nullopt;
        return s;
    }
    template <typename F>
    bool each(F&& f) {
        simdjson::ondemand::array arr;
        if (v.get_array().get(arr)) return false;
        for (auto item : arr) {
            simdjson::ondemand::value iv;
            if (item.get(iv)) {
                // A broken element: report it as a non-string item.
                struct Bad {
                    std::optional<std::string_view> as_string() { return std::nullopt; }
                } bad;
                f(bad);
                break;
            }
            SimdValue w{iv};
            if (!f(w)) break;
        }
        return true;
    }
    char kind() {
        simdjson::ondemand::json_type t;
        if (v.type().get(t)) return '?';
        switch (t) {
            case simdjson::ondemand::json_type::string: return 's';
            case simdjson::ondemand::json_type::number: return 'n';
            case simdjson::ondemand::json_type::null: return '0';
            default: return '?';
        }
    }
    std::string raw_number() {
        std::string_view raw = v.raw_json_token();
        while (!raw.empty() && (raw.back() == ' ' || raw.back() == '\t' || raw.back() == '\r' || raw.back() == '\n')) raw.remove_suffix(1);
        return std::string(raw);
    }
};
}  // namespace

// A line with an error is answered with its id wherever the id stands: when the id comes after the faulty field,
// a second pass reads the id alone.
std::string JsonlEvaluator::Impl::read(simdjson::padded_string_view json, Activation& out, std::string& id) {
    std::string err = read_fields(json, out, id);
    if (!err.empty() && id == "null") find_id(json, id);
    return err;
}

void JsonlEvaluator::Impl::find_id(simdjson::padded_string_view json, std::string& id) {
    using namespace simdjson;
    ondemand::document doc;
    ondemand::object obj;
    if (parser.iterate(json).get(doc) || doc.get_object().get(obj)) return;
    for (auto field_result : obj) {
        if (field_result.error()) return;
        ondemand::field field = field_result.value_unsafe();
        std::string_view key;
        if (field.unescaped_key().get(key)) return;
        if (key != "id") continue;
        ondemand::value value = field.value();
        SimdValue v{value};
        std::string found = "null";
        bool bad = false;
        read_field(*this, facts, found, key, v, [&](std::string_view, std::string const&) { bad = true; });
        if (!bad) id = std::move(found);
        return;
    }
}

// flatten: the fact conversion is written once for both readers; inlined here it runs as fast as hand-merged code.
__attribute__((flatten)) std::string JsonlEvaluator::Impl::read_fields(simdjson::padded_string_view json, Activation& out, std::string& id) {
    using namespace simdjson;
    id = "null";
    out.clear();
    ondemand::document doc;
    if (parser.iterate(json).get(doc)) return "JSON として読めません / not valid JSON";
    ondemand::object obj;
    if (doc.get_object().get(obj)) return "JSON のオブジェクトとして読めません / not a valid JSON object";
    std::string err;
    auto const field_error = [&](std::string_view field, std::string msg) {
        if (err.empty()) err = "field " + std::string(field) + ": " + msg;
    };
    for (auto field_result : obj) {
        if (field_result.error()) return err.empty() ? "JSON として読めません / not valid JSON" : err;
        ondemand::field field = field_result.value_unsafe();
        std::string_view key;
        if (field.unescaped_key().get(key)) return "JSON として読めません / not valid JSON";
        ondemand::value value = field.value();
        SimdValue v{value};
        if (key == "id" && v.kind() == '?') {
            ondemand::json_type t;
            if (value.type().get(t)) return "JSON として読めません / not valid JSON";
        }
        read_field(*this, out, id, key, v, field_error);
        if (!err.empty()) return err;
    }
    // Nothing but blanks may follow the object.
    std::string_view text(json.data(), json.length());
    std::size_t last = text.find_last_not_of(" \t\r\n");
    if (last == std::string_view::npos || text[last] != '}')
        return "JSON として読めません (オブジェクトの後に余分な文字があります) / not valid JSON (trailing content)";
    return err;
}
#else
namespace {
struct NlohmannValue {
    nlohmann::ordered_json const& v;
    bool is_null() { return v.is_null(); }
    std::optional<bool> as_bool() { return v.is_boolean() ? std::optional<bool>(v.get<bool>()) : std::nullopt; }
    std::optional<std::int64_t> as_int() {
        if (v.is_number_integer() && !(v.is_number_unsigned() && v.get<std::uint64_t>() > std::uint64_t(INT64_MAX)))
            return v.get<std::int64_t>();
        return std::nullopt;
    }
    std::optional<std::string_view> as_string() {
        if (!v.is_string()) return std::nullopt;
        return std::string_view(v.get_ref<std::string const&>());
    }
    template <typename F>
    bool each(F&& f) {
        if (!v.is_array()) return false;
        for (auto const& item : v) {
            NlohmannValue w{item};
            if (!f(w)) break;
        }
        return true;
    }
    char kind() { return v.is_string() ? 's' : v.is_number() ? 'n' : v.is_null() ? '0' : '?'; }
    std::string raw_number() { return v.dump(); }
};
}  // namespace

std::string JsonlEvaluator::Impl::read(std::string_view text, Activation& out, std::string& id) {
    id = "null";
    out.clear();
    auto doc = nlohmann::ordered_json::parse(text, nullptr, false);
    if (doc.is_discarded()) return "JSON として読めません / not valid JSON";
    if (!doc.is_object()) return "JSON のオブジェクトとして読めません / not a valid JSON object";
    std::string err;
    auto const field_error = [&](std::string_view field, std::string msg) {
        if (err.empty()) err = "field " + std::string(field) + ": " + msg;
    };
    for (auto const& [key, value] : doc.items()) {
        NlohmannValue v{value};
        read_field(*this, out, id, key, v, field_error);
        if (!err.empty()) break;
    }
    // A line with an error is answered with its id wherever the id stands.
    if (!err.empty() && id == "null" && doc.contains("id")) {
        std::string found = "null";
        bool bad = false;
        NlohmannValue v{doc["id"]};
        read_field(*this, facts, found, "id", v, [&](std::string_view, std::string const&) { bad = true; });
        if (!bad) id = std::move(found);
    }
    return err;
}
#endif

void JsonlEvaluator::Impl::write_outcomes(std::string& out) {
    out += "{\"id\":";
    out += id_json;
    auto const& outputs = program->outputs;
    bool any_missing = false, any_version = false;
    for (std::size_t o = 0; o < outputs.size(); ++o) {
        Outcome const& oc = evaluator.outcome(o);
        auto const& slot = program->slots[outputs[o]];
        out += ',';
        out += keys[o];
        if (oc.status != Status::ok) {
            out += "null";
            any_missing = true;
            continue;
        }
        any_version = any_version || !slot.versions.empty();
        switch (slot.type.kind) {
            case TypeKind::Bool: out += oc.value ? "true" : "false"; break;
            case TypeKind::Int: append_int(out, oc.value); break;
            case TypeKind::Date: append_date(out, oc.value); break;
            case TypeKind::Month: append_month(out, oc.value); break;
            case TypeKind::Enum: out += enum_json[std::size_t(slot.type.enum_id)][std::size_t(oc.value)]; break;
            case TypeKind::EnumSet: {
                out += '[';
                bool first = true;
                auto const& names = enum_json[std::size_t(slot.type.enum_id)];
                for (std::size_t i = 0; i < names.size(); ++i)
                    if ((std::uint64_t(oc.value) >> i) & 1u) {
                        if (!first) out += ',';
                        out += names[i];
                        first = false;
                    }
                out += ']';
                break;
            }
            case TypeKind::Text: append_json_string(out, evaluator.render_text(oc.value, facts)); break;
            case TypeKind::MonthSet:
            case TypeKind::MonthRange: out += "null"; break;
        }
    }
    if (any_missing) {
        // Null decisions name what they lacked: the missing facts, or the absence of a version in force.
        out += ",\"missing\":{";
        bool first = true;
        for (std::size_t o = 0; o < outputs.size(); ++o) {
            Outcome const& oc = evaluator.outcome(o);
            if (oc.status == Status::ok) continue;
            if (!first) out += ',';
            first = false;
            out += keys[o];
            if (oc.status == Status::no_version) {
                std::string msg = "施行日 " + (facts.has(program->asof_fact) ? Date::from_days(facts.raw(program->asof_fact)).iso() : std::string("?")) +
                                  " に効力のある " + program->slots[oc.failed_slot].name + " の version がありません / no version in force";
                append_json_string(out, msg);
                continue;
            }
            out += '[';
            bool f1 = true;
            for (std::size_t f = 0; f < program->facts.size(); ++f)
                if ((oc.missing >> f) & 1u) {
                    if (!f1) out += ',';
                    f1 = false;
                    append_json_string(out, program->facts[f].name);
                }
            out += ']';
        }
        out += '}';
    }
    if (any_version) {
        out += ",\"versions\":{";
        bool first = true;
        for (std::size_t o = 0; o < outputs.size(); ++o) {
            Outcome const& oc = evaluator.outcome(o);
            auto const& slot = program->slots[outputs[o]];
            if (oc.status != Status::ok || slot.versions.empty()) continue;
            if (!first) out += ',';
            first = false;
            out += keys[o];
            append_json_string(out, slot.versions[oc.version].label);
        }
        out += '}';
    }
    out += "}\n";
}

JsonlEvaluator::JsonlEvaluator(std::shared_ptr<Program const> program) : impl_(std::make_unique<Impl>(std::move(program))) {}
JsonlEvaluator::~JsonlEvaluator() = default;

void JsonlEvaluator::allow_keys(std::vector<std::string> keys) {
    for (auto& k : keys) {
        if (std::find(impl_->known.begin(), impl_->known.end(), k) != impl_->known.end()) continue;
        impl_->known.push_back(k);
        impl_->allowed.push_back(std::move(k));
    }
}

std::string JsonlEvaluator::read_facts(std::string_view line, Activation& facts, std::string& id_json) {
#if KYOTAKU_JSONL_SIMDJSON
    impl_->padded.assign(line);
    impl_->padded.append(simdjson::SIMDJSON_PADDING, ' ');
    return impl_->read(simdjson::padded_string_view(impl_->padded.data(), line.size(), impl_->padded.size()), facts, id_json);
#else
    return impl_->read(line, facts, id_json);
#endif
}

namespace {
bool blank(std::string_view s) {
    for (char c : s)
        if (c != ' ' && c != '\t' && c != '\r') return false;
    return true;
}
}  // namespace

void JsonlEvaluator::answer_line(std::string_view line, std::string& out) {
    if (blank(line)) return;
    std::string err = read_facts(line, impl_->facts, impl_->id_json);
    if (!err.empty()) {
        out += "{\"id\":" + impl_->id_json + ",\"error\":";
        append_json_string(out, err);
        out += "}\n";
        return;
    }
    impl_->evaluator.evaluate(impl_->facts);
    impl_->write_outcomes(out);
}

LineReader::LineReader(std::FILE* in, std::size_t padding) : in_(in), buf_(chunk + max_line + padding, '\0') {}

bool LineReader::next(std::string_view& line, bool& too_long) {
    too_long = false;
    for (;;) {
        if (start_ < have_ || eof_) {
            char const* nl = start_ < have_ ? static_cast<char const*>(std::memchr(buf_.data() + start_, '\n', have_ - start_)) : nullptr;
            if (nl || (eof_ && start_ < have_)) {
                std::size_t const end = nl ? std::size_t(nl - buf_.data()) : have_;
                line = std::string_view(buf_.data() + start_, end - start_);
                start_ = nl ? end + 1 : have_;
                if (skipping_) {  // the tail of an over-long line
                    skipping_ = false;
                    continue;
                }
                return true;
            }
            if (eof_) return false;
        }
        std::memmove(buf_.data(), buf_.data() + start_, have_ - start_);
        have_ -= start_;
        start_ = 0;
        if (have_ >= max_line) {  // a line longer than the cap: reported once, the rest skipped up to its end
            have_ = 0;
            if (!skipping_) {
                skipping_ = true;
                line = {};
                too_long = true;
                return true;
            }
        }
        std::size_t const n = std::fread(buf_.data() + have_, 1, chunk + max_line - have_, in_);
        if (n == 0) eof_ = true;
        bytes_ += n;
        have_ += n;
    }
}

JsonlEvaluator::Stats JsonlEvaluator::run(std::FILE* in, std::FILE* out) {
#if KYOTAKU_JSONL_SIMDJSON
    LineReader reader(in, simdjson::SIMDJSON_PADDING);
#else
    LineReader reader(in, 0);
#endif
    std::string output;
    output.reserve(LineReader::chunk * 2);
    Stats stats;
    std::string_view line;
    bool too_long = false;
    while (reader.next(line, too_long)) {
        if (too_long) {
            ++stats.lines;
            ++stats.errors;
            output += "{\"id\":null,\"error\":\"行が長すぎます (1 MiB まで) / line too long (1 MiB at most)\"}\n";
        } else if (!blank(line)) {
            ++stats.lines;
#if KYOTAKU_JSONL_SIMDJSON
            // simdjson may read up to SIMDJSON_PADDING bytes past the line; the reader's buffer has them.
            std::string err = impl_->read(simdjson::padded_string_view(line.data(), line.size(), reader.readable_from(line)), impl_->facts, impl_->id_json);
#else
            std::string err = impl_->read(line, impl_->facts, impl_->id_json);
#endif
            if (!err.empty()) {
                ++stats.errors;
                output += "{\"id\":" + impl_->id_json + ",\"error\":";
                append_json_string(output, err);
                output += "}\n";
            } else {
                impl_->evaluator.evaluate(impl_->facts);
                impl_->write_outcomes(output);
            }
        }
        if (output.size() >= LineReader::chunk) {
            std::fwrite(output.data(), 1, output.size(), out);
            output.clear();
        }
    }
    stats.bytes_in = reader.bytes();
    std::fwrite(output.data(), 1, output.size(), out);
    std::fflush(out);
    return stats;
}

}  // namespace kyotaku
