// JSON Lines in and out. Input is parsed with simdjson's On-Demand API (no allocation per field); output is
// written by hand into one reusable buffer, with the JSON spellings of names and enum values prepared once.
#include "kyotaku/jsonl.hpp"

#include "kyotaku/generated.hpp"

#if KYOTAKU_JSONL_SIMDJSON
#include <simdjson.h>
#endif
#include <nlohmann/json.hpp>  // the reader of the WebAssembly build; in both, where a line stops being JSON

#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <date/date.h>
#include <mutex>
#include <thread>

namespace kyotaku {

namespace {
// Whether any of the 8 bytes of `w` must be escaped in a JSON string: below 0x20, '"' or '\\' (SWAR: the high bit
// of a byte of the result is set for such a byte; bytes of 0x80 and more, UTF-8's, are never flagged).
constexpr std::uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
inline bool needs_escape(std::uint64_t w) {
    auto zero_byte = [](std::uint64_t x) { return (x - ones) & ~x & highs; };
    return ((((w & ~highs) + (0x80 - 0x20) * ones) ^ highs) & ~w & highs) | zero_byte(w ^ ('"' * ones)) |
           zero_byte(w ^ ('\\' * ones));
}

// The characters of a JSON string literal for `s`, without its quotes.
void append_json_chars(std::string& out, std::string_view s) {
    char const* run = s.data();
    char const* const end = s.data() + s.size();
    char const* at = run;
    for (std::uint64_t w; end - at >= 8; at += 8) {  // eight bytes at a time while none needs escaping
        std::memcpy(&w, at, 8);
        if (needs_escape(w)) break;
    }
    for (; at != end; ++at) {
        auto const c = static_cast<unsigned char>(*at);
        if (c >= 0x20 && c != '"' && c != '\\') continue;  // most bytes: copied with their run below
        out.append(run, std::size_t(at - run));
        run = at + 1;
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default: {
                static constexpr char hex[] = "0123456789abcdef";
                char const u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                out.append(u, sizeof u);
            }
        }
    }
    out.append(run, std::size_t(end - run));
}
}  // namespace

