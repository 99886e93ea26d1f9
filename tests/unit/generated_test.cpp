// Rules compiled ahead of time into C++ (`kyotaku compile --emit-cpp`, built from the official rules by the build)
// decide exactly as the Evaluator: every slot (decisions and lets) of 20,000 varied records, including records
// with missing facts and dates on both sides of every 施行日, gives the same status, value, clause, version and
// missing facts, one slot at a time and every output decision in one call. A second rule set (the official rules
// with 窓の月数 = 4, generated with --namespace acme::rules_next) links into the same program. `kyotaku eval`'s
// writer (JsonlEvaluator) answers JSON Lines with the compiled rules byte for byte as with the interpreter,
// reasons with their values included, and with several threads byte for byte as with one. Label `engine`.
#include "kyotaku/diff.hpp"
#include "kyotaku/engine.hpp"
#include "kyotaku/generated.hpp"
#include "kyotaku/jsonl.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <random>

namespace kyotaku {
extern GeneratedRules const generated_rules;
}
namespace acme::rules_next {
extern kyotaku::GeneratedRules const generated_rules;
}

using namespace kyotaku;

namespace {
std::shared_ptr<Program const> official() {
    static auto c = compile_directory(KYOTAKU_SOURCE_DIR "/rules");
    return c.program;
}

std::vector<std::int64_t> default_params(Program const& p) {
    std::vector<std::int64_t> params;
    for (auto const& param : p.params) params.push_back(param.value);
    return params;
}

void expect_same(Program const& p, std::uint32_t s, Outcome const& vm, Outcome const& gen, std::size_t record) {
    ASSERT_EQ(int(vm.status), int(gen.status)) << p.slots[s].name << " record " << record;
    if (vm.status == Status::ok) {
        ASSERT_EQ(vm.value, gen.value) << p.slots[s].name << " record " << record;
        ASSERT_EQ(vm.clause, gen.clause) << p.slots[s].name << " record " << record;
        ASSERT_EQ(vm.version, gen.version) << p.slots[s].name << " record " << record;
    } else {
        ASSERT_EQ(vm.missing, gen.missing) << p.slots[s].name << " record " << record;
        if (vm.status == Status::no_version) {
            ASSERT_EQ(vm.failed_slot, gen.failed_slot) << p.slots[s].name << " record " << record;
        }
    }
}

std::vector<Activation> corpus(Program const& p, int n) {
    std::mt19937_64 rng(20241001);
    auto pick = [&](std::size_t k) { return std::size_t(rng() % k); };
    std::int64_t const from = Date::from_ymd(2023, 9, 1)->days(), span = 3 * 365;
    std::vector<Activation> out;
    for (int i = 0; i < n; ++i) {
        Activation a(p);
        for (std::size_t f = 0; f < p.facts.size(); ++f) {
            auto const& fact = p.facts[f];
            if (pick(25) == 0) {  // absent: decisions that need it are null
                a.unset(int(f));
                continue;
            }
            switch (fact.type.kind) {
                case TypeKind::Bool: a.set_raw(int(f), std::int64_t(pick(2))); break;
                case TypeKind::Int: a.set_raw(int(f), std::int64_t(pick(10))); break;
                case TypeKind::Date: a.set_raw(int(f), from + std::int64_t(pick(std::size_t(span)))); break;
                case TypeKind::Month:
                    a.set_raw(int(f), Month::of(Date::from_days(from)).index() + std::int64_t(pick(36)));
                    break;
                case TypeKind::Enum:
                    a.set_raw(int(f), std::int64_t(pick(p.enums[std::size_t(fact.type.enum_id)].values.size())));
                    break;
                case TypeKind::EnumSet:
                    a.set_raw(int(f), std::int64_t(rng() & ((std::uint64_t(1)
                                                             << p.enums[std::size_t(fact.type.enum_id)].values.size()) -
                                                            1)));
                    break;
                case TypeKind::MonthSet: {
                    auto& bits = a.month_set(int(f));
                    std::int64_t const m0 = Month::of(Date::from_days(from)).index();
                    for (int m = 0; m < 36; ++m)
                        if (pick(6) != 0) bits.set(m0 + m);
                    break;
                }
                default: break;
            }
        }
        out.push_back(std::move(a));
    }
    return out;
}
}  // namespace

