// The storage layer on its own, against each backend (server/storage): PersonRecords reads with one statement what
// DbRecords reads table by table, and SQLite's audit appends share commits without acknowledging any before its commit.
// Against SQLite (a file: the pool, the appender and the checkpointer are those of a file) and, when KYOTAKU_TEST_PG
// names a throwaway PostgreSQL (tests/server/with_postgres.sh), against it too.
#include "formats/batch_rows.hpp"
#include "storage/append_queue.hpp"
#include "storage/batch_jobs.hpp"
#include "storage/database.hpp"
#include "storage/faults.hpp"
#include "storage/records.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace kyotaku;
using namespace kyotaku::server;

namespace {

// A directory of its own under the system's temporary directory, removed at the end.
struct TempDir {
    std::filesystem::path path;
    TempDir() {
        std::string pattern = (std::filesystem::temp_directory_path() / "kyotaku-storage-XXXXXX").string();
        if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
        path = pattern;
    }
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path, ignored);
    }
};

// The backends under test: a SQLite file with a pool of 4 and, when one is given, PostgreSQL (its schema emptied).
std::vector<std::pair<std::string, std::unique_ptr<Database>>> databases(TempDir const& dir) {
    std::vector<std::pair<std::string, std::unique_ptr<Database>>> out;
    out.emplace_back("sqlite", open_sqlite((dir.path / "k.sqlite").string(), 4));
    if (char const* url = std::getenv("KYOTAKU_TEST_PG")) {
        auto db = open_postgres(url);
        db->script("DROP SCHEMA public CASCADE; CREATE SCHEMA public;");
        out.emplace_back("postgresql", std::move(db));
    }
    for (auto& [name, db] : out) migrate(*db);
    return out;
}

// Two facilities; a person with two insurance periods (one ended), consents at both facilities (open, withdrawn, one
// with an appointment taken at a preparatory visit), claim reviews and 照会番号; another person with nothing.
void seed(Database& db) {
    for (char const* code : {"0110113719", "1340100021"}) {
        db.query(
            "INSERT INTO facilities (code, name, kind, created_at) VALUES ($1, $2, '医科', '2024-04-01T00:00:00Z')",
            {std::string(code), std::string("施設") + code});
        db.query("INSERT INTO facility_settings (facility_code, terms_agreed, home_visit_enabled, online_enabled, "
                 "view_operation, view_diagnosis, "
                 "view_pharmacy, view_checkup, view_limit, updated_at) VALUES ($1, 1, 1, 0, 1, 0, 1, 0, 1, "
                 "'2024-04-02T00:00:00Z')",
                 {std::string(code)});
    }
    auto person = [&](char const* id, char const* key, char const* number, char const* from, Value to, Value loss) {
        db.query("INSERT INTO insured_persons (id, person_key, insurer_number, symbol, number, branch, birthdate, "
                 "name, name_kana, burden_ratio, "
                 "valid_from, valid_to, card_classification, personal_family, loss_reason) VALUES ($1, $2, '06132013', "
                 "'123', $3, '01', '1940-05-01', "
                 "'在宅 花子', 'ザイタク ハナコ', '010', $4, $5, '01', '1', $6)",
                 {std::string(id), std::string(key), std::string(number), std::string(from), to, loss});
    };
    person("e1", "P1", "4567", "2020-04-01", std::string("2024-03-31"), std::string("03"));
    person("e2", "P1", "4567", "2024-04-01", nullptr, nullptr);
    person("e3", "P2", "9999", "2020-04-01", nullptr, nullptr);
    auto consent = [&](char const* id, char const* facility, char const* first, Value appointment, Value withdrawn,
                       std::int64_t preparatory) {
        db.query("INSERT INTO consents (id, facility_code, person_key, visit_kind, first_visit, identity_method, "
                 "items, appointment_date, registered_at, "
                 "withdrawn_at, preparatory_visit) VALUES ($1, $2, 'P1', '訪問診療', $3, '暗証番号', "
                 "'薬剤情報,診療情報', $4, $3, $5, $6)",
                 {std::string(id), std::string(facility), std::string(first), appointment, withdrawn, preparatory});
    };
    consent("c1", "0110113719", "2024-04-15", nullptr, nullptr, 0);
    consent("c2", "0110113719", "2024-05-01", std::string("2024-05-20"), nullptr, 1);
    consent("c3", "0110113719", "2024-01-10", nullptr, std::string("2024-02-01T00:00:00Z"), 0);
    consent("c4", "1340100021", "2024-06-01", nullptr, nullptr, 0);
    for (char const* month : {"2024-05", "2024-06"})
        db.query("INSERT INTO claim_reviews (facility_code, person_key, month, reviewed_on) VALUES ('0110113719', "
                 "'P1', $1, '2024-07-01')",
                 {std::string(month)});
    db.query("INSERT INTO claim_reviews (facility_code, person_key, month, reviewed_on) VALUES ('1340100021', 'P1', "
             "'2024-07', '2024-08-01')");
    for (char const* ref : {"R-2", "R-1"})
        db.query("INSERT INTO reference_numbers (facility_code, reference_number, person_key, registered_at) VALUES "
                 "('0110113719', $1, 'P1', "
                 "'2024-04-20T00:00:00Z')",
                 {std::string(ref)});
}

// Everything a Records answers about one facility and the person a lookup names, as text to compare.
std::string describe(Records& r, std::string const& facility, std::optional<Card> const& card,
                     std::string const& reference) {
    std::string out;
    if (auto f = r.facility(facility))
        out += "facility " + f->code + " " + f->name + " " + f->kind + " " + std::to_string(f->settings.terms_agreed) +
               std::to_string(f->settings.home_visit_enabled) + std::to_string(f->settings.online_enabled) + " " +
               f->settings.updated_at + "\n";
    else
        out += "no facility\n";
    for (bool v : r.facility(facility) ? r.facility(facility)->settings.viewing : std::array<bool, 5>{})
        out += v ? '1' : '0';
    std::string const person = card ? r.person_by_card(*card) : r.person_by_reference(facility, reference);
    out += "\nperson " + person + "\n";
    if (person.empty()) return out;
    ConsentState const s = r.consents(facility, person);
    out += "withdrawn " + std::to_string(s.any_withdrawn) + "\n";
    for (auto const& c : s.open) {
        out += "consent " + c.id + " " + c.visit_kind + " " + c.first_visit + " " + c.identity_method + " " +
               c.registered_at + " " + c.appointment_date.value_or("-") + " " + std::to_string(c.preparatory_visit);
        for (auto const& item : c.items) out += " " + item;
        out += "\n";
    }
    std::vector<std::string> months;
    for (auto const& m : r.claim_months(facility, person))
        months.push_back(std::to_string(m.year()) + "-" + std::to_string(m.month()));
    std::sort(months.begin(), months.end());  // (a set: neither reader orders it)
    for (auto const& m : months) out += "claim " + m + "\n";
    for (auto const& e : r.eligibility(person))
        out += "eligibility " + e.insurer + " " + e.symbol + " " + e.number + " " + e.branch + " " + e.birthdate + " " +
               e.name + " " + e.name_kana + " " + e.burden_ratio + " " + e.valid_from + " " + e.valid_to.value_or("-") +
               " " + e.card_classification + " " + e.personal_family + " " + e.loss_reason.value_or("-") + "\n";
    for (auto const& n : r.reference_numbers(facility, person)) out += "reference " + n + "\n";
    return out;
}

}  // namespace

