// Bundles, the JSON Lines contract, formatting, explain.
#include "kyotaku/engine.hpp"
#include "kyotaku/jsonl.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>


using namespace kyotaku;

namespace {
std::shared_ptr<Program const> official() {
    static auto r = compile_directory(KYOTAKU_SOURCE_DIR "/rules");
    EXPECT_TRUE(r.ok()) << format_diagnostics(r.diagnostics);
    return r.program;
}

std::string answer(std::string const& line) {
    JsonlEvaluator ev(official());
    std::string out;
    ev.answer_line(line, out);
    return out;
}

constexpr char const* good =
    R"({"id":"a","facility_kind":"医科","visit_kind":"訪問診療","first_visit":"2024-04-15","query_date":"2024-07-31",)"
    R"("continuing_home_care":false,"reviewed_claim_months":[],"terminal":"資格確認端末",)"
    R"("consented_items":["薬剤情報"],)"
    R"("requested_item":"薬剤情報","feature_enabled":true})";
}  // namespace

TEST(Bundle, RoundTripGivesTheSameAnswers) {
    auto p = official();
    std::string bytes = save_bundle(*p);
    auto loaded = load_bundle(bytes, p->source_hash);
    ASSERT_TRUE(loaded.program) << loaded.describe();
    JsonlEvaluator a(p), b(loaded.program);
    std::string oa, ob;
    a.answer_line(good, oa);
    b.answer_line(good, ob);
    EXPECT_EQ(oa, ob);
    EXPECT_EQ(run_tests(loaded.program).failed, 0);
    EXPECT_GT(run_tests(loaded.program).passed, 30);
}

// The source hash names the rules, not where they were read from: servers compare it across machines, each with
// its own install path (operator walkthrough: /usr/share/kyotaku/rules and a symlink gave different hashes).
TEST(Bundle, TheSourceHashDoesNotDependOnTheFolder) {
    namespace fs = std::filesystem;
    fs::path const scratch = fs::temp_directory_path() / ("kyotaku-hash-" + std::to_string(::getpid()));
    fs::create_directories(scratch / "one");
    fs::create_directories(scratch / "two" / "deeper");
    fs::copy(KYOTAKU_SOURCE_DIR "/rules", scratch / "one" / "rules", fs::copy_options::recursive);
    fs::copy(KYOTAKU_SOURCE_DIR "/rules", scratch / "two" / "deeper" / "rules-v1", fs::copy_options::recursive);
    auto a = compile_directory((scratch / "one" / "rules").string());
    auto b = compile_directory((scratch / "two" / "deeper" / "rules-v1").string());
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(a.program->source_hash, b.program->source_hash);
    EXPECT_EQ(a.program->source_hash, official()->source_hash);
    // A change of a file still changes it.
    std::ofstream(scratch / "two" / "deeper" / "rules-v1" / "00_facts.rules", std::ios::app) << "\n# a comment\n";
    auto c = compile_directory((scratch / "two" / "deeper" / "rules-v1").string());
    ASSERT_TRUE(c.ok());
    EXPECT_NE(c.program->source_hash, a.program->source_hash);
    fs::remove_all(scratch);
}

// Reasons, explanations and bundles name a rule file relative to the rule folder: a server's disk layout never
// reaches an answer or the public /web/rules.bundle (issue 24 item 10). Files in a subfolder keep that subfolder.
TEST(Bundle, RuleFilesAreNamedRelativeToTheRuleFolder) {
    auto p = official();
    EXPECT_EQ(save_bundle(*p).find(KYOTAKU_SOURCE_DIR), std::string::npos);
    EXPECT_NE(std::find(p->files.begin(), p->files.end(), "30_reinquiry.rules"), p->files.end());
    EXPECT_NE(std::find(p->files.begin(), p->files.end(), "tests/reinquiry_test.rules"), p->files.end());
    std::string out = answer(good);
    EXPECT_NE(out.find("(30_reinquiry.rules:"), std::string::npos) << out;
    // One file on its own is named by its file name.
    std::vector<Diagnostic> errors;
    auto one = read_rule_sources(KYOTAKU_SOURCE_DIR "/rules/20_window.rules", errors);
    ASSERT_EQ(one.size(), 1u);
    EXPECT_EQ(one[0].name, "20_window.rules");
}

