#include "storage/faults.hpp"

#include <cctype>
#include <string_view>

namespace kyotaku::server {

WriteLedger& write_ledger() {
    thread_local WriteLedger ledger;
    return ledger;
}

namespace {
// Whether `word` (upper case) is in `sql` at `at` as a whole word, in any case.
bool word_at(std::string const& sql, std::size_t at, std::string_view word) {
    auto const letter = [](char ch) { return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_'; };
    if (at + word.size() > sql.size() || (at > 0 && letter(sql[at - 1]))) return false;
    for (std::size_t i = 0; i < word.size(); ++i)
        if (std::toupper(static_cast<unsigned char>(sql[at + i])) != word[i]) return false;
    return at + word.size() == sql.size() || !letter(sql[at + word.size()]);
}
}  // namespace

bool reads_only(std::string const& sql) {
    std::size_t at = 0;
    while (at < sql.size() && std::isspace(static_cast<unsigned char>(sql[at]))) ++at;
    if (sql.find(" FOR ") != std::string::npos) return false;  // FOR UPDATE, FOR NO KEY UPDATE, FOR SHARE: they lock
    if (word_at(sql, at, "SELECT")) return true;
    // A WITH whose parts only select (PersonRecords' statement): no part that writes (a data-modifying WITH), the
    // words looked for anywhere in the text, so that a doubt counts as a write.
    if (!word_at(sql, at, "WITH")) return false;
    for (std::size_t i = at; i < sql.size(); ++i)
        for (std::string_view const verb : {"INSERT", "UPDATE", "DELETE", "MERGE"})
            if (word_at(sql, i, verb)) return false;
    return true;
}

}  // namespace kyotaku::server