TEST(PersonRecords, ReadWithOneStatementWhatDbRecordsReadsTableByTable) {
    TempDir dir;
    for (auto& [backend, db] : databases(dir)) {
        SCOPED_TRACE(backend);
        seed(*db);
        Card const p1{"06132013", "123", "4567", "01", "1940-05-01"}, p2{"06132013", "123", "9999", "01", "1940-05-01"},
            nobody{"06132013", "123", "0000", "01", "1940-05-01"};
        struct Case {
            std::string facility;
            std::optional<Card> card;
            std::string reference;
        };
        std::vector<Case> const cases{{"0110113719", p1, ""},     {"1340100021", p1, ""}, {"0110113719", p2, ""},
                                      {"0110113719", nobody, ""}, {"0110113719", {}, "R-1"}, {"1340100021", {}, "R-1"},
                                      {"0110113719", {}, "R-9"},  {"9999999999", p1, ""}};
        for (auto const& c : cases) {
            SCOPED_TRACE(c.facility + " " + (c.card ? c.card->key() : c.reference));
            DbRecords tables(*db);
            write_ledger() = {};
            PersonRecords one(*db, c.facility, c.card, c.reference);
            // A read (reads_only): no transaction of its own, nothing in the ledger, so a fault lets it run again.
            EXPECT_TRUE(write_ledger().clean());
            std::string const expected = describe(tables, c.facility, c.card, c.reference);
            EXPECT_EQ(describe(one, c.facility, c.card, c.reference), expected);
            if (c.facility == "0110113719" && c.card && c.card->number == "4567") {  // the case with everything in it
                EXPECT_NE(expected.find(
                              "consent c2 訪問診療 2024-05-01 暗証番号 2024-05-01 2024-05-20 1 薬剤情報 診療情報"),
                          std::string::npos)
                    << expected;
                EXPECT_NE(expected.find("withdrawn 1"), std::string::npos);
                EXPECT_NE(expected.find("claim 2024-6"), std::string::npos);
                EXPECT_NE(expected.find("2024-03-31 01 1 03"), std::string::npos);
                EXPECT_LT(expected.find("reference R-1"), expected.find("reference R-2"));
            }
        }
    }
}

namespace {

// The cases every comparison below reads: by card and by 照会番号, at each facility, someone and no one.
struct PersonCase {
    std::string facility;
    std::optional<Card> card;
    std::string reference;
};
std::vector<PersonCase> person_cases() {
    Card const p1{"06132013", "123", "4567", "01", "1940-05-01"}, p2{"06132013", "123", "9999", "01", "1940-05-01"},
        p3{"06132013", "123", "3333", "01", "1940-05-01"}, nobody{"06132013", "123", "0000", "01", "1940-05-01"};
    return {{"0110113719", p1, ""},      {"1340100021", p1, ""},     {"0110113719", p2, ""},
            {"0110113719", p3, ""},      {"0110113719", nobody, ""}, {"0110113719", {}, "R-1"},
            {"1340100021", {}, "R-1"},   {"0110113719", {}, "R-2"},  {"0110113719", {}, "R-9"},
            {"1340100021", {}, "R-3"},   {"9999999999", p1, ""}};
}

// PersonRecords' own statement (PostgreSQL: person_lines) against its seven scans and DbRecords' one-table reads:
// each case's answers, or the first difference.
std::string lines_against_tables(Database& db) {
    for (auto const& c : person_cases()) {
        DbRecords tables(db);
        PersonRecords best(db, c.facility, c.card, c.reference);
        PersonRecords scans(db, c.facility, c.card, c.reference, PersonRecords::Statement::seven_scans);
        std::string const expected = describe(tables, c.facility, c.card, c.reference);
        std::string const by_best = describe(best, c.facility, c.card, c.reference);
        std::string const by_scans = describe(scans, c.facility, c.card, c.reference);
        std::string const which = c.facility + " " + (c.card ? c.card->key() : c.reference);
        if (by_best != expected) return which + ": PersonRecords\n" + by_best + "\nbut the tables\n" + expected;
        if (by_scans != expected) return which + ": seven scans\n" + by_scans + "\nbut the tables\n" + expected;
    }
    return "";
}

}  // namespace

// After every kind of write — a consent registered, withdrawn, moved and deleted; claim reviews inserted and
// upserted; insurance periods added, ended, moved and deleted; 照会番号 registered, moved and deleted; a facility's
// settings and name changed; a table emptied — PersonRecords reads what the tables hold (on PostgreSQL from
// person_lines, kept by migration 113's triggers; on SQLite by the seven scans it always uses).
TEST(PersonRecords, ReadWhatTheTablesHoldAfterEveryKindOfWrite) {
    TempDir dir;
    for (auto& [backend, db] : databases(dir)) {
        SCOPED_TRACE(backend);
        seed(*db);
        bool const pg = backend == "postgresql";
        std::vector<std::pair<char const*, std::string>> const writes{
            {"consent registered",
             "INSERT INTO consents (id, facility_code, person_key, visit_kind, first_visit, identity_method, items, "
             "registered_at, preparatory_visit) VALUES ('c9', '0110113719', 'P1', 'オンライン診療', '2024-08-01', "
             "'目視確認', '診療情報', '2024-08-01T09:00:00Z', 1)"},
            {"consent withdrawn", "UPDATE consents SET withdrawn_at = '2024-08-02T00:00:00Z', withdrawn_by = 'x' "
                                  "WHERE id = 'c1'"},
            {"consent edited",
             "UPDATE consents SET items = '手術情報', appointment_date = '2024-09-01' WHERE id = 'c2'"},
            {"consent moved to another person and facility",
             "UPDATE consents SET person_key = 'P2', facility_code = '1340100021' WHERE id = 'c9'"},
            {"consent given a new id", "UPDATE consents SET id = 'c10' WHERE id = 'c9'"},
            {"consent deleted", "DELETE FROM consents WHERE id = 'c3'"},
            {"claim review inserted", "INSERT INTO claim_reviews (facility_code, person_key, month, reviewed_on) "
                                      "VALUES ('0110113719', 'P1', '2024-07', '2024-08-01')"},
            {"claim review upserted",
             "INSERT INTO claim_reviews (facility_code, person_key, month, reviewed_on) VALUES ('0110113719', 'P1', "
             "'2024-07', '2024-08-09') ON CONFLICT (facility_code, person_key, month) DO UPDATE SET reviewed_on = "
             "excluded.reviewed_on"},
            {"claim review moved", "UPDATE claim_reviews SET month = '2024-04' WHERE month = '2024-05'"},
            {"claim review deleted", "DELETE FROM claim_reviews WHERE month = '2024-06'"},
            {"insurance period added",
             "INSERT INTO insured_persons (id, person_key, insurer_number, symbol, number, branch, birthdate, name, "
             "name_kana, burden_ratio, valid_from, card_classification, personal_family) VALUES ('e4', 'P3', "
             "'06132013', '123', '3333', '01', '1940-05-01', '訪問 太郎', 'ホウモン タロウ', '030', '2024-01-01', "
             "'01', '2')"},
            {"insurance period ended", "UPDATE insured_persons SET valid_to = '2024-09-30', loss_reason = '01' WHERE "
                                       "id = 'e2'"},
            {"insurance period moved to another person",
             "UPDATE insured_persons SET person_key = 'P1' WHERE id = 'e4'"},
            {"insurance period deleted", "DELETE FROM insured_persons WHERE id = 'e1'"},
            {"照会番号 registered", "INSERT INTO reference_numbers (facility_code, reference_number, person_key, "
                                    "registered_at) VALUES ('1340100021', 'R-3', 'P2', '2024-05-01T00:00:00Z')"},
            {"照会番号 moved", "UPDATE reference_numbers SET person_key = 'P1' WHERE reference_number = 'R-3'"},
            {"照会番号 deleted", "DELETE FROM reference_numbers WHERE reference_number = 'R-2'"},
            {"settings changed", "UPDATE facility_settings SET online_enabled = 1, view_pharmacy = 0, updated_at = "
                                 "'2024-09-01T00:00:00Z' WHERE facility_code = '0110113719'"},
            {"facility renamed", "UPDATE facilities SET name = '改名', kind = '歯科' WHERE code = '0110113719'"},
            {"settings deleted", "DELETE FROM facility_settings WHERE facility_code = '1340100021'"},
            {"claim reviews emptied", pg ? "TRUNCATE claim_reviews" : "DELETE FROM claim_reviews"},
            {"consents emptied", pg ? "TRUNCATE consents" : "DELETE FROM consents"},
        };
        EXPECT_EQ(lines_against_tables(*db), "") << "seeded";
        for (auto const& [what, sql] : writes) {
            db->query(sql);
            EXPECT_EQ(lines_against_tables(*db), "") << "after: " << what;
        }
        if (pg)  // one line per row of the tables it mirrors (facility_settings lost one row above)
            EXPECT_EQ(as_int(db->query("SELECT (SELECT COUNT(*) FROM person_lines) - (SELECT COUNT(*) FROM "
                                       "facilities) - (SELECT COUNT(*) FROM facility_settings) - (SELECT COUNT(*) "
                                       "FROM insured_persons) - (SELECT COUNT(*) FROM reference_numbers)")[0][0]),
                      0);
    }
}

