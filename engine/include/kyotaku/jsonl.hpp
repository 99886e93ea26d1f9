// The machine interface of `kyotaku eval`: JSON Lines of facts in, one JSON object per line out, same order,
// same id. A bad line is answered with {"id":…,"error":"…"} naming the field; the other lines are answered.
#pragma once

#include "kyotaku/engine.hpp"

#include <cstdio>
#include <memory>
#include <string>
#include <string_view>

namespace kyotaku {

class JsonlEvaluator {
public:
    explicit JsonlEvaluator(std::shared_ptr<Program const> program);
    ~JsonlEvaluator();

    // Reads one line (a JSON object) into `facts`. Returns an empty string on success, or the error message.
    // `id_json` receives the id as JSON (a string or number), or "null".
    std::string read_facts(std::string_view line, Activation& facts, std::string& id_json);

    // Answers one line, appending the answer and a newline to `out`. Empty lines produce nothing.
    void answer_line(std::string_view line, std::string& out);

    struct Stats {
        std::uint64_t lines = 0, errors = 0, bytes_in = 0;
    };
    // Streams `in` to `out` with bounded memory (lines are capped at 1 MiB each).
    Stats run(std::FILE* in, std::FILE* out);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Appends `s` to `out` as a JSON string literal (quotes included).
void append_json_string(std::string& out, std::string_view s);

}  // namespace kyotaku
