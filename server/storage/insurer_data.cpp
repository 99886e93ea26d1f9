#include "storage/insurer_data.hpp"

namespace kyotaku::server {

namespace {
Value text_or_null(std::optional<std::string> const& v) { return v ? Value(*v) : Value(nullptr); }
}  // namespace

bool InsurerData::has_person(std::string const& person) {
    return !db_.query("SELECT 1 FROM insured_persons WHERE person_key = $1", {person}).empty();
}

void InsurerData::add_period(std::string const& id, std::string const& person, EligibilityRecord const& p) {
    db_.query("INSERT INTO insured_persons (id, person_key, insurer_number, symbol, number, branch, birthdate, name, "
              "name_kana, burden_ratio, valid_from, valid_to, card_classification, personal_family, loss_reason) "
              "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
              {id, person, p.insurer, p.symbol, p.number, p.branch, p.birthdate, p.name, p.name_kana, p.burden_ratio,
               p.valid_from, text_or_null(p.valid_to), p.card_classification, p.personal_family,
               text_or_null(p.loss_reason)});
}

void InsurerData::add_claim_reviews(std::vector<ClaimReview> const& reviews) {
    for (auto const& r : reviews)
        db_.query("INSERT INTO claim_reviews (facility_code, person_key, month, reviewed_on) VALUES ($1, $2, $3, $4) "
                  "ON CONFLICT (facility_code, person_key, month) DO UPDATE SET reviewed_on = excluded.reviewed_on",
                  {r.facility, r.person, r.month, r.reviewed_on});
}

}  // namespace kyotaku::server
