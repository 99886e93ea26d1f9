// The server's clock: the one source of "today" for every rule gate, and of timestamps. Injected, so that tests
// (and the e2e scripts, through `kyotaku serve --test-clock`) set the date instead of depending on the wall clock.
#pragma once

#include "kyotaku/calendar.hpp"

#include <atomic>
#include <chrono>
#include <string>

namespace kyotaku::server {

class Clock {
public:
    virtual ~Clock() = default;
    virtual std::chrono::system_clock::time_point now() const = 0;

    // The calendar day in Japan (JST, UTC+9, no daylight saving): the day a consent is given, a file received or
    // a re-inquiry decided is Japanese civil time, whatever the machine's time zone.
    Date today() const;
    // UTC timestamps, ISO 8601 with microseconds (YYYY-MM-DDTHH:MM:SS.ffffffZ): stored, compared as text.
    std::string timestamp() const;
    std::string timestamp_after(std::chrono::seconds delay) const;
    // yyyyMMddHHmmss in JST (the OQS files' ProcessExecutionTime, reception numbers).
    std::string stamp_jst() const;
};

// The machine's clock.
class SystemClock final : public Clock {
public:
    std::chrono::system_clock::time_point now() const override { return std::chrono::system_clock::now(); }
};

// The machine's clock moved by a settable offset: time still passes (challenges expire), but the day is the one
// a test chose. `kyotaku serve --test-clock DATE` starts on DATE and lets the operator certificate move it.
class TestClock final : public Clock {
public:
    explicit TestClock(Date today) { set_today(today); }
    std::chrono::system_clock::time_point now() const override {
        return std::chrono::system_clock::now() + std::chrono::microseconds(offset_us_.load());
    }
    // Moves the clock so that it is 10:00 in Japan on `day`, and time goes on from there (no change when it is
    // already that day).
    void set_today(Date day);
    // Moves the clock forward (or back) by `delta`.
    void advance(std::chrono::microseconds delta) { offset_us_ += delta.count(); }

private:
    std::atomic<std::int64_t> offset_us_{0};
};

std::string iso_timestamp(std::chrono::system_clock::time_point t);

// A monotonic clock for pacing work (the batch worker giving way to interactive requests: usecases/request_gate.hpp),
// injected, so that tests move it by hand instead of waiting.
class PaceClock {
public:
    virtual ~PaceClock() = default;
    virtual std::chrono::steady_clock::time_point now() const = 0;
};

// The machine's monotonic clock.
class SteadyPaceClock final : public PaceClock {
public:
    std::chrono::steady_clock::time_point now() const override { return std::chrono::steady_clock::now(); }
    static SteadyPaceClock& instance();
};

}  // namespace kyotaku::server