// Migration 113 on a PostgreSQL database that held the rows before it: the lines of those rows are made, and the
// re-inquiry's reads answer as the tables do.
TEST(PersonRecords, PersonLinesAreMadeForTheRowsOfAnUpgradedDatabase) {
    char const* url = std::getenv("KYOTAKU_TEST_PG");
    if (!url) GTEST_SKIP() << "PostgreSQL only (KYOTAKU_TEST_PG unset)";
    auto db = open_postgres(url);
    db->script("DROP SCHEMA public CASCADE; CREATE SCHEMA public;");
    db->script("CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)");
    for (auto const& m : migrations()) {
        if (std::string(m.name) >= "113") continue;
        db->script(m.sql);
        db->query("INSERT INTO schema_migrations (name, applied_at) VALUES ($1, 'x')", {std::string(m.name)});
    }
    seed(*db);
    EXPECT_TRUE(db->query("SELECT 1 FROM information_schema.tables WHERE table_name = 'person_lines'").empty());
    std::vector<std::string> applied;
    migrate(*db, &applied);
    EXPECT_NE(std::find(applied.begin(), applied.end(), std::string("113_person_lines.postgresql.sql")),
              applied.end());
    EXPECT_EQ(as_int(db->query("SELECT COUNT(*) FROM person_lines")[0][0]), 2 + 2 + 3 + 4 + 3 + 2);
    EXPECT_EQ(lines_against_tables(*db), "");
}

// Writers on one person at once, each in transactions of its own (consents registered and withdrawn, claim reviews
// upserted on the same months, insurance periods ended and made again, 照会番号 moved between two persons), while
// readers compare, inside one snapshot, PersonRecords' statement with its seven scans: equal at every moment, and at
// the end equal to what the tables hold.
TEST(PersonRecords, ConcurrentWritersOnOnePersonLeaveNoStaleLine) {
    TempDir dir;
    for (auto& [backend, db] : databases(dir)) {
        SCOPED_TRACE(backend);
        seed(*db);
        bool const pg = backend == "postgresql";
        constexpr int writers = 6, rounds = 25;
        std::atomic<bool> writing{true};
        std::atomic<int> compared{0}, different{0}, failed{0};
        std::string first_difference;
        std::mutex difference_mutex;
        auto write = [&](int w) {
            for (int i = 0; i < rounds; ++i) {
                std::string const id = "w" + std::to_string(w) + "-" + std::to_string(i);
                std::string const month = "2025-0" + std::to_string(1 + i % 4);
                for (int attempt = 0;; ++attempt) {
                    try {
                        transaction(*db, [&] {
                            db->query("INSERT INTO consents (id, facility_code, person_key, visit_kind, first_visit, "
                                      "identity_method, items, registered_at) VALUES ($1, '0110113719', 'P1', "
                                      "'訪問診療', '2024-09-01', '暗証番号', '薬剤情報', $2)",
                                      {id, "2024-09-01T00:00:0" + std::to_string(w) + "Z"});
                            db->query("INSERT INTO claim_reviews (facility_code, person_key, month, reviewed_on) "
                                      "VALUES ('0110113719', 'P1', $1, $2) ON CONFLICT (facility_code, person_key, "
                                      "month) DO UPDATE SET reviewed_on = excluded.reviewed_on",
                                      {month, id});
                            if (i % 2)
                                db->query("UPDATE consents SET withdrawn_at = $2 WHERE id = $1",
                                          {"w" + std::to_string(w) + "-" + std::to_string(i - 1), id});
                            if (w == 0)
                                db->query("UPDATE insured_persons SET valid_to = $1 WHERE id = 'e2'",
                                          {i % 2 ? Value(std::string("2025-03-31")) : Value(nullptr)});
                            if (w == 1)
                                db->query("UPDATE reference_numbers SET person_key = $1 WHERE reference_number = "
                                          "'R-1'",
                                          {std::string(i % 2 ? "P2" : "P1")});
                            if (w == 2) {
                                db->query("DELETE FROM insured_persons WHERE id = 'e1'");
                                db->query("INSERT INTO insured_persons (id, person_key, insurer_number, symbol, "
                                          "number, branch, birthdate, name, name_kana, burden_ratio, valid_from, "
                                          "valid_to) VALUES ('e1', 'P1', '06132013', '123', '4567', '01', "
                                          "'1940-05-01', '在宅 花子', 'ザイタク ハナコ', '010', '2020-04-01', $1)",
                                          {"2024-03-" + std::to_string(10 + i)});
                            }
                        });
                        break;
                    } catch (TransientDatabaseError const&) {  // a deadlock between writers: done again
                        if (attempt == 20) throw;
                    }
                }
            }
        };
        auto read = [&] {  // (at least once, however late the thread starts)
            do {
                std::string difference;
                transaction(*db, [&] {
                    if (pg) db->query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ");
                    for (auto const& c : person_cases()) {
                        PersonRecords best(*db, c.facility, c.card, c.reference);
                        PersonRecords scans(*db, c.facility, c.card, c.reference,
                                            PersonRecords::Statement::seven_scans);
                        std::string const a = describe(best, c.facility, c.card, c.reference),
                                          b = describe(scans, c.facility, c.card, c.reference);
                        if (a != b && difference.empty()) difference = a + "\nbut the seven scans\n" + b;
                    }
                });
                ++compared;
                if (!difference.empty()) {
                    ++different;
                    std::lock_guard lock(difference_mutex);
                    if (first_difference.empty()) first_difference = difference;
                }
            } while (writing);
        };
        std::vector<std::thread> threads;
        std::vector<std::thread> readers;
        for (int r = 0; r < 2; ++r) readers.emplace_back([&] {
            try {
                read();
            } catch (std::exception const&) {
                ++failed;
            }
        });
        for (int w = 0; w < writers; ++w) threads.emplace_back([&, w] {
            try {
                write(w);
            } catch (std::exception const&) {
                ++failed;
            }
        });
        for (auto& t : threads) t.join();
        writing = false;
        for (auto& t : readers) t.join();
        EXPECT_EQ(failed.load(), 0);
        EXPECT_GT(compared.load(), 0);
        EXPECT_EQ(different.load(), 0) << first_difference;
        EXPECT_EQ(lines_against_tables(*db), "");
        EXPECT_EQ(as_int(db->query("SELECT COUNT(*) FROM consents WHERE id LIKE 'w%'")[0][0]), writers * rounds);
    }
}

