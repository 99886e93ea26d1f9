// The engine where it could be crashed or misled, and the checker's messages for newcomers: each test here failed
// before the change that made it pass (issue 13).
#include "kyotaku/engine.hpp"
#include "kyotaku/jsonl.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using namespace kyotaku;

namespace {
CompileResult compile_text(std::string text) { return compile({SourceFile{"t.rules", std::move(text)}}); }
std::string first_kind(CompileResult const& r) {
    return r.diagnostics.empty() ? "" : std::string(to_string(r.diagnostics.front().kind));
}
std::string all_ja(CompileResult const& r) {
    std::string s;
    for (auto const& d : r.diagnostics) s += d.message_ja + "\n";
    return s;
}
std::string all_en(CompileResult const& r) {
    std::string s;
    for (auto const& d : r.diagnostics) s += d.message_en + "\n";
    return s;
}
std::shared_ptr<Program const> official() {
    static auto r = compile_directory(KYOTAKU_SOURCE_DIR "/rules");
    EXPECT_TRUE(r.ok()) << format_diagnostics(r.diagnostics);
    return r.program;
}
// A chain of `n` lets, each using the next one: checking the first used to recurse through all of them.
std::string forward_chain(int n) {
    std::string t = "fact x : int\ndecision d : int = l0\n";
    for (int i = 0; i + 1 < n; ++i) t += "let l" + std::to_string(i) + " = l" + std::to_string(i + 1) + " + 1\n";
    return t + "let l" + std::to_string(n - 1) + " = x\n";
}
}  // namespace

// ---- no recursion whose depth depends on the rule text ----------------------------------------------------------

TEST(Hardening, ThousandsOfChainedLetsCompileAndEvaluate) {
    auto r = compile_text(forward_chain(20000));  // 750 was enough to overflow the stack before
    ASSERT_TRUE(r.ok()) << format_diagnostics(r.diagnostics);
    Evaluator ev(r.program);
    Activation facts(*r.program);
    facts.set_int("x", 5);
    ev.evaluate(facts);
    EXPECT_EQ(ev.outcome(0).value, 5 + 19999);
    auto loaded = load_bundle(save_bundle(*r.program));
    ASSERT_TRUE(loaded.program) << loaded.describe();
}

TEST(Hardening, LongRunsOfOperatorsAreALimitNotACrash) {
    std::string t = "fact x : int\ndecision d : int = x";
    for (int i = 0; i < 100000; ++i) t += " + x";
    auto r = compile_text(t + "\n");
    ASSERT_EQ(first_kind(r), "limit");
    EXPECT_NE(r.diagnostics[0].message_ja.find("let に分けて"), std::string::npos);
    // Runs nested in runs (each group the left operand of the next): the expression tree's depth is bounded too.
    std::string nested = "fact x : int\ndecision d : int = ";
    for (int i = 0; i < 90; ++i) nested += "(";
    nested += "x";
    for (int i = 0; i < 90; ++i) nested += " + x + x + x)";
    EXPECT_EQ(first_kind(compile_text(nested + "\n")), "limit");
}

// ---- the checker's messages -----------------------------------------------------------------------------------

TEST(Messages, CycleShowsTheWholeChain) {
    auto r = compile_text("fact x : int\nlet a = b + 1\nlet b = c + 1\nlet c = a + x\ndecision d : int = a\n");
    ASSERT_EQ(first_kind(r), "cycle");
    EXPECT_NE(r.diagnostics[0].message_ja.find("「a」→「b」→「c」→「a」"), std::string::npos)
        << r.diagnostics[0].message_ja;
    EXPECT_NE(r.diagnostics[0].message_en.find("a → b → c → a"), std::string::npos);
    EXPECT_EQ(r.diagnostics.size(), 1u);  // one cycle, one message
}

