// storage/: migrations, transactions, the faults that pass and when a request runs again, lost connections.
#include "server_fixture.hpp"

#include "formats/batch_rows.hpp"

#include <algorithm>
#include <string_view>

TEST(Migrations, ApplyOnceAndAgainIsANoOp) {
    auto db = fresh_database();
    EXPECT_GE(migrate(*db), 3);
    EXPECT_EQ(migrate(*db), 0);
    EXPECT_EQ(as_int(db->query("SELECT COUNT(*) FROM consents")[0][0]), 0);
    EXPECT_EQ(db->backend(), std::getenv("KYOTAKU_TEST_PG") ? "postgresql" : "sqlite");
}

TEST(Migrations, NestedTransactionsRollBackTheirOwnPart) {
    auto db = fresh_database();
    migrate(*db);
    transaction(*db, [&] {
        db->query("INSERT INTO url_keys (version, key_hex, created_at) VALUES (1, 'a', 'x')");
        EXPECT_THROW(transaction(*db, [&] {
                         db->query("INSERT INTO url_keys (version, key_hex, created_at) VALUES (2, 'b', 'x')");
                         throw std::runtime_error("inner fails");
                     }),
                     std::runtime_error);
    });
    auto rows = db->query("SELECT version FROM url_keys ORDER BY version");
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_EQ(as_int(rows[0][0]), 1);
}

// Migration 011 (batch work by chunk) on a database where 010's workers left a job half answered: the answers
// already given stay, the rest are answered once, and the job finishes with every row.
TEST(Migrations, AJobHalfAnsweredBeforeChunksIsFinishedOnceAfterThem) {
    auto db = fresh_database();
    db->script("CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)");
    for (auto const& m : migrations()) {
        if (std::string(m.name) >= "011") continue;
        db->script(m.sql);
        db->query("INSERT INTO schema_migrations (name, applied_at) VALUES ($1, 'x')", {std::string(m.name)});
    }
    db->query("INSERT INTO facilities (code, name, kind, created_at) VALUES ('0110113719', 'A', '医科', 'x')");
    db->query("INSERT INTO batch_jobs (reception_number, facility_code, category, query_date, file_identifier, format, "
              "total, done, created_at) "
              "VALUES ('20240701000000000001', '0110113719', '訪問診療等', '2024-07-01', 'f', 'csv', 503, 1, 'x')");
    for (int row = 1; row <= 503; ++row)
        db->query("INSERT INTO batch_rows (reception_number, row_no, request_json, result_json, lease_owner, "
                  "lease_until) VALUES ($1, $2, $3, $4, $5, $6)",
                  {std::string("20240701000000000001"), std::int64_t(row), std::string(R"({"malformed":"x"})"),
                   row == 1 ? Value(std::string(R"({"answered":"before"})")) : Value(nullptr),
                   row == 2 ? Value(std::string("dead")) : Value(nullptr),
                   row == 2 ? Value(std::string("2024-07-01T00:00:15Z")) : Value(nullptr)});
    // (PostgreSQL's own migrations, "*.postgresql.sql", are not SQLite's)
    auto const postgresql_only = std::count_if(migrations().begin(), migrations().end(), [](Migration const& m) {
        return std::string_view(m.name).ends_with(".postgresql.sql");
    });
    EXPECT_EQ(migrate(*db), int(migrations().size()) - 10 - (db->backend() == "postgresql" ? 0 : postgresql_only));
    EXPECT_EQ(as_int(db->query("SELECT COUNT(*) FROM batch_chunks")[0][0]), 2);  // rows 2–500 and 501–503
    auto c = compile_directory(KYOTAKU_SOURCE_DIR "/rules");
    ASSERT_TRUE(c.ok());
    TestClock clock{*Date::from_ymd(2024, 7, 1)};
    Service service(*db, c.program, clock);
    EXPECT_EQ(service.batch.process(500), 499);
    EXPECT_EQ(service.batch.process(500), 3);
    EXPECT_EQ(service.batch.process(500), 0);
    auto job = db->query("SELECT done, finished_at FROM batch_jobs");
    EXPECT_EQ(as_int(job.at(0).at(0)), 503);
    EXPECT_FALSE(is_null(job.at(0).at(1)));
    auto results = db->query("SELECT row_no, result_json FROM batch_results ORDER BY row_no");
    ASSERT_EQ(results.size(), 503u);
    EXPECT_EQ(as_text(results[0][1]), R"({"answered":"before"})");
    // (the worker's answer, in its stored form: the row's own error, a malformed row)
    EXPECT_NE(stored_answer_of(as_text(results[1][1])).error.value_or("").find("6列"), std::string::npos)
        << as_text(results[1][1]);
}