// Many threads append at once on a SQLite file: every append is committed when it returns (another connection reads
// its row at once), none is lost or written twice, and an append that fails (a duplicate id) fails alone — its
// group's other appends are committed.
TEST(SqliteAppends, ShareCommitsAndReturnOnlyOnceCommitted) {
    TempDir dir;
    auto db = open_sqlite((dir.path / "k.sqlite").string(), 4);
    migrate(*db);
    db->query("INSERT INTO viewing_log (id, facility_code, at, person_key, item, terminal, allowed, reason) VALUES "
              "('taken', 'f', 'at', NULL, "
              "'i', 't', 0, 'r')");
    constexpr int threads = 8, each = 60;
    std::atomic<int> unseen{0}, failed{0}, wrong_failures{0};
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
        pool.emplace_back([&, t] {
            for (int i = 0; i < each; ++i) {
                std::string const id =
                    i % 20 == 7 ? std::string("taken") : "a" + std::to_string(t) + "-" + std::to_string(i);
                try {
                    db->append("INSERT INTO viewing_log (id, facility_code, at, person_key, item, terminal, allowed, "
                               "reason) VALUES ($1, 'f', 'at', NULL, "
                               "'i', 't', 0, 'r')",
                               {id});
                    if (id == "taken") ++wrong_failures;
                    if (db->query("SELECT 1 FROM viewing_log WHERE id = $1", {id}).empty()) ++unseen;
                } catch (DatabaseError const&) {
                    ++failed;
                    if (id != "taken") ++wrong_failures;
                }
            }
        });
    for (auto& t : pool) t.join();
    EXPECT_EQ(unseen.load(), 0);
    EXPECT_EQ(wrong_failures.load(), 0);
    int const duplicates = threads * (each / 20);
    EXPECT_EQ(failed.load(), duplicates);
    EXPECT_EQ(as_int(db->query("SELECT COUNT(*) FROM viewing_log")[0][0]), 1 + threads * each - duplicates);
    // Reopened (the WAL replayed or checkpointed), the same rows.
    db.reset();
    auto again = open_sqlite((dir.path / "k.sqlite").string(), 2);
    EXPECT_EQ(as_int(again->query("SELECT COUNT(*) FROM viewing_log")[0][0]), 1 + threads * each - duplicates);
}

// On each backend, a lone statement that writes is counted in the write ledger (it may be committed: a request that
// then meets a fault is not run again) and a lone read is not, however it is written: a WITH … SELECT (PersonRecords'
// form) is a read, a WITH … INSERT a write (SQLite asks the prepared statement, PostgreSQL reads_only).
TEST(WriteLedger, EachBackendCountsALoneWriteAndNotALoneRead) {
    TempDir dir;
    for (auto& [name, db] : databases(dir)) {
        SCOPED_TRACE(name);
        std::string const values = "($1, 'f', 'at', NULL, 'i', 't', 0, 'r')";
        std::string const columns = "viewing_log (id, facility_code, at, person_key, item, terminal, allowed, reason)";
        struct Case {
            std::string sql;
            std::vector<Value> params;
            bool writes;
        } const cases[] = {
            {"SELECT COUNT(*) FROM viewing_log", {}, false},
            {"WITH p AS (SELECT id FROM viewing_log) SELECT COUNT(*) FROM p", {}, false},
            {"INSERT INTO " + columns + " VALUES " + values, {std::string("ledger-1")}, true},
            {"WITH p AS (SELECT 1 AS one) INSERT INTO " + columns + " SELECT $1, 'f', 'at', NULL, 'i', 't', 0, 'r' "
             "FROM p",
             {std::string("ledger-2")}, true},
        };
        for (auto const& c : cases) {
            SCOPED_TRACE(c.sql);
            write_ledger() = {};
            db->query(c.sql, c.params);
            EXPECT_EQ(write_ledger().clean(), !c.writes);
        }
        EXPECT_EQ(as_int(db->query("SELECT COUNT(*) FROM viewing_log WHERE id LIKE 'ledger-%'")[0][0]), 2);
    }
}

// Under a DeferredAppends, an append on a SQLite file returns at once with its line's ticket: the line is readable
// once the ticket is done without error, and a failing line (a duplicate id) fails its own ticket only; outside a
// transaction only (inside one it is part of the transaction, as before), and never without a ticket.
TEST(SqliteAppends, DeferredAppendsAreCommittedWhenTheirTicketsAreDone) {
    TempDir dir;
    auto db = open_sqlite((dir.path / "k.sqlite").string(), 4);
    migrate(*db);
    std::string const insert = "INSERT INTO viewing_log (id, facility_code, at, person_key, item, terminal, allowed, "
                               "reason) VALUES ($1, 'f', 'at', NULL, 'i', 't', 0, 'r')";
    db->append(insert, {std::string("taken")});
    std::vector<std::shared_ptr<AppendTicket>> tickets;
    {
        DeferredAppends deferred;
        for (std::string id : {"d1", "taken", "d2", "d3"}) EXPECT_TRUE(db->append(insert, {id}).empty());
        transaction(*db, [&] { db->append(insert, {std::string("in-transaction")}); });  // committed with it
        EXPECT_EQ(DeferredAppends::current(), &deferred);
        tickets = std::move(deferred.tickets);
    }
    EXPECT_EQ(DeferredAppends::current(), nullptr);
    ASSERT_EQ(tickets.size(), 4u);
    for (std::size_t i = 0; i < tickets.size(); ++i) {  // told (by the thread that commits, or at once), or waited for
        if (i % 2 == 0) {
            std::promise<void> told;
            tickets[i]->when_done([&] { told.set_value(); });
            told.get_future().wait();
        } else {
            tickets[i]->wait();
        }
        EXPECT_EQ(tickets[i]->error() != nullptr, i == 1) << i;
    }
    for (char const* id : {"d1", "d2", "d3", "in-transaction"})
        EXPECT_EQ(db->query("SELECT 1 FROM viewing_log WHERE id = $1", {std::string(id)}).size(), 1u) << id;
    EXPECT_EQ(as_int(db->query("SELECT COUNT(*) FROM viewing_log")[0][0]), 5);
    // A ticket already done tells at once, on the caller's thread.
    bool told = false;
    tickets[0]->when_done([&] { told = true; });
    EXPECT_TRUE(told);
}

// Gathering (PostgreSQL's appender): a line queued while a request expected to append one is still being answered
// waits for that request's line, and both are committed as one group; a request that ends without a line lets the
// group go. The bound is an hour, so a group that went alone, or waited for a request that ended, fails the test (the
// second, by ctest's timeout) whatever the machine's speed.
TEST(AppendQueue, GathersTheLineOfARequestExpectedAndLetsGoWhenItEndsWithout) {
    std::mutex mutex;
    std::vector<std::size_t> groups;
    AppendQueue queue(
        [&](std::vector<std::shared_ptr<PendingAppend>> const& group) {
            std::lock_guard lock(mutex);
            groups.push_back(group.size());
        },
        std::chrono::hours(1));
    {
        DeferredAppends request;  // being answered: it read, and its line comes next
        queue.expect(request);
        auto const first = queue.push("INSERT INTO t VALUES ($1)", {std::string("a")});
        auto const second = queue.push("INSERT INTO t VALUES ($1)", {std::string("b")}, &request);
        first->ticket->wait();
        second->ticket->wait();
    }
    {
        auto ends_without = std::make_unique<DeferredAppends>();
        queue.expect(*ends_without);
        auto const line = queue.push("INSERT INTO t VALUES ($1)", {std::string("c")});
        ends_without.reset();
        line->ticket->wait();
    }
    std::lock_guard lock(mutex);
    EXPECT_EQ(groups, (std::vector<std::size_t>{2, 1}));
}

// Gathering's wakes (AppendQueue::push and ended wake the committing thread only when it can go on): many requests
// from many threads, each expected and then appending its line, appending a line of no request as well, appending
// none, or appending a line of no request and ending without its own, in a pseudo-random order. The gather is an
// hour, so a wake lost while the thread gathers (or waits for lines) leaves a group waiting: ctest's timeout fails the
// test whatever the machine's speed. Every line is committed once and its ticket done without an error.
TEST(AppendQueue, RequestsEndingInAnyOrderLoseNoWake) {
    std::mutex mutex;
    std::size_t committed = 0;
    AppendQueue queue(
        [&](std::vector<std::shared_ptr<PendingAppend>> const& group) {
            std::lock_guard lock(mutex);
            committed += group.size();
        },
        std::chrono::hours(1));
    constexpr int threads = 8, each = 1000;
    std::atomic<std::size_t> pushed{0};
    std::atomic<int> wrong{0};
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
        pool.emplace_back([&, t] {
            std::uint32_t seed = 2654435761u * std::uint32_t(t + 1);
            auto next = [&] { return (seed = seed * 1664525u + 1013904223u) >> 8; };
            std::string const insert = "INSERT INTO t VALUES ($1)";
            for (int i = 0; i < each; ++i) {
                std::vector<std::shared_ptr<PendingAppend>> lines;
                {
                    DeferredAppends request;
                    queue.expect(request);
                    if (next() % 4 == 0) std::this_thread::yield();
                    switch (next() % 4) {
                        case 0: lines.push_back(queue.push(insert, {std::int64_t(i)}, &request)); break;
                        case 1: lines.push_back(queue.push(insert, {std::int64_t(i)})); break;  // none of its own
                        case 2: break;                                                           // no line at all
                        default:
                            lines.push_back(queue.push(insert, {std::int64_t(i)}, &request));
                            lines.push_back(queue.push(insert, {std::int64_t(i)}));
                    }
                }  // (its end: expected no more)
                pushed += lines.size();
                for (auto const& line : lines) {
                    if (!line) {
                        ++wrong;
                        continue;
                    }
                    line->ticket->wait();
                    if (line->ticket->error()) ++wrong;
                }
            }
        });
    for (auto& t : pool) t.join();
    EXPECT_EQ(wrong.load(), 0);
    EXPECT_EQ(queue.pending(), 0u);
    std::lock_guard lock(mutex);
    EXPECT_EQ(committed, pushed.load());
}