TEST(Messages, ByteOrderMarkIsAccepted) {
    auto r = compile_text("\xEF\xBB\xBF" "fact a : int\ndecision d : int = a\n");
    EXPECT_TRUE(r.ok()) << format_diagnostics(r.diagnostics);
    auto f = format_source({"t.rules", "\xEF\xBB\xBF" "fact a : int\n"});
    ASSERT_TRUE(f.ok());
    EXPECT_EQ(f.text, "fact a : int\n");
}

TEST(Messages, AUnitAfterAFullWidthNumberIsExplainedInJapanese) {
    auto r = compile_text(
        "fact a : date\nparam 窓の月数 = ３か月\ndecision d : date = period_end(a, 窓の月数, 初日不算入)\n");
    ASSERT_EQ(first_kind(r), "syntax");
    EXPECT_EQ(r.diagnostics[0].message_ja.find("eoi"), std::string::npos) << r.diagnostics[0].message_ja;
    EXPECT_NE(r.diagnostics[0].message_ja.find("数のあとに「か月」は書けません"), std::string::npos)
        << r.diagnostics[0].message_ja;
    EXPECT_EQ(r.diagnostics[0].line, 2);
    // The full-width digit itself is read as 3.
    auto ok =
        compile_text("fact a : date\nparam 窓の月数 = ３\ndecision d : date = period_end(a, 窓の月数, 初日不算入)\n");
    EXPECT_TRUE(ok.ok()) << format_diagnostics(ok.diagnostics);
}

TEST(Messages, InvisibleAndFullWidthCharactersAreNamed) {
    auto zw = compile_text("fact a : int\ndecision d : int = a\u200B + 1\n");
    ASSERT_EQ(first_kind(zw), "syntax");
    EXPECT_NE(zw.diagnostics[0].message_ja.find("目に見えない文字 (U+200B)"), std::string::npos)
        << zw.diagnostics[0].message_ja;
    EXPECT_EQ(zw.diagnostics[0].column, 21);  // at the character itself
    auto bom = compile_text("fact a : int\n\uFEFFdecision d : int = a\n");  // a byte-order mark in the middle
    ASSERT_EQ(first_kind(bom), "syntax");
    EXPECT_NE(bom.diagnostics[0].message_ja.find("目に見えない文字 (U+FEFF)"), std::string::npos)
        << bom.diagnostics[0].message_ja;
    auto comma = compile_text("enum 色 { 赤、青 }\n");  // not one value named 赤、青
    ASSERT_EQ(first_kind(comma), "syntax");
    EXPECT_NE(comma.diagnostics[0].message_ja.find("読点「、」"), std::string::npos) << comma.diagnostics[0].message_ja;
    auto end = compile_text("fact a : int\n)\n");
    ASSERT_EQ(first_kind(end), "syntax");
    EXPECT_EQ(end.diagnostics[0].message_ja.find("eoi"), std::string::npos) << end.diagnostics[0].message_ja;
}

TEST(Messages, SyntaxErrorsNameWhatWasExpectedNeverACxxType) {
    struct Case {
        char const* text;
        char const* expected;
    } const cases[] = {
        // was a mangled repeat_directive type
        {"fact a : int\nlet x =\n", "式 expression が必要ですが「ファイルの終わり」"},
        {"fact a : int\ndecision d : int = if a > 1 2 else 3\n", "\"then\" が必要ですが「2」"},
        {"fact a : date\ndecision d : date = a + 1 months round down\n", "\"clamp\" / \"up\" が必要"},
        {"fact a : int\ndecision d : int = match a { }\n", "match の枝 match arm が必要"},
        {"fact a : int\ndecision d : int = a\ntest \"t\" { given a = 1 expect }\n", "名前 = 値 name = value が必要"},
        {"export x = 1\n", "\"let\" が必要"},
    };
    for (auto const& c : cases) {
        auto r = compile_text(c.text);
        ASSERT_EQ(first_kind(r), "syntax") << c.text;
        EXPECT_NE(r.diagnostics[0].message_ja.find(c.expected), std::string::npos) << r.diagnostics[0].message_ja;
        EXPECT_EQ(r.diagnostics[0].message_en.find("boost"), std::string::npos) << r.diagnostics[0].message_en;
    }
}

