#include "kyotaku/calendar.hpp"

#include <date/date.h>

#include <array>
#include <charconv>
#include <cstdio>

namespace kyotaku {

namespace dt = date;

namespace {
dt::year_month_day ymd_of(std::int64_t n) { return dt::year_month_day{dt::sys_days{dt::days{n}}}; }

std::int64_t days_of(dt::year_month_day ymd) {
    // The only conversion to days in this file; it is reached with valid dates only.
    return dt::sys_days{ymd}.time_since_epoch().count();
}

// The answers for the dates asked last, per thread: a record's dates are few and a batch's records share many (the
// query date, its months, the first visits of a period), so a date asked again costs a load and a comparison
// instead of the civil-calendar arithmetic. Direct-mapped by the date (1,024 days, some three years: the first visits
// of a facility's patients); constant-initialised, so no guard on access. A question is packed into one word with its
// top bit set (never 0, the empty entry); one that does not fit (a date beyond 32 bits) is not kept.
class Memo {
public:
    template <typename Compute>
    std::int64_t get(std::uint64_t question, std::int64_t date, Compute&& compute) {
        Entry& e = entries_[std::uint64_t(date) & (entries_.size() - 1)];
        if (e.question == question) return e.answer;
        e = {question, compute()};
        return e.answer;
    }

private:
    struct Entry {
        std::uint64_t question;
        std::int64_t answer;
    };
    std::array<Entry, 1024> entries_{};
};
constexpr std::uint64_t asked = std::uint64_t(1) << 63;
bool fits_32(std::int64_t v) { return v == std::int32_t(v); }
thread_local Memo month_of_memo, last_day_memo, add_months_memo;

void pad(std::string& out, int v, int width) {
    char buf[16];
    if (v >= 0 && (width == 2 ? v < 100 : width == 4 && v < 10000)) {  // every month, day and year since 0: no printf
        for (int i = width - 1; i >= 0; --i, v /= 10) buf[i] = char('0' + v % 10);
        out.append(buf, static_cast<std::size_t>(width));
        return;
    }
    int n = std::snprintf(buf, sizeof buf, "%0*d", width, v);
    out.append(buf, static_cast<std::size_t>(n));
}
}  // namespace

std::optional<Date> Date::from_ymd(int y, unsigned m, unsigned d) {
    if (y < -9999 || y > 9999) return std::nullopt;
    dt::year_month_day ymd{dt::year{y}, dt::month{m}, dt::day{d}};
    if (!ymd.ok()) return std::nullopt;
    return Date(days_of(ymd));
}
int Date::year() const { return int(ymd_of(days_).year()); }
unsigned Date::month() const { return unsigned(ymd_of(days_).month()); }
unsigned Date::day() const { return unsigned(ymd_of(days_).day()); }
std::string Date::iso() const {
    auto ymd = ymd_of(days_);
    std::string s;
    s.reserve(10);
    pad(s, int(ymd.year()), 4);
    s += '-';
    pad(s, int(unsigned(ymd.month())), 2);
    s += '-';
    pad(s, int(unsigned(ymd.day())), 2);
    return s;
}

std::optional<Month> Month::from_ym(int y, unsigned m) {
    if (y < -9999 || y > 9999 || m < 1 || m > 12) return std::nullopt;
    return Month(std::int64_t(y) * 12 + (m - 1));
}
Month Month::of(Date d) {
    auto const compute = [&] {
        auto ymd = ymd_of(d.days());
        return std::int64_t(int(ymd.year())) * 12 + (unsigned(ymd.month()) - 1);
    };
    if (!fits_32(d.days())) return Month(compute());
    return Month(month_of_memo.get(asked | std::uint32_t(d.days()), d.days(), compute));
}
int Month::year() const { return int(index_ >= 0 ? index_ / 12 : (index_ - 11) / 12); }
unsigned Month::month() const { return unsigned(index_ - std::int64_t(year()) * 12 + 1); }
Date Month::first_day() const {
    return Date::from_days(days_of(dt::year_month_day{dt::year{year()}, dt::month{month()}, dt::day{1}}));
}
Date Month::last_day() const {
    auto const compute = [&] {
        return days_of(
            dt::year_month_day{dt::year_month_day_last{dt::year{year()}, dt::month_day_last{dt::month{month()}}}});
    };
    if (!fits_32(index_)) return Date::from_days(compute());
    return Date::from_days(last_day_memo.get(asked | std::uint32_t(index_), index_, compute));
}
std::string Month::iso() const {
    std::string s;
    s.reserve(7);
    pad(s, year(), 4);
    s += '-';
    pad(s, int(month()), 2);
    return s;
}

Date period_start(Date first, FirstDay rule) {
    // 民法140条: a period in days, weeks, months or years does not count its first day unless it starts at
    // 00:00. A first visit happens during the day, so the default rule set counts from the next day.
    return rule == FirstDay::excluded ? Date::from_days(first.days() + 1) : first;
}

Date add_months(Date d, std::int64_t months, Rounding r) {
    auto const compute = [&] {
        auto ymd = ymd_of(d.days());
        dt::year_month_day target = ymd + dt::months{months};
        if (target.ok()) return days_of(target);
        dt::year_month_day_last last{target.year(), dt::month_day_last{target.month()}};
        if (r == Rounding::clamp) return days_of(dt::year_month_day{last});
        return days_of(dt::year_month_day{last}) + 1;
    };
    if (!fits_32(d.days()) || months != std::int16_t(months)) return Date::from_days(compute());
    // The date in bits 24-55, the months in 8-23, the rounding in 0-7.
    std::uint64_t const question = asked | std::uint64_t(std::uint32_t(d.days())) << 24 |
                                   std::uint64_t(std::uint16_t(months)) << 8 | std::uint64_t(r);
    return Date::from_days(add_months_memo.get(question, d.days(), compute));
}

bool month_addition_ambiguous(Date d, std::int64_t months) {
    auto ymd = ymd_of(d.days());
    return !(ymd + dt::months{months}).ok();
}

Date period_end(Date first, std::int64_t months, FirstDay rule) {
    // 民法143条2項: the period ends on the day before the day of the last month corresponding to the 起算日;
    // when the last month has no such day it ends on that month's last day. Rounding a missing day up to the
    // 1st of the next month and stepping back one day gives both halves of the article in one expression,
    // and also the case of a period counted from the 1st of a month (it ends on the last day of a month).
    Date start = period_start(first, rule);
    Date corresponding = add_months(start, months, Rounding::up);
    return Date::from_days(corresponding.days() - 1);
}

Date month_end(Date d) { return Month::of(d).last_day(); }

std::optional<Date> parse_iso_date_fast(std::string_view t) {
    if (t.size() != 10 || t[4] != '-' || t[7] != '-') return std::nullopt;
    auto digit = [&](std::size_t i) { return unsigned(t[i]) - '0' < 10u; };
    for (std::size_t i : {0, 1, 2, 3, 5, 6, 8, 9})
        if (!digit(i)) return std::nullopt;
    int y = (t[0] - '0') * 1000 + (t[1] - '0') * 100 + (t[2] - '0') * 10 + (t[3] - '0');
    unsigned m = unsigned((t[5] - '0') * 10 + (t[6] - '0'));
    unsigned d = unsigned((t[8] - '0') * 10 + (t[9] - '0'));
    return Date::from_ymd(y, m, d);
}

std::string normalize_width(std::string_view in) {
    std::string out;
    out.reserve(in.size());
    for (std::size_t i = 0; i < in.size();) {
        auto c = static_cast<unsigned char>(in[i]);
        if (c == 0xE3 && i + 2 < in.size() && static_cast<unsigned char>(in[i + 1]) == 0x80 &&
            static_cast<unsigned char>(in[i + 2]) == 0x80) {  // U+3000 ideographic space
            out += ' ';
            i += 3;
            continue;
        }
        if (c == 0xEF && i + 2 < in.size()) {
            // U+FF01..U+FF5E: EF BC 81..EF BC BF, EF BD 80..EF BD 9E
            auto c1 = static_cast<unsigned char>(in[i + 1]), c2 = static_cast<unsigned char>(in[i + 2]);
            unsigned cp = ((c & 0x0Fu) << 12) | ((c1 & 0x3Fu) << 6) | (c2 & 0x3Fu);
            if ((c1 & 0xC0) == 0x80 && (c2 & 0xC0) == 0x80 && cp >= 0xFF01 && cp <= 0xFF5E) {
                out += static_cast<char>(cp - 0xFF01 + 0x21);
                i += 3;
                continue;
            }
        }
        out += in[i++];
    }
    return out;
}

namespace {
struct Era {
    std::string_view kanji;
    char letter;
    int y, m, d;  // first day of the era (Gregorian)
};
// 明治 is taken from 1868-01-01 (the 改元の詔 applied it to the whole of 慶応4年); dates are proleptic Gregorian.
constexpr std::array<Era, 5> eras{{
    {"明治", 'M', 1868, 1, 1},
    {"大正", 'T', 1912, 7, 30},
    {"昭和", 'S', 1926, 12, 25},
    {"平成", 'H', 1989, 1, 8},
    {"令和", 'R', 2019, 5, 1},
}};

bool read_int(std::string_view& s, int& v) {
    std::size_t n = 0;
    while (n < s.size() && n < 6 && unsigned(s[n]) - '0' < 10u) ++n;
    if (n == 0) return false;
    std::from_chars(s.data(), s.data() + n, v);
    s.remove_prefix(n);
    return true;
}
bool eat(std::string_view& s, std::string_view lit) {
    if (s.substr(0, lit.size()) != lit) return false;
    s.remove_prefix(lit.size());
    return true;
}

// Parses an era prefix and year: `令和6年`, `令和元年`, `R6.`; returns the era index.
std::optional<std::size_t> read_era_year(std::string_view& s, int& era_year, bool& letter_form) {
    for (std::size_t i = 0; i < eras.size(); ++i) {
        if (eat(s, eras[i].kanji)) {
            letter_form = false;
            if (eat(s, "元")) era_year = 1;
            else if (!read_int(s, era_year)) return std::nullopt;
            if (!eat(s, "年")) return std::nullopt;
            return i;
        }
        if (!s.empty() && (s[0] == eras[i].letter || s[0] == eras[i].letter + 32)) {
            s.remove_prefix(1);
            letter_form = true;
            if (!read_int(s, era_year) || !eat(s, ".")) return std::nullopt;
            return i;
        }
    }
    return std::nullopt;
}

std::string era_range_message(std::size_t i) {
    std::string msg = std::string(eras[i].kanji) + "は " +
                      Date::from_ymd(eras[i].y, unsigned(eras[i].m), unsigned(eras[i].d))->iso() + " から";
    if (i + 1 < eras.size())
        msg +=
            " " +
            Date::from_days(Date::from_ymd(eras[i + 1].y, unsigned(eras[i + 1].m), unsigned(eras[i + 1].d))->days() - 1)
                .iso() +
            " まで";
    return msg;
}
}  // namespace

std::string wareki(Date d) {
    for (std::size_t i = eras.size(); i-- > 0;) {
        Date const first = *Date::from_ymd(eras[i].y, unsigned(eras[i].m), unsigned(eras[i].d));
        if (d < first) continue;
        int const year = d.year() - eras[i].y + 1;
        return std::string(eras[i].kanji) + (year == 1 ? std::string("元") : std::to_string(year)) + "年" +
               std::to_string(d.month()) + "月" + std::to_string(d.day()) + "日";
    }
    return d.iso();
}
std::string wareki_with_iso(Date d) { return wareki(d) + " (" + d.iso() + ")"; }

namespace {
template <typename Result>
Result failure(std::string ja, std::string en) {
    Result r;
    r.message = Message{std::move(ja), std::move(en)};
    return r;
}
DateParse no_such_day(std::string_view raw, int y, int m) {
    std::string const text(raw);
    if (m >= 1 && m <= 12 && y >= -9999 && y <= 9999) {
        unsigned const last = Month::from_ym(y, unsigned(m))->last_day().day();
        std::string const month = std::to_string(y) + "年" + std::to_string(m) + "月";
        return failure<DateParse>("存在しない日付です: " + text + " (" + month + "は" + std::to_string(last) +
                                      "日まで)",
                                  "no such day: " + text + " (that month has " + std::to_string(last) + " days)");
    }
    return failure<DateParse>("存在しない日付です: " + text + " (月は1〜12)",
                              "no such day: " + text + " (months are 1..12)");
}
}  // namespace

DateParse parse_date(std::string_view raw) {
    std::string norm = normalize_width(raw);
    std::string_view s = norm;
    if (auto d = parse_iso_date_fast(s)) return {d, {}};
    std::string_view t = s;
    int y = 0, m = 0, d = 0;
    std::string const text(raw);
    if (t.size() >= 8 && unsigned(t[0]) - '0' < 10u) {
        if (read_int(t, y) && eat(t, "-") && read_int(t, m) && eat(t, "-") && read_int(t, d) && t.empty()) {
            if (auto v = Date::from_ymd(y, unsigned(m), unsigned(d))) return {v, {}};
            return no_such_day(raw, y, m);
        }
        return failure<DateParse>("日付の形式が不正です (YYYY-MM-DD): " + text, "malformed date (YYYY-MM-DD): " + text);
    }
    int ey = 0;
    bool letter = false;
    auto era = read_era_year(t, ey, letter);
    bool ok = era.has_value();
    if (ok) {
        if (letter) ok = read_int(t, m) && eat(t, ".") && read_int(t, d) && t.empty();
        else ok = read_int(t, m) && eat(t, "月") && read_int(t, d) && eat(t, "日") && t.empty();
    }
    if (!ok)
        return failure<DateParse>("日付として読めません (YYYY-MM-DD, 令和6年4月1日, R6.4.1): " + text,
                                  "not a date (YYYY-MM-DD, 令和6年4月1日, R6.4.1): " + text);
    if (ey < 1) return failure<DateParse>("和暦の年は1以上です: " + text, "an era year is at least 1: " + text);
    auto date = Date::from_ymd(eras[*era].y + ey - 1, unsigned(m), unsigned(d));
    if (!date) return no_such_day(raw, eras[*era].y + ey - 1, m);
    Date first = *Date::from_ymd(eras[*era].y, unsigned(eras[*era].m), unsigned(eras[*era].d));
    bool before = *date < first;
    bool after = *era + 1 < eras.size() &&
                 *date >= *Date::from_ymd(eras[*era + 1].y, unsigned(eras[*era + 1].m), unsigned(eras[*era + 1].d));
    if (before || after)
        return failure<DateParse>("元号の期間外の日付です: " + text + " (" + date->iso() + "。" +
                                      era_range_message(*era) + ")",
                                  "date outside its era: " + text + " = " + date->iso());
    return {date, {}};
}

MonthParse parse_month(std::string_view raw) {
    std::string norm = normalize_width(raw);
    std::string_view t = norm;
    int y = 0, m = 0;
    std::string const text(raw);
    if (!t.empty() && unsigned(t[0]) - '0' < 10u) {
        if (t.size() == 7 && read_int(t, y) && eat(t, "-") && read_int(t, m) && t.empty()) {
            if (auto v = Month::from_ym(y, unsigned(m))) return {v, {}};
            return failure<MonthParse>("存在しない月です: " + text + " (月は1〜12)",
                                       "no such month: " + text + " (months are 1..12)");
        }
        return failure<MonthParse>("月の形式が不正です (YYYY-MM): " + text, "malformed month (YYYY-MM): " + text);
    }
    int ey = 0;
    bool letter = false;
    auto era = read_era_year(t, ey, letter);
    bool ok = era.has_value() && read_int(t, m) && (letter ? t.empty() : (eat(t, "月") && t.empty()));
    if (!ok)
        return failure<MonthParse>("月として読めません (YYYY-MM, 令和6年6月, R6.6): " + text,
                                   "not a month (YYYY-MM, 令和6年6月, R6.6): " + text);
    if (ey < 1 || m < 1 || m > 12)
        return failure<MonthParse>("存在しない月です: " + text + " (和暦の年は1以上、月は1〜12)",
                                   "no such month: " + text);
    Month month = *Month::from_ym(eras[*era].y + ey - 1, unsigned(m));
    Month first = Month::of(*Date::from_ymd(eras[*era].y, unsigned(eras[*era].m), unsigned(eras[*era].d)));
    bool before = month < first;
    bool after =
        *era + 1 < eras.size() &&
        month > Month::of(*Date::from_ymd(eras[*era + 1].y, unsigned(eras[*era + 1].m), unsigned(eras[*era + 1].d)));
    if (before || after)
        return failure<MonthParse>("元号の期間外の月です: " + text + " (" + era_range_message(*era) + ")",
                                   "month outside its era: " + text);
    return {month, {}};
}

}  // namespace kyotaku