void append_json_string(std::string& out, std::string_view s) {
    out += '"';
    append_json_chars(out, s);
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
// YYYY-MM-DD (YYYY-MM when `d` is 0), between quotes when `quoted`, in one append: false (nothing written) for a
// year outside 0-9999.
bool append_iso(std::string& out, int y, unsigned m, unsigned d, bool quoted) {
    if (y < 0 || y > 9999) return false;
    char b[12] = {'"',
                  char('0' + y / 1000),
                  char('0' + y / 100 % 10),
                  char('0' + y / 10 % 10),
                  char('0' + y % 10),
                  '-',
                  char('0' + m / 10),
                  char('0' + m % 10),
                  '-',
                  char('0' + d / 10),
                  char('0' + d % 10),
                  '"'};
    std::size_t const n = d ? 10 : 7;
    if (!quoted) {
        out.append(b + 1, n);
        return true;
    }
    b[n + 1] = '"';
    out.append(b, n + 2);
    return true;
}
void append_date(std::string& out, std::int64_t days) {
    date::year_month_day ymd{date::sys_days{date::days{days}}};
    if (append_iso(out, int(ymd.year()), unsigned(ymd.month()), unsigned(ymd.day()), true)) return;
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
    if (append_iso(out, m.year(), m.month(), 0, true)) return;
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

#if KYOTAKU_JSONL_SIMDJSON
// What read_fields answers for a line that is not JSON; read() then adds where it stops being JSON (not_json).
constexpr char not_valid_json[] = "JSON として読めません / not valid JSON";
constexpr char trailing_content[] =
    "JSON として読めません (オブジェクトの後に余分な文字があります) / not valid JSON (trailing content)";
#endif

// Where nlohmann/json's parser finds a line not JSON, keeping nothing (a SAX handler that drops every value): no
// tree of the line is built, so a line of a million '[' before its fault costs the parser a bit a level, not a
// million arrays (some 50 MB a line, per thread; review34).
struct FaultOnly final : nlohmann::json::json_sax_t {
    bool failed = false;
    std::size_t byte = 0;  // nlohmann's position of the fault (the byte after it)
    bool null() override { return true; }
    bool boolean(bool) override { return true; }
    bool number_integer(number_integer_t) override { return true; }
    bool number_unsigned(number_unsigned_t) override { return true; }
    bool number_float(number_float_t, string_t const&) override { return true; }
    bool string(string_t&) override { return true; }
    bool binary(binary_t&) override { return true; }
    bool start_object(std::size_t) override { return true; }
    bool key(string_t&) override { return true; }
    bool end_object() override { return true; }
    bool start_array(std::size_t) override { return true; }
    bool end_array() override { return true; }
    bool parse_error(std::size_t position, std::string const&, nlohmann::json::exception const&) override {
        failed = true;
        byte = position;
        return false;
    }
};
// The answer to a line that is not JSON: where it stops being JSON, as the column (in characters, 1-based, as the
// rules' diagnostics count them) of the byte at which nlohmann/json's parser fails, when it fails. Only for such a
// line, so its cost is no line's that reads. `ja` and `en` say what is wrong beyond "not JSON", when they do.
__attribute__((noinline, cold)) std::string not_json(std::string_view line, std::string_view ja = {},
                                                     std::string_view en = {}) {
    std::size_t column = 0;
    FaultOnly fault;
    nlohmann::json::sax_parse(line.begin(), line.end(), &fault);
    if (fault.failed) {
        std::size_t const at = std::min<std::size_t>(fault.byte > 0 ? fault.byte - 1 : 0, line.size());
        column = 1;
        for (std::size_t i = 0; i < at; ++i)
            if ((static_cast<unsigned char>(line[i]) & 0xc0) != 0x80) ++column;
    }
    std::string ja_part(ja), en_part(en);
    if (column > 0) {
        std::string const n = std::to_string(column);
        ja_part += (ja_part.empty() ? "" : "、") + n + " 文字目";
        en_part += (en_part.empty() ? "" : ", ") + std::string("column ") + n;
    }
    std::string msg = "JSON として読めません";
    if (!ja_part.empty()) msg += " (" + ja_part + ")";
    msg += " / not valid JSON";
    if (!en_part.empty()) msg += " (" + en_part + ")";
    return msg;
}

// a == b for the short names and values of a line, without a call to memcmp for each.
// Words of 8 bytes, the last one overlapping the one before (no byte-by-byte tail).
inline bool same(std::string_view a, std::string_view b) {
    std::size_t const n = a.size();
    if (n != b.size()) return false;
    auto const word = [](char const* p, auto w) {
        std::memcpy(&w, p, sizeof w);
        return w;
    };
    if (n >= 8) {
        for (std::size_t i = 0; i + 8 < n; i += 8)
            if (word(a.data() + i, std::uint64_t()) != word(b.data() + i, std::uint64_t())) return false;
        return word(a.data() + n - 8, std::uint64_t()) == word(b.data() + n - 8, std::uint64_t());
    }
    if (n >= 4)
        return word(a.data(), std::uint32_t()) == word(b.data(), std::uint32_t()) &&
               word(a.data() + n - 4, std::uint32_t()) == word(b.data() + n - 4, std::uint32_t());
    for (std::size_t i = 0; i < n; ++i)
        if (a[i] != b[i]) return false;
    return true;
}

// The values of one enum by their spelling: an open-addressing table, so that a value is found with one hash and
// (usually) one comparison however many values the enum has.
class EnumTable {
public:
    explicit EnumTable(std::vector<std::string> const& values) {
        std::size_t size = 4;
        while (size < values.size() * 2) size *= 2;
        slots_.assign(size, Slot{});
        mask_ = size - 1;
        for (std::size_t v = 0; v < values.size(); ++v) {
            std::string_view const value = values[v];
            std::size_t at = hash(value) & (size - 1);
            while (slots_[at].value >= 0) at = (at + 1) & (size - 1);
            Slot& slot = slots_[at];
            slot = {value, 0, 0, int(v), value.find('\\') != std::string::npos};
            if (value.size() >= 8) {
                std::memcpy(&slot.head, value.data(), 8);
                std::memcpy(&slot.tail, value.data() + value.size() - 8, 8);
            }
        }
    }
    int find(std::string_view s) const { return find_slot(s).value; }
    // The same for a string as written in JSON, escapes not undone: only a value without a backslash can be
    // spelt so (any other match could be an escape that means something else), -1 otherwise. Out of line: read_fields
    // is flattened, and inlined there this search made the rest of it cost more instructions than it saves.
    __attribute__((noinline)) int find_raw(std::string_view s) const {
        Slot const& slot = find_slot(s);
        return slot.escaped ? -1 : slot.value;
    }

private:
    struct Slot {
        std::string_view spelling;
        std::uint64_t head = 0, tail = 0;  // the first and last eight bytes of a spelling of eight or more
        int value = -1;                    // -1: an empty slot
        bool escaped = false;              // whether the spelling holds a backslash
    };
    Slot const& find_slot(std::string_view s) const {
        std::size_t const mask = mask_, n = s.size();
        if (n >= 8) {  // the two words the hash has read are compared first (then the words between, if any)
            std::uint64_t a, b;
            std::memcpy(&a, s.data(), 8);
            std::memcpy(&b, s.data() + n - 8, 8);
            for (std::size_t at = mix(n, a, b) & mask;; at = (at + 1) & mask) {
                Slot const& slot = slots_[at];
                if (slot.value < 0) return slot;
                if (slot.head == a && slot.tail == b && slot.spelling.size() == n && same_middle(slot.spelling, s))
                    return slot;
            }
        }
        for (std::size_t at = hash(s) & mask;; at = (at + 1) & mask)
            if (slots_[at].value < 0 || same(slots_[at].spelling, s)) return slots_[at];
    }
    // Whether the bytes 8..n-8 of two spellings of n >= 8 bytes are the same (a word at a time; none up to 16 bytes).
    static bool same_middle(std::string_view a, std::string_view b) {
        for (std::size_t i = 8; i + 8 < a.size(); i += 8) {
            std::uint64_t x, y;
            std::memcpy(&x, a.data() + i, 8);
            std::memcpy(&y, b.data() + i, 8);
            if (x != y) return false;
        }
        return true;
    }
    // From the first and the last eight bytes (values often share a first word: 訪問…).
    static std::size_t mix(std::size_t n, std::uint64_t a, std::uint64_t b) {
        std::uint64_t h = n * 0x9e3779b97f4a7c15u;
        h = (h ^ a) * 0xff51afd7ed558ccdu;
        h = (h ^ b ^ (h >> 29)) * 0xc4ceb9fe1a85ec53u;
        return std::size_t(h ^ (h >> 32));
    }
    static std::size_t hash(std::string_view s) {
        std::uint64_t h = s.size() * 0x9e3779b97f4a7c15u;
        if (s.size() >= 8) {
            std::uint64_t a, b;
            std::memcpy(&a, s.data(), 8);
            std::memcpy(&b, s.data() + s.size() - 8, 8);
            return mix(s.size(), a, b);
        } else if (s.size() >= 4) {  // the first and the last four (a kanji pair: 医科)
            std::uint32_t a, b;
            std::memcpy(&a, s.data(), 4);
            std::memcpy(&b, s.data() + s.size() - 4, 4);
            h = (h ^ (std::uint64_t(a) << 32 | b)) * 0xff51afd7ed558ccdu;
            h ^= h >> 29;
        } else {
            for (char c : s) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3u;
        }
        return std::size_t(h ^ (h >> 32));
    }
    std::vector<Slot> slots_;
    std::size_t mask_ = 0;  // slots_.size() - 1
};

// parse_iso_date_fast's days for the YYYY-MM-DD spellings read last, by a hash of their ten bytes (a line's dates
// are mostly the days of one period): a hit costs a hash and a comparison instead of the parse and the
// calendar's conversion. A fixed table, each spelling in one slot (a newer one takes it over): memory does not
// depend on the input. Only parsed spellings are kept, compared whole, so a hit answers what the parse would.
// Out of line for the reason find_raw is (inlined into read_fields: 113 instructions a line more, callgrind).
class DateMemo {
public:
    __attribute__((noinline)) std::optional<std::int64_t> days(std::string_view t) {
        if (t.size() != 10) {
            if (auto d = parse_iso_date_fast(t)) return d->days();
            return std::nullopt;
        }
        std::uint64_t head;
        std::uint16_t tail;
        std::memcpy(&head, t.data(), 8);
        std::memcpy(&tail, t.data() + 8, 2);
        std::uint64_t const h = ((head * 0x9e3779b97f4a7c15u) ^ tail) * 0xff51afd7ed558ccdu;
        Entry& e = entries_[std::size_t(h >> 54)];
        if (e.used && e.head == head && e.tail == tail) return e.days;
        auto const d = parse_iso_date_fast(t);
        if (!d) return std::nullopt;
        e = {head, std::int32_t(d->days()), tail, true};  // years 0-9999: within ±3 million days
        return e.days;
    }

private:
    struct Entry {  // 16 bytes: the table is 16 KiB
        std::uint64_t head = 0;  // the first eight bytes
        std::int32_t days = 0;
        std::uint16_t tail = 0;  // the last two
        bool used = false;
    };
    std::array<Entry, 1024> entries_{};
};

std::optional<std::int64_t> fast_month(std::string_view t) {
    if (t.size() != 7 || t[4] != '-') return std::nullopt;
    for (std::size_t i : {0, 1, 2, 3, 5, 6})
        if (unsigned(t[i]) - '0' >= 10u) return std::nullopt;
    int y = (t[0] - '0') * 1000 + (t[1] - '0') * 100 + (t[2] - '0') * 10 + (t[3] - '0');
    int m = (t[5] - '0') * 10 + (t[6] - '0');
    if (m < 1 || m > 12) return std::nullopt;
    return std::int64_t(y) * 12 + (m - 1);
}

// Values kept by a key of a few words, at most `limit` of them (then all forgotten at once, so that memory does not
// grow with the input; the values in use come back at once): an open-addressing table of twice as many slots, so
// that a key is found with one hash of its words and (usually) one comparison.
template <typename T>
class WordCache {
public:
    explicit WordCache(std::size_t limit) : limit_(limit), table_(2 * std::bit_ceil(limit), -1) {}
    // The value kept for `key`, or nullptr (then add() keeps one for it).
    T* find(std::vector<std::uint64_t> const& key) {
        // Two lanes, so that a multiplication's latency is paid for half the words.
        std::uint64_t h = key.size(), g = 0;
        std::size_t i = 0;
        for (; i + 2 <= key.size(); i += 2) {
            h = (h ^ key[i]) * 0x9e3779b97f4a7c15u;
            g = (g ^ key[i + 1]) * 0xc4ceb9fe1a85ec53u;
        }
        if (i < key.size()) h = (h ^ key[i]) * 0x9e3779b97f4a7c15u;
        h ^= g ^ (g >> 31);
        h = (h ^ (h >> 29)) * 0xff51afd7ed558ccdu;
        std::size_t const mask = table_.size() - 1;
        for (at_ = std::size_t(h ^ (h >> 32)) & mask;; at_ = (at_ + 1) & mask) {
            std::int32_t const e = table_[at_];
            if (e < 0) return nullptr;
            if (entries_[std::size_t(e)].first == key) return &entries_[std::size_t(e)].second;
        }
    }
    // Keeps `value` for `key`, which find() has just not found.
    T& add(std::vector<std::uint64_t> const& key, T value) {
        if (entries_.size() >= limit_) {
            entries_.clear();
            std::fill(table_.begin(), table_.end(), -1);
            find(key);
        }
        table_[at_] = std::int32_t(entries_.size());
        return entries_.emplace_back(key, std::move(value)).second;
    }

private:
    std::size_t limit_;
    std::vector<std::int32_t> table_;  // an entry's index, or -1
    std::vector<std::pair<std::vector<std::uint64_t>, T>> entries_;
    std::size_t at_ = 0;  // the slot find() stopped at
};
}  // namespace

struct JsonlEvaluator::Impl {
    std::shared_ptr<Program const> program;
    Evaluator evaluator;
    Activation facts;
#if KYOTAKU_JSONL_SIMDJSON
    simdjson::ondemand::parser parser;
#endif
    std::vector<std::string> keys;                        // "name": for each output decision
    std::vector<std::string> null_field;                  // ,"name":null for each output decision
    std::vector<std::vector<std::string>> field;          // ,"name":value for each value of a bool, enum or small set
    std::vector<std::uint32_t> piece_count;               // field[o].size()
    std::vector<std::vector<std::string>> version_json;   // "label" of each version, for each output decision
    std::string text;                                     // a text value, rendered before it is escaped
    std::vector<std::vector<std::string>> enum_json;      // "value" for each enum value
    std::vector<EnumTable> enum_tables;                   // each enum's values by their spelling
    std::vector<std::pair<std::string_view, int>> index;  // fact name → fact
    mutable std::size_t hint = 0;                         // where the search for the next field's name starts
    mutable DateMemo date_memo;                           // the days of dates read last
    bool fast_keys = false;  // whether a key is first compared in place with the name expected (no name needs escapes)
    std::vector<std::string> known;    // every key a line may hold: id and the facts (for did-you-mean)
    std::vector<std::string> allowed;  // keys that are no fact of these rules but are accepted (allow_keys)
    std::string id_json;
    std::string padded;  // a copy of a line with simdjson's padding, when the caller's buffer has none
    std::string unescaped;  // where strings with escapes are unescaped (the line's size and padding)
    // The rules compiled ahead of time, when they are these rules: they decide, with their memo of the record
    // (for the reasons' values) and its outcomes; the evaluator then only renders texts.
    GeneratedRules const* compiled = nullptr;
    std::unique_ptr<std::max_align_t[]> memo;
    std::vector<Outcome> outcomes;
    // Texts (the reasons) are written straight into the answer: what needs escaping was escaped once here — each
    // clause's literal pieces, its " (file:line)", the text constants, the enum values — and the values are rendered
    // in place (dates and numbers need no escape). Between quotes, without them.
    std::vector<std::vector<std::string>> literal_json;  // for each clause, for each piece: a literal's text
    std::vector<std::string> location_json;              // for each clause: " (file:line)"
    std::vector<std::string> no_reason_json;             // for each clause: "<slot> の条項" (when it gives no reason)
    std::vector<std::string> string_json;                // each text constant
    std::vector<std::vector<std::string>> enum_text;     // each enum value

    explicit Impl(std::shared_ptr<Program const> p, GeneratedRules const* c) : program(p), evaluator(p), facts(*p) {
        if (c && c->matches(*p) && c->evaluate_into && c->slot_value && c->memo_size > 0) {
            compiled = c;
            memo.reset(new std::max_align_t[(c->memo_size + sizeof(std::max_align_t) - 1) / sizeof(std::max_align_t)]);
            outcomes.resize(p->outputs.size());
        }
        for (auto s : p->outputs) {
            std::string k;
            append_json_string(k, p->slots[s].name);
            keys.push_back(k + ":");
            null_field.push_back("," + keys.back() + "null");
            auto const& type = p->slots[s].type;
            std::size_t const values =
                type.kind == TypeKind::Bool   ? 2
                : type.kind == TypeKind::Enum ? p->enums[std::size_t(type.enum_id)].values.size()
                : type.kind == TypeKind::EnumSet && p->enums[std::size_t(type.enum_id)].values.size() <= 10
                    ? std::size_t(1) << p->enums[std::size_t(type.enum_id)].values.size()
                    : 0;
            field.emplace_back(values);
            piece_count.push_back(std::uint32_t(values));
            version_json.emplace_back();
            for (auto const& v : p->slots[s].versions) {
                std::string label;
                append_json_string(label, v.label);
                version_json.back().push_back(std::move(label));
            }
        }
        for (auto const& e : p->enums) {
            enum_tables.emplace_back(e.values);
            enum_json.emplace_back();
            for (auto const& v : e.values) {
                std::string q;
                append_json_string(q, v);
                enum_json.back().push_back(q);
            }
        }
        prepare_texts();
        for (std::size_t f = 0; f < p->facts.size(); ++f) index.emplace_back(p->facts[f].name, int(f));
        fast_keys = !index.empty() && std::none_of(index.begin(), index.end(), [](auto const& e) {
            return e.first.find_first_of("\"\\") != std::string_view::npos;
        });
        known.push_back("id");
        for (auto const& f : p->facts) known.push_back(f.name);
        shape_key.assign((p->facts.size() <= 32 ? 1 : 2) * p->outputs.size(), 0);
    }

    static std::string escaped(std::string_view s) {
        std::string q;
        append_json_chars(q, s);
        return q;
    }
    void prepare_texts() {
        Program const& p = *program;
        for (auto const& c : p.clauses) {
            literal_json.emplace_back();
            for (auto const& piece : c.because) literal_json.back().push_back(escaped(piece.literal));
            std::string loc = " (";
            loc += c.loc.file < p.files.size() ? std::string_view(p.files[c.loc.file]) : std::string_view("?");
            loc += ':';
            append_int(loc, c.loc.line);
            loc += ')';
            location_json.push_back(escaped(loc));
            no_reason_json.push_back(escaped(p.slots[c.slot].name + " の条項"));
        }
        for (auto const& c : p.clauses) {
            key_pieces.emplace_back();
            for (TextPiece const& piece : c.because)
                if (piece.kind == TextPiece::Kind::Slot ||
                    (piece.kind == TextPiece::Kind::Fact && piece.type.kind != TypeKind::MonthSet))
                    key_pieces.back().push_back(
                        {piece.id, piece.kind == TextPiece::Kind::Fact, piece.type.kind == TypeKind::Text});
        }
        for (auto const& str : p.strings) string_json.push_back(escaped(str));
        for (auto const& e : p.enums) {
            enum_text.emplace_back();
            for (auto const& v : e.values) enum_text.back().push_back(escaped(v));
        }
    }
    void write_text(std::string& out, std::int64_t text, bool with_location);
    // A let's or decision's value for this record (false: null), from the compiled rules' memo or the interpreter's.
    bool slot_value(std::uint32_t s, std::int64_t& v) {
        if (compiled) return compiled->slot_value(memo.get(), s, v);
        Outcome const o = evaluator.evaluate_slot(facts, s);
        v = o.value;
        return o.status == Status::ok;
    }
    void write_text_value(std::string& out, Type type, std::int64_t value);

    std::string enum_list(int e) const {
        std::string s;
        for (auto const& v : program->enums[std::size_t(e)].values) s += (s.empty() ? "" : ", ") + v;
        return s;
    }

#if KYOTAKU_JSONL_SIMDJSON
    std::string read(simdjson::padded_string_view json, Activation& out, std::string& id);
    std::string read_fields(simdjson::padded_string_view json, Activation& out, std::string& id);
    // The walk over one line's object, shared by read_fields (a line parsed alone) and read_streamed (a line of a
    // block parsed at once): the fields into `out` and `id`; an error message, or empty. `readable_end`: how far
    // the line's buffer may be read.
    std::string read_object(simdjson::ondemand::document& doc, char const* readable_end, Activation& out,
                            std::string& id);
    bool read_streamed(simdjson::ondemand::document& doc, std::string_view line, char const* readable_end,
                       char const* block_end);
    void find_id(simdjson::padded_string_view json, std::string& id);
#else
    std::string read(std::string_view json, Activation& out, std::string& id);
#endif
    void decide() {
        if (compiled) compiled->evaluate_into(facts, evaluator.params().data(), outcomes.data(), memo.get());
        else evaluator.evaluate(facts);
    }
    Outcome const& outcome(std::size_t o) const { return compiled ? outcomes[o] : evaluator.outcome(o); }
    void write_outcomes(std::string& out);
    template <typename Hole>
    void write_fields(std::string& out, Hole&& hole);
    // The fixed parts of answers by their shape (see write_outcomes): the answer after its id as the parts between
    // the values that are no prepared piece, so that a line is written with a few copies. At most max_shapes are kept
    // (then forgotten all at once), so memory does not grow with the input.
    struct Shape {
        std::vector<std::string> parts;    // parts[i] is followed by the value of decision holes[i]; the last ends it
        std::vector<std::uint32_t> holes;  // output indexes
    };
    static constexpr std::size_t max_shapes = 256;
    WordCache<Shape> shapes{max_shapes};  // by their key: a word or two for each decision (see write_outcomes)
    std::vector<std::uint64_t> shape_key;  // this line's
    // The reasons (texts with their location) as written before, by their clause and the values they show: a
    // line's reasons are usually one of a few (the values are enum values, dates, months), so most are one copy.
    static constexpr std::size_t max_texts = 1024;
    WordCache<std::string> texts{max_texts};
    struct DateJson {
        std::int64_t days = 0;
        std::uint8_t size = 0;  // 0: nothing kept
        char json[14];          // "YYYY-MM-DD"
    };
    std::array<DateJson, 256> date_json{};
    std::vector<std::uint64_t> text_key;
    // For each clause, the pieces of its reason that make up its key (facts and slots, not the sets of months): what
    // add_text_key reads, without walking the literals.
    struct KeyPiece {
        std::uint32_t id;
        bool fact;  // a fact (else a slot)
        bool text;  // of type text: the text it shows is part of the key as well
    };
    std::vector<std::vector<KeyPiece>> key_pieces;
    void add_text_key(std::int64_t text);
    void answer(std::string_view line, std::size_t readable, std::string& output, Stats& stats);
    // At most this much is indexed by one stage 1 (answer_lines): a line's cap, so that any line fits.
    static constexpr std::size_t stream_batch = LineReader::max_line;
    static constexpr std::size_t stream_block = 256 * 1024;
    std::size_t answer_lines(std::string_view block, std::size_t readable, std::string& output, Stats& stats,
                             std::FILE* out);
    void append_value(std::string& out, Type type, std::int64_t value);
    void write_missing_and_versions(std::string& out, bool any_missing, bool any_version);
};

namespace {
// The reader's view of one JSON value. Two adapters implement it: simdjson's On-Demand values (the native
// build) and nlohmann/json (the WebAssembly build, where simdjson's compiled part is not available). The
// conversion of facts below is written once, over either adapter, so both builds answer alike.
//   is_null(), as_bool(), as_int(), as_string() → std::optional, each(f) → false when not an array,
//   kind() → 's' string, 'n' number, '0' null, '?' other, raw_number() → the number's text.

template <typename Value, typename Self, typename FieldError>
void convert_fact(Self const& self, Activation& out, int f, std::string_view key, Value& value,
                  FieldError&& field_error) {
    auto const& info = self.program->facts[std::size_t(f)];
    // A null fact is absent (or takes its default). Asked only when the value is not of the fact's type, so that the
    // usual value is read without a test for null first.
    auto const null = [&] {
        if (!value.is_null()) return false;
        out.unset(f);
        if (info.has_default) out.set_raw(f, info.default_value);
        return true;
    };
    switch (info.type.kind) {
        case TypeKind::Bool: {
            if (auto b = value.as_bool()) out.set_raw(f, *b);
            else if (!null()) field_error(key, "true か false が必要です / expected true or false");
            break;
        }
        case TypeKind::Int: {
            if (auto v = value.as_int()) out.set_raw(f, *v);
            else if (!null()) field_error(key, "整数が必要です / expected an integer");
            break;
        }
        case TypeKind::Date: {
            if (auto raw = value.raw_string())  // the usual spelling, without unescaping
                if (auto d = self.date_memo.days(*raw)) {
                    out.set_raw(f, *d);
                    break;
                }
            auto s = value.as_string();
            if (!s) {
                if (!null())
                    field_error(key, "日付の文字列が必要です (YYYY-MM-DD) / expected a date string (YYYY-MM-DD)");
                break;
            }
            if (auto d = parse_iso_date_fast(*s)) {
                out.set_raw(f, d->days());
                break;
            }
            auto r = parse_date(*s);
            if (r.date) out.set_raw(f, r.date->days());
            else field_error(key, r.message.text());
            break;
        }
        case TypeKind::Month: {
            auto s = value.as_string();
            if (!s) {
                if (!null())
                    field_error(key, "月の文字列が必要です (YYYY-MM) / expected a month string (YYYY-MM)");
                break;
            }
            auto r = parse_month(*s);
            if (r.month) out.set_raw(f, r.month->index());
            else field_error(key, r.message.text());
            break;
        }
        case TypeKind::Enum: {
            auto const& table = self.enum_tables[std::size_t(info.type.enum_id)];
            if (auto raw = value.raw_string())
                if (int v = table.find_raw(*raw); v >= 0) {
                    out.set_raw(f, v);
                    break;
                }
            auto s = value.as_string();
            if (!s) {
                if (!null())
                    field_error(key,
                                "文字列が必要です (" + self.enum_list(info.type.enum_id) + ") / expected a string");
                break;
            }
            int v = self.enum_tables[std::size_t(info.type.enum_id)].find(*s);
            if (v < 0)
                field_error(key, "不明な値「" + std::string(*s) + "」(" + self.enum_list(info.type.enum_id) +
                                     " のいずれか) / unknown value \"" + std::string(*s) + "\"");
            else out.set_raw(f, v);
            break;
        }
        case TypeKind::EnumSet: {
            std::uint64_t mask = 0;
            bool ok = true;
            auto const& table = self.enum_tables[std::size_t(info.type.enum_id)];
            bool const is_array = value.each([&](auto& item) {
                if (auto raw = item.raw_string())
                    if (int v = table.find_raw(*raw); v >= 0) {
                        mask |= std::uint64_t(1) << v;
                        return true;
                    }
                auto s = item.as_string();
                if (!s) {
                    field_error(key, "配列の要素は文字列です / array items must be strings");
                    return ok = false;
                }
                int v = self.enum_tables[std::size_t(info.type.enum_id)].find(*s);
                if (v < 0) {
                    field_error(key, "不明な値「" + std::string(*s) + "」(" + self.enum_list(info.type.enum_id) +
                                         " のいずれか) / unknown value \"" + std::string(*s) + "\"");
                    return ok = false;
                }
                mask |= std::uint64_t(1) << v;
                return true;
            });
            if (!is_array) {
                if (!null()) field_error(key, "配列が必要です / expected an array");
            } else if (ok) {
                out.set_raw(f, std::int64_t(mask));
            }
            break;
        }
        case TypeKind::MonthSet: {
            if (null()) break;  // first: month_set() marks the fact present
            auto& bits = out.month_set(f);
            bool const is_array = value.each([&](auto& item) {
                if (auto raw = item.raw_string())
                    if (auto m = fast_month(*raw); m && bits.set(*m)) return true;
                auto s = item.as_string();
                if (!s) {
                    field_error(key, "月は \"YYYY-MM\" の文字列です / months are \"YYYY-MM\" strings");
                    return false;
                }
                std::optional<std::int64_t> m = fast_month(*s);
                if (!m) {
                    auto r = parse_month(*s);
                    if (!r.month) {
                        field_error(key, r.message.text());
                        return false;
                    }
                    m = r.month->index();
                }
                if (!bits.set(*m)) {
                    field_error(key, "月 " + std::string(*s) +
                                         " は対応範囲 2000-01〜2085-04 の外です / month outside 2000-01..2085-04");
                    return false;
                }
                return true;
            });
            if (!is_array) field_error(key, "月の配列が必要です / expected an array of months");
            break;
        }
        case TypeKind::Text:
        case TypeKind::MonthRange: null(); break;
    }
}

// One field of the line: the id, a fact of these rules, or something else (ignored).
template <typename Value, typename Self, typename FieldError>
void read_field(Self const& self, Activation& out, std::string& id, std::string_view key, Value& value,
                FieldError&& field_error) {
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
    // Lines usually name their fields in one order: the search starts after the fact found last.
    std::size_t const n = self.index.size();
    for (std::size_t k = 0, at = self.hint; k < n; ++k, at = at + 1 == n ? 0 : at + 1)
        if (same(self.index[at].first, key)) {
            self.hint = at + 1 == n ? 0 : at + 1;
            return convert_fact(self, out, self.index[at].second, key, value, field_error);
        }
    // A key that is no fact of these rules is an error, never silently dropped: a misspelt fact would otherwise make
    // every decision that needs it null (or a corpus compare less than it seems). Keys the caller allows (the
    // other rule set's facts, in kyotaku diff) are skipped.
    for (auto const& allowed : self.allowed)
        if (allowed == key) return;
    std::string const near = nearest_name(key, self.known);
    field_error(key, "このルールにない項目です" + (near.empty() ? std::string() : " (「" + near + "」のことですか?)") +
                         " / not a fact of these rules" +
                         (near.empty() ? std::string() : " (did you mean '" + near + "'?)"));
}
}  // namespace

#if KYOTAKU_JSONL_SIMDJSON
namespace {
// A string as its bytes in the line when it has no escape (the usual case: no copy); nullptr-data otherwise.
// simdjson has checked the whole line in stage 1 (UTF-8, no raw control character, quotes paired), so a string
// without a backslash is exactly its bytes up to the closing quote.
// Eight bytes at a time (SWAR, as append_json_string): the line is padded, so a read past the closing quote stays
// inside the buffer. This scan was a third of the reader's time byte by byte (perf, issue 26).
std::string_view plain_string(simdjson::ondemand::raw_json_string raw) {
    char const* const r = reinterpret_cast<char const*>(raw.raw());
    std::size_t n = 0;
    if constexpr (std::endian::native == std::endian::little) {
        auto const zero_byte = [](std::uint64_t x) { return (x - ones) & ~x & highs; };
        for (std::uint64_t w;; n += 8) {
            std::memcpy(&w, r + n, 8);
            // The lowest flagged byte is exact (a borrow only flags bytes above a zero byte).
            if (std::uint64_t const hit = zero_byte(w ^ ('"' * ones)) | zero_byte(w ^ ('\\' * ones))) {
                n += std::size_t(std::countr_zero(hit)) / 8;
                break;
            }
        }
    } else {
        while (r[n] != '"' && r[n] != '\\') ++n;
    }
    return r[n] == '"' ? std::string_view(r, n) : std::string_view();
}

struct SimdValue {
    simdjson::ondemand::value& v;
    simdjson::ondemand::parser& parser;
    std::string& scratch;  // where a string with escapes is unescaped (at least the line's size + padding)
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
        simdjson::ondemand::raw_json_string raw;
        if (v.get_raw_json_string().get(raw)) return std::nullopt;
        if (std::string_view plain = plain_string(raw); plain.data()) return plain;
        auto* dst = reinterpret_cast<std::uint8_t*>(scratch.data());
        std::string_view s;
        if (parser.unescape(raw, dst).get(s)) return std::nullopt;
        return s;
    }
    // The string as written between its quotes, escapes not undone (nullopt when the value is no string). Its end
    // comes from stage 1's index of the line, so nothing is scanned: for a first try that accepts only spellings
    // without an escape (enum values, ISO dates and months); anything else is read again with as_string().
    std::optional<std::string_view> raw_string() {
        std::string_view const t = v.raw_json_token();
        if (t.empty() || t[0] != '"') return std::nullopt;
        std::size_t end = t.size() - 1;
        while (end > 0 && t[end] != '"') --end;  // blanks after the string, before the next token
        if (end == 0) return std::nullopt;
        return t.substr(1, end - 1);
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
                    std::optional<std::string_view> raw_string() { return std::nullopt; }
                    std::optional<std::string_view> as_string() { return std::nullopt; }
                } bad;
                f(bad);
                break;
            }
            SimdValue w{iv, parser, scratch};
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
        while (!raw.empty() && (raw.back() == ' ' || raw.back() == '\t' || raw.back() == '\r' || raw.back() == '\n'))
            raw.remove_suffix(1);
        return std::string(raw);
    }
};
}  // namespace

