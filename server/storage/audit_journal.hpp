// The audit journal of a SQLite database (`<file>-audit`, beside it): the 資格確認履歴 lines (inquiry_log) of answered
// reads that the database may not hold yet. `kyotaku serve` writes a request's line here by one write() and answers at
// once — as durable as SQLite's own commit of it (journal_mode=WAL, synchronous=NORMAL: a write() to the WAL, no
// fsync; it survives a crash of the process, not of the machine) — and a thread applies the lines to the database in
// groups (Sqlite, sqlite.cpp). The file is emptied whenever every line written is applied, and read back at start.
//
// A record has fixed binary fields only, no statement: its body's length (4 bytes, little-endian) and CRC-32 (zlib, 4
// bytes), then the body: a kind byte (1: an inquiry_log line, the only kind) and the nine columns of that line in
// the table's order (id, facility_code, at, kind, person_key, allowed, detail_json, actor, reception_number), each a
// type byte (0 null, 1 integer of 8 bytes, 2 text of a 4-byte length and its bytes). A record is taken only when the
// columns have their types (allowed an integer; id, facility_code, at, kind and detail_json texts; the others texts or
// null), every text is valid UTF-8 without NUL, nothing follows the last column, and the values are of the forms the
// database's own writers give them (journal_line_valid); it is replayed through one fixed
// INSERT of inquiry_log (a line the table already holds, by its id, is not doubled). The file is input like any other:
// a record longer than 64 KiB, cut short, with a wrong checksum or not of this form is damage (see replay()).
#pragma once

#include "storage/database.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace kyotaku::server {

// The statement InquiryLog::append runs (storage/inquiry_log.cpp): the lines the journal takes.
extern char const* const inquiry_log_insert;
// The one statement a journal's line is applied with (inquiry_log_insert, a line already in the table left as it is).
extern char const* const inquiry_log_replay;

// A record of the line (its nine values, as inquiry_log_insert's parameters): header and body. Throws
// std::invalid_argument when the values are not of the form above (the caller then commits the line as before).
std::string encode_journal_record(std::vector<Value> const& line);
// Whether a line's values are of the forms its writers give them: id 32 lowercase hex digits (time_ordered_id), a
// valid 医療機関等コード, `at` as iso_timestamp writes it, a kind the desks write, allowed 0 or 1, detail_json a JSON
// object at most two levels deep (nlohmann's parser, the depth bounded whatever the text), the other texts at most
// 1 KiB; every text valid UTF-8 without NUL. Anything else in a journal is damage.
bool journal_line_valid(std::vector<Value> const& line);
// The line of a record's body; false when it is not of the form above (journal_line_valid included).
bool decode_journal_record(char const* body, std::size_t size, std::vector<Value>& line);

// What a start found in the journal (replay()).
struct JournalReplay {
    std::size_t lines = 0;         // whole records applied
    std::string set_aside;         // the damaged file's new name (empty: none)
    std::uint64_t damaged_at = 0;  // the byte at which the damage began
};

class AuditJournal {
public:
    static constexpr std::size_t largest_record = 64 * 1024;

    // The journal at `path`, created owner-only (0600; an existing one open to others is made so), with its lock
    // (flock): null when another process holds it (another server on the same file: it commits its lines as
    // before). What the file holds is first given to `apply`, in order, in groups of at most 256 lines (memory bounded
    // whatever the file's size); `apply` throws when the database cannot take them, and then so does open() (the
    // lines stay in the file: the server does not start without them). When the file holds a record that is not
    // whole and valid (a torn write, a damaged or forged record), the records before it are applied, the file is
    // renamed to `<path>.damaged-N` (the first N free) with what follows kept there, and a new empty journal is
    // opened: nothing is cut off silently, and the caller logs the name (`replay`). Throws DatabaseError, naming the
    // path, when `path` is a symlink, not a regular file or not of the server's user (refused: never written or
    // chmod'ed), or when a file cannot be opened, read or renamed.
    static std::unique_ptr<AuditJournal> open(std::string const& path,
                                              std::function<void(std::vector<std::vector<Value>> const&)> const& apply,
                                              JournalReplay& replay);
    ~AuditJournal();
    AuditJournal(AuditJournal const&) = delete;
    AuditJournal& operator=(AuditJournal const&) = delete;

    // Appends one record (encode_journal_record) by one write(). When it fails (a full disk) nothing of it stays in
    // the file and it throws TransientDatabaseError. Not thread-safe: the caller serialises.
    void write(std::string const& record);
    void truncate();  // empties the file (every line is applied)
    std::uint64_t size() const { return size_; }
    std::string const& path() const { return path_; }

private:
    AuditJournal(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
    std::string path_;
    int fd_;
    std::uint64_t size_ = 0;
};

}  // namespace kyotaku::server
