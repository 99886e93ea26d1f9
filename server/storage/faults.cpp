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
}  // namespace

bool reads_only(std::string const& sql) {
    if (sql.find(" FOR ") != std::string::npos) return false;  // FOR UPDATE, FOR NO KEY UPDATE, FOR SHARE: they lock
    std::size_t at = 0;
    while (at < sql.size() && std::isspace(static_cast<unsigned char>(sql[at]))) ++at;
    // The text's words, in one pass: the first is SELECT (a read), or WITH none of whose parts writes (PersonRecords'
    // statement: no part that writes, a data-modifying WITH; the verbs looked for anywhere in the text, so that a
    // doubt counts as a write).
    for (std::size_t i = at; i < sql.size();) {
        if (!word_char(sql[i])) {
            ++i;
            continue;
        }
        std::size_t end = i;
        while (end < sql.size() && word_char(sql[end])) ++end;
        std::string_view const word(sql.data() + i, end - i);
        if (i == at) {
            if (is_word(word, "SELECT")) return true;
            if (!is_word(word, "WITH")) return false;
        } else if (is_word(word, "INSERT") || is_word(word, "UPDATE") || is_word(word, "DELETE") ||
                   is_word(word, "MERGE")) {
            return false;
        }
        i = end;
    }
    return at < sql.size() && word_char(sql[at]);  // (a WITH that writes nothing; an empty text is no read)
}

}  // namespace kyotaku::server