// A line with an error is answered with its id wherever the id stands: when the id comes after the faulty field,
// a second pass reads the id alone.
std::string JsonlEvaluator::Impl::read(simdjson::padded_string_view json, Activation& out, std::string& id) {
    std::string err = read_fields(json, out, id);
    if (err.empty()) return err;
    if (id == "null") find_id(json, id);
    if (err == not_valid_json) return not_json({json.data(), json.length()});
    if (err == trailing_content)
        return not_json({json.data(), json.length()}, "オブジェクトの後に余分な文字があります", "trailing content");
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
        SimdValue v{value, parser, unescaped};
        std::string found = "null";
        bool bad = false;
        read_field(*this, facts, found, key, v, [&](std::string_view, std::string const&) { bad = true; });
        if (!bad) id = std::move(found);
        return;
    }
}

std::string JsonlEvaluator::Impl::read_fields(simdjson::padded_string_view json, Activation& out, std::string& id) {
    using namespace simdjson;
    id = "null";
    out.clear();
    if (unescaped.size() < json.length() + SIMDJSON_PADDING) unescaped.resize(json.length() + SIMDJSON_PADDING);
    ondemand::document doc;
    if (parser.iterate(json).get(doc)) return not_valid_json;
    std::string err = read_object(doc, json.data() + json.capacity(), out, id);
    if (!err.empty()) return err;
    // Nothing but blanks may follow the object: no token after it.
    // (simdjson 3.0's document has no at_end: its location is OUT_OF_BOUNDS there.)
    if (doc.current_location().error() != OUT_OF_BOUNDS) return trailing_content;
    return err;
}