TEST(Messages, AnImpossibleDateIsNamedInBothLanguages) {
    auto r = compile_text("fact q : date\ndecision d : bool = q < 2024-02-30\n");
    ASSERT_EQ(first_kind(r), "invalid-date");
    EXPECT_NE(r.diagnostics[0].message_ja.find("2024-02-30"), std::string::npos) << r.diagnostics[0].message_ja;
    EXPECT_NE(r.diagnostics[0].message_ja.find("29日まで"), std::string::npos);
    EXPECT_EQ(r.diagnostics[0].message_ja.find(" / "), std::string::npos);  // not a "ja / en" string
    EXPECT_NE(r.diagnostics[0].message_en.find("2024-02-30"), std::string::npos);
    auto p = parse_date("令和6年2月30日");
    EXPECT_NE(p.message.ja.find("令和6年2月30日"), std::string::npos);
    EXPECT_EQ(p.message.text(), p.message.ja + " / " + p.message.en);
}

TEST(Messages, DidYouMeanForEveryKindOfName) {
    std::string const base = "enum 色 { 赤, 青 }\nfact c : 色\nfact n : int\nparam p = 1\nfixture 基本 { n = 1 }\n"
                             "decision dd : int = n\n";
    auto suggest = [&](std::string text, char const* want) {
        auto r = compile_text(base + text);
        EXPECT_FALSE(r.ok()) << text;
        EXPECT_NE(all_en(r).find(std::string("did you mean '") + want + "'"), std::string::npos) << text << "\n"
                                                                                                 << all_en(r);
        EXPECT_NE(all_ja(r).find(std::string("「") + want + "」のことですか"), std::string::npos) << text;
    };
    suggest("test \"t\" { given n = 1 expect ddd = 1 }\n", "dd");           // after expect
    suggest("test \"t\" { given nn = 1 expect dd = 1 }\n", "n");            // after given
    suggest("test \"t\" uses 基準 { expect dd = 1 }\n", "基本");             // a fixture
    suggest("fact m : 色い\n", "色");                                       // a type
    suggest("decision e : date = month_edn(2024-01-01)\n", "month_end");   // a function
    suggest("decision e : int = match c { 赤い => 1, 青 => 2 }\n", "赤");    // a match pattern
    suggest("decision e : bool = c in {赤, 青い}\n", "青");                 // a set item
    suggest("decision e : int = n because \"{nn}\"\n", "n");               // a reason's {name}
    suggest("decision e : text = reason_of(ddd)\n", "dd");                 // reason_of
    suggest("asof nn\n", "n");                                             // asof
}

TEST(Messages, UnusedLetsParamsAndFactsAreWarnedByName) {
    auto r = compile_text("fact a : int\nfact unused_fact : int\nparam unused_param = 2\nlet dead = a + 1\n"
                          "let deader = dead + 1\nexport let asked_by_name = a * 2\ndecision d : int = a\n");
    ASSERT_TRUE(r.ok()) << format_diagnostics(r.diagnostics);  // warnings do not stop compilation
    EXPECT_FALSE(has_errors(r.diagnostics));
    std::vector<std::string> warned;
    for (auto const& d : r.diagnostics) {
        EXPECT_EQ(d.severity, Severity::warning);
        EXPECT_EQ(to_string(d.kind), "unused");
        warned.push_back(d.message_en.substr(0, d.message_en.find(" is used")));
    }
    EXPECT_EQ(warned,
              (std::vector<std::string>{"fact 'unused_fact'", "param 'unused_param'", "let 'dead'", "let 'deader'"}));
    EXPECT_NE(format_diagnostics(r.diagnostics).find("警告[未使用]"), std::string::npos);
    auto json = nlohmann::json::parse(diagnostics_json(r.diagnostics));
    EXPECT_EQ(json[0]["severity"], "warning");
    EXPECT_EQ(json[0]["kind"], "unused");
    EXPECT_EQ(json[0]["line"], 2);
    EXPECT_FALSE(json[0]["ja"].get<std::string>().empty());
    // Lets used only through reason texts and reason_of count as used.
    auto via_text = compile_text(
        "fact a : int\nlet shown = a + 1\nlet why = reason_of(d)\ndecision d : int = a because \"{shown}\"\n"
        "decision e : text = why\n");
    ASSERT_TRUE(via_text.ok()) << format_diagnostics(via_text.diagnostics);
    EXPECT_EQ(count_warnings(via_text.diagnostics), 0u) << format_diagnostics(via_text.diagnostics);
}

