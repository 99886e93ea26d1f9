#include "kyotaku/calendar.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <thread>
#include <vector>

using namespace kyotaku;

namespace {
Date d(int y, unsigned m, unsigned day) { return *Date::from_ymd(y, m, day); }

// 民法143, day by day, without the round-up identity: find, in the month `n` months after the 起算日's month,
// the day with the 起算日's day number by walking that month; the period ends the day before it, or on the
// month's last day when the month has no such day.
Date brute_force_period_end(Date first, int n, FirstDay rule) {
    Date start = rule == FirstDay::excluded ? Date::from_days(first.days() + 1) : first;
    Month target = Month::of(start).plus(n);
    // Walk day by day from the 起算日 into the target month.
    Date day = start;
    while (Month::of(day) < target) day = Date::from_days(day.days() + 1);
    Date last_of_target = day;
    while (Month::of(day) == target) {
        if (day.day() == start.day()) return Date::from_days(day.days() - 1);
        last_of_target = day;
        day = Date::from_days(day.days() + 1);
    }
    return last_of_target;
}
}  // namespace

TEST(Calendar, PinnedExamplesOfDomainSection6) {
    EXPECT_EQ(period_end(d(2024, 4, 15), 3, FirstDay::excluded), d(2024, 7, 15));
    EXPECT_EQ(month_end(period_end(d(2024, 4, 15), 3, FirstDay::excluded)), d(2024, 7, 31));
    EXPECT_EQ(period_end(d(2024, 3, 31), 3, FirstDay::excluded), d(2024, 6, 30));
    EXPECT_EQ(period_end(d(2024, 4, 1), 3, FirstDay::excluded), d(2024, 7, 1));
    EXPECT_EQ(period_end(d(2023, 11, 30), 3, FirstDay::excluded), d(2024, 2, 29));
    EXPECT_EQ(period_end(d(2024, 1, 15), 3, FirstDay::included), d(2024, 4, 14));
    EXPECT_EQ(period_end(d(2024, 1, 1), 3, FirstDay::included), d(2024, 3, 31));
}

TEST(Calendar, PeriodEndEqualsDayByDayCivilCode143For2000To2030And1To24Months) {
    std::int64_t checked = 0;
    for (std::int64_t day = d(2000, 1, 1).days(); day <= d(2030, 12, 31).days(); ++day) {
        Date first = Date::from_days(day);
        for (int n = 1; n <= 24; ++n)
            for (FirstDay rule : {FirstDay::excluded, FirstDay::included}) {
                Date want = brute_force_period_end(first, n, rule);
                Date got = period_end(first, n, rule);
                ASSERT_EQ(got, want) << first.iso() << " + " << n << " months, rule " << int(rule) << ": got "
                                     << got.iso() << ", want " << want.iso();
                ++checked;
            }
    }
    EXPECT_EQ(checked, std::int64_t(11323) * 24 * 2);
}

TEST(Calendar, MonthAdditionNeverOverflowsIntoTheNextMonthSilently) {
    EXPECT_TRUE(month_addition_ambiguous(d(2023, 1, 31), 1));
    EXPECT_EQ(add_months(d(2023, 1, 31), 1, Rounding::clamp), d(2023, 2, 28));
    EXPECT_EQ(add_months(d(2023, 1, 31), 1, Rounding::up), d(2023, 3, 1));
    EXPECT_EQ(add_months(d(2024, 1, 31), 1, Rounding::clamp), d(2024, 2, 29));
    EXPECT_FALSE(month_addition_ambiguous(d(2024, 1, 28), 1));
    EXPECT_EQ(add_months(d(2024, 5, 31), -1, Rounding::clamp), d(2024, 4, 30));
}