namespace {
bool json_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
}  // namespace

// One line of a block that simdjson's stage 1 has indexed at once (answer_lines), read into `facts` and `id_json`:
// true when it is one object, read without an error, that ends on this line with nothing after it on the line.
// Anything else (false) is answered again as a line alone, which says what is wrong with it.
bool JsonlEvaluator::Impl::read_streamed(simdjson::ondemand::document& doc, std::string_view line,
                                         char const* readable_end, char const* block_end) {
    using namespace simdjson;
    id_json = "null";
    facts.clear();
    if (unescaped.size() < line.size() + SIMDJSON_PADDING) unescaped.resize(line.size() + SIMDJSON_PADDING);
    if (!read_object(doc, readable_end, facts, id_json).empty()) return false;
    // The next token (the next line's object) must lie beyond this line, and the last byte before it that is no
    // blank — the object's closing brace — on this line: so the object is this line's, whole, and alone on it.
    auto const next = doc.current_location();
    char const* at = block_end;
    if (next.error() != OUT_OF_BOUNDS) {
        if (next.error()) return false;
        at = next.value_unsafe();
    }
    char const* const line_end = line.data() + line.size();
    if (at <= line_end) return false;
    while (at > line.data() && json_blank(at[-1])) --at;
    return at > line.data() && at <= line_end && at[-1] == '}';
}

