// Grammar, checker and evaluator, through the public API: a rule text in, decisions or diagnostics out.
#include "kyotaku/engine.hpp"

#include <gtest/gtest.h>

using namespace kyotaku;

namespace {
CompileResult compile_text(std::string text) { return compile({SourceFile{"t.rules", std::move(text)}}); }

std::string first_kind(CompileResult const& r) {
    return r.diagnostics.empty() ? "" : std::string(to_string(r.diagnostics.front().kind));
}

constexpr char const* base = R"(
asof q
enum 色 { 赤, 青, 緑 }
fact q : date
fact c : 色
fact n : int
fact s : set<色>
fact ms : set<month>
)";
}  // namespace

TEST(Grammar, ParsesEveryDeclarationKind) {
    auto r = compile_text(std::string(base) + R"(
param p = 3
let x = n + p * 2
decision d : bool {
  when c == 赤 and not (n < 0) => true because "赤 {n}"
  otherwise => false
}
decision m : int = match c { 赤, 青 => 1, 緑 => 2 }
decision v : int
  version "a" until 2024-09-30 { otherwise => 1 }
  version "b" from 令和6年10月1日 { otherwise => 2 }
fixture F { q = 2024-01-01 c = 赤 }
test "t" uses F { given n = 1 expect d = true m = 1 }
)");
    ASSERT_TRUE(r.ok()) << format_diagnostics(r.diagnostics);
    EXPECT_EQ(r.program->outputs.size(), 3u);
    EXPECT_EQ(run_tests(r.program).passed, 1);
}

TEST(Grammar, SyntaxErrorNamesLineColumnAndExpectation) {
    auto r = compile_text("fact a : int\ndecision d : bool {\n  when a > 1 => true\n  otherwise true\n}\n");
    ASSERT_FALSE(r.ok());
    ASSERT_EQ(first_kind(r), "syntax");
    EXPECT_EQ(r.diagnostics[0].line, 4);
    EXPECT_EQ(r.diagnostics[0].column, 13);
    EXPECT_NE(r.diagnostics[0].message_en.find("\"=>\""), std::string::npos);
}

TEST(Grammar, FullWidthDigitsAndSpacesAreNormalisedOutsideStrings) {
    auto r = compile_text("fact a : int\u3000\ndecision d : int = a + ３ because \"３か月\"\ntest \"x\" { given a = １ "
                          "expect d = ４ }\n");
    ASSERT_TRUE(r.ok()) << format_diagnostics(r.diagnostics);
    EXPECT_EQ(run_tests(r.program).passed, 1);
    EXPECT_EQ(r.program->clauses[0].because[0].literal, "３か月");
}

TEST(Checker, UnknownNameSuggestsTheNearestName) {
    auto r = compile_text(std::string(base) + "decision d : bool = c == 赤い\n");
    ASSERT_EQ(first_kind(r), "unknown-name");
    EXPECT_NE(r.diagnostics[0].message_en.find("did you mean '赤'"), std::string::npos);
}

TEST(Checker, TypeMismatchInComparison) {
    auto r = compile_text(std::string(base) + "decision d : bool = q < n\n");
    ASSERT_EQ(first_kind(r), "type-mismatch");
    EXPECT_NE(r.diagnostics[0].message_en.find("date < int"), std::string::npos);
}

TEST(Checker, NonExhaustiveMatchNamesTheMissingValues) {
    auto r = compile_text(std::string(base) + "decision d : int = match c { 赤 => 1, 青 => 2 }\n");
    ASSERT_EQ(first_kind(r), "non-exhaustive");
    EXPECT_NE(r.diagnostics[0].message_ja.find("緑"), std::string::npos);
}

TEST(Checker, UnreachableClauseAfterOtherwise) {
    auto r = compile_text(std::string(base) + "decision d : int {\n otherwise => 1\n when n > 1 => 2\n}\n");
    EXPECT_EQ(first_kind(r), "unreachable");
}

TEST(Checker, UnreachableMatchArm) {
    auto r = compile_text(std::string(base) + "decision d : int = match c { 赤, 青 => 1, 青 => 2, 緑 => 3 }\n");
    EXPECT_EQ(first_kind(r), "unreachable");
}