// On each backend, deferred appends from many threads at once (requests answered together, so that their lines share
// groups): each ticket is done once its line is committed, a failing line (a duplicate id, twice per thread) fails its
// own ticket only, every other line is in, and finish_appends then finds nothing left.
TEST(DeferredAppends, EachBackendCommitsTheLinesOfManyRequestsAndFailsOnlyTheBadOnes) {
    TempDir dir;
    for (auto& [name, db] : databases(dir)) {
        SCOPED_TRACE(name);
        std::string const insert = "INSERT INTO viewing_log (id, facility_code, at, person_key, item, terminal, "
                                   "allowed, reason) VALUES ($1, 'f', 'at', NULL, 'i', 't', 0, 'r')";
        db->query(insert, {std::string("taken")});
        constexpr int threads = 8, each = 50;
        std::atomic<int> wrong{0}, failed{0};
        std::vector<std::thread> pool;
        for (int t = 0; t < threads; ++t)
            pool.emplace_back([&, t] {
                for (int i = 0; i < each; ++i) {
                    bool const bad = i % 25 == 7;
                    std::string const id = bad ? "taken" : "t" + std::to_string(t) + "-" + std::to_string(i);
                    std::shared_ptr<AppendTicket> ticket;
                    {
                        DeferredAppends deferred;
                        if (!db->append(insert, {id}).empty() || deferred.tickets.size() != 1) {
                            ++wrong;
                            continue;
                        }
                        ticket = deferred.tickets.front();
                    }
                    ticket->wait();
                    if (ticket->error()) ++failed;
                    if ((ticket->error() != nullptr) != bad) ++wrong;
                    if (!bad && db->query("SELECT 1 FROM viewing_log WHERE id = $1", {id}).size() != 1) ++wrong;
                }
            });
        for (auto& t : pool) t.join();
        EXPECT_EQ(wrong.load(), 0);
        EXPECT_EQ(failed.load(), threads * 2);
        EXPECT_EQ(as_int(db->query("SELECT COUNT(*) FROM viewing_log")[0][0]), 1 + threads * (each - 2));
        EXPECT_EQ(db->pool_stats().appends_pending, 0u);
        EXPECT_EQ(db->finish_appends(std::chrono::steady_clock::now()).lines, 0u);
    }
}

// On each backend, audit-like lines (one INSERT, every value a parameter, some NULL) of requests answered together
// from many threads, each request reading first (as a re-inquiry; PostgreSQL's appender then gathers their lines and
// sends a group's lines of one INSERT as one statement of their rows): every row holds its own line's values, NULL
// where its line's was, and a bad line (a duplicate id) fails its own ticket only.
TEST(DeferredAppends, LinesOfOneInsertKeepTheirOwnValuesAndFailAlone) {
    TempDir dir;
    for (auto& [name, db] : databases(dir)) {
        SCOPED_TRACE(name);
        std::string const insert = "INSERT INTO viewing_log (id, facility_code, at, person_key, item, terminal, "
                                   "allowed, reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
        auto line = [](std::string const& id, int i) -> std::vector<Value> {
            Value person = i % 3 == 0 ? Value(nullptr) : Value("p-" + id);
            return {id, "f-" + id, "at-" + id, person, "item-" + id, "t-" + id, std::int64_t(i % 2), "r-" + id};
        };
        db->query(insert, line("taken", 1));
        constexpr int threads = 8, each = 40;
        std::atomic<int> wrong{0};
        std::vector<std::thread> pool;
        for (int t = 0; t < threads; ++t)
            pool.emplace_back([&, t] {
                for (int i = 0; i < each; ++i) {
                    bool const bad = i % 20 == 9;
                    std::string const id = bad ? "taken" : "v" + std::to_string(t) + "-" + std::to_string(i);
                    std::shared_ptr<AppendTicket> ticket;
                    {
                        DeferredAppends deferred;
                        db->query("SELECT 1 FROM viewing_log WHERE id = $1", {id});
                        db->append(insert, line(id, i));
                        if (deferred.tickets.size() != 1) {
                            ++wrong;
                            continue;
                        }
                        ticket = deferred.tickets.front();
                    }
                    ticket->wait();
                    if ((ticket->error() != nullptr) != bad) ++wrong;
                }
            });
        for (auto& t : pool) t.join();
        EXPECT_EQ(wrong.load(), 0);
        int rows = 0;
        for (auto const& r : db->query("SELECT id, facility_code, at, person_key, item, terminal, allowed, reason "
                                       "FROM viewing_log WHERE id <> 'taken'")) {
            ++rows;
            std::string const id = as_text(r[0]);
            int const i = std::stoi(id.substr(id.find('-') + 1));
            auto const expected = line(id, i);
            for (std::size_t c = 1; c < expected.size(); ++c) {
                bool const same = std::holds_alternative<std::nullptr_t>(expected[c])
                                      ? std::holds_alternative<std::nullptr_t>(r[c])
                                      : !std::holds_alternative<std::nullptr_t>(r[c]) &&
                                            as_text(r[c]) == as_text(expected[c]);
                EXPECT_TRUE(same) << id << " column " << c;
            }
        }
        EXPECT_EQ(rows, threads * (each - 2));
        EXPECT_EQ(db->finish_appends(std::chrono::steady_clock::now()).lines, 0u);
    }
}

// PostgreSQL: the appender's session ended again and again (pg_terminate_backend, as a failover or a network reset
// does) while the lines of many requests are committed in groups (one INSERT of several rows): no ticket hangs, and
// every line whose ticket is done without an error is in the table — no answer goes out before its line is committed
// (a line whose commit was in doubt fails its request instead). With the in-doubt lines' errors dropped it fails.
TEST(DeferredAppends, PostgresLinesToldCommittedAreInTheTableThoughItsSessionIsEndedAgainAndAgain) {
    char const* url = std::getenv("KYOTAKU_TEST_PG");
    if (!url) GTEST_SKIP() << "KYOTAKU_TEST_PG is not set";
    TempDir dir;
    auto dbs = databases(dir);
    Database& db = *dbs.back().second;
    auto terminator = open_postgres(url);
    std::string const insert = "INSERT INTO viewing_log (id, facility_code, at, person_key, item, terminal, "
                               "allowed, reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
    std::atomic<bool> stop{false};
    std::thread ending([&] {
        while (!stop)  // (the appender's session: the one that last ran the INSERT)
            terminator->query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                              "AND datname = current_database() AND query LIKE 'INSERT INTO viewing_log%'");
    });
    constexpr int threads = 6, each = 200;
    std::mutex mutex;
    std::vector<std::string> told_committed;
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
        pool.emplace_back([&, t] {
            for (int i = 0; i < each; ++i) {
                std::string const id = "x" + std::to_string(t) + "-" + std::to_string(i);
                std::shared_ptr<AppendTicket> ticket;
                try {
                    DeferredAppends deferred;
                    db.query("SELECT 1 FROM viewing_log WHERE id = $1", {id});  // (expected: gathered)
                    db.append(insert, {id, "f", "at", nullptr, "item", "t", std::int64_t(1), "r"});
                    if (deferred.tickets.size() == 1) ticket = deferred.tickets.front();
                } catch (DatabaseError const&) {
                    continue;  // (the read met the ending too)
                }
                if (!ticket) continue;
                ticket->wait();
                if (ticket->error()) continue;
                std::lock_guard lock(mutex);
                told_committed.push_back(id);
            }
        });
    for (auto& t : pool) t.join();
    stop = true;
    ending.join();
    std::set<std::string> in_table;
    for (auto const& r : db.query("SELECT id FROM viewing_log")) in_table.insert(as_text(r[0]));
    std::size_t missing = 0;
    for (auto const& id : told_committed) missing += !in_table.count(id);
    EXPECT_EQ(missing, 0u) << "of " << told_committed.size() << " lines told committed";
    EXPECT_GT(told_committed.size(), 0u);
    EXPECT_EQ(db.finish_appends(std::chrono::steady_clock::now()).lines, 0u);
}