// Month::of, Month::last_day and add_months keep their answers per thread by the date (calendar.cpp). Asked in the
// order that strains the memo — dates 1,024 days apart (one slot) in turn, each twice, each question twice in a
// row (the second answer is the one kept), every number of months and rounding in turn (one slot for them all) —
// they must equal answers worked out without them, from Date::from_ymd and the date's year, month and day alone.
// Numbers of months beyond 16 bits (not kept) too.
TEST(Calendar, MemoisedAnswersEqualComputedOnes) {
    auto const last_day = [](int y, unsigned m) {
        unsigned day = 31;
        while (!Date::from_ymd(y, m, day)) --day;
        return day;
    };
    std::vector<std::int64_t> const months = {-4000, -25, -13, -12, -1, 0, 1, 2, 3, 6, 11, 12, 24, 40000};
    std::int64_t const from = d(1999, 1, 1).days(), to = d(2031, 12, 31).days();
    std::size_t wrong = 0;
    std::thread([&] {  // a fresh thread: its memo starts empty
        for (std::int64_t slot = 0; slot < 1024; ++slot)
            for (std::int64_t n = from + slot; n <= to; n += 1024)
                for (int pass = 0; pass < 2; ++pass) {
                    Date const day = Date::from_days(n);
                    int const y = day.year();
                    unsigned const m = day.month();
                    wrong += Month::of(day).index() != std::int64_t(y) * 12 + (m - 1);
                    wrong += Month::of(day).last_day() != d(y, m, last_day(y, m));
                    for (Rounding r : {Rounding::clamp, Rounding::up, Rounding::clamp})
                        for (std::int64_t add : months) {
                            std::int64_t const target = std::int64_t(y) * 12 + (m - 1) + add;
                            int const ty = int(target >= 0 ? target / 12 : (target - 11) / 12);
                            unsigned const tm = unsigned(target - std::int64_t(ty) * 12 + 1);
                            bool const has_day = day.day() <= last_day(ty, tm);
                            Date const clamp = d(ty, tm, has_day ? day.day() : last_day(ty, tm));
                            Date const up = has_day ? clamp : Date::from_days(clamp.days() + 1);
                            wrong += add_months(day, add, r) != (r == Rounding::clamp ? clamp : up);
                            wrong += add_months(day, add, r) != (r == Rounding::clamp ? clamp : up);  // kept
                        }
                }
    }).join();
    EXPECT_EQ(wrong, 0u);
}

TEST(Calendar, InvalidDatesCannotBeConstructed) {
    EXPECT_FALSE(Date::from_ymd(2024, 2, 30));
    EXPECT_FALSE(Date::from_ymd(2023, 2, 29));
    EXPECT_TRUE(Date::from_ymd(2024, 2, 29));
    EXPECT_FALSE(Date::from_ymd(2024, 13, 1));
    EXPECT_FALSE(Month::from_ym(2024, 0));
}

TEST(Calendar, WarekiLiteralsAndEraBoundaries) {
    EXPECT_EQ(*parse_date("令和6年4月1日").date, d(2024, 4, 1));
    EXPECT_EQ(*parse_date("R6.4.1").date, d(2024, 4, 1));
    EXPECT_EQ(*parse_date("r6.4.1").date, d(2024, 4, 1));
    EXPECT_EQ(*parse_date("令和元年5月1日").date, d(2019, 5, 1));
    EXPECT_EQ(*parse_date("平成31年4月30日").date, d(2019, 4, 30));
    EXPECT_EQ(*parse_date("H31.4.30").date, d(2019, 4, 30));
    EXPECT_EQ(*parse_date("昭和64年1月7日").date, d(1989, 1, 7));
    EXPECT_EQ(*parse_date("平成元年1月8日").date, d(1989, 1, 8));
    EXPECT_EQ(*parse_date("令和６年４月１５日").date, d(2024, 4, 15));  // full-width digits
    EXPECT_EQ(*parse_date("２０２４－０４－１５").date, d(2024, 4, 15));
    // Outside their era
    EXPECT_FALSE(parse_date("平成31年5月1日").date);
    EXPECT_FALSE(parse_date("令和元年4月30日").date);
    EXPECT_FALSE(parse_date("昭和64年1月8日").date);
    EXPECT_NE(parse_date("平成31年5月1日").message.text().find("元号の期間外"), std::string::npos);
    // Impossible days
    EXPECT_FALSE(parse_date("令和6年2月30日").date);
    EXPECT_FALSE(parse_date("2024-02-30").date);
    EXPECT_FALSE(parse_date("令和0年1月1日").date);
    EXPECT_FALSE(parse_date("2024/04/01").date);
    EXPECT_EQ(*parse_month("令和6年6月").month, *Month::from_ym(2024, 6));
    EXPECT_EQ(*parse_month("R6.6").month, *Month::from_ym(2024, 6));
    EXPECT_EQ(*parse_month("2024-06").month, *Month::from_ym(2024, 6));
    EXPECT_FALSE(parse_month("2024-13").month);
}

TEST(Calendar, IsoFormatting) {
    EXPECT_EQ(d(2024, 2, 29).iso(), "2024-02-29");
    EXPECT_EQ(Month::of(d(2024, 2, 29)).iso(), "2024-02");
    EXPECT_EQ(Month::from_ym(2024, 2)->last_day(), d(2024, 2, 29));
    EXPECT_EQ(Month::from_ym(2023, 12)->plus(1).iso(), "2024-01");
    EXPECT_EQ(normalize_width("ａｂ１２　x"), "ab12 x");
}
