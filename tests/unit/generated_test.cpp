// Rules compiled ahead of time into C++ (`kyotaku compile --emit-cpp`, built from the official rules by the build)
// decide exactly as the Evaluator: every slot (decisions and lets) of 20,000 varied records, including records
// with missing facts and dates on both sides of every 施行日, gives the same status, value, clause, version and
// missing facts. Label `engine`.
#include "kyotaku/engine.hpp"
#include "kyotaku/generated.hpp"

#include <gtest/gtest.h>

#include <random>

namespace kyotaku {
extern GeneratedRules const generated_rules;
}

using namespace kyotaku;

namespace {
std::shared_ptr<Program const> official() {
    static auto c = compile_directory(KYOTAKU_SOURCE_DIR "/rules");
    return c.program;
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
                case TypeKind::Month: a.set_raw(int(f), Month::of(Date::from_days(from)).index() + std::int64_t(pick(36))); break;
                case TypeKind::Enum: a.set_raw(int(f), std::int64_t(pick(p.enums[std::size_t(fact.type.enum_id)].values.size()))); break;
                case TypeKind::EnumSet:
                    a.set_raw(int(f), std::int64_t(rng() & ((std::uint64_t(1) << p.enums[std::size_t(fact.type.enum_id)].values.size()) - 1)));
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
    std::vector<std::int64_t> params;
    for (auto const& param : p->params) params.push_back(param.value);
    std::size_t compared = 0, nulls = 0;
    for (std::uint32_t s = 0; s < p->slots.size(); ++s) {
        std::vector<Outcome> vm(records.size()), gen(records.size());
        ev.evaluate_slot_batch(records, s, vm);
        generated_rules.evaluate_slot_batch(records, params.data(), s, gen);
        for (std::size_t i = 0; i < records.size(); ++i) {
            ASSERT_EQ(int(vm[i].status), int(gen[i].status)) << p->slots[s].name << " record " << i;
            if (vm[i].status == Status::ok) {
                ASSERT_EQ(vm[i].value, gen[i].value) << p->slots[s].name << " record " << i;
                ASSERT_EQ(vm[i].clause, gen[i].clause) << p->slots[s].name << " record " << i;
                ASSERT_EQ(vm[i].version, gen[i].version) << p->slots[s].name << " record " << i;
            } else {
                ++nulls;
                ASSERT_EQ(vm[i].missing, gen[i].missing) << p->slots[s].name << " record " << i;
                if (vm[i].status == Status::no_version) ASSERT_EQ(vm[i].failed_slot, gen[i].failed_slot);
            }
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
