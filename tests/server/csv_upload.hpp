// A CSV upload straight to the batch desk, as POST /api/v1/batch/reinquiry reads it (formats/batch_csv.hpp).
#pragma once

#include "formats/batch_csv.hpp"
#include "usecases/batch.hpp"

#include <istream>
#include <string>

namespace kyotaku::server {

inline BatchAccepted upload_csv(BatchDesk& desk, Caller const& c, std::string const& category,
                                std::string const& query_date, std::string const& file_identifier, std::istream& csv) {
    CsvRows rows(csv);
    return desk.upload(c, {category, query_date, file_identifier, "csv",
                           [&rows](BatchRow& row) { return rows.next(row); }});
}

}  // namespace kyotaku::server
