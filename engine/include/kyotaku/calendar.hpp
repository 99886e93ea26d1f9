// Civil calendar for the rule language: dates, months, statute periods (民法140/143), 和暦.
//
// Types are contracts (after Howard Hinnant's date): a Date is always a real civil day, a Month is always a
// real year-month, and nothing converts between days and months implicitly. Plain month addition whose day
// may not exist must name a rounding policy; there is no operation that turns an invalid year_month_day into
// days (Hinnant's `sys_days{2023y/feb/31}` silently gives March 3rd: the OPA overflow bug).
#pragma once

#include "kyotaku/cxx20.hpp"  // first: a clear message for a C++17 consumer

#include "kyotaku/message.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kyotaku {

// A civil day, stored as days since 1970-01-01. Construct only through from_ymd / parse_date.
class Date {
public:
    static std::optional<Date> from_ymd(int year, unsigned month, unsigned day);
    static constexpr Date from_days(std::int64_t days) { return Date(days); }
    std::int64_t days() const { return days_; }
    int year() const;
    unsigned month() const;
    unsigned day() const;
    std::string iso() const;  // YYYY-MM-DD
    friend constexpr auto operator<=>(Date, Date) = default;

private:
    constexpr explicit Date(std::int64_t d) : days_(d) {}
    std::int64_t days_;
};

// A civil year-month, stored as year*12 + (month-1).
class Month {
public:
    static std::optional<Month> from_ym(int year, unsigned month);
    static constexpr Month from_index(std::int64_t i) { return Month(i); }
    static Month of(Date d);
    std::int64_t index() const { return index_; }
    int year() const;
    unsigned month() const;
    Date first_day() const;
    Date last_day() const;  // 末日
    Month plus(std::int64_t months) const { return Month(index_ + months); }
    std::string iso() const;  // YYYY-MM
    friend constexpr auto operator<=>(Month, Month) = default;

private:
    constexpr explicit Month(std::int64_t i) : index_(i) {}
    std::int64_t index_;
};

// How the first day of a period is counted (民法140).
enum class FirstDay : std::uint8_t {
    excluded = 0,  // 初日不算入: a period not starting at 00:00 starts counting the next day (民法140本文)
    included = 1,  // 初日算入: the first day counts (民法140但書, or administrative texts that count it)
};

// What to do when month addition lands on a day the month does not have (the 29th–31st).
enum class Rounding : std::uint8_t {
    clamp = 0,  // to the last day of that month (2024-01-31 + 1 month = 2024-02-29)
    up = 1,     // to the first day of the next month (2024-01-31 + 1 month = 2024-03-01)
};

// 起算日: the day counting starts.
Date period_start(Date first, FirstDay rule);

// 満了日 of a period of `months` months starting on `first` (民法143): the period ends on the day before the
// day of the last month that corresponds to the 起算日; if the last month has no such day, on its last day.
// A period whose 起算日 is the 1st of a month (民法143条2項 "月の初めから起算するとき") ends at the end of the
// last month, which the same identity gives. Identity: 満了日 = round_up(起算日 + n months) − 1 day.
Date period_end(Date first, std::int64_t months, FirstDay rule);

// Calendar month addition with an explicit policy for a non-existent day.
Date add_months(Date d, std::int64_t months, Rounding r);

// Whether `d + months` would land on a day that does not exist in the target month.
bool month_addition_ambiguous(Date d, std::int64_t months);

Date month_end(Date d);

// Parses ISO `YYYY-MM-DD` or 和暦 (`令和6年4月1日`, `令和元年5月1日`, `R6.4.1`, `H31.4.30`).
// Full-width digits are accepted. Fails (with a message naming the text) for impossible days and days outside
// their era.
struct DateParse {
    std::optional<Date> date;
    Message message;
};
DateParse parse_date(std::string_view text);

// 和暦 for people: `令和6年10月1日`, `令和元年5月1日` (the era in force that day); ISO for days before 明治.
std::string wareki(Date d);
// For reports people read: 和暦 with ISO in brackets, `令和6年10月1日 (2024-10-01)`.
std::string wareki_with_iso(Date d);

// Parses `YYYY-MM` or 和暦 `令和6年6月` / `R6.6`.
struct MonthParse {
    std::optional<Month> month;
    Message message;
};
MonthParse parse_month(std::string_view text);

// Fast path for machine input: exactly `YYYY-MM-DD`, returns nullopt for anything else.
std::optional<Date> parse_iso_date_fast(std::string_view text);

// Replaces full-width digits (０-９), letters, ASCII punctuation forms and the ideographic space (U+3000) by their
// ASCII forms. Leaves every other character alone.
std::string normalize_width(std::string_view text);

}  // namespace kyotaku
