// SQLite's audit journal (storage/audit_journal.hpp): a request's 資格確認履歴 line written beside the database and
// answered at once, applied by a thread of its own; and the file read back at start as the hostile input it may be.
// One test for each finding of the review that had the first journal reverted (docs/performance.md, ninth session):
// forged records, a line the database refuses, the bound, damage in the middle of the file, the file emptied.
#include "ops/set_aside_journal.hpp"
#include "core/codes.hpp"
#include "storage/audit_journal.hpp"
#include "storage/database.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <iostream>
#include <iterator>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace kyotaku::server;

namespace {

struct TempDir {
    std::filesystem::path path;
    TempDir() {
        std::string pattern = (std::filesystem::temp_directory_path() / "kyotaku-journal-XXXXXX").string();
        if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
        path = pattern;
    }
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path, ignored);
    }
};

// A line's id (32 hex digits, as time_ordered_id writes them) named by a short word: its bytes as hex, then zeros.
std::string id_of(std::string const& name) {
    static char const hex[] = "0123456789abcdef";
    std::string out;
    for (unsigned char c : name.substr(0, 16)) out += {hex[c >> 4], hex[c & 15]};
    return out + std::string(32 - out.size(), '0');
}
std::vector<Value> line(std::string const& name) {
    return {id_of(name),     std::string("0110113719"),
            std::string("2026-12-07T12:00:00.000000Z"), std::string("再照会"),
            nullptr,         std::int64_t(1),
            std::string(R"({"allowed":true,"patient":{"reference_number":"R1"}})"), std::string("staff"),
            nullptr};
}
// A record's body of any values, unchecked (encode_journal_record refuses a line the replay would refuse): the
// journal's format (audit_journal.hpp), as a forger writes it.
std::string raw_body(std::vector<Value> const& values) {
    auto put = [](std::string& out, std::uint64_t v, int bytes) {
        for (int i = 0; i < bytes; ++i) out.push_back(char((v >> (8 * i)) & 0xff));
    };
    std::string out(1, '\1');
    for (Value const& v : values) {
        if (std::holds_alternative<std::nullptr_t>(v)) {
            out.push_back(0);
        } else if (auto const* n = std::get_if<std::int64_t>(&v)) {
            out.push_back(1);
            put(out, std::uint64_t(*n), 8);
        } else {
            std::string const& t = std::get<std::string>(v);
            out.push_back(2);
            put(out, t.size(), 4);
            out += t;
        }
    }
    return out;
}

// A request's line under a DeferredAppends: true when it was answered at once (no ticket to wait for); `ticket` gets
// the line's ticket otherwise.
bool answered_at_once(Database& db, std::string const& id, std::shared_ptr<AppendTicket>* ticket = nullptr) {
    DeferredAppends deferred;
    db.append(inquiry_log_insert, line(id));
    if (ticket && !deferred.tickets.empty()) *ticket = deferred.tickets.front();
    return deferred.tickets.empty();
}

std::int64_t lines_in(Database& db) { return as_int(db.query("SELECT COUNT(*) FROM inquiry_log")[0][0]); }
std::size_t has(Database& db, std::string const& name) {
    return db.query("SELECT 1 FROM inquiry_log WHERE id = $1", {id_of(name)}).size();
}

std::string bytes_of(std::filesystem::path const& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
void write_file(std::filesystem::path const& p, std::string const& bytes) {
    std::ofstream(p, std::ios::binary) << bytes;
}

// A record of the journal's framing (length, CRC-32) around any body: what a forger with a valid checksum writes.
std::string framed(std::string const& body) {
    auto put32 = [](std::string& out, std::uint32_t v) {
        for (int i = 0; i < 4; ++i) out.push_back(char((v >> (8 * i)) & 0xff));
    };
    std::string out;
    put32(out, std::uint32_t(body.size()));
    // CRC-32 (the polynomial zlib's crc32 uses; ARecordReadsBackAsWritten checks that they agree).
    std::uint32_t sum = 0xffffffffu;
    for (unsigned char c : body) {
        sum ^= c;
        for (int k = 0; k < 8; ++k) sum = (sum >> 1) ^ (0xedb88320u & (0u - (sum & 1u)));
    }
    put32(out, ~sum);
    return out + body;
}

struct Opened {
    std::unique_ptr<Database> db;
    Database::JournalOpened journal;
};
Opened open_journaled(std::filesystem::path const& file, Database::JournalLimits limits = {}) {
    Opened o;
    o.db = open_sqlite(file.string(), 2);
    migrate(*o.db);
    o.journal = o.db->open_audit_journal(limits);
    return o;
}

// A start that met one damaged stretch after the first `applied` bytes of the journal's `bytes`, between two whole
// lines: both applied (the one after the damage too), and the whole file set aside as it was, under the first damaged
// file's name.
void expect_set_aside_around_damage(Opened const& o, std::filesystem::path const& file, std::size_t applied,
                                    std::string const& bytes) {
    EXPECT_EQ(o.journal.replayed, 2u);
    EXPECT_EQ(o.journal.damaged, 1u);
    EXPECT_EQ(o.journal.damaged_at, applied);
    EXPECT_EQ(o.journal.set_aside, file.string() + "-audit.damaged-1");
    EXPECT_EQ(bytes_of(o.journal.set_aside), bytes);
}

// Another Sqlite holding the file's write lock (as another process would) until release() or the end.
struct WriteLock {
    std::unique_ptr<Database> holder;
    std::promise<void> locked, released;
    std::thread thread;
    explicit WriteLock(std::filesystem::path const& file) : holder(open_sqlite(file.string(), 1)) {
        thread = std::thread([this] {
            try {
                transaction(*holder, [&] {
                    holder->query("INSERT INTO viewing_log (id, facility_code, at, person_key, item, terminal, "
                                  "allowed, reason) VALUES ('holder', 'f', 'at', NULL, 'i', 't', 0, 'r')");
                    locked.set_value();
                    released.get_future().wait();
                    throw std::runtime_error("rolled back");
                });
            } catch (std::runtime_error const&) {}
        });
        locked.get_future().wait();
    }
    void release() {
        if (!thread.joinable()) return;
        released.set_value();
        thread.join();
    }
    ~WriteLock() { release(); }
};

}  // namespace

