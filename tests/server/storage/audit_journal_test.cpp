// storage/audit_journal: SQLite's audit lines written to a journal beside the file and answered at once, applied in
// groups. Lines answered survive the process dying before their commit (a child killed with SIGKILL while another
// connection holds the database's write lock), a torn tail is dropped and said, a replay never duplicates, the history
// reads see every line answered, and a journal that cannot be written fails the request with nothing disclosed.
#include "../server_fixture.hpp"
#include "storage/audit_journal.hpp"

#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

struct JournalDir {
    std::filesystem::path path;
    JournalDir() {
        std::string pattern = (std::filesystem::temp_directory_path() / "kyotaku-journal-XXXXXX").string();
        if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
        path = pattern;
    }
    ~JournalDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path, ignored);
    }
    std::string db() const { return (path / "k.sqlite").string(); }
    std::string journal() const { return db() + "-audit"; }
};

std::string const insert = "INSERT INTO viewing_log (id, facility_code, at, person_key, item, terminal, allowed, "
                           "reason) VALUES ($1, 'f', 'at', NULL, 'i', 't', 0, 'r')";

// The rows of viewing_log read by SQLite itself (not through a Database, whose open would apply the journal).
std::int64_t rows_on_disk(std::string const& file) {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    sqlite3_stmt* stmt = nullptr;
    std::int64_t n = -1;
    if (sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM viewing_log", -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW)
        n = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return n;
}

std::int64_t rows(Database& db) { return as_int(db.query("SELECT COUNT(*) FROM viewing_log")[0][0]); }

// A process that migrates the database, then — while another connection of it holds the write lock, so that no line
// can be applied — appends `lines` audit lines (each answered: append returned) and is killed with SIGKILL.
void lines_of_a_killed_process(std::string const& file, int lines) {
    int ready[2];
    ASSERT_EQ(::pipe(ready), 0);
    pid_t const child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        ::close(ready[0]);
        try {
            auto db = open_sqlite_journaled(file, 2);
            migrate(*db);
            auto holder = open_sqlite(file, 1);  // (no journal: this process's first Database holds it)
            std::promise<void> locked;
            std::thread hold([&] {
                transaction(*holder, [&] {
                    holder->query(insert, {std::string("holder")});
                    locked.set_value();
                    for (;;) ::pause();  // until killed
                });
            });
            locked.get_future().wait();
            for (int i = 0; i < lines; ++i) db->append(insert, {"line-" + std::to_string(i)});
            char const done = 'y';
            if (::write(ready[1], &done, 1) != 1) ::_exit(2);
            for (;;) ::pause();
        } catch (...) {
            ::_exit(1);
        }
    }
    ::close(ready[1]);
    char done = 0;
    ASSERT_EQ(::read(ready[0], &done, 1), 1) << "the child appended its lines";
    ::close(ready[0]);
    ASSERT_EQ(::kill(child, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status));
}

}  // namespace

TEST(AuditJournal, LinesAnsweredAreInTheTablesAfterTheProcessDiedBeforeTheirCommit) {
    JournalDir dir;
    lines_of_a_killed_process(dir.db(), 5);
    EXPECT_EQ(rows_on_disk(dir.db()), 0) << "none was committed before the process died";
    EXPECT_GT(std::filesystem::file_size(dir.journal()), 0u);
    auto db = open_sqlite_journaled(dir.db(), 2);  // applies the journal before it returns
    EXPECT_EQ(rows(*db), 5);
    for (int i = 0; i < 5; ++i)
        EXPECT_EQ(db->query("SELECT 1 FROM viewing_log WHERE id = $1", {"line-" + std::to_string(i)}).size(), 1u);
    EXPECT_EQ(std::filesystem::file_size(dir.journal()), 0u) << "emptied once applied";
    db.reset();
    // A plain open (no journal asked for) applies a journal left behind too.
    JournalDir other;
    lines_of_a_killed_process(other.db(), 2);
    EXPECT_EQ(rows(*open_sqlite(other.db(), 1)), 2);
}

TEST(AuditJournal, ATornTailIsDroppedWithALogLineAndTheRestReplayed) {
    for (bool cut : {true, false}) {
        JournalDir dir;
        lines_of_a_killed_process(dir.db(), 3);
        auto const size = std::filesystem::file_size(dir.journal());
        if (cut) {
            std::filesystem::resize_file(dir.journal(), size - 5);  // the last record cut short
        } else {  // the last record's last byte changed: its checksum is wrong
            std::fstream f(dir.journal(), std::ios::in | std::ios::out | std::ios::binary);
            f.seekg(std::streamoff(size - 1));
            char c = 0;
            f.get(c);
            f.seekp(std::streamoff(size - 1));
            f.put(char(c ^ 0x5a));
        }
        testing::internal::CaptureStderr();
        auto db = open_sqlite_journaled(dir.db(), 2);
        std::string const said = testing::internal::GetCapturedStderr();
        EXPECT_NE(said.find("dropped a torn tail"), std::string::npos) << said;
        EXPECT_EQ(rows(*db), 2);
        EXPECT_EQ(db->query("SELECT 1 FROM viewing_log WHERE id = 'line-2'").size(), 0u);
        // The journal goes on after the whole records: a line written now is read back.
        db->append(insert, {std::string("after")});
        db.reset();
        EXPECT_EQ(rows(*open_sqlite(dir.db(), 1)), 3);
    }
}