// PostgreSQL: a stopping server's finish_appends while the group in flight waits for a lock another session holds on
// the table (an operator's or another version's DDL): at its deadline the statement is cancelled, so it returns while
// the lock is still held (it waited for the lock before: the test then waits for ctest's timeout), the line given up
// (its ticket failed, counted by table) and not in the table once the lock is gone.
TEST(DeferredAppends, PostgresFinishAppendsCancelsAGroupThatWaitsForALockPastItsDeadline) {
    char const* url = std::getenv("KYOTAKU_TEST_PG");
    if (!url) GTEST_SKIP() << "KYOTAKU_TEST_PG is not set";
    TempDir dir;
    auto dbs = databases(dir);
    Database& db = *dbs.back().second;
    auto locker = open_postgres(url);
    auto watcher = open_postgres(url);
    std::promise<void> locked, release;
    std::thread holder([&] {
        locker->in_transaction([&] {
            locker->query("LOCK TABLE viewing_log IN ACCESS EXCLUSIVE MODE");
            locked.set_value();
            release.get_future().wait();
        });
    });
    locked.get_future().wait();
    std::shared_ptr<AppendTicket> ticket;
    {
        DeferredAppends deferred;
        db.append("INSERT INTO viewing_log (id, facility_code, at, person_key, item, terminal, allowed, reason) VALUES "
                  "($1, $2, $3, $4, $5, $6, $7, $8)",
                  {std::string("given-up"), "f", "at", nullptr, "item", "t", std::int64_t(1), "r"});
        ticket = deferred.tickets.at(0);
    }
    // The group is in flight: the appender's INSERT waits for the lock.
    while (as_int(watcher->query("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query "
                                 "LIKE 'INSERT INTO viewing_log%'")
                      .at(0)
                      .at(0)) == 0)
        std::this_thread::yield();
    auto const left = db.finish_appends(std::chrono::steady_clock::now());
    EXPECT_TRUE(ticket->done());
    EXPECT_NE(ticket->error(), nullptr);
    EXPECT_EQ(left.lines, 1u);
    EXPECT_EQ(left.tables, (std::map<std::string, std::size_t>{{"viewing_log", 1}}));
    release.set_value();
    holder.join();
    EXPECT_TRUE(db.query("SELECT 1 FROM viewing_log WHERE id = 'given-up'").empty());
}

// A stopping server's finish_appends: with another connection holding the file's write lock (as another process
// would), a deferred line waits (pending in pool_stats, its ticket not done); at the deadline it is given up, its
// ticket done with an error before finish_appends returns, counted by table, and not in the database. An append after
// it is committed on the caller's thread. With the lock free, finish_appends commits what is queued and gives up none.
TEST(SqliteAppends, FinishAppendsGivesUpLinesALockHoldsPastItsDeadline) {
    TempDir dir;
    std::string const file = (dir.path / "k.sqlite").string();
    std::string const insert = "INSERT INTO viewing_log (id, facility_code, at, person_key, item, terminal, allowed, "
                               "reason) VALUES ($1, 'f', 'at', NULL, 'i', 't', 0, 'r')";
    auto lines = [&](Database& db, std::string const& id) {
        return db.query("SELECT 1 FROM viewing_log WHERE id = $1", {id}).size();
    };
    auto defer = [&](Database& db, std::string const& id) {
        DeferredAppends deferred;
        db.append(insert, {id});
        return deferred.tickets.size() == 1 ? deferred.tickets.front() : nullptr;
    };
    auto db = open_sqlite(file, 2);
    migrate(*db);
    {
        auto holder = open_sqlite(file, 1);  // another Sqlite: its own writer lock, as another process's
        std::promise<void> locked, release;
        std::thread hold([&] {
            try {
                transaction(*holder, [&] {
                    holder->query(insert, {std::string("holder")});
                    locked.set_value();
                    release.get_future().wait();
                    throw std::runtime_error("rolled back");
                });
            } catch (std::runtime_error const&) {
            }
        });
        locked.get_future().wait();
        auto const ticket = defer(*db, "held");
        ASSERT_NE(ticket, nullptr);
        EXPECT_EQ(db->pool_stats().appends_pending, 1u);
        std::atomic<bool> told = false;
        ticket->when_done([&] { told = true; });
        EXPECT_FALSE(told);
        auto const left = db->finish_appends(std::chrono::steady_clock::now() + std::chrono::milliseconds(100));
        EXPECT_TRUE(told);  // before finish_appends returned
        EXPECT_NE(ticket->error(), nullptr);
        EXPECT_EQ(left.lines, 1u);
        EXPECT_EQ(left.tables, (std::map<std::string, std::size_t>{{"viewing_log", 1}}));
        EXPECT_FALSE(left.error.empty());
        EXPECT_EQ(db->pool_stats().appends_pending, 0u);
        release.set_value();
        hold.join();
    }
    EXPECT_EQ(lines(*db, "held"), 0u);
    EXPECT_EQ(defer(*db, "after"), nullptr);  // committed at once, on this thread
    EXPECT_EQ(lines(*db, "after"), 1u);
    EXPECT_EQ(db->finish_appends(std::chrono::steady_clock::now()).lines, 1u);  // (once: the same answer)
    // The lock free: what is queued is committed, none given up.
    auto other = open_sqlite((dir.path / "other.sqlite").string(), 2);
    migrate(*other);
    std::vector<std::shared_ptr<AppendTicket>> tickets;
    for (std::string id : {"a", "b", "c"}) tickets.push_back(defer(*other, id));
    EXPECT_EQ(other->finish_appends(std::chrono::steady_clock::now() + std::chrono::seconds(60)).lines, 0u);
    for (auto const& t : tickets) {
        ASSERT_NE(t, nullptr);
        bool done = false;
        t->when_done([&] { done = true; });  // (at once: done already)
        EXPECT_TRUE(done);
        EXPECT_EQ(t->error(), nullptr);
    }
    for (std::string id : {"a", "b", "c"}) EXPECT_EQ(lines(*other, id), 1u) << id;
}