TEST(GeneratedRules, MatchTheProgramTheyWereGeneratedFrom) {
    auto p = official();
    ASSERT_TRUE(p);
    EXPECT_TRUE(generated_rules.matches(*p));
    Program other = *p;
    other.source_hash ^= 1;
    EXPECT_FALSE(generated_rules.matches(other)) << "a changed rule set must be noticed";
}

TEST(GeneratedRules, DecideExactlyAsTheEvaluator) {
    auto p = official();
    auto const records = corpus(*p, 20000);
    Evaluator ev(p);
    auto const params = default_params(*p);
    std::size_t compared = 0, nulls = 0;
    for (std::uint32_t s = 0; s < p->slots.size(); ++s) {
        std::vector<Outcome> vm(records.size()), gen(records.size());
        ev.evaluate_slot_batch(records, s, vm);
        generated_rules.evaluate_slot_batch(records, params.data(), s, gen);
        for (std::size_t i = 0; i < records.size(); ++i) {
            ASSERT_NO_FATAL_FAILURE(expect_same(*p, s, vm[i], gen[i], i));
            nulls += vm[i].status != Status::ok;
            Outcome one;
            generated_rules.evaluate_slot(records[i], params.data(), s, one);
            ASSERT_EQ(int(one.status), int(gen[i].status));
            ASSERT_EQ(one.value, gen[i].value);
            ++compared;
        }
    }
    EXPECT_GT(nulls, 1000u) << "the corpus must exercise missing facts";
    EXPECT_EQ(compared, records.size() * p->slots.size());
}

TEST(GeneratedRules, EveryDecisionInOneCallAsTheEvaluator) {
    auto p = official();
    auto const records = corpus(*p, 20000);
    auto const params = default_params(*p);
    Evaluator ev(p);
    std::size_t const n = p->outputs.size();
    ASSERT_EQ(generated_rules.num_outputs, n);
    for (std::size_t o = 0; o < n; ++o) ASSERT_EQ(generated_rules.outputs[o], p->outputs[o]);
    std::vector<Outcome> batch(records.size() * n), one(n);
    generated_rules.evaluate_batch(records, params.data(), batch);
    std::size_t nulls = 0;
    for (std::size_t i = 0; i < records.size(); ++i) {
        ev.evaluate(records[i]);
        generated_rules.evaluate(records[i], params.data(), one.data());
        for (std::size_t o = 0; o < n; ++o) {
            ASSERT_NO_FATAL_FAILURE(expect_same(*p, p->outputs[o], ev.outcome(o), batch[i * n + o], i));
            ASSERT_NO_FATAL_FAILURE(expect_same(*p, p->outputs[o], ev.outcome(o), one[o], i));
            nulls += ev.outcome(o).status != Status::ok;
        }
    }
    EXPECT_GT(nulls, 1000u) << "the corpus must exercise missing facts";
    // A results span too short for a record's outcomes leaves that record out instead of writing past the end.
    std::vector<Outcome> short_results(n + n / 2);
    short_results[n].value = 12345;
    generated_rules.evaluate_batch(std::span(records).first(2), params.data(), short_results);
    EXPECT_EQ(short_results[n].value, 12345);
}

