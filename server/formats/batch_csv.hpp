// The CSV codec of a batch upload (POST /api/v1/batch/reinquiry, text/csv): arbitrary_identifier,insurer_number,
// symbol,number,branch,birthdate per line, a header line optional. Lines are read one at a time, each up to a bound,
// never the file whole; every line becomes a row, even a malformed one (its own error result). A line too long or
// not UTF-8 refuses the file (Error naming "line N").
#pragma once

#include "decision/batch_row.hpp"

#include <istream>

namespace kyotaku::server {

class CsvRows {
public:
    explicit CsvRows(std::istream& in);
    // The next row into `row`; false at the end. Throws Error (invalid, field "line N") for a line that refuses the
    // file.
    bool next(BatchRow& row);

private:
    std::istream& in_;
    std::string buffer_;
    bool first_ = true;
    int line_no_ = 0;
};

}  // namespace kyotaku::server
