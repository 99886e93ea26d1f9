#include "formats/batch_csv.hpp"

#include "formats/fields.hpp"

namespace kyotaku::server {

namespace {
// A line is read up to a bound (its fields are a few dozen characters), never whole whatever its length.
constexpr std::streamsize longest_line = 1024;
}  // namespace

CsvRows::CsvRows(std::istream& in) : in_(in), buffer_(std::size_t(longest_line) + 2, '\0') {}

bool CsvRows::next(BatchRow& row) {
    for (;;) {
        in_.getline(buffer_.data(), longest_line + 2);
        if (in_.gcount() == 0 && !in_) return false;
        ++line_no_;
        std::string line(buffer_.data(), std::size_t(in_.gcount()) - (in_.eof() ? 0 : 1));
        std::string const where = "line " + std::to_string(line_no_);
        if ((in_.fail() && !in_.eof()) || line.size() > std::size_t(longest_line))
            throw invalid(where,
                          std::to_string(line_no_) + " 行目が長すぎます (" + std::to_string(longest_line) +
                              " バイトまで。ファイル全体を受け付けません)",
                          where + " is longer than " + std::to_string(longest_line) + " bytes (the file is refused)");
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (!valid_utf8(line))
            throw invalid(where,
                          std::to_string(line_no_) + " 行目が UTF-8 ではありません (ファイル全体を受け付けません)",
                          where + " is not valid UTF-8 (the file is refused)");
        bool const header = first_ && line.rfind("arbitrary_identifier", 0) == 0;
        first_ = false;
        if (line.empty() || header) continue;
        // Every line becomes a row, even a malformed one: it gets its own error result.
        auto f = split_csv_line(line);
        if (f.size() != 6) {
            row = RowUnread{utf8_prefix(line, 200), std::nullopt, std::nullopt};
            return true;
        }
        try {  // the row's own error, naming the field (its answer)
            check_text(f[0], "arbitrary_identifier", 100);
        } catch (Error const& e) {
            row = RowUnread{e.what(), e.field, std::nullopt};
            return true;
        }
        row = RowQuery{CardFields{f[1], f[2], f[3], f[4], f[5]}, f[0], std::nullopt};
        return true;
    }
}

}  // namespace kyotaku::server