TEST(Bundle, RefusesMismatchesWithAClearMessage) {
    auto p = official();
    std::string bytes = save_bundle(*p);
    auto stale = load_bundle(bytes, p->source_hash + 1);
    EXPECT_FALSE(stale.program);
    EXPECT_NE(stale.message.text().find("source hash mismatch"), std::string::npos);

    std::string damaged = bytes;
    damaged[damaged.size() - 10] ^= 0x5a;
    auto d = load_bundle(damaged);
    EXPECT_FALSE(d.program);
    EXPECT_NE(d.message.text().find("damaged"), std::string::npos);

    std::string other_format = bytes;
    other_format[12] = char(99);  // the first byte of the format version, after the magic and the header size
    auto f = load_bundle(other_format);
    EXPECT_FALSE(f.program);
    EXPECT_NE(f.message.text().find("format version 99"), std::string::npos);

    EXPECT_NE(load_bundle("garbage").message.text().find("not a kyotaku bundle"), std::string::npos);
    EXPECT_FALSE(load_bundle(bytes.substr(0, bytes.size() / 2)).program);  // truncated: an error, not a crash
}

TEST(Jsonl, AnswersTheContractNames) {
    std::string out = answer(good);
    for (char const* k : {"\"id\":\"a\"", "\"service_available\":true", "\"window_end\":\"2024-07-31\"",
                          "\"reinquiry_allowed\":true", "\"medical_info_viewable\":true",
                          "\"identity_methods\":[\"暗証番号\"]", "\"reason\":\""})
        EXPECT_NE(out.find(k), std::string::npos) << k << " in " << out;
    EXPECT_EQ(out.back(), '\n');
}

TEST(Jsonl, BadLinesNameTheField) {
    EXPECT_NE(answer(R"({"id":"x","visit_kind":"散歩"})").find("field visit_kind"), std::string::npos);
    EXPECT_NE(answer(R"({"id":"x","first_visit":"2024-02-30"})").find("field first_visit"), std::string::npos);
    EXPECT_NE(answer(R"({"id":"x","feature_enabled":"yes"})").find("field feature_enabled"), std::string::npos);
    EXPECT_NE(answer(R"({"id":"x","reviewed_claim_months":["1999-12"]})").find("field reviewed_claim_months"),
              std::string::npos);
    EXPECT_NE(answer(R"({"id":"x","consented_items":["手術情報", 3]})").find("field consented_items"),
              std::string::npos);
    std::string broken = answer("{\"id\":\"x\", broken");
    EXPECT_NE(broken.find("\"error\""), std::string::npos);
    EXPECT_NE(answer("[1,2]").find("\"id\":null,\"error\""), std::string::npos);
    EXPECT_EQ(answer("   "), "");
    EXPECT_NE(answer(R"({"id":12,"first_visit":"令和6年4月15日"})").find("\"window_end\":\"2024-07-31\""),
              std::string::npos);
}

// Nothing but blanks may follow a line's object: a second object, a stray brace or a word after it is refused
// naming the trailing content (before, only the last byte was looked at: `{"id":"c"} x}` and `{..} {..}` were
// answered as their first object), whichever reader reads the line.
TEST(Jsonl, ALineIsOneObjectAndNothingAfterIt) {
    for (std::string const line : {R"({"id":"c","first_visit":"2024-04-15"} x})", R"({"id":"c"}})",
                                   R"({"id":"c"} {"first_visit":"2024-04-15"})"}) {
        std::string out = answer(line);
        EXPECT_NE(out.find("\"id\":\"c\",\"error\""), std::string::npos) << line << " -> " << out;
        EXPECT_NE(out.find("trailing content"), std::string::npos) << line << " -> " << out;
    }
    // A line whose last token is no closing brace is no object (as before).
    for (std::string const line : {R"({"id":"c"} 1)", R"({"id":"c"} "x")", R"({"id":"c"}[])"})
        EXPECT_NE(answer(line).find("\"error\""), std::string::npos) << line;
    EXPECT_EQ(answer("{\"id\":\"c\",\"first_visit\":\"2024-04-15\"} \t \r").find("error"), std::string::npos);
}

