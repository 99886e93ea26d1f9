#include "storage/audit_journal.hpp"

#include "core/codes.hpp"

#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string_view>

namespace kyotaku::server {

char const* const inquiry_log_insert =
    "INSERT INTO inquiry_log (id, facility_code, at, kind, person_key, allowed, detail_json, actor, reception_number) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
char const* const inquiry_log_replay =
    "INSERT INTO inquiry_log (id, facility_code, at, kind, person_key, allowed, detail_json, actor, reception_number) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING";

namespace {
constexpr std::size_t header = 8;  // length, checksum
constexpr unsigned char inquiry_line = 1;
constexpr std::size_t columns = 9;
// What each column may hold: a text, a text or null, an integer (inquiry_log's columns, in order).
enum class Column { text, text_or_null, integer };
constexpr Column column_types[columns] = {Column::text, Column::text,         Column::text,
                                          Column::text, Column::text_or_null, Column::integer,
                                          Column::text, Column::text_or_null, Column::text_or_null};
constexpr char const* column_names[columns] = {"id",          "facility_code", "at",
                                               "kind",        "person_key",    "allowed",
                                               "detail_json", "actor",         "reception_number"};

void put32(std::string& out, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) out.push_back(char((v >> (8 * i)) & 0xff));
}
void put64(std::string& out, std::uint64_t v) {
    for (int i = 0; i < 8; ++i) out.push_back(char((v >> (8 * i)) & 0xff));
}
std::uint64_t get(char const* p, int bytes) {
    std::uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v |= std::uint64_t(static_cast<unsigned char>(p[i])) << (8 * i);
    return v;
}
std::uint32_t crc(char const* p, std::size_t n) {
    return std::uint32_t(crc32(crc32(0L, Z_NULL, 0), reinterpret_cast<Bytef const*>(p), uInt(n)));
}
std::string system_error(std::string const& what, std::string const& path) {
    return what + " " + path + ": " + std::strerror(errno);
}

bool hex32(std::string_view s) {
    if (s.size() != 32) return false;
    for (char c : s)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}
// iso_timestamp's form (core/clock.cpp): YYYY-MM-DDTHH:MM:SS.uuuuuuZ.
bool timestamp(std::string_view s) {
    static constexpr std::string_view form = "dddd-dd-ddTdd:dd:dd.ddddddZ";
    if (s.size() != form.size()) return false;
    for (std::size_t i = 0; i < form.size(); ++i)
        if (form[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != form[i]) return false;
    return true;
}
// The kinds of 資格確認履歴 the desks write (usecases/: InquiryEntry's kind).
bool known_kind(std::string_view k) {
    for (std::string_view known :
         {"再照会", "再照会（OQSsiquc01req）", "一括再照会", "同意済資格情報一括取得", "資格確認（居宅同意取得型）",
          "資格確認（マイナポータル）", "資格確認（資格情報のお知らせ）", "同意取消照会", "同意取消"})
        if (k == known) return true;
    return false;
}
// A detail as the desks write it (formats/inquiry_detail.cpp, usecases/): a JSON object of at most two levels (the
// patient's fields). Read by nlohmann's SAX parser (its own stack, no tree built: this runs for every line written),
// which stops at the first value deeper than that.
class DetailShape : public nlohmann::json_sax<nlohmann::json> {
public:
    static constexpr int max_depth = 2;
    bool null() override { return value(); }
    bool boolean(bool) override { return value(); }
    bool number_integer(number_integer_t) override { return value(); }
    bool number_unsigned(number_unsigned_t) override { return value(); }
    bool number_float(number_float_t, string_t const&) override { return value(); }
    bool string(string_t&) override { return value(); }
    bool binary(binary_t&) override { return false; }
    bool start_object(std::size_t) override { return open(true); }
    bool key(string_t&) override { return true; }
    bool end_object() override { return --depth_, true; }
    bool start_array(std::size_t) override { return open(false); }
    bool end_array() override { return --depth_, true; }
    bool parse_error(std::size_t, std::string const&, nlohmann::detail::exception const&) override { return false; }
    bool object() const { return object_; }

private:
    bool value() { return depth_ > 0; }  // (a scalar alone is not an object)
    bool open(bool is_object) {
        if (depth_ == 0) {
            if (!is_object || object_) return false;  // the top: one object
            object_ = true;
        }
        return ++depth_ <= max_depth;
    }
    int depth_ = 0;
    bool object_ = false;
};
// A detail as the desks write it, recognised without a parser: an object of at most two levels without whitespace,
// whose values are strings (escapes \" \\ \/ \b \f \n \r \t, and \u of a code point outside U+D800-U+DFFF), integers
// of at most 18 digits, true, false and null. Every text it recognises nlohmann's parser accepts too (the text is
// valid UTF-8: journal_line_problem checks that first); a text it does not recognise goes to that parser
// (DetailShape), so that the two together accept exactly what the parser alone did. (The parser's SAX was 2.5 % of the
// server's CPU under re-inquiry: every line journaled is checked.)
class PlainDetail {
public:
    explicit PlainDetail(std::string_view text) : at_(text.data()), end_(text.data() + text.size()) {}
    bool whole() { return object(1) && at_ == end_; }

private:
    bool eat(char c) {
        if (at_ == end_ || *at_ != c) return false;
        ++at_;
        return true;
    }
    bool object(int depth) {
        if (!eat('{')) return false;
        if (eat('}')) return true;
        do {
            if (!string() || !eat(':') || !value(depth)) return false;
        } while (eat(','));
        return eat('}');
    }
    bool value(int depth) {
        if (at_ == end_) return false;
        switch (*at_) {
            case '"': return string();
            case '{': return depth < DetailShape::max_depth && object(depth + 1);
            case 't': return word("true");
            case 'f': return word("false");
            case 'n': return word("null");
            default: return integer();
        }
    }
    bool word(std::string_view w) {
        if (std::size_t(end_ - at_) < w.size() || std::string_view(at_, w.size()) != w) return false;
        at_ += w.size();
        return true;
    }
    bool integer() {
        eat('-');
        char const* const digits = at_;
        while (at_ != end_ && *at_ >= '0' && *at_ <= '9') ++at_;
        std::size_t const n = std::size_t(at_ - digits);
        return n >= 1 && n <= 18 && (n == 1 || *digits != '0');
    }
    bool string() {
        if (!eat('"')) return false;
        while (at_ != end_) {
            auto const c = static_cast<unsigned char>(*at_++);
            if (c == '"') return true;
            if (c < 0x20) return false;
            if (c != '\\') continue;
            if (at_ == end_) return false;
            char const e = *at_++;
            if (e == 'u') {
                unsigned cp = 0;
                for (int i = 0; i < 4; ++i, ++at_) {
                    if (at_ == end_) return false;
                    char const h = *at_;
                    unsigned const d = h >= '0' && h <= '9'   ? unsigned(h - '0')
                                       : h >= 'a' && h <= 'f' ? unsigned(h - 'a' + 10)
                                       : h >= 'A' && h <= 'F' ? unsigned(h - 'A' + 10)
                                                              : 16;
                    if (d == 16) return false;
                    cp = cp * 16 + d;
                }
                if (cp >= 0xD800 && cp <= 0xDFFF) return false;
            } else if (e != '"' && e != '\\' && e != '/' && e != 'b' && e != 'f' && e != 'n' && e != 'r' && e != 't') {
                return false;
            }
        }
        return false;
    }
    char const* at_;
    char const* const end_;
};
}  // namespace

bool detail_object_by_parser(std::string const& text) {
    DetailShape shape;
    return nlohmann::json::sax_parse(text, &shape) && shape.object();
}

bool detail_plain(std::string_view text) { return PlainDetail(text).whole(); }

namespace {
bool detail_object(std::string const& text) { return detail_plain(text) || detail_object_by_parser(text); }
constexpr std::size_t largest_short_text = 1024;  // every column but detail_json

// Reads exactly `n` bytes at `at`; false at the end of the file first.
bool read_at(int fd, std::string const& path, char* into, std::size_t n, std::uint64_t at) {
    std::size_t got = 0;
    while (got < n) {
        ssize_t const r = ::pread(fd, into + got, n - got, off_t(at + got));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) throw DatabaseError(system_error("cannot read the audit journal", path));
        if (r == 0) return false;
        got += std::size_t(r);
    }
    return true;
}
}  // namespace

