// The audit journal of a SQLite database (`<file>-audit`, beside it): an append-only file of the audit lines of reads
// (Database::append) that a request has written but the database may not hold yet. A request writes its line here by
// one write() and is answered at once — as durable as SQLite's own commit of it would be (journal_mode=WAL,
// synchronous=NORMAL: a write() to the WAL, no fsync; it survives a crash of the process, not of the machine) — and a
// thread moves the lines into the database in large groups, recording in the same transaction the last line applied
// (audit_journal_applied). At start whatever the file holds past that mark is applied before anything is served.
//
// A record: its length (4 bytes, little-endian, of what follows the checksum), CRC-32 (zlib) of what follows it,
// then the line's sequence number (8 bytes), its statement (4-byte length, text) and parameters (4-byte count; each a
// type byte — 0 null, 1 integer of 8 bytes, 2 text of a 4-byte length). A record cut short or whose checksum is wrong
// (a write torn by a crash) ends the file: it and whatever follows are dropped, and said so on standard error.
#pragma once

#include "storage/database.hpp"

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace kyotaku::server {

// A SQLite database (as open_sqlite, database.hpp) whose audit lines of reads (Database::append into inquiry_log or
// viewing_log, outside a transaction) go through its journal, answered at once: `kyotaku serve` opens its database so.
// A statement that reads those tables first waits until every line written before it is applied. When another holds
// the journal (another process on the file), the lines are committed in groups as by open_sqlite. Any open of a file —
// this one or open_sqlite — first applies what a journal left beside it holds, when no other holds it.
std::unique_ptr<Database> open_sqlite_journaled(std::string const& path, std::size_t connections = 4);

struct JournalLine {
    std::uint64_t seq = 0;
    std::string sql;
    std::vector<Value> params;
};

class AuditJournal {
public:
    // The journal at `path`, with its lock (flock: one holder at a time — a second process on the same database, or a
    // second Database of this one, gets none and commits its lines as before). Null when another holds it, or when
    // the file does not exist and `create` is false. Created owner-only (0600). Throws DatabaseError when it cannot
    // be opened.
    static std::unique_ptr<AuditJournal> open(std::string const& path, bool create);
    ~AuditJournal();
    AuditJournal(AuditJournal const&) = delete;
    AuditJournal& operator=(AuditJournal const&) = delete;

    // Every whole record the file holds, in order. A torn or corrupt record and what follows it are cut off the file
    // (said on standard error, with how many bytes). Once, at open.
    std::vector<JournalLine> read_all();
    // Appends one line by one write() and returns its sequence number (the last one + 1). When the write fails (a
    // full disk) nothing of it stays in the file and it throws TransientDatabaseError. Not thread-safe: the caller
    // serialises.
    std::uint64_t write(std::string const& sql, std::vector<Value> const& params);
    void truncate();              // empties the file (every line is applied); the numbers go on
    void numbers_after(std::uint64_t seq) { last_ = seq; }  // the next line is seq + 1
    std::uint64_t last() const { return last_; }
    std::uint64_t size() const { return size_; }
    std::string const& path() const { return path_; }

    // Tests: how many of the next writes fail as on a full disk (ENOSPC) — of any journal of this process.
    static std::atomic<int> failing_writes;

private:
    AuditJournal(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
    std::string path_;
    int fd_;
    std::uint64_t size_ = 0, last_ = 0;
    std::string buffer_;  // the record being written (its capacity kept)
};

}  // namespace kyotaku::server