// A transient database fault (a lost connection, a failover) is waited out, never counted against the job nor
// written as an answer: the chunk is answered after the pause, with its real answers.
TEST_F(ServerFixture, ATransientDatabaseFaultIsRetriedNeverAnswered) {
    enable(a);
    consent("0110113719", person());
    std::string const rn =
        body(call(a, "POST", "/api/v1/batch/reinquiry", csv_rows(3), "text/csv"))["reception_number"];
    int faults = 5;
    service->batch.on_chunk_ready = [&] {
        if (faults > 0 && faults--) throw TransientDatabaseError("server closed the connection unexpectedly", true);
    };
    std::vector<long> pauses;
    for (int i = 0; i < 5; ++i) {
        EXPECT_EQ(service->batch.process(10), 0);
        pauses.push_back(long(service->batch.pause().count()));
    }
    EXPECT_EQ(pauses, (std::vector<long>{100, 200, 400, 800, 1600})) << "the pause doubles while the fault lasts";
    EXPECT_EQ(service->batch.process(10), 3);
    EXPECT_EQ(service->batch.pause().count(), 0);
    EXPECT_EQ(service->batch.retries.load(), 5u);
    json const st = body(call(a, "GET", "/api/v1/batch/reinquiry/" + rn));
    EXPECT_EQ(st["status"], "正常終了") << st;
    EXPECT_EQ(as_int(db->query("SELECT failures FROM batch_jobs WHERE reception_number = $1", {rn}).at(0).at(0)), 0);
    auto rows = call(a, "GET", "/api/v1/batch/reinquiry/" + rn + "/result").body;
    EXPECT_EQ(rows.find("処理できませんでした"), std::string::npos) << rows;
    EXPECT_EQ(std::count(rows.begin(), rows.end(), '\n'), 3);
}