// flatten: the fact conversion is written once for both readers; inlined here it runs as fast as hand-merged code.
// Out of line, one copy for both callers: inlined into read_streamed the walk cost some 350 instructions a line more
// than in read_fields (callgrind); a second copy kept inlined in read_fields cost the streamed lines as much.
__attribute__((flatten, noinline)) std::string JsonlEvaluator::Impl::read_object(simdjson::ondemand::document& doc,
                                                                                char const* readable_end,
                                                                                Activation& out, std::string& id) {
    using namespace simdjson;
    ondemand::object obj;
    if (doc.get_object().get(obj)) return "JSON のオブジェクトとして読めません / not a valid JSON object";
    std::string err;
    auto const field_error = [&](std::string_view field, std::string msg) {
        if (err.empty()) err = "field " + std::string(field) + ": " + msg;
    };
    for (auto field_result : obj) {
        if (field_result.error()) return err.empty() ? not_valid_json : err;
        ondemand::field field = field_result.value_unsafe();
        // Lines usually name their fields in one order: the fact expected next is compared in place first. A name
        // has no quote or backslash, so a key that spells it and closes right after it is that name.
        char const* const raw_key = reinterpret_cast<char const*>(field.key().raw());
        if (fast_keys) {
            auto const [name, fact] = index[hint];
            if (std::size_t(readable_end - raw_key) > name.size() && raw_key[name.size()] == '"' &&
                same(std::string_view(raw_key, name.size()), name)) {
                hint = hint + 1 == index.size() ? 0 : hint + 1;
                ondemand::value value = field.value();
                SimdValue v{value, parser, unescaped};
                convert_fact(*this, out, fact, name, v, field_error);
                if (!err.empty()) return err;
                continue;
            }
        }
        std::string_view key = plain_string(field.key());
        if (!key.data() && field.unescaped_key().get(key)) return not_valid_json;
        ondemand::value value = field.value();
        SimdValue v{value, parser, unescaped};
        if (key == "id") {
            // The usual id, a string without escapes, is echoed as written: stage 1 has refused control characters
            // and bad UTF-8 in it, so its bytes are what append_json_string would write.
            if (auto raw = v.raw_string(); raw && raw->find('\\') == std::string_view::npos) {
                id.clear();
                id += '"';
                id += *raw;
                id += '"';
                continue;
            }
        }
        if (key == "id" && v.kind() == '?') {
            ondemand::json_type t;
            if (value.type().get(t)) return not_valid_json;
        }
        read_field(*this, out, id, key, v, field_error);
        if (!err.empty()) return err;
    }
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
    std::optional<std::string_view> raw_string() { return as_string(); }
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
    if (doc.is_discarded()) return not_json(text);  // nlohmann/json's reader has no trailing-content case of its own
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
    // The answer's shape: for each decision its status, version, and its value when that is a prepared piece, or the
    // facts it missed. A null decision without a version in force names the as-of date: written piece by piece (as
    // an answer with a version beyond the key's 16 bits).
    auto const value = [&](std::string& to, std::size_t o) {
        append_value(to, program->slots[program->outputs[o]].type, outcome(o).value);
    };
    // What the loop reads, in locals: the compiler reloads members after each store to the key.
    std::size_t const n = program->outputs.size();
    Outcome const* const compiled_outcomes = compiled ? outcomes.data() : nullptr;
    std::uint32_t const* const pieces = piece_count.data();
    std::uint64_t* const key = shape_key.data();
    bool const one_word = shape_key.size() == n;
    for (std::size_t o = 0; o < n; ++o) {
        Outcome const& oc = compiled_outcomes ? compiled_outcomes[o] : evaluator.outcome(o);
        if (oc.status == Status::no_version || oc.version > 0xffff) return write_fields(out, value);
        // The status, the version (below 65,536) and the value when it is a prepared piece (below 1,024), or the facts
        // missed: in the top half of the word with 32 facts at most, in a second word otherwise.
        bool const piece = oc.status == Status::ok && std::uint64_t(oc.value) < pieces[o];
        std::uint64_t const word = std::uint64_t(oc.status) | std::uint64_t(piece) << 8 |
                                   std::uint64_t(oc.version & 0xffff) << 16 |
                                   (piece ? std::uint64_t(oc.value) << 32 : 0);
        std::uint64_t const missing = oc.status == Status::ok ? 0 : oc.missing;
        if (one_word) {
            key[o] = word | missing << 32;
        } else {
            key[2 * o] = word;
            key[2 * o + 1] = missing;
        }
    }
    Shape const* shape = shapes.find(shape_key);
    if (!shape) {
        Shape made;
        std::string part;
        write_fields(part, [&](std::string& to, std::size_t h) {
            made.parts.push_back(std::move(to));
            to.clear();
            made.holes.push_back(std::uint32_t(h));
        });
        made.parts.push_back(std::move(part));
        shape = &shapes.add(shape_key, std::move(made));
    }
    Shape const& sh = *shape;
    for (std::size_t i = 0; i < sh.holes.size(); ++i) {
        out += sh.parts[i];
        value(out, sh.holes[i]);
    }
    out += sh.parts.back();
}