TEST(Messages, TheOfficialRulesUnusedLetIsFound) {
    // Issue 13 found `let 再照会できる区分` used by nothing in rules/30_reinquiry.rules. Issue 9 made reinquiry_allowed
    // use it, so the official rules have no unused let (rules.strict); a let of the same kind added to them and used
    // by nothing is named.
    std::vector<Diagnostic> io;
    auto sources = read_rule_sources(KYOTAKU_SOURCE_DIR "/rules", io);
    auto official_rules = compile(sources);
    ASSERT_TRUE(official_rules.ok());
    for (auto const& d : official_rules.diagnostics)
        EXPECT_NE(to_string(d.kind), "unused") << format_diagnostics(official_rules.diagnostics);
    sources.push_back({"extra.rules", "let 使われない区分 : set<診療区分> = {訪問診療, 往診}\n"});
    auto r = compile(sources);
    ASSERT_TRUE(r.ok());
    bool found = false;
    for (auto const& d : r.diagnostics)
        found =
            found || (d.kind == DiagnosticKind::unused && d.message_ja.find("「使われない区分」") != std::string::npos);
    EXPECT_TRUE(found) << format_diagnostics(r.diagnostics);
}

TEST(Format, EndOfLineCommentsStayOnTheirLine) {
    std::string const src =
        "param 初日の扱い = 初日不算入        # ← この一行を 初日算入 にすると、もう一つの読み方になる\n"
        "fact q : date  # 照会日\n"
        "decision d : bool {  # 見出し\n"
        "  when q < 2024-01-01 => true  # 古い\n"
        "    because \"古い\"  # 理由\n"
        "  otherwise => false # ほか\n"
        "}\n"
        "let m : int = match 初日の扱い {\n  初日不算入 => 1 # 一\n  初日算入 => 2\n}\n";
    auto f = format_source({"t.rules", src});
    ASSERT_TRUE(f.ok());
    EXPECT_EQ(f.text,
              "param 初日の扱い = 初日不算入  # ← この一行を 初日算入 にすると、もう一つの読み方になる\n"
              "fact q : date  # 照会日\n"
              "decision d : bool {  # 見出し\n"
              "  when q < 2024-01-01 => true  # 古い\n"
              "    because \"古い\"  # 理由\n"
              "  otherwise => false  # ほか\n"
              "}\n"
              "let m : int = match 初日の扱い {\n  初日不算入 => 1  # 一\n  初日算入 => 2\n}\n");
    auto again = format_source({"t.rules", f.text});
    EXPECT_EQ(again.text, f.text);
}

TEST(Format, LabelsAndExportLetRoundTrip) {
    std::string const src = "fact q \"照会日\" : date\nexport let 見せる \"ページに見せる値\" : bool = q < 2024-01-01\n"
                            "decision d \"古いか\" : bool = q < 2024-01-01\n";
    auto f = format_source({"t.rules", src});
    ASSERT_TRUE(f.ok()) << format_diagnostics(f.diagnostics);
    EXPECT_EQ(f.text, src);
    auto r = compile_text(src);
    ASSERT_TRUE(r.ok()) << format_diagnostics(r.diagnostics);
    EXPECT_EQ(r.program->facts[0].label, "照会日");
    EXPECT_EQ(r.program->slots[std::size_t(r.program->find_slot("d"))].label, "古いか");
    EXPECT_EQ(count_warnings(r.diagnostics), 0u);
}

