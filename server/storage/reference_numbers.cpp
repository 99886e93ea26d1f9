#include "storage/reference_numbers.hpp"

namespace kyotaku::server {

std::optional<std::string> ReferenceNumbers::holder(std::string const& facility, std::string const& reference_number) {
    auto r = db_.query("SELECT person_key FROM reference_numbers WHERE facility_code = $1 AND reference_number = $2",
                       {facility, reference_number});
    if (r.empty()) return std::nullopt;
    return as_text(r[0][0]);
}

void ReferenceNumbers::add(std::string const& facility, std::string const& reference_number, std::string const& person,
                           std::string const& at) {
    db_.query("INSERT INTO reference_numbers (facility_code, reference_number, person_key, registered_at) VALUES ($1, "
              "$2, $3, $4)",
              {facility, reference_number, person, at});
}

std::vector<std::string> ReferenceNumbers::consenting_persons(std::string const& facility, std::string const& insurer,
                                                              std::string const& symbol, std::string const& number,
                                                              std::string const& branch) {
    std::vector<std::string> out;
    for (auto const& r :
         db_.query("SELECT DISTINCT p.person_key FROM insured_persons p JOIN consents c ON c.person_key = p.person_key "
                   "WHERE c.facility_code = $1 AND c.withdrawn_at IS NULL AND p.insurer_number = $2 AND p.symbol = $3 "
                   "AND p.number = $4 "
                   "AND p.branch = $5",
                   {facility, insurer, symbol, number, branch}))
        out.push_back(as_text(r[0]));
    return out;
}

}  // namespace kyotaku::server