std::string encode_journal_record(std::vector<Value> const& line) {
    // (A line the replay would refuse is not journaled: it is committed as before, never set aside with what follows.)
    if (!journal_line_valid(line)) throw std::invalid_argument("not an inquiry_log line of the journal's form");
    std::string out(header, '\0');
    out.push_back(char(inquiry_line));
    for (std::size_t i = 0; i < columns; ++i) {
        Value const& v = line[i];
        if (std::holds_alternative<std::nullptr_t>(v) && column_types[i] == Column::text_or_null) {
            out.push_back(0);
        } else if (auto const* n = std::get_if<std::int64_t>(&v); n && column_types[i] == Column::integer) {
            out.push_back(1);
            put64(out, std::uint64_t(*n));
        } else if (auto const* s = std::get_if<std::string>(&v); s && column_types[i] != Column::integer) {
            out.push_back(2);
            put32(out, std::uint32_t(s->size()));
            out += *s;
        } else {
            throw std::invalid_argument("not an inquiry_log line");
        }
        if (out.size() > header + AuditJournal::largest_record) throw std::invalid_argument("too long a line");
    }
    std::size_t const length = out.size() - header;
    std::string head;
    put32(head, std::uint32_t(length));
    put32(head, crc(out.data() + header, length));
    std::memcpy(out.data(), head.data(), header);
    return out;
}