TEST(Checker, DecisionWithoutOtherwiseIsRejected) {
    auto r = compile_text(std::string(base) + "decision d : int {\n when n > 1 => 2\n}\n");
    EXPECT_EQ(first_kind(r), "missing-otherwise");
}

TEST(Checker, MonthAdditionWithoutRoundingGivesACounterExample) {
    auto r = compile_text(std::string(base) + "decision d : date = q + 1 months\n");
    ASSERT_EQ(first_kind(r), "ambiguous-month-arithmetic");
    EXPECT_NE(r.diagnostics[0].message_en.find("2024-01-30 + 1 months → 2024-02-30"), std::string::npos)
        << r.diagnostics[0].message_en;
    auto ok =
        compile_text(std::string(base) + "decision d : date = q + 1 months round clamp\n"
                                         "decision e : date = q + 1 months round up\n"
                                         "test \"t\" { given q = 2023-01-31 expect d = 2023-02-28 e = 2023-03-01 }\n");
    ASSERT_TRUE(ok.ok()) << format_diagnostics(ok.diagnostics);
    EXPECT_EQ(run_tests(ok.program).passed, 1);
    // A literal date whose day exists in every month needs no policy.
    EXPECT_TRUE(compile_text(std::string(base) + "decision d : date = 2024-01-28 + 1 months\n").ok());
}

TEST(Checker, OverlappingAndGappedVersions) {
    auto overlap = compile_text(std::string(base) +
                                "decision d : int\n version \"a\" until 2024-10-01 { otherwise => 1 }\n"
                                " version \"b\" from 2024-10-01 { otherwise => 2 }\n");
    EXPECT_EQ(first_kind(overlap), "overlapping-versions");
    auto gap = compile_text(std::string(base) +
                            "decision d : int\n version \"a\" until 2024-09-29 { otherwise => 1 }\n"
                            " version \"b\" from 2024-10-01 { otherwise => 2 }\n");
    ASSERT_EQ(first_kind(gap), "version-gap");
    EXPECT_NE(gap.diagnostics[0].message_en.find("2024-09-30 .. 2024-09-30"), std::string::npos);
}

TEST(Checker, InvalidDateLiteral) {
    auto r = compile_text(std::string(base) + "decision d : bool = q < 2024-02-30\n");
    EXPECT_EQ(first_kind(r), "invalid-date");
    auto era = compile_text(std::string(base) + "decision d : bool = q < 平成31年5月1日\n");
    EXPECT_EQ(first_kind(era), "invalid-date");
}

TEST(Checker, CycleAndDuplicate) {
    EXPECT_EQ(first_kind(compile_text(std::string(base) + "let a : int = b\nlet b : int = a\n")), "cycle");
    EXPECT_EQ(first_kind(compile_text(std::string(base) + "fact n2 : int\nfact n2 : bool\n")), "duplicate");
}

TEST(Evaluator, MissingFactMakesOnlyTheDecisionsThatNeedItNull) {
    auto r = compile_text(std::string(base) + "decision a : int = n + 1\ndecision b : bool = c == 赤\n");
    ASSERT_TRUE(r.ok());
    Evaluator ev(r.program);
    Activation facts(*r.program);
    ASSERT_TRUE(facts.set_enum("c", "赤"));
    ev.evaluate(facts);
    EXPECT_EQ(ev.outcome(0).status, Status::missing_facts);
    EXPECT_EQ(ev.outcome(0).missing, std::uint64_t(1) << r.program->find_fact("n"));
    EXPECT_EQ(ev.outcome(1).status, Status::ok);
    EXPECT_EQ(ev.outcome(1).value, 1);
}

TEST(Evaluator, ShortCircuitDoesNotNeedTheUnreadFact) {
    auto r = compile_text(std::string(base) + "decision a : bool = c == 赤 or n > 1\n");
    ASSERT_TRUE(r.ok());
    Evaluator ev(r.program);
    Activation facts(*r.program);
    facts.set_enum("c", "赤");
    ev.evaluate(facts);
    EXPECT_EQ(ev.outcome(0).status, Status::ok);
    facts.set_enum("c", "青");
    ev.evaluate(facts);
    EXPECT_EQ(ev.outcome(0).status, Status::missing_facts);
}