// Names and values written with JSON escapes read as the same text as written plainly (the reader takes a string's
// bytes straight from the line only when it has no escape).
TEST(Jsonl, EscapedNamesAndValuesReadAsThemselves) {
    std::string escaped = good;
    auto replace = [&](std::string const& from, std::string const& to) {
        auto at = escaped.find(from);
        ASSERT_NE(at, std::string::npos) << from;
        escaped.replace(at, from.size(), to);
    };
    replace(R"("facility_kind":"医科")", R"("facility\u005fkind":"\u533b\u79d1")");
    replace(R"("consented_items":["薬剤情報"])", R"("consented_items":["\u85ac剤情報"])");
    replace(R"("first_visit":"2024-04-15")", R"("first_visit":"2024\u002d04-15")");
    replace(R"("id":"a")", R"("id":"a\"\\\u0001\t")");
    std::string const plain = answer(good), out = answer(escaped);
    ASSERT_EQ(out.find("\"error\""), std::string::npos) << out;
    EXPECT_EQ(out.substr(out.find(",\"service_available\"")), plain.substr(plain.find(",\"service_available\"")))
        << out;
    EXPECT_EQ(out.rfind(R"({"id":"a\"\\\u0001\t",)", 0), 0u) << out;
    EXPECT_NE(answer(R"({"id":"x","visit_kind":"\u5f80\u8a3aX"})").find("不明な値「往診X」"), std::string::npos);
    EXPECT_NE(answer(R"({"id":"x","visit_kind":"\uZZZZ"})").find("field visit_kind"), std::string::npos);
}

// The reader keeps the days of the dates it read last (a fixed table, by a hash of the spelling): thousands of days,
// so that spellings share slots and take them over, read twice and in turn, each answer the calendar's own.
TEST(Jsonl, DatesReadAgainAreTheirOwnDays) {
    auto const p = official();
    JsonlEvaluator reader(p);
    Activation facts(*p);
    int const first = p->find_fact("first_visit"), query = p->find_fact("query_date");
    std::int64_t const from = Date::from_ymd(2019, 1, 1)->days();
    for (int pass = 0; pass < 2; ++pass)
        for (std::int64_t d = from; d < from + 3000; d += 1 + pass) {
            std::string const a = Date::from_days(d).iso(), b = Date::from_days(from + 4000 - d).iso();
            std::string id;
            ASSERT_EQ(reader.read_facts(R"({"first_visit":")" + a + R"(","query_date":")" + b + "\"}", facts, id), "");
            ASSERT_EQ(facts.raw(first), d) << a;
            ASSERT_EQ(facts.raw(query), from + 4000 - d) << b;
        }
    // A date that is none is refused however often a real one was read before it.
    std::string id;
    EXPECT_NE(reader.read_facts(R"({"first_visit":"2024-02-30"})", facts, id).find("field first_visit"),
              std::string::npos);
}

// Strings are escaped wherever the byte to escape stands (the writer looks at eight bytes at a time).
TEST(Jsonl, WritesEveryByteThatNeedsAnEscape) {
    for (std::size_t at = 0; at <= 18; ++at)
        for (char c : {'"', '\\', '\n', '\x01', '\x1f'}) {
            std::string text = "ああああああ";  // 18 bytes of UTF-8, none to escape
            text.insert(at, 1, c);
            std::string out;
            append_json_string(out, text);
            std::string const esc = c == '"'      ? "\\\""
                                    : c == '\\'   ? "\\\\"
                                    : c == '\n'   ? "\\n"
                                    : c == '\x01' ? "\\u0001"
                                                  : "\\u001f";
            EXPECT_EQ(out, "\"" + text.substr(0, at) + esc + text.substr(at + 1) + "\"") << at;
        }
    std::string out;
    append_json_string(out, "\x7f\xe3\x81\x82 ~");
    EXPECT_EQ(out, "\"\x7f\xe3\x81\x82 ~\"");
}