TEST(GeneratedRules, TwoRuleSetsInOneProgram) {
    auto p = official();
    auto next = compile_directory(KYOTAKU_RULES_NEXT_DIR);
    ASSERT_TRUE(next.ok()) << format_diagnostics(next.diagnostics);
    auto const& q = *next.program;
    EXPECT_TRUE(acme::rules_next::generated_rules.matches(q));
    EXPECT_FALSE(acme::rules_next::generated_rules.matches(*p));
    EXPECT_FALSE(generated_rules.matches(q));
    auto const slot = std::uint32_t(p->find_slot("window_end"));
    ASSERT_EQ(slot, std::uint32_t(q.find_slot("window_end")));
    Activation a(*p), b(q);
    for (Activation* f : {&a, &b}) {
        f->set_enum("facility_kind", "医科");
        f->set_date("first_visit", *Date::from_ymd(2024, 4, 15));
        f->set_date("query_date", *Date::from_ymd(2024, 9, 10));
    }
    auto const pa = default_params(*p), pq = default_params(q);
    Outcome now, later;
    generated_rules.evaluate_slot(a, pa.data(), slot, now);
    acme::rules_next::generated_rules.evaluate_slot(b, pq.data(), slot, later);
    ASSERT_EQ(now.status, Status::ok);
    ASSERT_EQ(later.status, Status::ok);
    EXPECT_EQ(Date::from_days(now.value).iso(), "2024-07-31");    // 3 months
    EXPECT_EQ(Date::from_days(later.value).iso(), "2024-08-31");  // 窓の月数 = 4
    Evaluator ev(next.program);
    EXPECT_EQ(ev.evaluate_slot(b, slot).value, later.value);
}

namespace {
std::vector<std::string> jsonl_corpus(Program const& p) {
    std::vector<std::string> lines;
    // The diff's generated corpus (every enum value, absent facts, dates around every boundary and month end) …
    generate_corpus(p, p, 20000, 26, [&](std::string_view line) { lines.emplace_back(line); });
    // … the sample lines, and lines that are errors, null decisions or dates before every version.
    std::ifstream sample(KYOTAKU_SOURCE_DIR "/tests/data/eval_sample.jsonl");
    for (std::string line; std::getline(sample, line);) lines.push_back(line);
    lines.push_back(R"({"id":"bad","facility_kind":"病院"})");
    lines.push_back(R"({"id":7,"facility_kind":"医科","query_date":"2019-04-01","feature_enabled":true})");
    lines.push_back(R"({"facility_kind":"医科","visit_kind":"往診","query_date":"R6.4.15"})");
    lines.push_back("{not json");
    return lines;
}
}  // namespace

TEST(GeneratedRules, AnswerJsonLinesByteForByteAsTheInterpreter) {
    auto p = official();
    auto const lines = jsonl_corpus(*p);
    JsonlEvaluator interpreted(p), compiled(p, &generated_rules);
    EXPECT_FALSE(interpreted.compiled());
    ASSERT_TRUE(compiled.compiled()) << "the compiled rules are these rules: they must be used";
    EXPECT_FALSE(JsonlEvaluator(p, &acme::rules_next::generated_rules).compiled()) << "other rules must not be used";
    std::size_t reasons = 0, nulls = 0;
    for (auto const& line : lines) {
        std::string a, b;
        interpreted.answer_line(line, a);
        compiled.answer_line(line, b);
        ASSERT_EQ(a, b) << line;
        reasons += a.find("\"reason\":\"") != std::string::npos;
        nulls += a.find("\"missing\":") != std::string::npos;
    }
    EXPECT_GT(reasons, 5000u) << "the corpus must exercise the reasons (texts with the values of lets)";
    EXPECT_GT(nulls, 1000u) << "the corpus must exercise null decisions";
}