// A request is run once more after a transient fault only when nothing of it may have been committed.
TEST(Faults, ARequestRunsOnceMoreOnlyWhenNothingOfItWasCommitted) {
    std::atomic<std::uint64_t> retries{0};
    int runs = 0;
    EXPECT_EQ(once_more_if_nothing_committed(retries, [&] {
                  if (++runs == 1) throw TransientDatabaseError("terminating connection due to administrator command");
                  return 7;
              }),
              7);
    EXPECT_EQ(runs, 2);
    EXPECT_EQ(retries.load(), 1u);
    runs = 0;  // a transaction committed before the fault: not again
    EXPECT_THROW(once_more_if_nothing_committed(retries, [&] {
                     ++runs;
                     ++write_ledger().committed;
                     throw TransientDatabaseError("server closed the connection unexpectedly", true);
                     return 0;
                 }),
                 TransientDatabaseError);
    EXPECT_EQ(runs, 1);
    runs = 0;  // a commit in doubt: not again
    EXPECT_THROW(once_more_if_nothing_committed(retries, [&] {
                     ++runs;
                     write_ledger().in_doubt = true;
                     throw TransientDatabaseError("server closed the connection unexpectedly", true);
                     return 0;
                 }),
                 TransientDatabaseError);
    EXPECT_EQ(runs, 1);
    EXPECT_TRUE(reads_only("  select 1 FROM x"));
    EXPECT_FALSE(reads_only("SELECT 1 FROM x FOR UPDATE"));
    EXPECT_FALSE(reads_only("INSERT INTO x VALUES (1)"));
    EXPECT_FALSE(reads_only("SELECTED"));
    EXPECT_TRUE(reads_only("WITH p AS (SELECT k FROM x) SELECT s.updated_at, p.k FROM p, s"));  // (a column's name)
    EXPECT_TRUE(reads_only("\nwith p AS (SELECT k FROM x) SELECT deleted FROM p"));
    EXPECT_FALSE(reads_only("WITH p AS (DELETE FROM x RETURNING k) SELECT k FROM p"));
    EXPECT_FALSE(reads_only("WITH p AS (SELECT k FROM x) insert INTO y SELECT k FROM p"));
    EXPECT_FALSE(reads_only("WITH p AS (SELECT k FROM x) UPDATE y SET k = 1"));
    EXPECT_FALSE(reads_only("WITH p AS (SELECT k FROM x FOR UPDATE) SELECT k FROM p"));
    EXPECT_FALSE(reads_only("WITHOUT"));
    // Writes and locks a first SELECT does not make a read (a review's cases): lower case and other spacing, a second
    // statement, SELECT … INTO, the sequence and advisory-lock functions.
    EXPECT_FALSE(reads_only("select k from x for update"));
    EXPECT_FALSE(reads_only("SELECT k FROM x\nFOR SHARE"));
    EXPECT_FALSE(reads_only("SELECT k FROM (SELECT k FROM x)FOR NO KEY UPDATE"));
    EXPECT_FALSE(reads_only("SELECT 1; INSERT INTO x VALUES (1)"));
    EXPECT_FALSE(reads_only("SELECT 1;DELETE FROM x"));
    EXPECT_FALSE(reads_only("SELECT 1; SELECT 2"));
    EXPECT_TRUE(reads_only("SELECT 1;  \n"));
    EXPECT_FALSE(reads_only("SELECT k INTO y FROM x"));
    EXPECT_FALSE(reads_only("SELECT nextval('s')"));
    EXPECT_FALSE(reads_only("select setval('s', 3)"));
    EXPECT_FALSE(reads_only("SELECT pg_advisory_lock(1)"));
    EXPECT_FALSE(reads_only("SELECT pg_try_advisory_xact_lock(1)"));
    EXPECT_TRUE(reads_only("SELECT pg_advisory FROM x"));  // (a column's name, not the function)
    EXPECT_TRUE(reads_only("SELECT forecast, intonation FROM x"));
}

// PostgreSQL ends the server's connections (a restart, a failover, a terminated backend): each fails at most the
// statement it had in flight, and is connected again when next lent; the server does not fail every request from
// then on (the pool used to lend the dead connection again and again).
TEST_F(ServerFixture, ConnectionsPostgreSqlEndedAreConnectedAgain) {
    if (db->backend() != "postgresql") GTEST_SKIP() << "PostgreSQL only: SQLite has no server to end a connection";
    enable(a);
    db->query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> "
              "pg_backend_pid()");
    EXPECT_THROW(db->query("SELECT pg_terminate_backend(pg_backend_pid())"), DatabaseError);  // and the last one
    int failed = 0;
    for (int i = 0; i < 8; ++i) failed += call(a, "GET", "/api/v1/settings").status == 200 ? 0 : 1;
    EXPECT_EQ(failed, 0) << "an ended connection is noticed before it is used";
    EXPECT_GE(db->reconnects.load(), 1u);
    for (int i = 0; i < 20; ++i) EXPECT_EQ(call(a, "GET", "/api/v1/settings").status, 200) << i;
    auto worker = std::async(std::launch::async, [&] {
        return call(a, "PUT", "/api/v1/settings", R"({"terms_agreed":true,"home_visit_enabled":true})").status;
    });
    EXPECT_EQ(worker.get(), 200);  // a transaction on a connection made again
}

// ---- Issue 24: what a facility meets in its first month ----
