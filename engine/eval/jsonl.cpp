// JSON Lines in and out. Input is parsed with simdjson's On-Demand API (no allocation per field); output is
// written by hand into one reusable buffer, with the JSON spellings of names and enum values prepared once.
#include "kyotaku/jsonl.hpp"

#include <simdjson.h>

#include <charconv>
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
    simdjson::ondemand::parser parser;
    std::vector<std::string> keys;                        // "name": for each output decision
    std::vector<std::vector<std::string>> enum_json;      // "value" for each enum value
    std::vector<std::pair<std::string_view, int>> index;  // fact name → fact
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
    }

    std::string enum_list(int e) const {
        std::string s;
        for (auto const& v : program->enums[std::size_t(e)].values) s += (s.empty() ? "" : ", ") + v;
        return s;
    }

    std::string read(simdjson::padded_string_view json, Activation& out, std::string& id);
    void write_outcomes(std::string& out);
};

std::string JsonlEvaluator::Impl::read(simdjson::padded_string_view json, Activation& out, std::string& id) {
    using namespace simdjson;
    id = "null";
    out.clear();
    ondemand::document doc;
    if (parser.iterate(json).get(doc)) return "JSON として読めません / not valid JSON";
    ondemand::object obj;
    if (doc.get_object().get(obj)) return "JSON のオブジェクトとして読めません / not a valid JSON object";
    std::string err;
    auto field_error = [&](std::string_view field, std::string msg) {
        if (err.empty()) err = "field " + std::string(field) + ": " + msg;
    };
    for (auto field_result : obj) {
        if (field_result.error()) return err.empty() ? "JSON として読めません / not valid JSON" : err;
        ondemand::field field = field_result.value_unsafe();
        std::string_view key;
        if (field.unescaped_key().get(key)) return "JSON として読めません / not valid JSON";
        ondemand::value value = field.value();
        if (key == "id") {
            ondemand::json_type t;
            if (value.type().get(t)) return "JSON として読めません / not valid JSON";
            if (t == ondemand::json_type::string) {
                std::string_view s;
                if (value.get_string().get(s)) return "field id: 文字列が不正です / invalid string";
                id.clear();
                append_json_string(id, s);
            } else if (t == ondemand::json_type::number) {
                std::string_view raw = value.raw_json_token();
                while (!raw.empty() && (raw.back() == ' ' || raw.back() == '\t' || raw.back() == '\r' || raw.back() == '\n')) raw.remove_suffix(1);
                id.assign(raw);
            } else if (t != ondemand::json_type::null) {
                field_error("id", "文字列か数値でなければなりません / must be a string or a number");
            }
            continue;
        }
        int f = -1;
        for (auto const& [name, i] : index)
            if (name == key) {
                f = i;
                break;
            }
        if (f < 0) continue;  // facts not used by these rules are ignored
        auto const& info = program->facts[std::size_t(f)];
        bool is_null = false;
        if (value.is_null().get(is_null) == SUCCESS && is_null) {
            out.unset(f);
            if (info.has_default) out.set_raw(f, info.default_value);
            continue;
        }
        switch (info.type.kind) {
            case TypeKind::Bool: {
                bool b;
                if (value.get_bool().get(b)) field_error(key, "true か false が必要です / expected true or false");
                else out.set_raw(f, b);
                break;
            }
            case TypeKind::Int: {
                std::int64_t v;
                if (value.get_int64().get(v)) field_error(key, "整数が必要です / expected an integer");
                else out.set_raw(f, v);
                break;
            }
            case TypeKind::Date: {
                std::string_view s;
                if (value.get_string().get(s)) {
                    field_error(key, "日付の文字列が必要です (YYYY-MM-DD) / expected a date string (YYYY-MM-DD)");
                    break;
                }
                if (auto d = parse_iso_date_fast(s)) {
                    out.set_raw(f, d->days());
                    break;
                }
                auto r = parse_date(s);
                if (r.date) out.set_raw(f, r.date->days());
                else field_error(key, r.error);
                break;
            }
            case TypeKind::Month: {
                std::string_view s;
                if (value.get_string().get(s)) {
                    field_error(key, "月の文字列が必要です (YYYY-MM) / expected a month string (YYYY-MM)");
                    break;
                }
                auto r = parse_month(s);
                if (r.month) out.set_raw(f, r.month->index());
                else field_error(key, r.error);
                break;
            }
            case TypeKind::Enum: {
                std::string_view s;
                if (value.get_string().get(s)) {
                    field_error(key, "文字列が必要です (" + enum_list(info.type.enum_id) + ") / expected a string");
                    break;
                }
                int v = program->find_enum_value(info.type.enum_id, s);
                if (v < 0) field_error(key, "不明な値「" + std::string(s) + "」(" + enum_list(info.type.enum_id) + " のいずれか) / unknown value \"" + std::string(s) + "\"");
                else out.set_raw(f, v);
                break;
            }
            case TypeKind::EnumSet: {
                ondemand::array arr;
                if (value.get_array().get(arr)) {
                    field_error(key, "配列が必要です / expected an array");
                    break;
                }
                std::uint64_t mask = 0;
                bool ok = true;
                for (auto item : arr) {
                    std::string_view s;
                    if (item.get_string().get(s)) {
                        field_error(key, "配列の要素は文字列です / array items must be strings");
                        ok = false;
                        break;
                    }
                    int v = program->find_enum_value(info.type.enum_id, s);
                    if (v < 0) {
                        field_error(key, "不明な値「" + std::string(s) + "」(" + enum_list(info.type.enum_id) + " のいずれか) / unknown value \"" + std::string(s) + "\"");
                        ok = false;
                        break;
                    }
                    mask |= std::uint64_t(1) << v;
                }
                if (ok) out.set_raw(f, std::int64_t(mask));
                break;
            }
            case TypeKind::MonthSet: {
                ondemand::array arr;
                if (value.get_array().get(arr)) {
                    field_error(key, "月の配列が必要です / expected an array of months");
                    break;
                }
                auto& bits = out.month_set(f);
                for (auto item : arr) {
                    std::string_view s;
                    if (item.get_string().get(s)) {
                        field_error(key, "月は \"YYYY-MM\" の文字列です / months are \"YYYY-MM\" strings");
                        break;
                    }
                    std::optional<std::int64_t> m = fast_month(s);
                    if (!m) {
                        auto r = parse_month(s);
                        if (!r.month) {
                            field_error(key, r.error);
                            break;
                        }
                        m = r.month->index();
                    }
                    if (!bits.set(*m)) {
                        field_error(key, "月 " + std::string(s) + " は対応範囲 2000-01〜2085-04 の外です / month outside 2000-01..2085-04");
                        break;
                    }
                }
                break;
            }
            case TypeKind::Text:
            case TypeKind::MonthRange: break;
        }
        if (!err.empty()) return err;
    }
    if (!err.empty()) return err;
    // Nothing but blanks may follow the object.
    std::string_view text(json.data(), json.length());
    std::size_t last = text.find_last_not_of(" \t\r\n");
    if (last == std::string_view::npos || text[last] != '}')
        return "JSON として読めません (オブジェクトの後に余分な文字があります) / not valid JSON (trailing content)";
    return err;
}

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

