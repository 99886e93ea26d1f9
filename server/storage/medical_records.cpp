#include "storage/medical_records.hpp"

namespace kyotaku::server {

std::vector<MedicalRecordEntry> MedicalRecords::up_to(std::string const& person, std::string const& item,
                                                      std::string const& until) {
    std::vector<MedicalRecordEntry> out;
    for (auto const& r : db_.query("SELECT recorded_on, content_json FROM medical_records WHERE person_key = $1 AND "
                                   "item = $2 AND recorded_on <= $3 "
                                   "ORDER BY recorded_on, id",
                                   {person, item, until}))
        out.push_back({as_text(r[0]), as_text(r[1])});
    return out;
}

void MedicalRecords::add(std::string const& id, std::string const& person, std::string const& item,
                         MedicalRecordEntry const& record) {
    db_.query(
        "INSERT INTO medical_records (id, person_key, item, recorded_on, content_json) VALUES ($1, $2, $3, $4, $5)",
        {id, person, item, record.recorded_on, record.content_json});
}

}  // namespace kyotaku::server
