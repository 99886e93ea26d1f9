// What the desks tell the server's log, as data: kyotaku serve (app/) writes each as one JSON line
// (ops/observability); a test may watch them. Nothing is written while no one listens.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace kyotaku::server {

// A batch job's state changes: "accepted" (its rows stored), "finished" (every row answered), "failed" (gave up on a
// permanent error: `error` names it), "retry" (a transient database fault: the chunk is answered again after
// `retry_in_ms`).
struct BatchEvent {
    char const* state;
    std::string reception_number, facility;
    std::int64_t rows = 0;
    std::string error = {};
    std::int64_t retry_in_ms = -1;
};

// A chunk of a batch job that the worker could not answer or record (not a bad row: each has its own result).
struct BatchProblem {
    enum class Level { warning, error };
    Level level;
    // batch_chunk_dropped (warning: another server holds its rows; answered again once its lease expires),
    // batch_chunk_failed (error: let go; the job gives up after three), batch_failure_unrecorded (error)
    char const* event;
    std::string reception_number;
    std::string error;  // what failed, for an operator
    std::string cause;  // batch_failure_unrecorded: the failure that could not be recorded
};

// Characters a Shift_JIS answer wrote as 〓 (外字), per unit: the route, the reception number (empty for a single
// answer), the unit and how many characters — never the text itself.
struct UnmappableCharacters {
    char const* route;
    std::string facility, reception_number;
    std::int64_t unit = 0, characters = 0;
};

struct DeskEvents {
    std::function<void(BatchEvent const&)> on_batch_event;
    std::function<void(BatchProblem const&)> on_batch_problem;
    std::function<void(UnmappableCharacters const&)> on_unmappable;

    void batch_event(BatchEvent const& e) const {
        if (on_batch_event) on_batch_event(e);
    }
    void batch_problem(BatchProblem const& p) const {
        if (on_batch_problem) on_batch_problem(p);
    }
    void unmappable(UnmappableCharacters const& u) const {
        if (on_unmappable) on_unmappable(u);
    }
};

}  // namespace kyotaku::server
