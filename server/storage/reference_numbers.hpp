// reference_numbers: a facility's 照会番号 of its patients (registered by the facility; read back by Records for the
// decision and the answers).
#pragma once

#include "storage/database.hpp"

#include <optional>
#include <string>
#include <vector>

namespace kyotaku::server {

class ReferenceNumbers {
public:
    explicit ReferenceNumbers(Database& db) : db_(db) {}
    // The person the facility's number names (nullopt when it names no one).
    std::optional<std::string> holder(std::string const& facility, std::string const& reference_number);
    void add(std::string const& facility, std::string const& reference_number, std::string const& person,
             std::string const& at);
    // The persons with an open consent of the facility whose card has these fields, birthdate aside (the 照会番号登録
    // file carries none). Canonical fields (core/codes.hpp).
    std::vector<std::string> consenting_persons(std::string const& facility, std::string const& insurer,
                                                std::string const& symbol, std::string const& number,
                                                std::string const& branch);

private:
    Database& db_;
};

}  // namespace kyotaku::server