namespace {
// Walks a record's body: its kind and the columns' types and lengths, nothing after the last one; builds the line
// when `line` is given (else only the walk: cheap, no copy). False with `why` (when given) when it is not of the form.
bool walk_record(char const* p, std::size_t n, std::vector<Value>* line, std::string* why) {
    auto fail = [&](std::string const& what) {
        if (why) *why = what;
        return false;
    };
    if (line) line->clear();
    std::size_t at = 0;
    auto need = [&](std::size_t bytes) { return n - at >= bytes; };
    if (!need(1) || static_cast<unsigned char>(p[at++]) != inquiry_line)
        return fail("not an inquiry_log line (its kind byte is not 1)");
    for (std::size_t i = 0; i < columns; ++i) {
        if (!need(1)) return fail(std::string("cut short before column ") + column_names[i]);
        unsigned char const type = static_cast<unsigned char>(p[at++]);
        if (type == 0 && column_types[i] == Column::text_or_null) {
            if (line) line->emplace_back(nullptr);
        } else if (type == 1 && column_types[i] == Column::integer) {
            if (!need(8)) return fail(std::string("column ") + column_names[i] + " cut short");
            if (line) line->emplace_back(std::int64_t(get(p + at, 8)));
            at += 8;
        } else if (type == 2 && column_types[i] != Column::integer) {
            if (!need(4)) return fail(std::string("column ") + column_names[i] + " cut short");
            std::size_t const len = std::size_t(get(p + at, 4));
            at += 4;
            if (!need(len)) return fail(std::string("column ") + column_names[i] + " cut short");
            if (line) line->emplace_back(std::string(p + at, len));
            at += len;
        } else {
            return fail(std::string("column ") + column_names[i] + ": type " + std::to_string(type) +
                        " is not the column's");
        }
    }
    if (at != n) return fail(std::to_string(n - at) + " byte(s) after the last column");
    return true;
}
}  // namespace

bool decode_journal_record(char const* p, std::size_t n, std::vector<Value>& line, std::string* why) {
    if (!walk_record(p, n, &line, why)) return false;
    std::string problem = journal_line_problem(line);
    if (problem.empty()) return true;
    if (why) *why = std::move(problem);
    return false;
}

bool journal_line_valid(std::vector<Value> const& line) { return journal_line_problem(line).empty(); }

std::string journal_line_problem(std::vector<Value> const& line) {
    if (line.size() != columns) return "not " + std::to_string(columns) + " columns";
    try {
        check_text_params(line);  // valid UTF-8 without NUL, as every text that reaches the database
    } catch (...) {
        return "a text is not valid UTF-8 without NUL";
    }
    for (std::size_t i = 0; i < columns; ++i) {
        bool const fits = std::holds_alternative<std::nullptr_t>(line[i]) ? column_types[i] == Column::text_or_null
                          : std::holds_alternative<std::int64_t>(line[i]) ? column_types[i] == Column::integer
                                                                           : column_types[i] != Column::integer;
        if (!fits) return std::string(column_names[i]) + " is not of the column's type";
        if (auto const* s = std::get_if<std::string>(&line[i]); s && i != 6 && s->size() > largest_short_text)
            return std::string(column_names[i]) + " is longer than 1 KiB";
    }
    std::int64_t const allowed = std::get<std::int64_t>(line[5]);
    if (!hex32(std::get<std::string>(line[0]))) return "id is not 32 lowercase hexadecimal digits";
    if (!valid_facility_code(std::get<std::string>(line[1])))
        return "facility_code is not a valid 医療機関等コード (its form or check digit)";
    if (!timestamp(std::get<std::string>(line[2]))) return "at is not a time of the form 2026-12-07T12:00:00.000000Z";
    if (!known_kind(std::get<std::string>(line[3]))) return "kind is not one the server writes";
    if (allowed != 0 && allowed != 1) return "allowed is not 0 or 1";
    if (!detail_object(std::get<std::string>(line[6])))
        return "detail_json is not a JSON object at most " + std::to_string(DetailShape::max_depth) + " levels deep";
    return {};
}