// The framing of the test's forger is the journal's own (a record it encodes reads back as written).
TEST(AuditJournal, ARecordReadsBackAsWritten) {
    std::string const record = encode_journal_record(line("a1"));
    std::vector<Value> back;
    ASSERT_TRUE(decode_journal_record(record.data() + 8, record.size() - 8, back));
    EXPECT_EQ(back, line("a1"));
    EXPECT_EQ(framed(record.substr(8)), record);
    EXPECT_THROW(encode_journal_record({std::string("only one column")}), std::invalid_argument);
    EXPECT_EQ(raw_body(line("a1")), record.substr(8));  // (the test's unchecked encoder is the journal's format)
}

// Review point 5: a request's line is answered at once and is in the journal (owner-only) while the database cannot
// take it; once applied, a history read sees it and the file is empty again: no second copy of personal data kept.
TEST(AuditJournal, LinesAreAnsweredAtOnceAndTheFileIsEmptiedOnceTheyAreApplied) {
    TempDir dir;
    auto const file = dir.path / "k.sqlite";
    auto o = open_journaled(file);
    ASSERT_TRUE(o.journal.open);
    EXPECT_EQ(o.journal.path, file.string() + "-audit");
    struct stat st {};
    ASSERT_EQ(::stat(o.journal.path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    {
        WriteLock lock(file);
        for (std::string id : {"a", "b", "c"}) EXPECT_TRUE(answered_at_once(*o.db, id)) << id;
        EXPECT_EQ(o.db->pool_stats().appends_pending, 3u);
        EXPECT_GT(std::filesystem::file_size(o.journal.path), 0u);
        EXPECT_NE(bytes_of(o.journal.path).find("0110113719"), std::string::npos);
    }
    EXPECT_EQ(lines_in(*o.db), 3);  // (a read of inquiry_log waits for the lines answered before it)
    EXPECT_EQ(o.db->pool_stats().appends_pending, 0u);
    EXPECT_EQ(std::filesystem::file_size(o.journal.path), 0u);
    // Outside a request (no DeferredAppends) a line is committed before append returns, as before.
    o.db->append(inquiry_log_insert, line("d"));
    EXPECT_EQ(has(*o.db, "d"), 1u);
}

// Review point 1: a record with a valid checksum that is not an inquiry_log line of the fixed form — a statement's
// text, another kind, a column of the wrong type, invalid UTF-8, bytes after the last column — is never run: the file
// is set aside, the tables are as they were, and the server starts with a new, empty journal.
TEST(AuditJournal, AForgedRecordIsNotRunButSetAside) {
    std::string const good = encode_journal_record(line("g")).substr(8);
    auto text_column = [](std::string const& s) {
        std::string out(1, '\2');
        for (int i = 0; i < 4; ++i) out.push_back(char((s.size() >> (8 * i)) & 0xff));
        return out + s;
    };
    std::string as_text_allowed(1, '\1');
    for (std::string s : {"g2", "0110113719", "2026-12-07T12:00:00Z", "個別照会"}) as_text_allowed += text_column(s);
    as_text_allowed += std::string(1, '\0') + text_column("1") + text_column("{}") + std::string(2, '\0');
    std::vector<std::string> const forged = {
        std::string(1, '\2') + text_column("CREATE TABLE forged (x); DROP TABLE inquiry_log"),  // another kind
        as_text_allowed,                                                                        // a column's type
        std::string(1, '\1') + text_column("CREATE TABLE forged (x)"),                          // cut short
        good + "extra",                                                                         // bytes after the line
        [&] {
            std::string b(1, '\1');
            b += text_column("g3") + text_column("\xff\xfe") + text_column("at") + text_column("k");
            return b + std::string(1, '\0') + std::string(1, '\1') + std::string(8, '\0') + text_column("{}") +
                   std::string(2, '\0');
        }(),  // invalid UTF-8
    };
    for (std::size_t i = 0; i < forged.size(); ++i) {
        SCOPED_TRACE(i);
        TempDir dir;
        auto const file = dir.path / "k.sqlite";
        {
            auto db = open_sqlite(file.string(), 2);
            migrate(*db);
        }
        std::string const bytes = framed(forged[i]);
        write_file(file.string() + "-audit", bytes);
        auto o = open_journaled(file);
        ASSERT_TRUE(o.journal.open);
        EXPECT_EQ(o.journal.replayed, 0u);
        EXPECT_EQ(o.journal.set_aside, file.string() + "-audit.damaged-1");
        EXPECT_EQ(o.journal.damaged_at, 0u);
        EXPECT_EQ(bytes_of(o.journal.set_aside), bytes);  // kept whole, for the operator
        EXPECT_EQ(std::filesystem::file_size(file.string() + "-audit"), 0u);
        EXPECT_EQ(lines_in(*o.db), 0);  // inquiry_log is still there
        EXPECT_TRUE(o.db->query("SELECT name FROM sqlite_master WHERE name = 'forged'").empty());
    }
}

// Review point 4: damage in the middle (a record whose checksum is wrong, between two whole ones): the records before
// and after it are applied (the reader goes on from the next whole record), the file is kept whole, set aside under
// a name of its own (a second damaged file gets the next name), and the start goes on with an empty journal.
TEST(AuditJournal, DamageInTheMiddleSetsTheFileAsideWithWhatFollows) {
    TempDir dir;
    auto const file = dir.path / "k.sqlite";
    {
        auto db = open_sqlite(file.string(), 2);
        migrate(*db);
    }
    std::string const first = encode_journal_record(line("first"));
    std::string damaged = encode_journal_record(line("second"));
    damaged[damaged.size() - 3] ^= 0x20;  // a byte of its last column: the checksum no longer matches
    std::string const third = encode_journal_record(line("third"));
    std::string const bytes = first + damaged + third;
    write_file(file.string() + "-audit", bytes);
    {
        auto o = open_journaled(file);
        ASSERT_TRUE(o.journal.open);
        expect_set_aside_around_damage(o, file, first.size(), bytes);
        EXPECT_EQ(has(*o.db, "first"), 1u);
        EXPECT_EQ(has(*o.db, "second"), 0u);
        EXPECT_EQ(has(*o.db, "third"), 1u);
        EXPECT_TRUE(answered_at_once(*o.db, "after"));  // the new journal takes lines
        EXPECT_EQ(has(*o.db, "after"), 1u);
    }
    write_file(file.string() + "-audit", std::string("\x05\x00\x00", 3));  // a torn header: damage too
    auto o = open_journaled(file);
    EXPECT_EQ(o.journal.set_aside, file.string() + "-audit.damaged-2");
    EXPECT_EQ(bytes_of(file.string() + "-audit.damaged-1"), bytes);  // the first one untouched
}

// A start applies the lines an earlier server left (a line the table holds already is not doubled) and empties the
// file; lines not applied when a server stops stay in the journal (counted apart from lines given up) for that start.
TEST(AuditJournal, LinesLeftAtAStopAreAppliedAtTheNextStartOnce) {
    TempDir dir;
    auto const file = dir.path / "k.sqlite";
    {
        auto o = open_journaled(file);
        EXPECT_TRUE(answered_at_once(*o.db, "applied"));
        EXPECT_EQ(has(*o.db, "applied"), 1u);
        WriteLock lock(file);
        EXPECT_TRUE(answered_at_once(*o.db, "left"));
        auto const left = o.db->finish_appends(std::chrono::steady_clock::now() + std::chrono::milliseconds(50));
        EXPECT_EQ(left.lines, 0u);  // no request left unanswered
        EXPECT_EQ(left.in_journal, 1u);
        lock.release();
        o.db.reset();
        // An earlier line again (its id in the table already): a replay twice changes nothing.
        std::ofstream(file.string() + "-audit", std::ios::binary | std::ios::app)
            << encode_journal_record(line("applied"));
    }
    auto o = open_journaled(file);
    EXPECT_EQ(o.journal.replayed, 2u);
    EXPECT_TRUE(o.journal.set_aside.empty());
    EXPECT_EQ(has(*o.db, "left"), 1u);
    EXPECT_EQ(lines_in(*o.db), 2);
    EXPECT_EQ(std::filesystem::file_size(o.journal.path), 0u);
}

// Review point 2: a line the database refuses when it is applied (here a trigger refuses every insert) is never
// dropped: it stays in the journal, a history read and every next disclosure are refused (TransientDatabaseError: 503)
// — nothing is answered without its line — and once the database takes it, it is applied and the file emptied.
TEST(AuditJournal, ALineTheDatabaseRefusesStopsDisclosuresUntilItIsApplied) {
    TempDir dir;
    auto const file = dir.path / "k.sqlite";
    Database::JournalLimits limits;
    limits.retry = std::chrono::milliseconds(10);
    auto o = open_journaled(file, limits);
    o.db->script("CREATE TRIGGER refuse BEFORE INSERT ON inquiry_log BEGIN SELECT RAISE(ABORT, 'refused'); END");
    EXPECT_TRUE(answered_at_once(*o.db, "refused"));
    EXPECT_THROW(lines_in(*o.db), TransientDatabaseError);  // (returns once the line is refused)
    EXPECT_THROW(answered_at_once(*o.db, "next"), TransientDatabaseError);
    EXPECT_EQ(o.db->pool_stats().appends_pending, 1u);
    EXPECT_GT(std::filesystem::file_size(o.journal.path), 0u);
    o.db->script("DROP TRIGGER refuse");
    auto const left = o.db->finish_appends(std::chrono::steady_clock::now() + std::chrono::seconds(60));
    EXPECT_EQ(left.in_journal, 0u);  // tried again, and taken
    EXPECT_EQ(has(*o.db, "refused"), 1u);
    EXPECT_EQ(has(*o.db, "next"), 0u);
    EXPECT_EQ(std::filesystem::file_size(o.journal.path), 0u);
}

// Review point 3: past the bound (here two lines written and not applied, while another holds the write lock) a line
// is not journaled but waits for its commit, as without the journal; all are in once the lock is released.
TEST(AuditJournal, PastTheBoundALineWaitsForItsCommit) {
    TempDir dir;
    auto const file = dir.path / "k.sqlite";
    Database::JournalLimits limits;
    limits.lines = 2;
    auto o = open_journaled(file, limits);
    std::shared_ptr<AppendTicket> ticket;
    {
        WriteLock lock(file);
        EXPECT_TRUE(answered_at_once(*o.db, "one"));
        EXPECT_TRUE(answered_at_once(*o.db, "two"));
        EXPECT_FALSE(answered_at_once(*o.db, "three", &ticket));
        ASSERT_NE(ticket, nullptr);
        EXPECT_FALSE(ticket->done());
        EXPECT_EQ(o.db->pool_stats().appends_pending, 3u);
    }
    ticket->wait();
    EXPECT_EQ(ticket->error(), nullptr);
    EXPECT_EQ(lines_in(*o.db), 3);
    // The file's size bounds it likewise.
    Database::JournalLimits small;
    small.bytes = 1;
    TempDir other;
    auto p = open_journaled(other.path / "k.sqlite", small);
    EXPECT_FALSE(answered_at_once(*p.db, "waits"));
    EXPECT_EQ(std::filesystem::file_size(p.journal.path), 0u);
}

// A record whose framing, checksum and column types are right but whose values are not what the database's writers
// write — detail_json not JSON (the history then answered 500 for every page holding it), nested 30,000 deep, not an
// object; `at`, kind, facility code or id of another form; allowed not 0 or 1; too long a text — is damage: never
// applied (the lines around it are), the file set aside whole, and the server starts with an empty journal. Nor is
// such a line ever journaled.
TEST(AuditJournal, ARecordOfForeignValuesIsDamageNotApplied) {
    auto with = [](std::size_t column, Value v) {
        auto l = line("forged");
        l[column] = std::move(v);
        return l;
    };
    std::vector<std::vector<Value>> const forged = {
        with(6, std::string("not json")),
        with(6, std::string(30000, '[') + std::string(30000, ']')),
        with(6, std::string(R"({"patient":{"a":{"b":1}}})")),  // deeper than any writer's
        with(6, std::string("[1]")),
        with(6, std::string(R"({"allowed":true)")),
        with(6, std::string(R"("a text")")),
        with(6, std::string("{}{}")),
        with(6, std::string()),
        with(2, std::string("2026-12-07T12:00:00Z")),
        with(2, std::string("not a time")),
        with(3, std::string("個別照会")),
        with(1, std::string("0110113710")),  // its check digit wrong
        with(1, std::string("A")),
        with(0, std::string("short")),
        with(0, std::string(32, 'G')),
        with(5, std::int64_t(2)),
        with(7, std::string(2000, 'x')),
    };
    for (std::size_t i = 0; i < forged.size(); ++i) {
        SCOPED_TRACE(i);
        EXPECT_FALSE(journal_line_valid(forged[i]));
        EXPECT_THROW(encode_journal_record(forged[i]), std::invalid_argument);
        std::string const body = raw_body(forged[i]);
        std::vector<Value> back;
        EXPECT_FALSE(decode_journal_record(body.data(), body.size(), back));
        TempDir dir;
        auto const file = dir.path / "k.sqlite";
        {
            auto db = open_sqlite(file.string(), 2);
            migrate(*db);
        }
        std::string const good = encode_journal_record(line("before"));
        std::string const bytes = good + framed(body) + encode_journal_record(line("after"));
        write_file(file.string() + "-audit", bytes);
        auto o = open_journaled(file);
        ASSERT_TRUE(o.journal.open);
        expect_set_aside_around_damage(o, file, good.size(), bytes);
        EXPECT_EQ(has(*o.db, "before"), 1u);
        EXPECT_EQ(has(*o.db, "forged"), 0u);
        EXPECT_EQ(has(*o.db, "after"), 1u);  // (the forged record's framing is whole: read on after it)
        EXPECT_EQ(lines_in(*o.db), 2);
    }
    EXPECT_TRUE(journal_line_valid(line("fine")));
}

// `<db>-audit` a symlink (to another file of the server's user), a FIFO, a folder or another user's file: refused
// with an error naming the path — the other file is neither chmod'ed nor written (personal data would have gone
// there) — and nothing replaced.
TEST(AuditJournal, AJournalPathThatIsNotARegularFileIsRefused) {
    TempDir dir;
    auto const file = dir.path / "k.sqlite";
    std::string const journal = file.string() + "-audit";
    auto const other = dir.path / "notes.txt";
    write_file(other, "public notes\n");
    std::filesystem::permissions(other, std::filesystem::perms(0644));
    auto refused = [&](char const* what) {
        SCOPED_TRACE(what);
        JournalReplay replay;
        try {
            AuditJournal::open(journal, [](std::vector<std::vector<Value>> const&) {}, replay);
            ADD_FAILURE() << "opened";
        } catch (DatabaseError const& e) {
            EXPECT_NE(std::string(e.what()).find(journal), std::string::npos) << e.what();
        }
        auto db = open_sqlite(file.string(), 2);
        migrate(*db);
        EXPECT_THROW(db->open_audit_journal({}), DatabaseError);
    };
    std::filesystem::create_symlink(other, journal);
    refused("a symlink to a file");
    EXPECT_EQ(bytes_of(other), "public notes\n");
    EXPECT_EQ(std::filesystem::status(other).permissions(), std::filesystem::perms(0644));
    EXPECT_TRUE(std::filesystem::is_symlink(journal));
    std::filesystem::remove(journal);
    std::filesystem::create_symlink(dir.path / "missing", journal);  // a dangling one: not created through it
    refused("a dangling symlink");
    EXPECT_FALSE(std::filesystem::exists(dir.path / "missing"));
    std::filesystem::remove(journal);
    ASSERT_EQ(::mkfifo(journal.c_str(), 0600), 0);
    refused("a FIFO");
    std::filesystem::remove(journal);
    std::filesystem::create_directory(journal);
    refused("a folder");
    std::filesystem::remove(journal);
    // Another user's file (only a test run as root can make one: chown).
    if (::geteuid() == 0) {
        write_file(journal, "");
        std::filesystem::permissions(journal, std::filesystem::perms(0644));
        ASSERT_EQ(::chown(journal.c_str(), 65534, 65534), 0);
        refused("another user's file");
        EXPECT_EQ(std::filesystem::status(journal).permissions(), std::filesystem::perms(0644));  // not chmod'ed
    }
}

namespace {

// A journal with damage of every kind between whole records: a flipped checksum byte, garbage inserted, a length
// that does not fit its record, a record cut short, and two whole records of forged values (a 医療機関等コード whose
// check digit is wrong, a detail deeper than any writer's). `stretches` gets what a reader past damage must find, in
// order: {offset, size, good, a word of why}.
struct Stretch {
    std::uint64_t offset, size;
    bool good;
    std::string why;
};
std::string damaged_journal(std::vector<Stretch>& stretches) {
    std::string bytes;
    auto add = [&](std::string const& part, bool good, std::string why = "") {
        stretches.push_back({bytes.size(), part.size(), good, std::move(why)});
        bytes += part;
    };
    auto forged = [](std::size_t column, std::string v) {
        auto l = line("forged" + std::to_string(column));
        l[column] = std::move(v);
        return framed(raw_body(l));
    };
    add(encode_journal_record(line("r1")), true);
    std::string flipped = encode_journal_record(line("r2"));
    flipped[5] ^= 0x01;  // a byte of its CRC-32
    add(flipped, false, "checksum");
    add(encode_journal_record(line("r3")), true);
    add(std::string(37, '\xff') + "inserted garbage", false, "length");
    add(encode_journal_record(line("r4")), true);
    std::string shortened = encode_journal_record(line("r5"));
    shortened[0] = char(static_cast<unsigned char>(shortened[0]) - 10);  // its length 10 bytes short
    add(shortened, false, "checksum");
    add(encode_journal_record(line("r6")), true);
    add(encode_journal_record(line("r7")).substr(0, 30), false, "checksum");  // a torn write, records after it
    add(encode_journal_record(line("r8")), true);
    add(forged(1, "0110113710"), false, "facility_code");
    add(forged(6, R"({"patient":{"a":{"b":1}}})"), false, "detail_json");
    add(encode_journal_record(line("r9")), true);
    return bytes;
}

std::vector<JournalRecord> read_all(std::filesystem::path const& path, bool resync) {
    int const fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw std::runtime_error("cannot open " + path.string());
    std::vector<JournalRecord> out;
    try {
        JournalReader reader(fd, path.string(), resync);
        for (JournalRecord r; reader.next(r);) out.push_back(r);
    } catch (...) {
        ::close(fd);
        throw;
    }
    ::close(fd);
    return out;
}

struct Ran {
    int status;
    std::string out, err;
};
Ran apply_file(std::filesystem::path const& file, std::filesystem::path const& db, bool remove = false) {
    std::ostringstream out, err;
    int const status = apply_set_aside_journal({file.string(), db.string(), remove}, out, err);
    return {status, out.str(), err.str()};
}
Ran check_file(std::filesystem::path const& file) {
    std::ostringstream out, err;
    int const status = check_set_aside_journal({file.string(), "", false}, out, err);
    return {status, out.str(), err.str()};
}
bool contains(std::string const& text, std::string const& part) { return text.find(part) != std::string::npos; }

}  // namespace

// Past damage a reader goes on from the next place where a whole record starts: each damaged stretch is reported
// once, from its first byte up to that record, with what is wrong there; a whole record of forged values is damage of
// its own size; every good record is read. Without resync (not asked for) it stops at the first damage.
TEST(AuditJournal, AReaderGoesOnPastDamageFromTheNextWholeRecord) {
    TempDir dir;
    std::vector<Stretch> expected;
    auto const path = dir.path / "j.damaged-1";
    write_file(path, damaged_journal(expected));
    auto const read = read_all(path, true);
    ASSERT_EQ(read.size(), expected.size());
    for (std::size_t i = 0; i < read.size(); ++i) {
        SCOPED_TRACE(i);
        EXPECT_EQ(read[i].offset, expected[i].offset);
        EXPECT_EQ(read[i].size, expected[i].size);
        EXPECT_EQ(read[i].good, expected[i].good) << read[i].why;
        EXPECT_TRUE(contains(read[i].why, expected[i].why)) << read[i].why;
        EXPECT_EQ(read[i].line.size(), expected[i].good ? 9u : 0u);
    }
    EXPECT_EQ(read[2].line, line("r3"));
    auto const stopped = read_all(path, false);
    ASSERT_EQ(stopped.size(), 2u);
    EXPECT_TRUE(stopped[0].good);
    EXPECT_FALSE(stopped[1].good);
    EXPECT_EQ(stopped[1].offset, expected[1].offset);
    EXPECT_EQ(stopped[1].offset + stopped[1].size, std::filesystem::file_size(path));  // the rest of the file
}

// A file of garbage (random bytes, and bytes whose every fourth position reads as a plausible length) is one damaged
// stretch from byte 0 to its end, and no good record: the search ends at the end of the file, in a bounded window.
TEST(AuditJournal, AFileOfGarbageIsOneDamagedStretchAndNoRecord) {
    TempDir dir;
    std::mt19937 random(26);
    std::string noise(4 << 20, '\0');
    for (char& c : noise) c = char(random() & 0xff);
    std::string lengths;
    while (lengths.size() < (1u << 20)) lengths += std::string("\x10\x00\x00\x00", 4);
    for (auto const& [name, bytes] : {std::pair{"noise", noise}, std::pair{"lengths", lengths}}) {
        SCOPED_TRACE(name);
        auto const path = dir.path / name;
        write_file(path, bytes);
        auto const read = read_all(path, true);
        ASSERT_EQ(read.size(), 1u);
        EXPECT_FALSE(read[0].good);
        EXPECT_EQ(read[0].offset, 0u);
        EXPECT_EQ(read[0].size, bytes.size());
        Ran const checked = check_file(path);
        EXPECT_EQ(checked.status, journal_exit::damaged);
        EXPECT_TRUE(contains(checked.out, "0 good record(s), 1 damaged (at byte 0)")) << checked.out;
    }
}

// A file larger than any journal the server writes: only its first JournalReader::largest_file bytes are read (here
// looked through for a record, zeros), the rest is one damaged stretch, not read. The file is sparse and 64 GiB: read
// whole, a byte at a time, it would take hours (the test's timeout), and a server's start with it as its journal
// would wait as long; a start sets it aside after its first 16 MiB.
TEST(AuditJournal, AFileLargerThanAnyJournalIsReadOnlyToTheLargestOne) {
    TempDir dir;
    auto const path = dir.path / "k.sqlite-audit";
    write_file(path, encode_journal_record(line("g1")));
    std::uint64_t const size = std::uint64_t(64) << 30;
    std::filesystem::resize_file(path, size);
    auto const read = read_all(path, true);
    ASSERT_EQ(read.size(), 3u);
    EXPECT_TRUE(read[0].good);
    EXPECT_FALSE(read[1].good);
    EXPECT_EQ(read[1].offset + read[1].size, JournalReader::largest_file);
    EXPECT_FALSE(read[2].good);
    EXPECT_EQ(read[2].offset, JournalReader::largest_file);
    EXPECT_EQ(read[2].size, size - JournalReader::largest_file);
    EXPECT_TRUE(contains(read[2].why, "not read")) << read[2].why;
    Ran const checked = check_file(path);
    EXPECT_EQ(checked.status, journal_exit::damaged);
    EXPECT_TRUE(contains(checked.out, "1 good record(s), 2 damaged")) << checked.out;

    auto const db = dir.path / "k.sqlite";
    auto server = open_journaled(db);
    ASSERT_TRUE(server.journal.open);
    EXPECT_EQ(server.journal.replayed, 1u);
    EXPECT_EQ(server.journal.damaged, 2u);
    EXPECT_EQ(has(*server.db, "g1"), 1u);
    EXPECT_TRUE(std::filesystem::exists(db.string() + "-audit.damaged-1"));
}

// `kyotaku audit-journal apply`: every good record of a set-aside file applied once (one the table held already
// counted apart), the damaged ones skipped and named by their offsets; a second run applies nothing; the file is kept
// while it holds damage even with --remove, and a file of good records only is removed when asked, not otherwise.
// It runs beside a server on the same database (its journal open, its thread applying).
TEST(AuditJournal, ASetAsideFileIsAppliedOnceWithItsDamageNamed) {
    TempDir dir;
    auto const file = dir.path / "k.sqlite";
    auto server = open_journaled(file);
    ASSERT_TRUE(server.journal.open);
    server.db->query(inquiry_log_replay, line("r1"));  // already in the table
    std::vector<Stretch> expected;
    auto const aside = dir.path / "k.sqlite-audit.damaged-1";
    write_file(aside, damaged_journal(expected));
    std::string offsets;
    for (auto const& s : expected)
        if (!s.good) offsets += (offsets.empty() ? "" : ", ") + std::to_string(s.offset);

    Ran const checked = check_file(aside);
    EXPECT_EQ(checked.status, journal_exit::damaged);
    EXPECT_TRUE(contains(checked.out, "6 good record(s), 6 damaged (at byte " + offsets + ")")) << checked.out;
    EXPECT_TRUE(contains(checked.out, "byte " + std::to_string(expected[1].offset) + ": damaged (")) << checked.out;
    EXPECT_TRUE(contains(checked.out, "byte 0: good: id " + id_of("r1") + ", facility 0110113719")) << checked.out;
    EXPECT_FALSE(contains(checked.out, "reference_number")) << "no detail printed";
    EXPECT_EQ(lines_in(*server.db), 1);  // check changes nothing

    Ran const first = apply_file(aside, file, true);
    EXPECT_EQ(first.status, journal_exit::damaged) << first.err;
    EXPECT_TRUE(contains(first.out, "applied 5, already present 1, skipped 6 damaged (at byte " + offsets + ")"))
        << first.out;
    EXPECT_TRUE(contains(first.out, "kept")) << first.out;
    EXPECT_TRUE(std::filesystem::exists(aside));
    EXPECT_EQ(lines_in(*server.db), 6);
    for (std::string id : {"r1", "r3", "r4", "r6", "r8", "r9"}) EXPECT_EQ(has(*server.db, id), 1u) << id;
    for (std::string id : {"r2", "r5", "r7", "forged1", "forged6"}) EXPECT_EQ(has(*server.db, id), 0u) << id;

    Ran const second = apply_file(aside, file);
    EXPECT_EQ(second.status, journal_exit::damaged);
    EXPECT_TRUE(contains(second.out, "applied 0, already present 6, skipped 6 damaged")) << second.out;
    EXPECT_EQ(lines_in(*server.db), 6);

    auto const clean = dir.path / "k.sqlite-audit.damaged-2";
    write_file(clean, encode_journal_record(line("c1")) + encode_journal_record(line("r9")));
    Ran const kept = apply_file(clean, file);
    EXPECT_EQ(kept.status, journal_exit::done) << kept.err;
    EXPECT_TRUE(contains(kept.out, "applied 1, already present 1, skipped 0 damaged")) << kept.out;
    EXPECT_TRUE(std::filesystem::exists(clean));  // not removed unless asked
    Ran const removed = apply_file(clean, file, true);
    EXPECT_EQ(removed.status, journal_exit::done) << removed.err;
    EXPECT_TRUE(contains(removed.out, "applied 0, already present 2")) << removed.out;
    EXPECT_FALSE(std::filesystem::exists(clean));
    EXPECT_EQ(lines_in(*server.db), 7);
    EXPECT_TRUE(answered_at_once(*server.db, "after"));  // the server's own journal goes on
    EXPECT_EQ(lines_in(*server.db), 8);
}

// The command never reads through a symlink, a FIFO or a folder, nor the journal a running server holds, nor creates
// a database: each refused (exit 2) naming the path, and the database as it was.
TEST(AuditJournal, TheCommandRefusesWhatIsNotASetAsideFile) {
    TempDir dir;
    auto const file = dir.path / "k.sqlite";
    auto server = open_journaled(file);
    ASSERT_TRUE(server.journal.open);
    auto const aside = dir.path / "k.sqlite-audit.damaged-1";
    write_file(aside, encode_journal_record(line("s1")));
    auto refused = [&](std::filesystem::path const& path, std::filesystem::path const& db, std::string const& why) {
        SCOPED_TRACE(path.string() + " " + why);
        Ran const applied = apply_file(path, db, true);
        EXPECT_EQ(applied.status, journal_exit::failed);
        EXPECT_TRUE(contains(applied.err, why)) << applied.err;
        EXPECT_TRUE(contains(applied.err, db.string() == file.string() ? path.string() : db.string())) << applied.err;
        EXPECT_EQ(lines_in(*server.db), 0);
    };
    auto const link = dir.path / "link";
    std::filesystem::create_symlink(aside, link);
    refused(link, file, "symbolic link");
    Ran const checked = check_file(link);
    EXPECT_EQ(checked.status, journal_exit::failed);
    EXPECT_TRUE(contains(checked.err, "symbolic link")) << checked.err;
    EXPECT_TRUE(std::filesystem::exists(aside));
    auto const fifo = dir.path / "fifo";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    refused(fifo, file, "not a regular file");
    refused(dir.path, file, "not a regular file");
    refused(file.string() + "-audit", file, "another process holds it");  // the server's own journal
    refused(aside, dir.path / "missing.sqlite", "no such database");
    EXPECT_FALSE(std::filesystem::exists(dir.path / "missing.sqlite"));
    if (::geteuid() == 0) {  // another user's database (only root can give a file away; CI runs as root)
        auto const others = dir.path / "others.sqlite";
        std::filesystem::copy_file(file, others);
        ASSERT_EQ(::chown(others.c_str(), 12345, ::getegid()), 0);
        refused(aside, others, "owned by user");
    }
    EXPECT_EQ(apply_file(aside, file).status, journal_exit::done);
    EXPECT_EQ(has(*server.db, "s1"), 1u);
}

// The check of detail_json without a parser (detail_plain) accepts nothing nlohmann's parser refuses, so that with the
// parser behind it the journal accepts exactly what the parser alone did: details as the desks write them, edge cases
// of JSON, and 300,000 texts made from a small grammar and mutated byte by byte (a fixed seed), every one valid UTF-8
// (journal_line_problem checks that before the detail).
TEST(AuditJournal, TheDetailsPlainFormIsASubsetOfWhatTheParserAccepts) {
    std::vector<std::string> texts{
        R"({"allowed":true,"by":"card","category":"訪問診療等","patient":{"birthdate":"1940-05-01","branch":"01"},)"
        R"("qualification_validity":1,"reason":"\"同意\" \\ \/ \b\f\n\r\t \u0000 \u001f \uFFFF \uABcd","row":-12})",
        "{}", R"({"a":{}})", R"({"a":{"b":{}}})", R"({"a":[]})", R"({"a":1.5})", R"({"a":1e5})", R"({"a":-0})",
        R"({"a":00})", R"({"a":-})", R"({"a":123456789012345678})", R"({"a":1234567890123456789})",
        R"({"a":99999999999999999999999})", R"({"a":1e400})", R"({"a":"\ud800"})", R"({"a":"\ud800\udc00"})",
        R"({"a":"\udc00"})", R"({"a":"\x"})", R"({"a":"\u12"})", R"({"a":"\u12g4"})", R"({"a":tru})", R"({"a":nul})",
        R"( {"a":1} )", "\xef\xbb\xbf{\"a\":1}", R"({"a":1,})", R"({,})", R"({"a"1})", R"({"a":1}{})", R"({"a":1})",
        R"([])", R"("a")", "1", "", "{", R"({"a":"b)", "{\"a\":\"\x7f\"}", "{\"a\":\"\x01\"}", "{\"a\":\"é\"}",
        R"({"a":{"b":1,"c":"d"},"e":null,"f":false})", R"({"a":{"b":[1]}})", R"({"a":{"b":{"c":1}}})"};
    std::mt19937 random(20261207);
    auto pick = [&](std::size_t n) { return std::size_t(random() % n); };
    std::vector<std::string> const atoms{R"("k")", R"("値")", R"("a\"b\\c\n\u00e9")", "0", "-7", "123456789012345678",
                                         "1.5", "1e3", "true", "false", "null", R"("\ud83d\ude00")", "[]", "[1,2]"};
    std::function<std::string(int)> make = [&](int depth) {
        std::string out = "{";
        std::size_t const n = pick(4);
        for (std::size_t i = 0; i < n; ++i) {
            if (i) out += ',';
            out += R"("key)" + std::to_string(pick(3)) + "\":";
            out += depth < 3 && pick(4) == 0 ? make(depth + 1) : atoms[pick(atoms.size())];
        }
        return out + "}";
    };
    std::string const bytes = "{}[]\":,\\/ u0123456789abcdefABCDEF-+.eEtrufalsn\t\n\x01\x7f";
    for (int i = 0; i < 300000; ++i) {
        std::string t = make(1);
        for (std::size_t m = pick(3); m > 0 && !t.empty(); --m) {
            std::size_t const at = pick(t.size());
            switch (pick(3)) {
                case 0: t.erase(at, 1); break;
                case 1: t.insert(at, 1, bytes[pick(bytes.size())]); break;
                default: t[at] = bytes[pick(bytes.size())];
            }
        }
        texts.push_back(std::move(t));
    }
    std::size_t plain = 0, parsed = 0, refused = 0;
    for (std::string const& t : texts) {
        if (!kyotaku::server::valid_utf8(t)) continue;
        bool const by_parser = detail_object_by_parser(t);
        if (detail_plain(t)) {
            ++plain;
            ASSERT_TRUE(by_parser) << "plain but refused by the parser: " << t;
        } else if (by_parser) {
            ++parsed;
        } else {
            ++refused;
        }
    }
    // Each of the three outcomes is met often (not a test of texts all refused, or all plain).
    EXPECT_GT(plain, 50000u);
    EXPECT_GT(parsed, 10000u);
    EXPECT_GT(refused, 50000u);
    // The detail the desks write is recognised without the parser.
    EXPECT_TRUE(detail_plain(texts[0]));
    std::cout << plain << " plain, " << parsed << " by the parser only, " << refused << " refused\n";
}