// ---- explain ----------------------------------------------------------------------------------------------------

TEST(Explain, CompactShowsComparedValuesEachIntermediateValueOnceAndNamesForPeople) {
    auto r = compile_text(
        "asof q\nfact q \"照会日\" : date\nfact f \"初回\" : date\nlet 末日 = month_end(f)\n"
        "decision ok \"窓の中か\" : bool {\n  when q <= 末日 => true because \"{末日} まで\"\n  otherwise => false\n}\n"
        "decision again : bool = not ok and q > 末日\n");
    ASSERT_TRUE(r.ok()) << format_diagnostics(r.diagnostics);
    std::string const facts = R"({"id":"x","q":"2024-05-10","f":"2024-04-15"})";
    std::string const text = explain(r.program, facts);
    EXPECT_NE(text.find("■ 窓の中か (ok) = false"), std::string::npos) << text;
    EXPECT_NE(text.find("q〈令和6年5月10日 (2024-05-10)〉 <= 末日〈令和6年4月30日 (2024-04-30)〉 が偽"),
              std::string::npos)
        << text;
    // 末日 is computed for both decisions but listed once among the intermediate values.
    std::size_t first = text.find("末日 = 令和6年4月30日 (2024-04-30)"),
                second = text.find("末日 = 令和6年4月30日", first + 1);
    EXPECT_NE(first, std::string::npos) << text;
    EXPECT_EQ(second, std::string::npos) << text;
    EXPECT_EQ(text.find("条件が偽"), std::string::npos);
    std::string const full = explain(r.program, facts, nullptr, true);
    EXPECT_NE(full.find("条件が偽"), std::string::npos);  // --full keeps the long form
    EXPECT_NE(full.find("入力された事実"), std::string::npos);
}

TEST(Explain, OfficialCaseIsCompact) {
    std::string const facts =
        R"({"id":"late-claim","facility_kind":"医科","visit_kind":"訪問診療","first_visit":"2024-04-15",)"
        R"("query_date":"2024-09-10",)"
        R"("continuing_home_care":false,"reviewed_claim_months":["2024-04","2024-06","2024-07"],)"
        R"("terminal":"資格確認端末",)"
        R"("consented_items":["薬剤情報"],"requested_item":"薬剤情報","feature_enabled":true})";
    std::string const compact = explain(official(), facts), full = explain(official(), facts, nullptr, true);
    auto lines = [](std::string const& s) { return std::count(s.begin(), s.end(), '\n'); };
    // The official rules have 7 decisions (issue 9 added eligibility_available): about 12 lines each (the deciding
    // clause, the reason, the clauses passed over with their values; issue 24 added the clause 施設が行う区分), plus
    // the facts as input, one line each (issue 23: the facts by their Japanese names, dates in 和暦): a fixed bound;
    // the long form is half as long again.
    EXPECT_EQ(std::count_if(official()->slots.begin(), official()->slots.end(),
                            [](SlotInfo const& s) { return s.decision; }),
              7);
    EXPECT_LT(lines(compact), 90 + 1 + long(official()->facts.size())) << compact;
    EXPECT_LT(lines(compact) * 3, lines(full) * 2);
    EXPECT_NE(compact.find(
                  "query_date〈令和6年9月10日 (2024-09-10)〉 <= window_end〈令和6年7月31日 (2024-07-31)〉 が偽"),
              std::string::npos)
        << compact;
}

// ---- the evaluator API: stale answers are impossible ------------------------------------------------------------