// The answer after its id, decision by decision; `hole(out, o)` writes decision o's value when it is no prepared piece
// (a date, a number, a text, a large set).
template <typename Hole>
void JsonlEvaluator::Impl::write_fields(std::string& out, Hole&& hole) {
    auto const& outputs = program->outputs;
    bool any_missing = false, any_version = false;
    for (std::size_t o = 0; o < outputs.size(); ++o) {
        Outcome const& oc = outcome(o);
        auto const& slot = program->slots[outputs[o]];
        if (oc.status != Status::ok) {
            out += null_field[o];
            any_missing = true;
            continue;
        }
        any_version = any_version || !slot.versions.empty();
        // A bool, enum or small set is one prepared piece, key and value: `,"service_available":true`.
        auto& pieces = field[o];
        if (std::uint64_t(oc.value) < pieces.size()) {
            std::string& piece = pieces[std::size_t(oc.value)];
            if (piece.empty()) {  // a set's piece is made when it is first answered
                piece = ',' + keys[o];
                append_value(piece, slot.type, oc.value);
            }
            out += piece;
            continue;
        }
        out += ',';
        out += keys[o];
        hole(out, o);
    }
    write_missing_and_versions(out, any_missing, any_version);
}

void JsonlEvaluator::Impl::append_value(std::string& out, Type type, std::int64_t value) {
    switch (type.kind) {
            case TypeKind::Bool: out += value ? "true" : "false"; break;
            case TypeKind::Int: append_int(out, value); break;
            case TypeKind::Date: {  // a date's JSON is kept by the day (decisions' dates are few: window ends…)
                DateJson& d = date_json[std::size_t(value) & (date_json.size() - 1)];
                if (d.size == 0 || d.days != value) {
                    std::string json;
                    append_date(json, value);
                    if (json.size() > sizeof d.json) {
                        out += json;
                        break;
                    }
                    d.days = value;
                    d.size = std::uint8_t(json.size());
                    std::memcpy(d.json, json.data(), json.size());
                }
                out.append(d.json, d.size);
                break;
            }
            case TypeKind::Month: append_month(out, value); break;
            case TypeKind::Enum: out += enum_json[std::size_t(type.enum_id)][std::size_t(value)]; break;
            case TypeKind::EnumSet: {
                out += '[';
                bool first = true;
                auto const& names = enum_json[std::size_t(type.enum_id)];
                for (std::size_t i = 0; i < names.size(); ++i)
                    if ((std::uint64_t(value) >> i) & 1u) {
                        if (!first) out += ',';
                        out += names[i];
                        first = false;
                    }
                out += ']';
                break;
            }
            case TypeKind::Text: {
                text_key.clear();
                add_text_key(value);
                std::string const* json = texts.find(text_key);
                if (!json) {
                    std::string made = "\"";
                    write_text(made, value, true);
                    made += '"';
                    json = &texts.add(text_key, std::move(made));
                }
                out += *json;
                break;
            }
            case TypeKind::MonthSet:
            case TypeKind::MonthRange: out += "null"; break;
    }
}

// What a text renders from, as words (the key of `texts`): the text, then for each piece that is no literal and no
// parameter (constant in a run) whether it is known and its value, and the same for a text it shows. A set of months
// renders as a constant.
void JsonlEvaluator::Impl::add_text_key(std::int64_t text) {
    text_key.push_back(std::uint64_t(text));
    if (text < 0) return;
    for (KeyPiece const& p : key_pieces[std::size_t(text)]) {
        std::int64_t v = 0;
        bool known;
        if (p.fact) {
            known = facts.has(int(p.id));
            if (known) v = facts.raw(int(p.id));
        } else {
            known = slot_value(p.id, v);
        }
        text_key.push_back(known);
        if (!known) continue;
        text_key.push_back(std::uint64_t(v));
        if (p.text) add_text_key(v);
    }
}

