// The machine interface of `kyotaku eval`: JSON Lines of facts in, one JSON object per line out, same order,
// same id. A bad line is answered with {"id":…,"error":"…"} naming the field; the other lines are answered. A key
// that is no fact of the rules is such an error too, with the nearest fact's name ("did you mean …?").
#pragma once

#include "kyotaku/cxx20.hpp"  // first: a clear message for a C++17 consumer

#include "kyotaku/engine.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace kyotaku {

struct GeneratedRules;

class JsonlEvaluator {
public:
    // With `compiled` (kyotaku/generated.hpp) built from the same rule set (GeneratedRules::matches), the decisions
    // are made by that code instead of the interpreter — the same answers, byte for byte, decided in about a third of
    // the interpreter's time; otherwise `compiled` is not used.
    explicit JsonlEvaluator(std::shared_ptr<Program const> program, GeneratedRules const* compiled = nullptr);
    ~JsonlEvaluator();
    // Whether the compiled rules answer (false: the interpreter).
    bool compiled() const;

    // Accepts these keys too and ignores them (kyotaku diff: the other rule set's facts).
    void allow_keys(std::vector<std::string> keys);

    // Reads one line (a JSON object) into `facts`. Returns an empty string on success, or the error message.
    // `id_json` receives the id as JSON (a string or number), or "null".
    std::string read_facts(std::string_view line, Activation& facts, std::string& id_json);

    // Answers one line, appending the answer and a newline to `out`. Empty lines produce nothing.
    void answer_line(std::string_view line, std::string& out);

    struct Stats {
        std::uint64_t lines = 0, errors = 0, bytes_in = 0;
    };
    // Streams `in` to `out` with bounded memory (lines are capped at 1 MiB each). With `threads` > 1, that many
    // workers answer blocks of lines at once (each with its own parser and evaluator) and the answers are written in
    // input order, the same bytes as with one.
    Stats run(std::FILE* in, std::FILE* out, unsigned threads = 1);

private:
    Stats run_parallel(std::FILE* in, std::FILE* out, unsigned workers);
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Splits a stream into lines with bounded memory (read 1 MiB at a time; a line is capped at 1 MiB). Each line's
// bytes stay readable, with at least `padding` more bytes after it, until the next call (for simdjson).
class LineReader {
public:
    explicit LineReader(std::FILE* in, std::size_t padding = 64);
    // The next line, without its '\n'; false at the end of the stream. A line over the cap comes back once as
    // `too_long` (and empty); the rest of it is skipped.
    bool next(std::string_view& line, bool& too_long);
    // How many bytes may be read from line.data() on (the line, then padding).
    std::size_t readable_from(std::string_view line) const {
        return buf_.size() - std::size_t(line.data() - buf_.data());
    }
    std::uint64_t bytes() const { return bytes_; }
    // The whole lines in the buffer from the current position, each with its '\n', up to `limit` bytes — without
    // reading more: empty when the next line is not whole in the buffer within `limit` (or is the rest of an
    // over-long line); next() takes those. Followed by `padding` readable bytes, as a line is; consume() them.
    std::string_view whole_lines(std::size_t limit) const {
        if (skipping_ || start_ >= have_) return {};
        std::size_t n = std::min(limit, have_ - start_);
        while (n > 0 && buf_[start_ + n - 1] != '\n') --n;
        return std::string_view(buf_.data() + start_, n);
    }
    void consume(std::size_t n) { start_ += n; }

    static constexpr std::size_t chunk = 1 << 20;
    static constexpr std::size_t max_line = 1 << 20;

private:
    std::FILE* in_;
    std::string buf_;
    std::size_t have_ = 0, start_ = 0;
    std::uint64_t bytes_ = 0;
    bool eof_ = false, skipping_ = false;
};

// Appends `s` to `out` as a JSON string literal (quotes included).
void append_json_string(std::string& out, std::string_view s);

}  // namespace kyotaku
