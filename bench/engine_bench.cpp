// Side by side in one run: ns per decision of the re-inquiry rule (a) hand-written in C++, (b) the engine one
// record at a time, (c) the engine in batch, (d) the rules compiled ahead of time into C++ (kyotaku compile
// --emit-cpp, generated from rules/ by the build) in batch; every output decision of a record by (e) the
// interpreter and (f) the generated C++ (one entry, shared memoised lets); compiling the official rules; loading the
// bundle; the loaded program's size. A summary with the ratios is printed after Google Benchmark's own table.
#include "kyotaku/engine.hpp"
#include "kyotaku/generated.hpp"
#include "kyotaku/jsonl.hpp"

#include <benchmark/benchmark.h>

#include <cstdio>
#include <map>

namespace kyotaku {
extern GeneratedRules const generated_rules;
}

using namespace kyotaku;

namespace {

std::shared_ptr<Program const> program() {
    static auto r = compile_directory(KYOTAKU_SOURCE_DIR "/rules");
    if (!r.ok()) {
        std::fputs(format_diagnostics(r.diagnostics).c_str(), stderr);
        std::exit(1);
    }
    return r.program;
}

struct Index {
    int facility, visit, first, query, cont, feature, claims;
    std::int64_t pre_medical, pre_nurse;
    int nurse, online, online_med, oushin;
};

Index index_of(Program const& p) {
    auto en = [&](char const* fact, char const* value) {
        return p.find_enum_value(p.facts[std::size_t(p.find_fact(fact))].type.enum_id, value);
    };
    return Index{p.find_fact("facility_kind"),
                 p.find_fact("visit_kind"),
                 p.find_fact("first_visit"),
                 p.find_fact("query_date"),
                 p.find_fact("continuing_home_care"),
                 p.find_fact("feature_enabled"),
                 p.find_fact("reviewed_claim_months"),
                 Date::from_ymd(2023, 11, 30)->days(),
                 Date::from_ymd(2024, 2, 1)->days(),
                 en("facility_kind", "訪問看護ステーション"),
                 en("visit_kind", "オンライン診療"),
                 en("visit_kind", "オンライン服薬指導"),
                 en("visit_kind", "往診")};
}

// (a) The re-inquiry rule of rules/30_reinquiry.rules written by hand, on the same input buffer.
bool handwritten_reinquiry(Activation const& a, Index const& ix) {
    std::int64_t q = a.raw(ix.query);
    std::int64_t pre = a.raw(ix.facility) == ix.nurse ? ix.pre_nurse : ix.pre_medical;
    if (q < pre || !a.raw(ix.feature)) return false;
    std::int64_t v = a.raw(ix.visit);
    if (v == ix.online || v == ix.online_med) return false;
    if (v == ix.oushin && !a.raw(ix.cont)) return false;
    Date first = Date::from_days(a.raw(ix.first));
    if (q < first.days()) return false;
    if (q <= month_end(period_end(first, 3, FirstDay::excluded)).days()) return true;
    std::int64_t last = Month::of(Date::from_days(q)).index() - 2;
    return a.months(ix.claims).all(Month::of(first).index(), last);
}

std::vector<Activation> const& records() {
    static std::vector<Activation> rs = [] {
        auto const& p = *program();
        std::vector<Activation> out;
        char const* facilities[] = {"医科", "歯科", "薬局", "訪問看護ステーション"};
        char const* visits[] = {"訪問診療", "訪問看護", "往診", "オンライン診療", "訪問薬剤管理指導", "歯科訪問診療"};
        for (int i = 0; i < 4096; ++i) {
            Activation a(p);
            a.set_enum("facility_kind", facilities[i % 4]);
            a.set_enum("visit_kind", visits[i % 6]);
            Date first = Date::from_days(Date::from_ymd(2024, 1, 1)->days() + (i * 37) % 400);
            a.set_date("first_visit", first);
            a.set_date("query_date", Date::from_days(first.days() + (i * 53) % 300));
            a.set_bool("continuing_home_care", i % 3 == 0);
            a.set_bool("feature_enabled", i % 17 != 0);
            std::vector<Month> months;
            for (int m = 0; m < 12; ++m)
                if ((i + m) % 11) months.push_back(Month::of(first).plus(m));
            a.set_month_set("reviewed_claim_months", months);
            out.push_back(std::move(a));
        }
        return out;
    }();
    return rs;
}

void BM_handwritten(benchmark::State& state) {
    auto const& rs = records();
    Index ix = index_of(*program());
    for (auto _ : state)
        for (auto const& r : rs) benchmark::DoNotOptimize(handwritten_reinquiry(r, ix));
    state.SetItemsProcessed(std::int64_t(state.iterations() * rs.size()));
}

void BM_engine_one_at_a_time(benchmark::State& state) {
    auto const& rs = records();
    Evaluator ev(program());
    auto slot = std::uint32_t(program()->find_slot("reinquiry_allowed"));
    for (auto _ : state)
        for (auto const& r : rs) {
            ev.begin(r);
            benchmark::DoNotOptimize(ev.evaluate_slot(r, slot));
        }
    state.SetItemsProcessed(std::int64_t(state.iterations() * rs.size()));
}

void BM_engine_batch(benchmark::State& state) {
    auto const& rs = records();
    Evaluator ev(program());
    auto slot = std::uint32_t(program()->find_slot("reinquiry_allowed"));
    std::vector<Outcome> out(rs.size());
    for (auto _ : state) {
        ev.evaluate_slot_batch(rs, slot, out);
        benchmark::DoNotOptimize(out.data());
    }
    state.SetItemsProcessed(std::int64_t(state.iterations() * rs.size()));
}

void BM_generated_batch(benchmark::State& state) {
    auto const& rs = records();
    if (!generated_rules.matches(*program())) {
        state.SkipWithError("the generated C++ is not from these rules");
        return;
    }
    auto slot = std::uint32_t(program()->find_slot("reinquiry_allowed"));
    std::vector<std::int64_t> params;
    for (auto const& p : program()->params) params.push_back(p.value);
    std::vector<Outcome> out(rs.size());
    for (auto _ : state) {
        generated_rules.evaluate_slot_batch(rs, params.data(), slot, out);
        benchmark::DoNotOptimize(out.data());
    }
    state.SetItemsProcessed(std::int64_t(state.iterations() * rs.size()));
}

void BM_engine_all_decisions(benchmark::State& state) {
    auto const& rs = records();
    Evaluator ev(program());
    for (auto _ : state)
        for (auto const& r : rs) {
            ev.evaluate(r);
            benchmark::DoNotOptimize(ev.outcome(0));
        }
    state.SetItemsProcessed(std::int64_t(state.iterations() * rs.size()));
}

// Every output decision of each record, the rules compiled ahead of time: one entry per record, whose lets are
// computed once for all the decisions that read them (GeneratedRules::evaluate_batch).
void BM_generated_all_decisions(benchmark::State& state) {
    auto const& rs = records();
    if (!generated_rules.matches(*program())) {
        state.SkipWithError("the generated C++ is not from these rules");
        return;
    }
    std::vector<std::int64_t> params;
    for (auto const& p : program()->params) params.push_back(p.value);
    std::vector<Outcome> out(rs.size() * generated_rules.num_outputs);
    for (auto _ : state) {
        generated_rules.evaluate_batch(rs, params.data(), out);
        benchmark::DoNotOptimize(out.data());
    }
    state.SetItemsProcessed(std::int64_t(state.iterations() * rs.size()));
}

void BM_compile_official_rules(benchmark::State& state) {
    std::vector<Diagnostic> diags;
    auto sources = read_rule_sources(KYOTAKU_SOURCE_DIR "/rules", diags);
    for (auto _ : state) benchmark::DoNotOptimize(compile(sources));
}

void BM_load_bundle(benchmark::State& state) {
    std::string bytes = save_bundle(*program());
    for (auto _ : state) benchmark::DoNotOptimize(load_bundle(bytes));
}

void BM_jsonl_answer_line(benchmark::State& state) {
    JsonlEvaluator ev(program());
    std::string line =
        R"({"id":"r1","facility_kind":"医科","visit_kind":"訪問診療","first_visit":"2024-04-15",)"
        R"("query_date":"2024-09-10",)"
        R"("continuing_home_care":false,"reviewed_claim_months":["2024-04","2024-05","2024-06","2024-07"],)"
        R"("terminal":"資格確認端末",)"
        R"("consented_items":["薬剤情報","診療情報"],"requested_item":"薬剤情報","feature_enabled":true})";
    std::string out;
    for (auto _ : state) {
        out.clear();
        ev.answer_line(line, out);
        benchmark::DoNotOptimize(out.data());
    }
    state.SetBytesProcessed(std::int64_t(state.iterations() * line.size()));
}

BENCHMARK(BM_handwritten);
BENCHMARK(BM_engine_one_at_a_time);
BENCHMARK(BM_engine_batch);
BENCHMARK(BM_generated_batch);
BENCHMARK(BM_engine_all_decisions);
BENCHMARK(BM_generated_all_decisions);
BENCHMARK(BM_compile_official_rules)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_load_bundle)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_jsonl_answer_line);