std::uint64_t const JournalReader::largest_file = audit_journal_most_bytes + header + AuditJournal::largest_record;

JournalReader::JournalReader(int fd, std::string path, bool resync) : fd_(fd), path_(std::move(path)), resync_(resync) {
    struct stat st {};
    if (::fstat(fd_, &st) != 0) throw DatabaseError(system_error("cannot read the status of", path_));
    size_ = std::uint64_t(st.st_size);
    end_ = std::min(size_, largest_file);
}

bool JournalReader::have(std::uint64_t at, std::size_t n) {
    if (at > end_ || end_ - at < n) return false;
    if (at >= base_ && at + n <= base_ + window_.size()) return true;
    // (two records' worth: each read moves the window on by at least one record's worth)
    std::uint64_t const most = 2 * (header + AuditJournal::largest_record);
    std::size_t const size = std::size_t(std::min<std::uint64_t>(most, end_ - at));
    window_.resize(size);
    base_ = at;
    if (!read_at(fd_, path_, window_.data(), size, at))
        throw DatabaseError("the audit journal " + path_ + " got shorter while it was read (byte " +
                            std::to_string(at) + ")");
    return true;
}

JournalReader::Frame JournalReader::frame(std::uint64_t at, std::uint64_t& length, std::vector<Value>& line,
                                          std::string* why) {
    // (the message is built only when it is asked for: looking for a record tries every byte of garbage)
    auto broken = [&](auto const& what) {
        if (why) *why = what();
        return Frame::broken;
    };
    if (!have(at, header))
        return broken([&] {
            return "cut short: " + std::to_string(end_ - at) + " byte(s) where a record's header takes " +
                   std::to_string(header);
        });
    length = get(window_.data() + (at - base_), 4);
    if (length == 0 || length > AuditJournal::largest_record)
        return broken([&] {
            return "its length " + std::to_string(length) + " is not 1 to " +
                   std::to_string(AuditJournal::largest_record) + " bytes";
        });
    if (!have(at, header + std::size_t(length)))
        return broken([&] {
            return "cut short: its length is " + std::to_string(length) + " bytes, " +
                   std::to_string(end_ - at - header) + " follow its header";
        });
    char const* const head = window_.data() + (at - base_);
    char const* const body = head + header;
    // (looking for a record: its form first, which costs little next to the checksum)
    if (!why && !walk_record(body, std::size_t(length), nullptr, nullptr)) return Frame::broken;
    if (crc(body, std::size_t(length)) != get(head + 4, 4))
        return broken([&] { return "its checksum (CRC-32) does not match its " + std::to_string(length) + " bytes"; });
    return decode_journal_record(body, std::size_t(length), line, why) ? Frame::good : Frame::bad_values;
}

bool JournalReader::next(JournalRecord& record) {
    record = JournalRecord{};
    if (!stopped_ && at_ >= end_ && size_ > end_) {
        // (a file can be sparse: a terabyte of it would take a day to look through)
        record.offset = end_;
        record.size = size_ - end_;
        record.why =
            "beyond the largest journal the server writes (" + std::to_string(largest_file) + " bytes): not read";
        stopped_ = true;
        return true;
    }
    if (stopped_ || at_ >= end_) return false;
    record.offset = at_;
    std::uint64_t length = 0;
    Frame const found = frame(at_, length, record.line, &record.why);
    if (found == Frame::good || (found == Frame::bad_values && resync_)) {
        record.good = found == Frame::good;
        record.size = header + length;
        if (!record.good) record.line.clear();
        at_ += record.size;
        return true;
    }
    record.line.clear();
    std::uint64_t next = end_;
    if (found == Frame::broken && resync_) {
        // The next whole record: good, or a frame of its own whose values are not of the form (reported so, next).
        std::vector<Value> candidate;
        for (std::uint64_t p = at_ + 1; end_ - p > header; ++p) {
            std::uint64_t candidate_length = 0;
            if (frame(p, candidate_length, candidate, nullptr) != Frame::broken) {
                next = p;
                break;
            }
        }
    } else {
        stopped_ = true;
    }
    record.size = next - at_;
    at_ = next;
    return true;
}