// Rows inserted many at a time (SQLite: multi-row INSERTs of 266 rows for these 3 columns, the rest by INSERTs of a
// power of two rows — 1,234 leaves 170 = 128 + 32 + 8 + 2, 1,000 leaves 202 —; PostgreSQL: COPY) come back as given,
// texts with the characters COPY escapes included, and a failing row rolls back the whole insert.
TEST(InsertRows, ManyRowsComeBackAsGivenAndAFailureInsertsNone) {
    TempDir dir;
    for (auto& [backend, db] : databases(dir)) {
        SCOPED_TRACE(backend);
        db->query("INSERT INTO facilities (code, name, kind, created_at) VALUES ('0110113719', 'x', '医科', 'now')");
        db->query("INSERT INTO batch_jobs (reception_number, facility_code, category, query_date, file_identifier, "
                  "format, total, done, created_at) "
                  "VALUES ('R', '0110113719', '訪問診療等', '2024-07-31', '', 'csv', 0, 0, 'now')");
        std::int64_t const rows = 1234;
        auto text = [](std::int64_t n) { return "行 " + std::to_string(n) + (n % 3 == 0 ? "\t\\\n\r" : ""); };
        std::int64_t n = 0;
        db->insert_rows("batch_rows", {"reception_number", "row_no", "request_json"}, [&](Row& out) {
            if (n == rows) return false;
            ++n;
            out = Row{std::string("R"), n, text(n)};
            return true;
        });
        auto got =
            db->query("SELECT row_no, request_json FROM batch_rows WHERE reception_number = 'R' ORDER BY row_no");
        ASSERT_EQ(std::int64_t(got.size()), rows);
        for (std::int64_t i = 0; i < rows; ++i) {
            EXPECT_EQ(as_int(got[std::size_t(i)][0]), i + 1);
            EXPECT_EQ(as_text(got[std::size_t(i)][1]), text(i + 1));
        }
        n = 0;
        EXPECT_THROW(db->insert_rows("batch_rows", {"reception_number", "row_no", "request_json"},
                                     [&](Row& out) {
                                         if (n == 1000) return false;
                                         ++n;
                                         // row 999 repeats row 1235
                                         out = Row{std::string("R"), rows + (n == 999 ? 1 : n), std::string("x")};
                                         return true;
                                     }),
                     DatabaseError);
        EXPECT_EQ(as_int(db->query("SELECT COUNT(*) FROM batch_rows WHERE reception_number = 'R'")[0][0]), rows);
    }
}

// SQLite: an anonymous "?" takes the value of its own position (insert_rows' statements are written so: a named
// parameter costs SQLite a look-up in a list per parameter), "$n" the n-th value wherever it stands, and the two
// kinds are told apart in one statement.
TEST(SqliteParameters, AnAnonymousParameterTakesTheValueOfItsPosition) {
    TempDir dir;
    auto db = open_sqlite((dir.path / "k.sqlite").string(), 2);
    auto const in_order = db->query("SELECT ?, ?, ?", {std::string("a"), std::int64_t(2), nullptr});
    ASSERT_EQ(in_order.size(), 1u);
    EXPECT_EQ(as_text(in_order[0][0]), "a");
    EXPECT_EQ(as_int(in_order[0][1]), 2);
    EXPECT_TRUE(is_null(in_order[0][2]));
    auto const named = db->query("SELECT $2, $1, $2", {std::string("x"), std::string("y")});
    ASSERT_EQ(named.size(), 1u);
    EXPECT_EQ(as_text(named[0][0]), "y");
    EXPECT_EQ(as_text(named[0][1]), "x");
    EXPECT_EQ(as_text(named[0][2]), "y");
    // A text that is not UTF-8 is refused whichever way it is bound.
    EXPECT_THROW(db->query("SELECT ?", {std::string("\xff")}), Error);
}

// Every kind of value in every kind of column: NULLs, a number into a text column (its digits), digits into an
// integer column (their number), a date column; texts with each character COPY escapes at every place of a word of
// eight bytes (PostgreSQL's COPY text is escaped eight bytes at a time), beside other control characters and UTF-8;
// on PostgreSQL an integer its column cannot hold, or a text that is no number for an integer column, refuses the
// whole insert.
TEST(InsertRows, NullsNumbersDigitsAndEscapesInEveryKindOfColumn) {
    TempDir dir;
    for (auto& [backend, db] : databases(dir)) {
        SCOPED_TRACE(backend);
        std::vector<Row> const given = {
            Row{std::int64_t(7), std::string("0110113719"), std::string("2024-07-31T00:00:00Z"), std::string("k"),
                nullptr, std::int64_t(1), std::string("{\"a\":\"\\t\"}"), nullptr, nullptr},
            Row{std::string("b"), std::string("0110113719"), std::string("2024-07-31T00:00:01Z"), std::string("行"),
                std::string("p"), std::string("0"), std::string(""), std::string("CN=x"), std::string("R")},
            Row{std::string("c"), std::string("0110113719"), std::string("2024-07-31T00:00:02Z"), std::string("k"),
                nullptr, std::int64_t(-2147483648LL), std::string("x"), nullptr, nullptr}};
        std::vector<std::string> const columns = {"id",     "facility_code", "at",    "kind",            "person_key",
                                                  "allowed", "detail_json",  "actor", "reception_number"};
        std::size_t next = 0;
        db->insert_rows("inquiry_log", columns, [&](Row& out) {
            if (next == given.size()) return false;
            out = given[next++];
            return true;
        });
        auto const got = db->query("SELECT id, person_key, allowed, detail_json, actor, reception_number, kind FROM "
                                   "inquiry_log ORDER BY at");
        ASSERT_EQ(got.size(), 3u);
        EXPECT_EQ(as_text(got[0][0]), "7");
        EXPECT_TRUE(is_null(got[0][1]));
        EXPECT_EQ(as_int(got[0][2]), 1);
        EXPECT_EQ(as_text(got[0][3]), "{\"a\":\"\\t\"}");
        EXPECT_TRUE(is_null(got[0][4]));
        EXPECT_TRUE(is_null(got[0][5]));
        EXPECT_EQ(as_text(got[1][0]), "b");
        EXPECT_EQ(as_text(got[1][1]), "p");
        EXPECT_EQ(as_int(got[1][2]), 0);
        EXPECT_EQ(as_text(got[1][3]), "");
        EXPECT_EQ(as_text(got[1][4]), "CN=x");
        EXPECT_EQ(as_text(got[1][5]), "R");
        EXPECT_EQ(as_text(got[1][6]), "行");
        EXPECT_EQ(as_int(got[2][2]), -2147483648LL);

        db->script("CREATE TABLE copy_kinds (d DATE NOT NULL, n INTEGER, t TEXT)");
        next = 0;
        db->insert_rows("copy_kinds", {"d", "n", "t"}, [&](Row& out) {
            if (next == 2) return false;
            out = next++ == 0 ? Row{std::string("2024-07-31"), std::int64_t(5), std::string("a\tb")}
                              : Row{std::string("2024-08-01"), nullptr, nullptr};
            return true;
        });
        auto const kinds = db->query("SELECT CAST(d AS TEXT), n, t FROM copy_kinds ORDER BY d");
        ASSERT_EQ(kinds.size(), 2u);
        EXPECT_EQ(as_text(kinds[0][0]), "2024-07-31");
        EXPECT_EQ(as_int(kinds[0][1]), 5);
        EXPECT_EQ(as_text(kinds[0][2]), "a\tb");
        EXPECT_EQ(as_text(kinds[1][0]), "2024-08-01");
        EXPECT_TRUE(is_null(kinds[1][1]));
        EXPECT_TRUE(is_null(kinds[1][2]));

        std::vector<std::string> texts;
        for (char const special : {'\\', '\t', '\n', '\r'})
            for (std::size_t length = 1; length <= 20; ++length)
                for (std::size_t at = 0; at < length; ++at) {
                    std::string text(length, 'a');
                    text[at] = special;
                    if (length > 3 && at != 1) text[1] = char(at % 2 ? 0x0b : 0x01);  // (escaped by none)
                    if (length > 12) text.replace(length - 3, 3, "行");
                    texts.push_back(text);
                }
        texts.push_back(std::string("\x0c\x0e\x1f\x7f\\\\\t\t\n\n\r\r\\n") + "履歴\t");
        next = 0;
        db->insert_rows("batch_results", {"reception_number", "row_no", "result_json"}, [&](Row& out) {
            if (next == texts.size()) return false;
            out = Row{std::string("E"), std::int64_t(next), texts[next]};
            ++next;
            return true;
        });
        auto const back =
            db->query("SELECT row_no, result_json FROM batch_results WHERE reception_number = 'E' ORDER BY row_no");
        ASSERT_EQ(back.size(), texts.size());
        for (std::size_t i = 0; i < texts.size(); ++i) EXPECT_EQ(as_text(back[i][1]), texts[i]) << i;

        if (backend != "postgresql") continue;  // (SQLite stores any integer, and a text that is no number as text)
        for (Value const bad : {Value(std::int64_t(2147483648LL)), Value(std::string("1x")), Value(std::string(""))}) {
            next = 0;
            EXPECT_THROW(db->insert_rows("inquiry_log", columns,
                                         [&](Row& out) {
                                             if (next == 2) return false;
                                             out = given[0];
                                             out[0] = std::string(next == 0 ? "ok" : "bad");
                                             if (next++ == 1) out[5] = bad;
                                             return true;
                                         }),
                         DatabaseError);
            EXPECT_EQ(as_int(db->query("SELECT COUNT(*) FROM inquiry_log")[0][0]), 3) << "nothing of the insert";
        }
    }
}

