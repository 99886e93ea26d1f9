// kyotaku prove (issue 23 item 8): the compiled program translated to Z3, invariants proven for every input.
#include "kyotaku/engine.hpp"
#include "kyotaku/prove.hpp"

#include <gtest/gtest.h>

using namespace kyotaku;

namespace {
// Rule sources whose bool lets named in `invariants` are proven, up to `horizon`.
std::shared_ptr<Program const> with_invariants(std::vector<SourceFile> sources,
                                               std::vector<std::string> const& invariants, char const* horizon) {
    auto c = compile(std::move(sources));
    EXPECT_TRUE(c.ok()) << format_diagnostics(c.diagnostics);
    if (!c.ok()) return nullptr;
    auto p = std::make_shared<Program>(*c.program);
    for (auto const& name : invariants) {
        int const s = p->find_slot(name);
        EXPECT_GE(s, 0) << name;
        p->invariants.push_back(
            InvariantInfo{name, "", std::uint32_t(s), p->slots[std::size_t(s)].loc, p->slots[std::size_t(s)].source});
    }
    p->horizon = parse_date(horizon).date->days();
    return p;
}
}  // namespace

TEST(Prove, TheCalendarEncodingEqualsTheDateLibraryOnEveryDay) {
    // month_of, month_end, 民法 periods and month arithmetic for every day of 2020-2032 (leap years, month ends).
    EXPECT_EQ(check_calendar_encoding(*Date::from_ymd(2020, 1, 1), *Date::from_ymd(2032, 12, 31)), "");
}

TEST(Prove, ATrueInvariantIsProvenAndAFalseOneGetsACounterexampleTheEvaluatorConfirms) {
    auto p = with_invariants({{"a.rules", R"(
asof q
fact q : date
fact first : date
fact k : bool
param 月数 = 3
let 満了日 = period_end(first, 月数, 初日不算入)
let 末日 = month_end(満了日)
# true: the window ends at least 3 months after the first visit, on a month's last day
let ok1 : bool = 末日 >= first + 89 days and month_end(末日) == 末日
# false: 末日 is not always more than 92 days after `first` (2024-03-31 → 2024-06-30 is 91 days)
let bad : bool = 末日 > first + 91 days
let ok2 : bool = if k then 満了日 < 末日 + 1 days else true
decision d : bool = ok1 and bad and ok2
)"}},
                             {"ok1", "bad", "ok2"}, "2026-12-31");
    ASSERT_TRUE(p);
    ProofReport r = prove(p);
    ASSERT_EQ(r.error, "");
    ASSERT_EQ(r.results.size(), 3u);
    EXPECT_EQ(r.results[0].status, InvariantResult::Status::proven) << r.results[0].reason;
    EXPECT_EQ(r.results[1].status, InvariantResult::Status::counterexample) << r.results[1].reason;
    EXPECT_EQ(r.results[2].status, InvariantResult::Status::proven) << r.results[2].reason;
    EXPECT_FALSE(r.ok());
    // The counterexample: a first day whose window ends within 91 days (the evaluator confirmed it), explained.
    EXPECT_NE(r.results[1].facts.find("\"first\":\""), std::string::npos) << r.results[1].facts;
    EXPECT_NE(r.results[1].explanation.find("■"), std::string::npos) << r.results[1].explanation;
    std::string const text = format_proofs(*p, r);
    EXPECT_NE(text.find("証明済み  ok1"), std::string::npos) << text;
    EXPECT_NE(text.find("反例あり  bad"), std::string::npos) << text;
}

TEST(Prove, MonthSetsVersionsAndEnumsAreCoveredExactly) {
    auto p = with_invariants({{"a.rules", R"(
asof q
enum 区分 { 甲, 乙, 丙 }
fact q : date
fact first : date
fact kind : 区分
fact kinds : set<区分>
fact claims : set<month>
decision v : int
  version until 2024-09-30 { otherwise => 1 }
  version from 2024-10-01 { when kind == 丙 => 3  otherwise => 2 }
let 毎月 = all_in(month_of(first) .. month_of(q) - 2, claims)
let 最初の欠け = first_missing(month_of(first) .. month_of(q) - 2, claims)
# true: when every month is there, the first missing month is past the range
let 欠けの位置 : bool = if 毎月 then 最初の欠け == month_of(q) - 1 or month_of(first) > month_of(q) - 2
                       else 最初の欠け <= month_of(q) - 2
# true: the version in force follows q
let 版 : bool = if q < 2024-10-01 then v == 1 else v >= 2
# false: 丙 may be in `kinds` while kind is not 丙
let 集合 : bool = if 丙 in kinds then kind == 丙 else true
decision d : bool = 欠けの位置 and 版 and 集合 and 毎月
)"}},
                             {"欠けの位置", "版", "集合"}, "2026-12-31");
    ASSERT_TRUE(p);
    ProofReport r = prove(p);
    ASSERT_EQ(r.error, "");
    ASSERT_EQ(r.results.size(), 3u);
    EXPECT_EQ(r.results[0].status, InvariantResult::Status::proven) << r.results[0].reason << r.results[0].facts;
    EXPECT_EQ(r.results[1].status, InvariantResult::Status::proven) << r.results[1].reason << r.results[1].facts;
    EXPECT_EQ(r.results[2].status, InvariantResult::Status::counterexample) << r.results[2].reason;
}

TEST(Prove, WithoutAHorizonNothingIsClaimed) {
    auto c = compile({{"a.rules", "fact a : bool\nlet x : bool = a or not a\ndecision d : bool = x\n"}});
    ASSERT_TRUE(c.ok());
    auto p = std::make_shared<Program>(*c.program);
    p->invariants.push_back(InvariantInfo{"x", "", std::uint32_t(p->find_slot("x")), {}, ""});
    ProofReport r = prove(p);
    EXPECT_NE(r.error.find("horizon"), std::string::npos);
    EXPECT_FALSE(r.ok());
}