TEST(Evaluator, ChangingTheSameActivationGivesTheNewAnswer) {
    auto r = compile_text("fact n : int\nlet twice = n * 2\ndecision d : int = twice + 1\n");
    ASSERT_TRUE(r.ok());
    Evaluator ev(r.program);
    Activation facts(*r.program);
    auto const d = std::uint32_t(r.program->find_slot("d"));
    facts.set_int("n", 1);
    ev.begin(facts);
    EXPECT_EQ(ev.evaluate_slot(facts, d).value, 3);
    facts.set_int("n", 10);  // the same Activation, changed: no begin()
    EXPECT_EQ(ev.evaluate_slot(facts, d).value, 21);
    facts.clear();
    EXPECT_EQ(ev.evaluate_slot(facts, d).status, Status::missing_facts);
}

TEST(Evaluator, ANewActivationAtTheSameAddressIsANewRecord) {
    auto r = compile_text("fact n : int\ndecision d : int = n + 1\n");
    ASSERT_TRUE(r.ok());
    Evaluator ev(r.program);
    alignas(Activation) unsigned char storage[sizeof(Activation)];
    for (int i = 0; i < 3; ++i) {
        auto* facts = new (storage) Activation(*r.program);  // exactly the same address every time
        facts->set_int("n", i * 100);
        EXPECT_EQ(ev.evaluate_slot(*facts, 0).value, i * 100 + 1);
        facts->~Activation();
    }
}

TEST(Evaluator, ChangingAParamForgetsMemoisedValues) {
    auto r = compile_text("fact n : int\nparam k = 2\nlet scaled = n * k\ndecision d : int = scaled\n");
    ASSERT_TRUE(r.ok());
    Evaluator ev(r.program);
    Activation facts(*r.program);
    facts.set_int("n", 5);
    EXPECT_EQ(ev.evaluate_slot(facts, std::uint32_t(r.program->find_slot("d"))).value, 10);
    ev.set_param(0, 3);
    EXPECT_EQ(ev.evaluate_slot(facts, std::uint32_t(r.program->find_slot("d"))).value, 15);
}

// ---- kyotaku eval: the id is echoed wherever it stands ----------------------------------------------------------

