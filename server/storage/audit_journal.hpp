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
// a record longer than 64 KiB, cut short, with a wrong checksum or not of this form is damage (see open()).
#pragma once

#include "storage/database.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace kyotaku::server {

// The statement InquiryLog::append runs (storage/inquiry_log.cpp): the lines the journal takes.
extern char const* const inquiry_log_insert;
// The one statement a journal's line is applied with (inquiry_log_insert, a line already in the table left as it is).
extern char const* const inquiry_log_replay;

// A record of the line (its nine values, as inquiry_log_insert's parameters): header and body. Throws
// std::invalid_argument when the values are not of the form above (the caller then commits the line as before).
std::string encode_journal_record(std::vector<Value> const& line);
// What is wrong with a line's values (empty: nothing), naming the column: see journal_line_valid.
std::string journal_line_problem(std::vector<Value> const& line);
// Whether a line's values are of the forms its writers give them: id 32 lowercase hex digits (time_ordered_id), a
// valid 医療機関等コード, `at` as iso_timestamp writes it, a kind the desks write, allowed 0 or 1, detail_json a JSON
// object at most two levels deep (nlohmann's parser, the depth bounded whatever the text), the other texts at most
// 1 KiB; every text valid UTF-8 without NUL. Anything else in a journal is damage.
bool journal_line_valid(std::vector<Value> const& line);
// The check of detail_json in two parts (exposed for their test): nlohmann's parser (whether it is an object at most
// two levels deep), and the plain form the desks write, recognised without a parser (a subset of what the parser
// accepts, for a text that is valid UTF-8); journal_line_valid takes a detail either accepts.
bool detail_object_by_parser(std::string const& text);
bool detail_plain(std::string_view text);
// The line of a record's body; false when it is not of the form above (journal_line_valid included), and then `why`
// (when given) says what is wrong, naming the column.
bool decode_journal_record(char const* body, std::size_t size, std::vector<Value>& line, std::string* why = nullptr);

// One stretch of a journal file as JournalReader reads it: a whole, valid record, or damage.
struct JournalRecord {
    std::uint64_t offset = 0;  // its first byte in the file
    std::uint64_t size = 0;    // its bytes (damage: up to where the reader goes on, or the end of the file)
    bool good = false;
    std::string why;           // damage: what is wrong at `offset`
    std::vector<Value> line;   // good: the line
};

// Reads a journal file from its start, record by record, through a window of 2 × (header + largest_record) bytes:
// memory bounded whatever the file holds, no recursion. A record whose framing is whole (its length 1..64 KiB, its
// bytes all there, its CRC-32 matching) but whose body is not a line of the form above is damage of its own size, and
// reading goes on after it. Where the framing itself is broken (a length out of range, a record cut short, a wrong
// checksum, garbage), without `resync` the reader stops there (the damage runs to the end of the file); with it, it
// looks at every following byte for the next place where a record with a valid length, a matching CRC-32 and values
// of the form above starts, and goes on from there (the damage runs up to it) — at most two reads of the file, plus a
// checksum over at most 64 KiB for each place whose first bytes have a record's form (rare in garbage; a crafted file
// can make that work up to about a thousand times its size, never more memory). Only the first `largest_file` bytes
// are read (the largest journal the server writes, and a record): the rest of a larger file is one stretch of damage,
// not read, so that a start never spends more than that file's worth of work on it, whatever the file's size.
class JournalReader {
public:
    // The largest journal, and one record more (its header and AuditJournal::largest_record).
    static std::uint64_t const largest_file;
    // `fd` stays the caller's; `path` names the file in errors.
    JournalReader(int fd, std::string path, bool resync);
    // The next stretch; false at the end of the file. Throws DatabaseError when the file cannot be read.
    bool next(JournalRecord& record);

private:
    enum class Frame { good, bad_values, broken };
    Frame frame(std::uint64_t at, std::uint64_t& length, std::vector<Value>& line, std::string* why);
    bool have(std::uint64_t at, std::size_t n);  // the bytes [at, at + n) in the window; false past the end
    int fd_;
    std::string path_;
    bool resync_;
    bool stopped_ = false;
    std::uint64_t at_ = 0, end_ = 0;  // end_: the file's size, at most largest_file
    std::uint64_t size_ = 0;          // the file's size
    std::uint64_t base_ = 0;  // the window: the file's bytes [base_, base_ + window_.size())
    std::string window_;
};

// What a start found in the journal (replay()).
struct JournalReplay {
    std::size_t lines = 0;         // whole records applied (those after damage included)
    std::string set_aside;         // the damaged file's new name (empty: none)
    std::uint64_t damaged_at = 0;  // the byte at which the first damage began
    std::size_t damaged = 0;       // stretches of damage (JournalReader's), not applied
};

class AuditJournal {
public:
    static constexpr std::size_t largest_record = 64 * 1024;
    static constexpr std::size_t lines_per_group = 256;  // applied at once (open()): memory bounded by it

    // The journal at `path`, created owner-only (0600; an existing one open to others is made so), with its lock
    // (flock): null when another process holds it (another server on the same file: it commits its lines as
    // before). What the file holds is first given to `apply`, in order, in groups of at most 256 lines (memory bounded
    // whatever the file's size); `apply` throws when the database cannot take them, and then so does open() (the
    // lines stay in the file: the server does not start without them). When the file holds a record that is not
    // whole and valid (a torn write, a damaged or forged record), every whole, valid record before and after it is
    // applied all the same (JournalReader with resync: what follows a damaged record is read from the next whole one),
    // the file is renamed to `<path>.damaged-N` (the first N free), kept whole, and a new empty journal is opened:
    // nothing is cut off silently, and the caller logs the name (`replay`; `kyotaku audit-journal` reads such a
    // file). Throws DatabaseError, naming the
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