// Evaluator::append_text, written as the contents of a JSON string.
void JsonlEvaluator::Impl::write_text(std::string& out, std::int64_t text, bool with_location) {
    if (text < 0) {
        out += string_json[std::size_t(-text - 1)];
        return;
    }
    auto const& clause = program->clauses[std::size_t(text)];
    auto const& literals = literal_json[std::size_t(text)];
    for (std::size_t i = 0; i < clause.because.size(); ++i) {
        TextPiece const& p = clause.because[i];
        switch (p.kind) {
            case TextPiece::Kind::Literal: out += literals[i]; break;
            case TextPiece::Kind::Param: write_text_value(out, p.type, evaluator.params()[p.id]); break;
            case TextPiece::Kind::Fact:
                if (p.type.kind == TypeKind::MonthSet) out += "{…}";
                else if (facts.has(int(p.id))) write_text_value(out, p.type, facts.raw(int(p.id)));
                else out += "(不明)";
                break;
            case TextPiece::Kind::Slot: {
                std::int64_t v;
                if (slot_value(p.id, v)) write_text_value(out, p.type, v);
                else out += "(不明)";
                break;
            }
        }
    }
    if (clause.because.empty()) out += no_reason_json[std::size_t(text)];
    if (with_location) out += location_json[std::size_t(text)];
}

// Evaluator::append_value, written as the contents of a JSON string.
void JsonlEvaluator::Impl::write_text_value(std::string& out, Type type, std::int64_t value) {
    switch (type.kind) {
        case TypeKind::Bool: out += value ? "true" : "false"; return;
        case TypeKind::Int: append_int(out, value); return;
        case TypeKind::Date: {  // Date::iso(): YYYY-MM-DD (other years as it writes them)
            date::year_month_day const ymd{date::sys_days{date::days{value}}};
            if (append_iso(out, int(ymd.year()), unsigned(ymd.month()), unsigned(ymd.day()), false)) return;
            break;
        }
        case TypeKind::Month: {  // Month::iso(): YYYY-MM
            Month const m = Month::from_index(value);
            if (append_iso(out, m.year(), m.month(), 0, false)) return;
            break;
        }
        case TypeKind::Enum: {
            auto const& names = enum_text[std::size_t(type.enum_id)];
            out += value >= 0 && std::size_t(value) < names.size() ? std::string_view(names[std::size_t(value)])
                                                                   : std::string_view("?");
            return;
        }
        case TypeKind::EnumSet: {  // a・b, or なし
            auto const& names = enum_text[std::size_t(type.enum_id)];
            bool any = false;
            for (std::size_t i = 0; i < names.size(); ++i)
                if ((std::uint64_t(value) >> i) & 1u) {
                    if (any) out += "・";
                    out += names[i];
                    any = true;
                }
            if (!any) out += "なし";
            return;
        }
        case TypeKind::Text: write_text(out, value, false); return;
        default: break;
    }
    // The rest (sets of months, years outside 0-9999) as the Evaluator renders them, escaped.
    text.clear();
    evaluator.append_value(text, type, value, facts);
    append_json_chars(out, text);
}

void JsonlEvaluator::Impl::write_missing_and_versions(std::string& out, bool any_missing, bool any_version) {
    auto const& outputs = program->outputs;
    if (any_missing) {
        // Null decisions name what they lacked: the missing facts, or the absence of a version in force.
        out += ",\"missing\":{";
        bool first = true;
        for (std::size_t o = 0; o < outputs.size(); ++o) {
            Outcome const& oc = outcome(o);
            if (oc.status == Status::ok) continue;
            if (!first) out += ',';
            first = false;
            out += keys[o];
            if (oc.status == Status::no_version) {
                std::string msg = "施行日 " +
                                  (facts.has(program->asof_fact) ? Date::from_days(facts.raw(program->asof_fact)).iso()
                                                                 : std::string("?")) +
                                  " に効力のある " + program->slots[oc.failed_slot].name +
                                  " の version がありません / no version in force";
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
            Outcome const& oc = outcome(o);
            auto const& slot = program->slots[outputs[o]];
            if (oc.status != Status::ok || slot.versions.empty()) continue;
            if (!first) out += ',';
            first = false;
            out += keys[o];
            out += version_json[o][oc.version];
        }
        out += '}';
    }
    out += "}\n";
}

JsonlEvaluator::JsonlEvaluator(std::shared_ptr<Program const> program, GeneratedRules const* compiled)
    : impl_(std::make_unique<Impl>(std::move(program), compiled)) {}
JsonlEvaluator::~JsonlEvaluator() = default;
bool JsonlEvaluator::compiled() const { return impl_->compiled != nullptr; }

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
    return impl_->read(simdjson::padded_string_view(impl_->padded.data(), line.size(), impl_->padded.size()), facts,
                       id_json);
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
    impl_->decide();
    impl_->write_outcomes(out);
}

LineReader::LineReader(std::FILE* in, std::size_t padding) : in_(in), buf_(chunk + max_line + padding, '\0') {}

