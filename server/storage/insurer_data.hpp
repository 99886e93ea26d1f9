// insurer_data: what the real system gets from insurers and the review body, as the reference system's test data
// set-up stores it — the insured persons' eligibility periods (資格情報) and the claims reviewed
// (レセプト審査結果). The admin desk keeps it; what the decision reads is Records'.
#pragma once

#include "storage/database.hpp"
#include "storage/records.hpp"

#include <string>
#include <vector>

namespace kyotaku::server {

// A claim reviewed: the facility's claim for the person's month (YYYY-MM), reviewed on a day (ISO).
struct ClaimReview {
    std::string facility, person, month, reviewed_on;
};

class InsurerData {
public:
    explicit InsurerData(Database& db) : db_(db) {}

    // Whether the person has any eligibility period.
    bool has_person(std::string const& person);
    // Adds one eligibility period (its id given) of the person.
    void add_period(std::string const& id, std::string const& person, EligibilityRecord const& period);
    // Stores the reviews; a review of the same facility, person and month again replaces the day.
    void add_claim_reviews(std::vector<ClaimReview> const& reviews);

private:
    Database& db_;
};

}  // namespace kyotaku::server
