// `kyotaku audit-journal check|apply`: an audit journal a SQLite server set aside at start (`<db>-audit.damaged-N`,
// storage/audit_journal.hpp), read and applied by an operator. Its records are read as the server reads its own
// journal (JournalReader, past damage to the next whole record) and applied through the server's own path
// (Database::apply_journal_lines: one transaction per group, the one fixed statement, a line the table holds by its id
// left as it is), so running it twice, or while the server runs (SQLite's write lock; the server's history reads
// see the lines once committed), changes nothing more. The file is hostile input: never through a symlink, only a
// regular file, locked while read (flock: never the journal a running server holds), every damaged stretch named by
// its byte offset and what is wrong there; no PIN, person key or detail is printed (ids, codes, times and kinds only).
#pragma once

#include <iosfwd>
#include <string>

namespace kyotaku::server {

struct SetAsideJournalOptions {
    std::string file;     // the set-aside journal
    std::string db;       // apply: the SQLite database it belongs to (never created)
    bool remove = false;  // apply: remove the file once every record of it is in the database (none damaged)
};

// The exit status of `kyotaku audit-journal` (docs/operations.md).
namespace journal_exit {
inline constexpr int done = 0;     // every record whole and valid (apply: each one in the database now)
inline constexpr int damaged = 1;  // some damage (named); apply: every good record applied all the same
inline constexpr int failed = 2;   // the file or the database refused or unreadable (apply: what was applied stays)
}  // namespace journal_exit

// Prints each record (good, with its id, facility, time and kind; or damaged, with its bytes and why), then a count.
int check_set_aside_journal(SetAsideJournalOptions const& options, std::ostream& out, std::ostream& err);
// Applies every good record and prints how many were applied, already present, and skipped as damaged (their bytes).
int apply_set_aside_journal(SetAsideJournalOptions const& options, std::ostream& out, std::ostream& err);

}  // namespace kyotaku::server