TEST(Evaluator, VersionInForceIsReportedAndAGapBeforeTheFirstIsNull) {
    auto r = compile_text(std::string(base) +
                          "decision v : int\n version \"a\" from 2024-01-01 until 2024-09-30 { otherwise => 1 }\n"
                          " version \"b\" from 2024-10-01 { otherwise => 2 }\n");
    ASSERT_TRUE(r.ok()) << format_diagnostics(r.diagnostics);
    Evaluator ev(r.program);
    Activation facts(*r.program);
    facts.set_date("q", *Date::from_ymd(2024, 10, 1));
    ev.evaluate(facts);
    EXPECT_EQ(ev.outcome(0).value, 2);
    EXPECT_EQ(ev.outcome(0).version, 1u);
    facts.set_date("q", *Date::from_ymd(2024, 9, 30));
    ev.evaluate(facts);
    EXPECT_EQ(ev.outcome(0).value, 1);
    facts.set_date("q", *Date::from_ymd(2023, 12, 31));
    ev.evaluate(facts);
    EXPECT_EQ(ev.outcome(0).status, Status::no_version);
}

TEST(Evaluator, MonthSetsAndContinuity) {
    auto r = compile_text(std::string(base) + "decision all : bool = all_in(2024-04 .. 2024-07, ms)\n"
                                              "decision gap : month = first_missing(2024-04 .. 2024-07, ms)\n"
                                              "decision has : bool = 2024-05 in ms\n");
    ASSERT_TRUE(r.ok()) << format_diagnostics(r.diagnostics);
    Evaluator ev(r.program);
    Activation facts(*r.program);
    facts.set_month_set("ms", {*Month::from_ym(2024, 4), *Month::from_ym(2024, 6), *Month::from_ym(2024, 7)});
    ev.evaluate(facts);
    EXPECT_EQ(ev.outcome(0).value, 0);
    EXPECT_EQ(Month::from_index(ev.outcome(1).value).iso(), "2024-05");
    EXPECT_EQ(ev.outcome(2).value, 0);
    MonthBits bits;
    for (int m = 0; m < 200; ++m) bits.set(MonthBits::base + 100 + m);
    EXPECT_TRUE(bits.all(MonthBits::base + 100, MonthBits::base + 299));  // spans several 64-bit words
    EXPECT_FALSE(bits.all(MonthBits::base + 99, MonthBits::base + 299));
    EXPECT_TRUE(bits.all(MonthBits::base + 5, MonthBits::base + 4));      // an empty range
    EXPECT_FALSE(bits.set(MonthBits::base - 1));
}

TEST(Evaluator, BatchEqualsOneAtATime) {
    auto r = compile_directory(KYOTAKU_SOURCE_DIR "/rules");
    ASSERT_TRUE(r.ok()) << format_diagnostics(r.diagnostics);
    Evaluator ev(r.program);
    std::vector<Activation> records;
    for (int i = 0; i < 200; ++i) {
        Activation a(*r.program);
        a.set_enum("facility_kind", i % 2 ? "医科" : "訪問看護ステーション");
        a.set_enum("visit_kind", i % 3 ? "訪問診療" : "往診");
        a.set_date("first_visit", Date::from_days(Date::from_ymd(2024, 1, 1)->days() + i));
        a.set_date("query_date", Date::from_days(Date::from_ymd(2024, 3, 1)->days() + 2 * i));
        a.set_bool("continuing_home_care", i % 5 == 0);
        a.set_bool("feature_enabled", true);
        a.set_month_set("reviewed_claim_months", {*Month::from_ym(2024, 1), *Month::from_ym(2024, 2)});
        records.push_back(a);
    }
    std::vector<Outcome> batch(records.size() * r.program->outputs.size());
    ev.evaluate_batch(records, batch);
    for (std::size_t i = 0; i < records.size(); ++i) {
        ev.evaluate(records[i]);
        for (std::size_t o = 0; o < r.program->outputs.size(); ++o) {
            auto const& one = ev.outcome(o);
            auto const& b = batch[i * r.program->outputs.size() + o];
            ASSERT_EQ(one.status, b.status);
            ASSERT_EQ(one.value, b.value);
            ASSERT_EQ(one.clause, b.clause);
        }
    }
}