bool LineReader::next(std::string_view& line, bool& too_long) {
    too_long = false;
    for (;;) {
        if (start_ < have_ || eof_) {
            char const* nl = start_ < have_
                                 ? static_cast<char const*>(std::memchr(buf_.data() + start_, '\n', have_ - start_))
                                 : nullptr;
            if (nl || (eof_ && start_ < have_)) {
                std::size_t const end = nl ? std::size_t(nl - buf_.data()) : have_;
                line = std::string_view(buf_.data() + start_, end - start_);
                start_ = nl ? end + 1 : have_;
                if (skipping_) {  // the tail of an over-long line
                    skipping_ = false;
                    continue;
                }
                if (line.size() > max_line) {  // over the cap though whole in the buffer (which holds up to twice it)
                    line = {};
                    too_long = true;
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

// One line of the stream (not blank, within the cap), answered into `output`. `readable`: how many bytes may be
// read from line.data() on (simdjson reads up to SIMDJSON_PADDING bytes past the line).
void JsonlEvaluator::Impl::answer(std::string_view line, [[maybe_unused]] std::size_t readable, std::string& output,
                                  Stats& stats) {
    ++stats.lines;
#if KYOTAKU_JSONL_SIMDJSON
    std::string err = read(simdjson::padded_string_view(line.data(), line.size(), readable), facts, id_json);
#else
    std::string err = read(line, facts, id_json);
#endif
    if (!err.empty()) {
        ++stats.errors;
        output += "{\"id\":" + id_json + ",\"error\":";
        append_json_string(output, err);
        output += "}\n";
    } else {
        decide();
        write_outcomes(output);
    }
}

#if KYOTAKU_JSONL_SIMDJSON
// The lines of `block` (whole lines, each ended by '\n'; `readable` bytes may be read from its start), answered into
// `output` in order, written to `out` (when not null) whenever they pass LineReader::chunk. simdjson's stage 1
// indexes the block at once (iterate_many): per line, its fixed cost was 15 % of stage 1's (lines of some 350 bytes,
// callgrind: 1,711 → 1,455 instructions a line). Each line is still one document: it is answered from the block
// only when read_streamed finds it one whole object on its line, read without an error. From the first line that is
// not, the block's lines are answered one by one as before, so a bad line gets the answer it always had (its column,
// the trailing content, the field) and costs this block at most one more stage 1.
std::size_t JsonlEvaluator::Impl::answer_lines(std::string_view block, std::size_t readable, std::string& output,
                                               Stats& stats, std::FILE* out) {
    using namespace simdjson;
    char const* const begin = block.data();
    char const* const end = begin + block.size();
    parser.threaded = false;  // no thread of simdjson's own: the block is one batch
    ondemand::document_stream stream;
    bool streaming = !parser.iterate_many(begin, block.size(), stream_batch).get(stream);
    ondemand::document_stream::iterator doc;
    if (streaming) doc = stream.begin();
    bool first = true;
    for (char const* p = begin; p < end;) {
        auto const* const nl = static_cast<char const*>(std::memchr(p, '\n', std::size_t(end - p)));
        std::string_view const line(p, std::size_t(nl - p));
        p = nl + 1;
        std::size_t lead = 0;
        while (lead < line.size() && json_blank(line[lead])) ++lead;
        if (lead == line.size()) continue;  // blank: no answer (stage 1 found no token in it)
        if (streaming && doc != stream.end()) {
            // The stream's document starts at this line's first token (the first document: at the block's first
            // token, after blank lines only).
            auto d = *doc;
            streaming = !d.error() && (first || doc.current_index() == std::size_t(line.data() + lead - begin));
            first = false;
            if (streaming) {
                // Read from a local document (the stream's, moved out and back): the walk keeps its iterator in
                // registers, as read_fields does; through the stream's reference it cost some 350 instructions a line
                // more (callgrind).
                ondemand::document& in_stream = d.value_unsafe();
                ondemand::document local(std::move(in_stream));
                streaming = read_streamed(local, line, begin + readable, end);
                in_stream = std::move(local);
            }
            if (streaming) {
                ++stats.lines;
                decide();
                write_outcomes(output);
                ++doc;
            }
        } else {
            streaming = false;
        }
        if (!streaming) answer(line, readable - std::size_t(line.data() - begin), output, stats);
        if (out && output.size() >= LineReader::chunk) {
            std::fwrite(output.data(), 1, output.size(), out);
            output.clear();
        }
    }
    return block.size();
}
#endif

namespace {
constexpr std::string_view too_long_answer =
    "{\"id\":null,\"error\":\"行が長すぎます (1 MiB まで) / line too long (1 MiB at most)\"}\n";
#if KYOTAKU_JSONL_SIMDJSON
constexpr std::size_t padding = simdjson::SIMDJSON_PADDING;
#else
constexpr std::size_t padding = 0;
#endif
}  // namespace

JsonlEvaluator::Stats JsonlEvaluator::run(std::FILE* in, std::FILE* out, unsigned threads) {
    if (threads > 1) return run_parallel(in, out, threads);
    LineReader reader(in, padding);
    std::string output;
    output.reserve(LineReader::chunk * 2);
    Stats stats;
    std::string_view line;
    bool too_long = false;
    for (;;) {
#if KYOTAKU_JSONL_SIMDJSON
        if (std::string_view const block = reader.whole_lines(Impl::stream_block); !block.empty()) {
            reader.consume(impl_->answer_lines(block, reader.readable_from(block), output, stats, out));
            continue;
        }
#endif
        if (!reader.next(line, too_long)) break;
        if (too_long) {
            ++stats.lines;
            ++stats.errors;
            output += too_long_answer;
        } else if (!blank(line)) {
            impl_->answer(line, reader.readable_from(line), output, stats);
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

// Several workers, each with its own Impl (parser, evaluator, memo), answer blocks of lines; this thread reads the
// blocks and writes their answers in input order. Block k goes to worker k % workers through ring slot
// k % (2 * workers), so each slot always serves the same worker, which takes its blocks in order. Memory stays
// bounded: 2 * workers blocks of about `block` bytes of lines and their answers.
JsonlEvaluator::Stats JsonlEvaluator::run_parallel(std::FILE* in, std::FILE* out, unsigned workers) {
    constexpr std::size_t block = 256 * 1024;
    struct Slot {
        enum class State { empty, filled, answered } state = State::empty;
        std::uint64_t seq = 0;
        std::string text;  // the lines, each followed by '\n', then padding
        std::vector<std::pair<std::uint32_t, std::uint32_t>> lines;  // offset and size; size UINT32_MAX: too long
        std::string output;
        Stats stats;
    };
    std::size_t const ring = 2 * std::size_t(workers);
    std::vector<Slot> slots(ring);
    std::mutex m;
    std::condition_variable cv;
    std::uint64_t filled = 0;  // blocks handed to the workers
    bool end = false;          // no more blocks
    std::vector<std::unique_ptr<Impl>> impls;
    for (unsigned w = 0; w < workers; ++w) impls.push_back(std::make_unique<Impl>(impl_->program, impl_->compiled));
    std::vector<std::thread> pool;
    for (unsigned w = 0; w < workers; ++w)
        pool.emplace_back([&, w] {
            Impl& impl = *impls[w];
            for (std::uint64_t k = w;; k += workers) {
                Slot& slot = slots[k % ring];
                {
                    std::unique_lock lock(m);
                    cv.wait(lock, [&] {
                        return (slot.state == Slot::State::filled && slot.seq == k) || (end && k >= filled);
                    });
                    if (slot.state != Slot::State::filled || slot.seq != k) return;
                }
                slot.output.clear();
                slot.stats = {};
                for (std::size_t i = 0; i < slot.lines.size();) {
                    auto const [offset, size] = slot.lines[i];
                    if (size == UINT32_MAX) {
                        ++slot.stats.lines;
                        ++slot.stats.errors;
                        slot.output += too_long_answer;
                        ++i;
                        continue;
                    }
#if KYOTAKU_JSONL_SIMDJSON
                    // The run of lines up to the next over-long one (or the block's end), each ended by '\n'.
                    std::size_t j = i + 1;
                    while (j < slot.lines.size() && slot.lines[j].second != UINT32_MAX) ++j;
                    std::size_t const to = j < slot.lines.size() ? slot.lines[j].first : slot.text.size() - padding;
                    impl.answer_lines(std::string_view(slot.text.data() + offset, to - offset),
                                      slot.text.size() - offset, slot.output, slot.stats, nullptr);
                    i = j;
#else
                    impl.answer(std::string_view(slot.text.data() + offset, size), slot.text.size() - offset,
                                slot.output, slot.stats);
                    ++i;
#endif
                }
                std::lock_guard lock(m);
                slot.state = Slot::State::answered;
                cv.notify_all();
            }
        });

    LineReader reader(in, padding);
    Stats stats;
    std::uint64_t written = 0;
    bool more = true;
    std::string_view line;
    bool too_long = false;
    auto write_answered = [&](std::unique_lock<std::mutex>& lock) {  // in order, as far as they are answered
        for (;;) {
            Slot& slot = slots[written % ring];
            if (written == filled || slot.state != Slot::State::answered) return;
            lock.unlock();
            std::fwrite(slot.output.data(), 1, slot.output.size(), out);
            stats.lines += slot.stats.lines;
            stats.errors += slot.stats.errors;
            lock.lock();
            slot.state = Slot::State::empty;
            ++written;
            cv.notify_all();
        }
    };
    std::unique_lock lock(m);
    while (more) {
        Slot& slot = slots[filled % ring];
        cv.wait(lock, [&] {
            write_answered(lock);
            return slot.state == Slot::State::empty;
        });
        lock.unlock();
        slot.text.clear();
        slot.lines.clear();
        while (slot.text.size() < block && (more = reader.next(line, too_long))) {
            if (too_long) {
                slot.lines.emplace_back(std::uint32_t(slot.text.size()), UINT32_MAX);
            } else if (!blank(line)) {
                slot.lines.emplace_back(std::uint32_t(slot.text.size()), std::uint32_t(line.size()));
                slot.text.append(line);
                slot.text += '\n';
            }
        }
        slot.text.append(padding, ' ');
        lock.lock();
        slot.seq = filled++;
        slot.state = Slot::State::filled;
        cv.notify_all();
    }
    end = true;
    cv.notify_all();
    cv.wait(lock, [&] {
        write_answered(lock);
        return written == filled;
    });
    lock.unlock();
    for (auto& t : pool) t.join();
    stats.bytes_in = reader.bytes();
    std::fflush(out);
    return stats;
}

}  // namespace kyotaku