TEST(Jsonl, MissingFactsAreNamedNotGuessed) {
    std::string out = answer(R"({"id":"m","query_date":"2024-05-01"})");
    EXPECT_NE(out.find("\"window_end\":null"), std::string::npos);
    EXPECT_NE(out.find("\"missing\":{"), std::string::npos);
    EXPECT_NE(out.find("\"window_end\":[\"first_visit\"]"), std::string::npos) << out;
}

TEST(Format, OfficialRulesAreCanonicalAndFormattingIsIdempotent) {
    std::vector<Diagnostic> diags;
    for (auto const& src : read_rule_sources(KYOTAKU_SOURCE_DIR "/rules", diags)) {
        auto once = format_source(src);
        ASSERT_TRUE(once.ok()) << src.path;
        EXPECT_EQ(once.text, src.text) << src.path << " is not in canonical format (run kyotaku fmt -w rules)";
        auto twice = format_source(SourceFile{src.path, once.text});
        EXPECT_EQ(twice.text, once.text) << src.path;
    }
}

TEST(Format, NormalisesLayoutAndKeepsComments) {
    std::string messy = "# head\nfact   a:int\n\n\n# about d\ndecision d:int{when a>1=>(a+1)*2 because \"x\" # "
                        "trailing\notherwise=>0}\n";
    auto r = format_source(SourceFile{"m.rules", messy});
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.text,
              "# head\nfact a : int\n\n# about d\ndecision d : int {\n  when a > 1 => (a + 1) * 2\n    because \"x\"  "
              "# trailing\n"
              "  otherwise => 0\n}\n");  // an end-of-line comment stays at the end of its line
    EXPECT_EQ(format_source(SourceFile{"m.rules", r.text}).text, r.text);
}

TEST(Explain, ShowsTheDecidingLineWhyNotAndIntermediateDates) {
    std::string text = explain(official(), good);
    EXPECT_NE(text.find("■ 再照会できるか (reinquiry_allowed) = true"), std::string::npos) << text;
    // The rule file is named relative to the rule folder: no path of the machine that loaded it (issue 24 item 10).
    EXPECT_NE(text.find("決め手 30_reinquiry.rules:"), std::string::npos) << text;
    EXPECT_EQ(text.find(KYOTAKU_SOURCE_DIR), std::string::npos) << text;
    EXPECT_NE(text.find("見送り :"), std::string::npos);
    // Dates in 和暦 with ISO in brackets, facts by their names for people.
    auto a = text.find("起算日 = 令和6年4月16日 (2024-04-16)"), b = text.find("満了日 = 令和6年7月15日 (2024-07-15)"),
         c = text.find("窓の末日 = 令和6年7月31日 (2024-07-31)");
    EXPECT_NE(text.find("初回訪問日 (first_visit): 令和6年4月15日 (2024-04-15)"), std::string::npos) << text;
    ASSERT_NE(a, std::string::npos);
    EXPECT_LT(a, b);
    EXPECT_LT(b, c);
}