// The batch tables' store (storage/batch_jobs.hpp) on each backend: a reception number is taken once; rows go in
// and come back as they were stored (their stored forms: formats/batch_rows.hpp); chunks are leased to one worker at
// a time until their lease expires; a chunk is answered once; a job finishes once; giving up answers every row left;
// a purge keeps the job.
TEST(BatchJobs, RowsChunksAnswersAndTheJobsEnd) {
    TempDir dir;
    for (auto& [backend, db] : databases(dir)) {
        SCOPED_TRACE(backend);
        db->query("INSERT INTO facilities (code, name, kind, created_at) VALUES ('0110113719', 'x', '医科', 'now')");
        BatchJobs jobs(*db);
        BatchJobs::NewJob const job{"R1", "0110113719", "訪問診療等",           "2024-07-01",
                                    "f",  "csv",        "2024-07-01T00:00:00Z", "staff"};
        EXPECT_TRUE(jobs.add_job(job));
        EXPECT_FALSE(jobs.add_job(job)) << "a reception number is taken once";
        std::vector<BatchRow> const rows = {RowQuery{CardFields{"06132013", "123", "4567", "01", "1940-05-01"}, "p1",
                                                     std::nullopt},
                                            RowUnread{"a,b", std::nullopt, std::nullopt},
                                            RowQuery{CardFields{"06132013", "123", "9999", "01", "1940-05-01"}, "p3",
                                                     Echo{{"InsurerNumber", "06132013"}}}};
        std::size_t next = 0;
        EXPECT_EQ(jobs.add_rows("R1", [&](std::string& stored) {
            if (next == rows.size()) return false;
            stored = stored_request(rows[next++]);
            return true;
        }),
                  3);
        jobs.set_total("R1", 3);
        auto serving = jobs.serve_next("2024-07-01T00:00:01Z");
        ASSERT_TRUE(serving);
        EXPECT_EQ(serving->reception, "R1");
        EXPECT_EQ(serving->requested_by, "staff");
        EXPECT_EQ(serving->total, 3);
        EXPECT_EQ(serving->next_row, 1);
        EXPECT_FALSE(jobs.lease_open_chunk("R1", "2024-07-01T00:00:01Z", "w1", "2024-07-01T00:00:16Z"))
            << "no chunk yet";
        jobs.add_chunk("R1", 1, 2, "w1", "2024-07-01T00:00:16Z");
        EXPECT_EQ(jobs.serve_next("2024-07-01T00:00:02Z")->next_row, 3);
        EXPECT_FALSE(jobs.lease_open_chunk("R1", "2024-07-01T00:00:02Z", "w2", "x")) << "w1's lease is live";
        auto taken = jobs.lease_open_chunk("R1", "2024-07-01T00:00:17Z", "w2", "2024-07-01T00:00:32Z");
        ASSERT_TRUE(taken) << "an expired lease is taken";
        EXPECT_EQ(*taken, (std::pair<std::int64_t, std::int64_t>{1, 2}));
        auto read = jobs.unanswered_rows("R1", 1, 3);
        ASSERT_EQ(read.size(), 3u);
        for (std::size_t i = 0; i < 3; ++i) {
            EXPECT_EQ(read[i].first, std::int64_t(i + 1));
            EXPECT_TRUE(stored_request_of(read[i].second) == rows[i]) << i;
        }
        EXPECT_TRUE(jobs.mark_chunk_answered("R1", 1, "2024-07-01T00:00:18Z"));
        EXPECT_FALSE(jobs.mark_chunk_answered("R1", 1, "2024-07-01T00:00:19Z")) << "a chunk is answered once";
        BatchRowAnswer first;
        first.answer = EligibilityAnswer{};
        first.answer->reason = Message{"同意がありません", "no consent"};
        first.arbitrary_identifier = "p1";
        BatchRowAnswer second;
        second.error = "6列 / expected 6 columns";
        jobs.add_answers("R1", {1, 2}, {stored_answer(first), stored_answer(second)});
        EXPECT_EQ(jobs.unanswered_rows("R1", 1, 3).size(), 1u);
        EXPECT_EQ(jobs.count_done("R1", 2), (std::pair<std::int64_t, std::int64_t>{2, 3}));
        EXPECT_FALSE(jobs.finish_if_complete("R1", "2024-07-01T00:00:20Z")) << "a row is left";
        EXPECT_EQ(jobs.release_leases("w2"), 0) << "its one chunk is answered";
        // Giving up: the row left is answered with the error, the job is done and failed.
        EXPECT_EQ(jobs.failures("R1")->failures, 0);
        BatchRowAnswer unanswered;
        unanswered.error = "この行は処理できませんでした / internal error";
        jobs.give_up("R1", stored_answer(unanswered), "2024-07-01T00:00:21Z", "injected");
        auto finished = jobs.finish_if_complete("R1", "2024-07-01T00:00:22Z");
        ASSERT_TRUE(finished);
        EXPECT_EQ(finished->total, 3);
        EXPECT_TRUE(finished->failed);
        EXPECT_EQ(finished->failure, "injected");
        EXPECT_FALSE(jobs.finish_if_complete("R1", "2024-07-01T00:00:23Z")) << "a job finishes once";
        auto stored = jobs.job("R1", "0110113719");
        ASSERT_TRUE(stored);
        EXPECT_EQ(stored->done, 3);
        EXPECT_EQ(stored->failed_at, "2024-07-01T00:00:21Z");
        EXPECT_FALSE(jobs.job("R1", "1340100021")) << "another facility's job is not found";
        auto answers = jobs.answers("R1");
        ASSERT_EQ(answers.size(), 3u);
        EXPECT_EQ(stored_answer_of(answers[0].second).arbitrary_identifier, "p1");
        EXPECT_EQ(stored_answer_of(answers[0].second).answer->reason.en, "no consent");
        EXPECT_EQ(stored_answer_of(answers[1].second).error, "6列 / expected 6 columns");
        EXPECT_EQ(stored_answer_of(answers[2].second).error, unanswered.error);
        auto page = jobs.answers("R1", 1, 1);
        ASSERT_EQ(page.size(), 1u);
        EXPECT_EQ(page[0].first, 2);
        EXPECT_EQ(jobs.finished_unpurged(10),
                  (std::vector<std::pair<std::string, std::string>>{{"R1", "2024-07-01T00:00:22Z"}}));
        jobs.purge("R1", "2024-07-03T00:00:00Z");
        EXPECT_TRUE(jobs.answers("R1").empty());
        EXPECT_TRUE(jobs.unanswered_rows("R1", 1, 3).empty());
        EXPECT_TRUE(jobs.finished_unpurged(10).empty());
        EXPECT_TRUE(jobs.job("R1", "0110113719")) << "the job stays: its number still answers";
        // A job answered at once.
        EXPECT_TRUE(jobs.add_job(
            {"R2", "0110113719", "訪問診療等", "2024-07-01", "f", "hvq", "2024-07-01T00:00:00Z", "staff"}));
        jobs.finish_at_once("R2", 0, "2024-07-01T00:00:30Z");
        EXPECT_EQ(jobs.job("R2", "0110113719")->finished_at, "2024-07-01T00:00:30Z");
        EXPECT_FALSE(jobs.serve_next("2024-07-01T00:00:31Z")) << "no unfinished job";
    }
}