TEST(Jsonl, TheIdIsEchoedWhenItComesAfterTheFaultyField) {
    JsonlEvaluator ev(official());
    std::string out;
    ev.answer_line(R"({"first_visit":"2024-02-30","id":"after"})", out);
    ev.answer_line(R"({"visit_kind":"往診X","id":42})", out);
    ev.answer_line(R"({"id":"before","first_visit":"2024-02-30"})", out);
    ev.answer_line(R"({"first_visit":"2024-02-30","id":{"x":1}})", out);  // a bad id stays null
    EXPECT_EQ(
        out.substr(0, out.find('\n')),
        R"j({"id":"after","error":"field first_visit: 存在しない日付です: 2024-02-30 (2024年2月は29日まで) / no such )j"
        R"j(day: 2024-02-30 (that month has 29 days)"})j");
    EXPECT_NE(out.find(R"({"id":42,"error":"field visit_kind)"), std::string::npos) << out;
    EXPECT_NE(out.find(R"({"id":"before","error")"), std::string::npos);
    EXPECT_NE(out.find(R"({"id":null,"error":"field first_visit)"), std::string::npos);
}

// ---- the bundle validator proves the code well-formed -----------------------------------------------------------

namespace {
// The official program with one change, saved and loaded again: the loader's answer.
template <typename F>
std::string load_altered(F&& alter) {
    Program p = *official();
    alter(p);
    auto r = load_bundle(save_bundle(p));
    return r.program ? std::string() : r.describe();
}
std::uint32_t slot_end(Program const& p, std::uint32_t s) {
    std::uint32_t end = std::uint32_t(p.code.size());
    for (auto const& o : p.slots)
        if (o.entry > p.slots[s].entry && o.entry < end) end = o.entry;
    return end;
}
}  // namespace

TEST(BundleValidator, AcceptsTheOfficialProgram) { EXPECT_EQ(load_altered([](Program&) {}), ""); }

TEST(BundleValidator, RefusesCodeThatDoesNotEndInAReturn) {
    // The last slot's final RET removed: its last path would run off the end of the code. (A program without jumps,
    // so that no jump target moves out of range and the end of the code is what the validator finds.)
    auto small = compile_text("fact n : int\ndecision d : int = n + 1\n");
    ASSERT_TRUE(small.ok());
    Program p = *small.program;
    ASSERT_EQ(p.code.back().op, Op::RET);
    p.code.pop_back();
    auto r = load_bundle(save_bundle(p));
    std::string e = r.program ? std::string() : r.describe();
    EXPECT_NE(e.find("without a return"), std::string::npos) << e;
    // The same on the official program: refused (its last jumps now point past the end, which is found first).
    EXPECT_FALSE(load_altered([](Program& p) { p.code.pop_back(); }).empty());
    // A return turned into a no-op inside the code: the path falls into the next slot's function.
    e = load_altered([](Program& p) {
        std::uint32_t const end = slot_end(p, 0);
        p.code[end - 1] = Instr{Op::MOV, p.slots[0].result_reg, p.slots[0].result_reg, 0, 0};
    });
    EXPECT_FALSE(e.empty());
}

TEST(BundleValidator, RefusesJumpsOutsideTheirFunction) {
    std::string e = load_altered([](Program& p) {
        for (std::size_t pc = 0; pc < p.code.size(); ++pc)
            if (op_info(p.code[pc].op).operands[3] == OperandKind::jump) {
                p.code[pc].d = std::int32_t(p.code.size() - 1);  // forward, but into another slot's code
                break;
            }
    });
    EXPECT_NE(e.find("operand d"), std::string::npos) << e;
}

TEST(BundleValidator, RefusesReadingARegisterNoPathWrote) {
    std::string e = load_altered([](Program& p) {
        // The first instruction of the first slot reads its own result register, which nothing has written yet
        // (the evaluator would answer with whatever the previous record left there).
        auto const r = std::uint16_t(p.slots[0].result_reg);
        p.code[p.slots[0].entry] = Instr{Op::MOV, r, r, 0, 0};
    });
    EXPECT_NE(e.find("operand b of MOV"), std::string::npos) << e;
}

TEST(BundleValidator, RefusesAReturnForAnotherSlotAndCallCycles) {
    std::string e = load_altered([](Program& p) {
        for (auto& i : p.code)
            if (i.op == Op::RETK || i.op == Op::RET) {
                i.a = std::uint16_t((i.a + 1) % p.slots.size());
                break;
            }
    });
    EXPECT_NE(e.find("operand a of RET"), std::string::npos) << e;
    e = load_altered([](Program& p) {
        // A slot that calls itself (reinquiry_allowed's call of service_available, turned round).
        auto const s = std::uint32_t(p.find_slot("reinquiry_allowed"));
        for (std::uint32_t pc = p.slots[s].entry; pc < slot_end(p, s); ++pc)
            if (p.code[pc].op == Op::SLOT) {
                p.code[pc].b = std::uint16_t(s);
                break;
            }
    });
    EXPECT_NE(e.find("cycle"), std::string::npos) << e;
}

TEST(BundleValidator, TheOpcodeTableNamesEveryInstruction) {
    std::string const listing = official()->disassemble();
    for (std::size_t op = 0; op < op_count; ++op) EXPECT_NE(op_table[op].name, nullptr);
    EXPECT_NE(listing.find("RETK"), std::string::npos);
    EXPECT_NE(listing.find("fact:visit_kind"), std::string::npos) << listing.substr(0, 400);
    EXPECT_NE(listing.find("clause:"), std::string::npos);
}