// Collects each run's time per item (ns) to print the ratios at the end.
class Collector : public benchmark::ConsoleReporter {
public:
    std::map<std::string, double> ns_per_item, ns_per_iter;
    void ReportRuns(std::vector<Run> const& runs) override {
        ConsoleReporter::ReportRuns(runs);
        for (auto const& r : runs) {
            double per_iter = r.GetAdjustedRealTime() * (r.time_unit == benchmark::kMicrosecond ? 1e3 : 1.0);
            ns_per_iter[r.benchmark_name()] = per_iter;
            auto it = r.counters.find("items_per_second");
            if (it != r.counters.end() && it->second.value > 0)
                ns_per_item[r.benchmark_name()] = 1e9 / it->second.value;
        }
    }
};

}  // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    Collector c;
    benchmark::RunSpecifiedBenchmarks(&c);
    double hand = c.ns_per_item["BM_handwritten"], one = c.ns_per_item["BM_engine_one_at_a_time"],
           batch = c.ns_per_item["BM_engine_batch"], generated = c.ns_per_item["BM_generated_batch"],
           all = c.ns_per_item["BM_engine_all_decisions"], generated_all = c.ns_per_item["BM_generated_all_decisions"];
    double compile_us = c.ns_per_iter["BM_compile_official_rules"] / 1e3,
           load_us = c.ns_per_iter["BM_load_bundle"] / 1e3;
    std::printf("\n== kyotaku engine: the re-inquiry rule (reinquiry_allowed), %zu varied records\n", records().size());
    std::printf("%-34s %10s %8s %8s\n", "", "ns/decision", "ratio", "target");
    std::printf("%-34s %10.1f %8s %8s\n", "(a) hand-written C++", hand, "1.00x", "");
    std::printf("%-34s %10.1f %7.2fx %8s\n", "(b) engine, one record at a time", one, one / hand, "<= 5x");
    std::printf("%-34s %10.1f %7.2fx %8s\n", "(c) engine, batch (interpreter)", batch, batch / hand, "");
    std::printf("%-34s %10.1f %7.2fx %8s\n", "(d) engine, batch (--emit-cpp)", generated, generated / hand, "<= 2x");
    std::printf("(d) against (c), one decision: the generated C++ %.2fx as fast as the interpreter\n",
                batch / generated);
    std::size_t const outputs = program()->outputs.size();
    std::printf("\n== every output decision (%zu) of a record\n", outputs);
    std::printf("%-34s %10s %8s %8s\n", "", "ns/record", "speed-up", "target");
    std::printf("%-34s %10.1f %8s %8s\n", "(e) interpreter (Evaluator::evaluate)", all, "1.00x", "");
    std::printf("%-34s %10.1f %7.2fx %8s\n", "(f) --emit-cpp (evaluate_batch)", generated_all, all / generated_all,
                ">= 2x");
    std::printf("compile official rules: %.1f us (target < 10,000 us); load bundle: %.1f us; compile/load %.1fx "
                "(target >= 10x)\n",
                compile_us, load_us, compile_us / load_us);
    std::printf("loaded program: %zu bytes (target < 1 MiB)\n", program()->memory_bytes());
    double const line_ns = c.ns_per_iter["BM_jsonl_answer_line"];
    std::printf("one JSON line answered (JsonlEvaluator::answer_line, interpreter, every decision): %.0f ns, "
                "%.1fx (e)\n",
                line_ns, line_ns / all);
    return 0;
}
