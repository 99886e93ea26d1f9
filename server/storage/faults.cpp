#include "storage/faults.hpp"

#include <cctype>
#include <string_view>

namespace kyotaku::server {

WriteLedger& write_ledger() {
    thread_local WriteLedger ledger;
    return ledger;
}

namespace {
// ASCII only (not the locale's toupper and isalnum: this runs on every statement, a WITH's text is long).
bool word_char(char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_';
}
// Whether `word` is `upper` (upper case) in any case.
bool is_word(std::string_view word, std::string_view upper) {
    if (word.size() != upper.size()) return false;
    for (std::size_t i = 0; i < word.size(); ++i)
        if ((word[i] >= 'a' && word[i] <= 'z' ? char(word[i] - 'a' + 'A') : word[i]) != upper[i]) return false;
    return true;
}

// A word that makes a statement write or lock: a writing verb (also in a data-modifying WITH), SELECT … INTO (creates
// a table), FOR UPDATE / NO KEY UPDATE / SHARE / KEY SHARE, and the functions a SELECT could write or lock with.
bool writing_word(std::string_view word) {
    static constexpr std::string_view verbs[] = {"INSERT", "UPDATE", "DELETE", "MERGE",
                                                 "INTO",   "FOR",    "NEXTVAL", "SETVAL"};
    for (auto const verb : verbs)
        if (is_word(word, verb)) return true;
    static constexpr std::string_view lockers[] = {"PG_ADVISORY", "PG_TRY_ADVISORY"};
    for (auto const prefix : lockers)
        if (word.size() > prefix.size() && is_word(word.substr(0, prefix.size()), prefix)) return true;
    return false;
}
}  // namespace

bool reads_only(std::string const& sql) {
    std::size_t at = 0;
    while (at < sql.size() && std::isspace(static_cast<unsigned char>(sql[at]))) ++at;
    // The text's words, in one pass: the first is SELECT or WITH, and no word anywhere writes or locks, and no second
    // statement follows a semicolon (PostgreSQL runs every statement of a text without parameters). The words are
    // looked for anywhere, string literals included, so that a doubt counts as a write: a write taken for a read would
    // be run again after a fault, a read taken for a write only costs a transaction of its own.
    for (std::size_t i = at; i < sql.size();) {
        if (sql[i] == ';') {
            std::size_t next = i + 1;
            while (next < sql.size() && std::isspace(static_cast<unsigned char>(sql[next]))) ++next;
            if (next < sql.size()) return false;
            break;
        }
        if (!word_char(sql[i])) {
            ++i;
            continue;
        }
        std::size_t end = i;
        while (end < sql.size() && word_char(sql[end])) ++end;
        std::string_view const word(sql.data() + i, end - i);
        if (i == at ? !is_word(word, "SELECT") && !is_word(word, "WITH") : writing_word(word)) return false;
        i = end;
    }
    return at < sql.size() && word_char(sql[at]);  // (an empty text is no read)
}

}  // namespace kyotaku::server
