// medical_records: the test data's 薬剤情報等 of a person, by item (what 薬剤情報等の閲覧 shows when the rules allow).
#pragma once

#include "storage/database.hpp"

#include <string>
#include <vector>

namespace kyotaku::server {

struct MedicalRecordEntry {
    std::string recorded_on, content_json;  // the record's content as stored (a JSON object)
};

class MedicalRecords {
public:
    explicit MedicalRecords(Database& db) : db_(db) {}
    // The person's records of `item` recorded on or before `until` (ISO), oldest first.
    std::vector<MedicalRecordEntry> up_to(std::string const& person, std::string const& item, std::string const& until);
    // Adds a record (its id given) of the person's `item`.
    void add(std::string const& id, std::string const& person, std::string const& item,
             MedicalRecordEntry const& record);

private:
    Database& db_;
};

}  // namespace kyotaku::server
