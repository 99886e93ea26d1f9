#include "storage/faults.hpp"

#include <cctype>

namespace kyotaku::server {

WriteLedger& write_ledger() {
    thread_local WriteLedger ledger;
    return ledger;
}

bool reads_only(std::string const& sql) {
    std::size_t at = 0;
    while (at < sql.size() && std::isspace(static_cast<unsigned char>(sql[at]))) ++at;
    static constexpr char select[] = "SELECT";
    for (std::size_t i = 0; i + 1 < sizeof select; ++i)
        if (at + i >= sql.size() || std::toupper(static_cast<unsigned char>(sql[at + i])) != select[i]) return false;
    return sql.find(" FOR ") == std::string::npos;  // FOR UPDATE, FOR NO KEY UPDATE, FOR SHARE: they lock
}

}  // namespace kyotaku::server