std::unique_ptr<AuditJournal> AuditJournal::open(
    std::string const& path, std::function<void(std::vector<std::vector<Value>> const&)> const& apply,
    JournalReplay& replay) {
    replay = {};
    auto open_locked = [&]() -> int {
        // Never through a symlink (O_NOFOLLOW: ELOOP), never a FIFO or device (O_NONBLOCK, then fstat), and only
        // a file of the server's own user: personal data is written here and the file is made owner-only.
        int const fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0600);
        if (fd < 0 && errno == ELOOP)
            throw DatabaseError("the audit journal " + path + " is a symbolic link: refused (remove it)");
        if (fd < 0) throw DatabaseError(system_error("cannot open the audit journal", path));
        struct stat st {};
        if (::fstat(fd, &st) != 0) {
            std::string const error = system_error("cannot read the audit journal's status", path);
            ::close(fd);
            throw DatabaseError(error);
        }
        if (!S_ISREG(st.st_mode) || st.st_uid != ::geteuid()) {
            ::close(fd);
            throw DatabaseError("the audit journal " + path +
                                (S_ISREG(st.st_mode) ? " is owned by another user" : " is not a regular file") +
                                ": refused (the server writes personal data there)");
        }
        if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {  // another process holds it
            ::close(fd);
            return -1;
        }
        if (st.st_mode & 077) ::fchmod(fd, st.st_mode & 0600);
        return fd;
    };
    int fd = open_locked();
    if (fd < 0) return nullptr;
    std::unique_ptr<AuditJournal> journal(new AuditJournal(path, fd));
    // Record by record (JournalReader: memory bounded), applied in groups; past damage, the whole records after it too
    // (nothing answered is left to an operator that can be read), and then the file is set aside whole.
    JournalReader reader(fd, path, true);
    std::vector<std::vector<Value>> group;
    std::uint64_t end = 0;
    bool damaged = false;
    for (JournalRecord record; reader.next(record);) {
        end = record.offset + record.size;
        if (!record.good) {
            if (!damaged) replay.damaged_at = record.offset;
            damaged = true;
            ++replay.damaged;
            continue;
        }
        group.push_back(std::move(record.line));
        if (group.size() == AuditJournal::lines_per_group) {
            apply(group);
            replay.lines += group.size();
            group.clear();
        }
    }
    if (!group.empty()) {
        apply(group);
        replay.lines += group.size();
    }
    if (!damaged) {
        journal->size_ = end;
        journal->truncate();
        if (journal->size_ != 0) throw DatabaseError(system_error("cannot empty the audit journal", path));
        return journal;
    }
    // Set aside whole, under a name not taken yet; then a new journal in its place.
    for (int n = 1;; ++n) {
        std::string const aside = path + ".damaged-" + std::to_string(n);
        struct stat st {};
        if (::lstat(aside.c_str(), &st) == 0) continue;
        if (::rename(path.c_str(), aside.c_str()) != 0)
            throw DatabaseError(system_error("cannot set the damaged audit journal aside:", path));
        replay.set_aside = aside;
        break;
    }
    journal.reset();  // (its descriptor and lock: the file set aside)
    fd = open_locked();
    if (fd < 0) return nullptr;
    journal.reset(new AuditJournal(path, fd));
    struct stat st {};
    if (::fstat(fd, &st) == 0) journal->size_ = std::uint64_t(st.st_size);
    if (journal->size_ != 0) throw DatabaseError("the new audit journal " + path + " is not empty");
    return journal;
}

AuditJournal::~AuditJournal() { ::close(fd_); }  // (the lock goes with it)

void AuditJournal::write(std::string const& record) {
    std::size_t done = 0;
    int error = 0;
    while (!error && done < record.size()) {
        ssize_t const n = ::pwrite(fd_, record.data() + done, record.size() - done, off_t(size_ + done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) error = n < 0 ? errno : ENOSPC;
        else done += std::size_t(n);
    }
    if (error) {
        // Nothing of it stays: a part would be damage at the next start.
        if (done && ::ftruncate(fd_, off_t(size_)) != 0)
            std::fprintf(stderr, "kyotaku: %s: cannot cut a failed write off the audit journal: %s\n", path_.c_str(),
                         std::strerror(errno));
        throw TransientDatabaseError("cannot write the audit journal " + path_ + ": " + std::strerror(error) +
                                     " (the request is not answered)");
    }
    size_ += record.size();
}

void AuditJournal::truncate() {
    if (size_ == 0) return;
    if (::ftruncate(fd_, 0) != 0) {
        std::fprintf(stderr, "kyotaku: %s: cannot empty the audit journal: %s\n", path_.c_str(), std::strerror(errno));
        return;  // (its lines are applied: a later replay leaves them as they are, by their ids)
    }
    size_ = 0;
}

}  // namespace kyotaku::server