// Issue 23, "What fails today" 4: a misspelt key was dropped silently (the answers became null with "missing").
TEST(Jsonl, AKeyThatIsNoFactIsAnErrorNamingTheNearestFact) {
    JsonlEvaluator ev(official());
    std::string out;
    ev.answer_line(R"({"id":"typo","facility_kind":"医科","reviewed_claims_months":["2024-04"]})", out);
    EXPECT_NE(
        out.find(
            R"("error":"field reviewed_claims_months: このルールにない項目です )"
            R"((「reviewed_claim_months」のことですか?))"),
        std::string::npos)
        << out;
    EXPECT_EQ(out.find("\"missing\""), std::string::npos);
    out.clear();
    ev.answer_line(R"({"id":"far","zzz":1})", out);
    EXPECT_NE(out.find("field zzz: このルールにない項目です / not a fact of these rules\""), std::string::npos) << out;
    // The same in explain, and an id-less case is headed as such.
    EXPECT_NE(explain(official(), R"({"reviewed_claims_months":[]})").find("「reviewed_claim_months」のことですか"),
              std::string::npos);
    EXPECT_EQ(explain(official(), R"({"facility_kind":"医科"})").rfind("事例 (id なし)", 0), 0u);
}

// `run` answers a stream in blocks of lines (on one thread or two): every line must be answered as that line alone
// — two objects on a line, an object over two lines, a line that is no object, bad bytes —, whether a block holds
// bytes that fail simdjson's stage 1 or not. (A reader of whole blocks with one stage 1, iterate_many, must pass
// this too: see docs/performance.md.)
TEST(Jsonl, ABlockOfLinesIsAnsweredAsEachLineAlone) {
    std::string const g = good;
    std::string const id = "\"id\":\"a\"";
    std::size_t const cut = g.find(',') + 1;  // between two fields: no string is cut (stage 1 would refuse it)
    std::vector<std::string> hostile = {"",
                                        "  \t\r",
                                        g + g,
                                        g + " {}",
                                        g + "}",
                                        g + " x",
                                        "{",
                                        "}",
                                        "[1,2]",
                                        "x",
                                        g + "\r",
                                        "  " + g + "  ",
                                        g.substr(0, cut) + "\n" + g.substr(cut),  // an object over two lines
                                        g.substr(0, g.size() - 1),
                                        R"({"id":"e\"x","id":"dup"})",
                                        R"({"id":null,"visit_kind":"散歩"})",
                                        "{}",
                                        "{\"id\":\"a\"}\n{\"id\":\"b\"}"};
    // Bytes that fail stage 1 for the whole block (it is then read line by line): an unclosed string, a control
    // character or bad UTF-8 in a string.
    std::vector<std::string> const breaking = {"\"abc", g.substr(0, 100) + "\x01" + g.substr(100),
                                               g.substr(0, 60) + "\xff" + g.substr(60)};
    for (bool bad_utf8 : {false, true}) {
        for (bool final_newline : {true, false}) {
            std::string input;
            for (int i = 0; i < 3000; ++i) {
                std::string line = g;
                line.replace(line.find(id), id.size(), "\"id\":\"l" + std::to_string(i) + "\"");
                input += line + "\n";
                if (i % 7 == 0) input += hostile[std::size_t(i / 7) % hostile.size()] + "\n";
                if (bad_utf8 && i % 1000 == 999) input += breaking[std::size_t(i / 1000)] + "\n";
            }
            input += g.substr(0, cut);  // a cut last line
            if (final_newline) input += "\n";
            std::string expected;
            {
                JsonlEvaluator ev(official());
                std::size_t at = 0;
                while (at < input.size()) {
                    std::size_t nl = input.find('\n', at);
                    if (nl == std::string::npos) nl = input.size();
                    ev.answer_line(std::string_view(input).substr(at, nl - at), expected);
                    at = nl + 1;
                }
            }
            for (unsigned threads : {1u, 2u}) {
                JsonlEvaluator ev(official());
                std::FILE* in = fmemopen(input.data(), input.size(), "r");
                char* buf = nullptr;
                std::size_t size = 0;
                std::FILE* out = open_memstream(&buf, &size);
                ASSERT_TRUE(in && out);
                ev.run(in, out, threads);
                std::fclose(in);
                std::fclose(out);
                std::string got(buf, size);
                std::free(buf);
                EXPECT_EQ(got, expected) << "bad_utf8 " << bad_utf8 << " final_newline " << final_newline
                                         << " threads " << threads;
                EXPECT_NE(got.find("\"id\":\"l2999\""), std::string::npos);
            }
        }
    }
}