// The writer keeps the fixed parts of answers by their shape (at most 256, then forgets them): an answer must not
// depend on which shapes it found. 60,000 generated lines (some 400 shapes) answered in order, in reverse order (other
// shapes kept when each line comes), and every 50th alone (its shape new), by both writers.
TEST(GeneratedRules, AnswersDoNotDependOnTheShapesKept) {
    auto p = official();
    std::vector<std::string> lines;
    for (std::uint64_t seed : {26, 27, 28})
        generate_corpus(*p, *p, 20000, seed, [&](std::string_view line) { lines.emplace_back(line); });
    for (GeneratedRules const* rules : {static_cast<GeneratedRules const*>(nullptr), &generated_rules}) {
        JsonlEvaluator forward(p, rules), backward(p, rules);
        std::vector<std::string> a(lines.size()), b(lines.size());
        for (std::size_t i = 0; i < lines.size(); ++i) forward.answer_line(lines[i], a[i]);
        for (std::size_t i = lines.size(); i-- > 0;) backward.answer_line(lines[i], b[i]);
        for (std::size_t i = 0; i < lines.size(); ++i) {
            ASSERT_EQ(a[i], b[i]) << lines[i];
            if (i % 50 != 0) continue;
            std::string alone;
            JsonlEvaluator(p, rules).answer_line(lines[i], alone);
            ASSERT_EQ(a[i], alone) << lines[i];
        }
    }
}

namespace {
// kyotaku eval's stream: `input` through JsonlEvaluator::run with `threads`, the output's bytes.
std::string run_stream(JsonlEvaluator& ev, std::string const& input, unsigned threads, JsonlEvaluator::Stats& stats) {
    std::FILE* in = std::tmpfile();
    std::FILE* out = std::tmpfile();
    EXPECT_TRUE(in && out);
    if (!in || !out) return {};
    std::fwrite(input.data(), 1, input.size(), in);
    std::rewind(in);
    stats = ev.run(in, out, threads);
    std::string text(std::size_t(std::ftell(out)), '\0');
    std::rewind(out);
    EXPECT_EQ(std::fread(text.data(), 1, text.size(), out), text.size());
    std::fclose(in);
    std::fclose(out);
    return text;
}
}  // namespace

TEST(GeneratedRules, SeveralThreadsAnswerAStreamAsOne) {
    auto p = official();
    // Some 7 MB (many of the workers' 256 KiB blocks), with blank lines, bad lines, a line over the 1 MiB cap in the
    // middle and a last line without its newline.
    std::string input;
    std::size_t n = 0;
    for (auto const& line : jsonl_corpus(*p)) {
        input += line;
        n += line.find_first_not_of(" \t\r") != std::string::npos;  // lines to answer (blank ones are not)
        input += n % 1000 == 0 ? "\n\n  \n" : "\n";
        if (n == 9000) input += std::string(LineReader::max_line + 10, 'x') + "\n";
    }
    input += R"({"id":"last","facility_kind":"医科"})";
    JsonlEvaluator interpreted(p), compiled(p, &generated_rules);
    for (JsonlEvaluator* ev : {&interpreted, &compiled}) {
        JsonlEvaluator::Stats one, two, three;
        std::string const a = run_stream(*ev, input, 1, one);
        EXPECT_EQ(one.lines, n + 2);  // the over-long line and the last one
        EXPECT_GT(one.errors, 3u);
        EXPECT_NE(a.find("line too long"), std::string::npos);
        EXPECT_NE(a.find("{\"id\":\"last\""), std::string::npos);
        EXPECT_TRUE(a == run_stream(*ev, input, 2, two))
            << "two threads answer otherwise (compiled: " << ev->compiled() << ")";
        EXPECT_TRUE(a == run_stream(*ev, input, 3, three)) << "three threads answer otherwise";
        EXPECT_EQ(one.bytes_in, input.size());
        for (auto const* s : {&two, &three}) {
            EXPECT_EQ(s->lines, one.lines);
            EXPECT_EQ(s->errors, one.errors);
            EXPECT_EQ(s->bytes_in, input.size());
        }
        EXPECT_TRUE(run_stream(*ev, "", 2, two).empty());
        EXPECT_EQ(two.lines, 0u);
    }
}
