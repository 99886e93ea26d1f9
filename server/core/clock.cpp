#include "core/clock.hpp"

#include <cstdio>
#include <ctime>

namespace kyotaku::server {

namespace {
constexpr auto jst_offset = std::chrono::hours(9);
}

SteadyPaceClock& SteadyPaceClock::instance() {
    static SteadyPaceClock clock;
    return clock;
}

std::string iso_timestamp(std::chrono::system_clock::time_point t) {
    auto const secs = std::chrono::time_point_cast<std::chrono::seconds>(t);
    auto const us = std::chrono::duration_cast<std::chrono::microseconds>(t - secs).count();
    std::time_t tt = std::chrono::system_clock::to_time_t(secs);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    char buf[96];  // room for any int the fields may hold: GCC's -Wformat-truncation cannot bound them
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<long long>(us));
    return buf;
}

Date Clock::today() const {
    auto const days = std::chrono::floor<std::chrono::days>(now() + jst_offset).time_since_epoch().count();
    return Date::from_days(days);
}

std::string Clock::timestamp() const { return iso_timestamp(now()); }

std::string Clock::timestamp_after(std::chrono::seconds delay) const { return iso_timestamp(now() + delay); }

std::string Clock::stamp_jst() const {
    std::time_t tt = std::chrono::system_clock::to_time_t(now() + jst_offset);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    char buf[20];
    std::strftime(buf, sizeof buf, "%Y%m%d%H%M%S", &tm);
    return buf;
}

void TestClock::set_today(Date day) {
    if (today() == day) return;  // already that day: time keeps going forward (timestamps stay in order)
    // 10:00 JST on `day` is 01:00 UTC of the same calendar day.
    auto const target = std::chrono::system_clock::time_point(std::chrono::days(day.days()) + std::chrono::hours(1));
    offset_us_ =
        std::chrono::duration_cast<std::chrono::microseconds>(target - std::chrono::system_clock::now()).count();
}

}  // namespace kyotaku::server