TEST(AuditJournal, AReplayIsIdempotent) {
    JournalDir dir;
    lines_of_a_killed_process(dir.db(), 4);
    std::string kept;
    {
        std::ifstream in(dir.journal(), std::ios::binary);
        kept.assign(std::istreambuf_iterator<char>(in), {});
    }
    ASSERT_FALSE(kept.empty());
    EXPECT_EQ(rows(*open_sqlite_journaled(dir.db(), 2)), 4);
    // As if the server had died after the commit and before emptying the journal: the same lines again.
    std::ofstream(dir.journal(), std::ios::binary | std::ios::trunc) << kept;
    auto db = open_sqlite_journaled(dir.db(), 2);
    EXPECT_EQ(rows(*db), 4) << "replayed twice, nothing doubled";
    // The numbers go on past the mark: a new line is applied, not taken for one applied already.
    db->append(insert, {std::string("new")});
    EXPECT_EQ(rows(*db), 5);
    db.reset();
    EXPECT_EQ(rows(*open_sqlite(dir.db(), 1)), 5);
}

// Read-your-writes: while another connection holds the write lock, an append is answered at once (no ticket to wait
// for), and a read of the table waits until the line is applied; inside a transaction too.
TEST(AuditJournal, ReadsOfTheAuditTablesSeeEveryLineAnswered) {
    JournalDir dir;
    auto db = open_sqlite_journaled(dir.db(), 3);
    migrate(*db);
    auto holder = open_sqlite(dir.db(), 1);
    for (bool in_transaction : {false, true}) {
        std::promise<void> locked, release;
        std::thread hold([&] {
            try {
                transaction(*holder, [&] {
                    holder->query("SELECT 1 FROM schema_migrations");  // (BEGIN IMMEDIATE holds the write lock)
                    locked.set_value();
                    release.get_future().wait();
                    throw std::runtime_error("rolled back");
                });
            } catch (std::runtime_error const&) {
            }
        });
        locked.get_future().wait();
        std::int64_t const before = rows(*db);
        {
            DeferredAppends deferred;
            db->append(insert, {"seen-" + std::to_string(in_transaction)});
            EXPECT_TRUE(deferred.tickets.empty()) << "answered at once";
        }
        EXPECT_GE(db->pool_stats().appends_pending, 1u);
        auto read = std::async(std::launch::async, [&] {
            if (!in_transaction) return rows(*db);
            return transaction(*db, [&] { return rows(*db); });
        });
        EXPECT_NE(read.wait_for(std::chrono::milliseconds(0)), std::future_status::ready);
        release.set_value();
        hold.join();
        EXPECT_EQ(read.get(), before + 1);
    }
    EXPECT_EQ(rows(*db), 2);
    holder.reset();
    db.reset();
    EXPECT_EQ(rows_on_disk(dir.db()), 2);
}

// The server's routes on a SQLite file with the journal.
class JournalServer : public ServerFixture {
protected:
    void SetUp() override {
        db = open_sqlite_journaled(dir.db(), 4);
        migrate(*db);
        auto c = compile_directory(KYOTAKU_SOURCE_DIR "/rules");
        ASSERT_TRUE(c.ok()) << format_diagnostics(c.diagnostics);
        program = c.program;
        service = std::make_unique<Service>(*db, c.program, clock);
        admin.kind = Caller::Kind::admin;
        admin.subject = "kyotaku-admin";
        ASSERT_EQ(call(admin, "POST", "/api/v1/admin/facilities", R"({"code":"0110113719","name":"A","kind":"医科"})")
                      .status,
                  201);
        a = facility("0110113719");
    }
    void TearDown() override {
        AuditJournal::failing_writes = 0;
        service.reset();
        db.reset();  // (before dir goes)
    }
    std::size_t history() { return body(call(a, "GET", "/api/v1/history/inquiries"))["entries"].size(); }
    JournalDir dir;
};

TEST_F(JournalServer, EachReinquiryIsInTheHistoryAsSoonAsItIsAnswered) {
    enable(a);
    consent("0110113719", person());
    for (std::size_t i = 1; i <= 20; ++i) {
        ASSERT_EQ(call(a, "POST", "/api/v1/reinquiry", on("2024-07-31")).status, 200);
        EXPECT_EQ(history(), i);
    }
}

// No disclosure without an audit line: a journal that cannot be written (a full disk) fails the request with 503,
// the answer tells nothing of the patient, and nothing is in the history; written again, the next is answered.
TEST_F(JournalServer, AJournalWriteFailureFailsTheRequestWith503AndDisclosesNothing) {
    enable(a);
    consent("0110113719", person());
    AuditJournal::failing_writes = 1000;
    auto r = call(a, "POST", "/api/v1/reinquiry", on("2024-07-31"));
    EXPECT_EQ(r.status, 503) << r.body;
    EXPECT_EQ(r.body.find("burden_ratio"), std::string::npos) << r.body;
    EXPECT_EQ(r.body.find("4567"), std::string::npos) << r.body;
    AuditJournal::failing_writes = 0;
    EXPECT_EQ(history(), 0u);
    auto ok = call(a, "POST", "/api/v1/reinquiry", on("2024-07-31"));
    EXPECT_EQ(ok.status, 200) << ok.body;
    EXPECT_EQ(history(), 1u);
    service.reset();
    db.reset();  // (the journal emptied: every line applied)
    EXPECT_EQ(std::filesystem::file_size(dir.journal()), 0u);
}