std::string JsonlEvaluator::read_facts(std::string_view line, Activation& facts, std::string& id_json) {
    impl_->padded.assign(line);
    impl_->padded.append(simdjson::SIMDJSON_PADDING, ' ');
    return impl_->read(simdjson::padded_string_view(impl_->padded.data(), line.size(), impl_->padded.size()), facts, id_json);
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

JsonlEvaluator::Stats JsonlEvaluator::run(std::FILE* in, std::FILE* out) {
    constexpr std::size_t chunk = 1 << 20;       // bytes read at a time
    constexpr std::size_t max_line = 1 << 20;    // longer lines are answered with an error
    std::string buf(chunk + max_line + simdjson::SIMDJSON_PADDING, '\0');
    std::string output;
    output.reserve(chunk * 2);
    Stats stats;
    std::size_t have = 0;
    bool skipping = false;  // inside an over-long line
    bool eof = false;
    while (!eof) {
        std::size_t n = std::fread(buf.data() + have, 1, chunk + max_line - have, in);
        if (n == 0) eof = true;
        stats.bytes_in += n;
        have += n;
        std::size_t start = 0;
        for (;;) {
            char const* nl = static_cast<char const*>(std::memchr(buf.data() + start, '\n', have - start));
            std::size_t end;
            if (nl) end = std::size_t(nl - buf.data());
            else if (eof && start < have) end = have;
            else break;
            std::string_view line(buf.data() + start, end - start);
            if (skipping) {
                skipping = false;
            } else if (!blank(line)) {
                ++stats.lines;
                // simdjson may read up to SIMDJSON_PADDING bytes past the line; the buffer has them.
                std::string err = impl_->read(simdjson::padded_string_view(line.data(), line.size(), buf.size() - start), impl_->facts, impl_->id_json);
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
            start = end + 1;
            if (start > have) start = have;
            if (output.size() >= chunk) {
                std::fwrite(output.data(), 1, output.size(), out);
                output.clear();
            }
        }
        std::memmove(buf.data(), buf.data() + start, have - start);
        have -= start;
        if (have >= max_line) {  // a line longer than the cap: answer it with an error and skip to its end
            ++stats.lines;
            ++stats.errors;
            output += "{\"id\":null,\"error\":\"行が長すぎます (1 MiB まで) / line too long (1 MiB at most)\"}\n";
            have = 0;
            skipping = true;
        }
    }
    std::fwrite(output.data(), 1, output.size(), out);
    std::fflush(out);
    return stats;
}

}  // namespace kyotaku
