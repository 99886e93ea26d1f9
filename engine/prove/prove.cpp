// kyotaku prove: the compiled program translated to one Z3 formula, and each invariant checked for every input of the
// declared domain (see kyotaku/prove.hpp for the method and why it is sound).
//
// Why the compiled program and not the syntax tree: the proof is then about the instructions the evaluator, the
// server, the consent page and the bundle run, with the semantics the opcode table states — nothing the compiler
// did in between can make the proof about something else. Why no loop: every jump is forward (the bundle validator
// proves it), so each let and decision is a directed acyclic graph of instructions; its paths are merged exactly
// with if-then-else terms, and the program is a finite set of terms over the facts.
#include "kyotaku/prove.hpp"

#include "kyotaku/jsonl.hpp"

#include <z3++.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <cstdio>
#include <map>
#include <optional>

namespace kyotaku {

bool ProofReport::ok() const {
    if (!error.empty()) return false;
    for (auto const& r : results)
        if (r.status != InvariantResult::Status::proven) return false;
    return true;
}

std::string ProofReport::summary() const {
    if (!error.empty()) return "証明できません / cannot prove: " + error;
    std::size_t proven = 0, broken = 0, unknown = 0;
    for (auto const& r : results)
        (r.status == InvariantResult::Status::proven           ? proven
         : r.status == InvariantResult::Status::counterexample ? broken
                                                               : unknown)++;
    char time[32];
    std::snprintf(time, sizeof time, "%.1f s", seconds);
    if (results.empty()) return "no invariant to prove (0 invariants)";
    std::string s = std::to_string(proven) + " of " + std::to_string(results.size()) + " invariants proven";
    if (broken) s += ", " + std::to_string(broken) + " with a counterexample";
    if (unknown) s += ", " + std::to_string(unknown) + " unknown";
    return s + " (" + time + ")";
}

namespace {

// The civil calendar over Z3 integers. Exact for every day: Howard Hinnant's days_from_civil and civil_from_days (the
// algorithms of the date library the evaluator uses), with their divisions as Euclidean divisions by positive
// constants, which are floor divisions for every integer. Those divisions are slow for the solver, so around the
// domain (a table of months, three years on either side) the same functions are balanced if-then-else trees over the
// months' first days, which the solver decides by comparisons alone; outside the table the exact arithmetic answers.
// Both halves are checked against the date library on every day (check_calendar_encoding, run by the tests).
struct Calendar {
    z3::context& c;
    std::int64_t table_lo, table_hi;  // months (year*12 + month-1) the tables cover

    z3::expr num(std::int64_t v) const { return c.int_val(v); }
    static std::int64_t first_of(std::int64_t month) { return Month::from_index(month).first_day().days(); }

    z3::expr days_from_civil(z3::expr const& y0, z3::expr const& m, z3::expr const& d) const {
        z3::expr const y = z3::ite(m <= 2, y0 - 1, y0);
        z3::expr const era = y / 400;
        z3::expr const yoe = y - era * 400;
        z3::expr const mp = z3::ite(m > 2, m - 3, m + 9);
        z3::expr const doy = (153 * mp + 2) / 5 + d - 1;
        z3::expr const doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146097 + doe - 719468;
    }
    z3::expr exact_month_of(z3::expr const& days) const {
        z3::expr const z = days + 719468;
        z3::expr const era = z / 146097;
        z3::expr const doe = z - era * 146097;
        z3::expr const yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        z3::expr const y = yoe + era * 400;
        z3::expr const doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        z3::expr const mp = (5 * doy + 2) / 153;
        z3::expr const m = z3::ite(mp < 10, mp + 3, mp - 9);
        return z3::ite(m <= 2, y + 1, y) * 12 + m - 1;
    }
    z3::expr exact_month_first(z3::expr const& month) const {
        return days_from_civil(month / 12, z3::mod(month, 12) + 1, num(1));
    }

    // The month holding day `d` among months [lo, hi] of the table (d known to lie in them).
    z3::expr month_tree(z3::expr const& d, std::int64_t lo, std::int64_t hi) const {
        if (lo == hi) return num(lo);
        std::int64_t const mid = lo + (hi - lo + 1) / 2;
        return z3::ite(d < num(first_of(mid)), month_tree(d, lo, mid - 1), month_tree(d, mid, hi));
    }
    // The first day of month `m` among months [lo, hi] of the table.
    z3::expr first_tree(z3::expr const& m, std::int64_t lo, std::int64_t hi) const {
        if (lo == hi) return num(first_of(lo));
        std::int64_t const mid = lo + (hi - lo + 1) / 2;
        return z3::ite(m < num(mid), first_tree(m, lo, mid - 1), first_tree(m, mid, hi));
    }

    z3::expr month_of(z3::expr const& day) const {
        if (day.is_numeral()) return num(Month::of(Date::from_days(day.get_numeral_int64())).index());
        z3::expr const inside = day >= num(first_of(table_lo)) && day < num(first_of(table_hi + 1));
        return z3::ite(inside, month_tree(day, table_lo, table_hi), exact_month_of(day));
    }
    z3::expr month_first(z3::expr const& month) const {
        if (month.is_numeral()) return num(first_of(month.get_numeral_int64()));
        z3::expr const inside = month >= num(table_lo) && month <= num(table_hi + 1);
        return z3::ite(inside, first_tree(month, table_lo, table_hi + 1), exact_month_first(month));
    }
    z3::expr month_last(z3::expr const& month) const { return month_first(month + 1) - 1; }
    z3::expr month_end(z3::expr const& day) const { return month_last(month_of(day)); }
    // add_months: the same day k months on; a day the month lacks goes to its last day (clamp) or the 1st after (up).
    z3::expr add_months(z3::expr const& day, z3::expr const& months, bool up) const {
        z3::expr const month = month_of(day);
        z3::expr const day_of_month = day - month_first(month) + 1;
        z3::expr const target = month + months;
        z3::expr const first = month_first(target);
        z3::expr const length = month_first(target + 1) - first;
        return z3::ite(day_of_month <= length, first + day_of_month - 1, up ? first + length : first + length - 1);
    }
    // 民法140 (起算日) and 143 (満了日 = round_up(起算日 + n months) − 1 day), as calendar.cpp computes them.
    z3::expr period_start(z3::expr const& day, z3::expr const& rule) const {
        return day + z3::ite(rule == 0, num(1), num(0));
    }
    z3::expr period_end(z3::expr const& day, z3::expr const& months, z3::expr const& rule) const {
        return add_months(period_start(day, rule), months, true) - 1;
    }
};

// A let or decision as terms over the facts: whether it has an answer, the answer, and the clause that decided.
struct SlotTerm {
    z3::expr ok, value, clause;
};

// Where each function (let or decision) ends: its instructions run from its entry to the next function's entry.
std::vector<std::uint32_t> function_ends(Program const& p) {
    std::vector<std::uint32_t> order(p.slots.size()), ends(p.slots.size());
    for (std::uint32_t s = 0; s < order.size(); ++s) order[s] = s;
    std::sort(order.begin(), order.end(), [&](auto a, auto b) { return p.slots[a].entry < p.slots[b].entry; });
    for (std::size_t k = 0; k < order.size(); ++k)
        ends[order[k]] = k + 1 < order.size() ? p.slots[order[k + 1]].entry : std::uint32_t(p.code.size());
    return ends;
}

class Translator {
public:
    Translator(Program const& p, z3::context& c, std::int64_t first_day, std::int64_t last_day)
        : p_(p), c_(c), cal_{c, Month::of(Date::from_days(first_day)).index() - 36,
                             Month::of(Date::from_days(last_day)).index() + 36},
          ends_(function_ends(p)), first_day_(first_day), last_day_(last_day), domain_(c) {
        first_month_ = Month::of(Date::from_days(first_day)).index();
        last_month_ = Month::of(Date::from_days(last_day)).index();
        for (auto const& e : p.enums) enum_bits_ = std::max(enum_bits_, e.values.size());
        for (std::size_t f = 0; f < p.facts.size(); ++f) declare_fact(int(f));
    }

    std::string const& error() const { return error_; }
    z3::expr_vector const& domain() const { return domain_; }

    // The slot's terms, translating the slots it calls first (in an order found without recursion).
    std::optional<SlotTerm> slot(std::uint32_t target) {
        if (!error_.empty()) return std::nullopt;
        // The slots reachable from target, callees before callers (an explicit stack: no recursion whose depth the
        // rules choose).
        std::vector<std::pair<std::uint32_t, bool>> stack{{target, false}};
        std::vector<char> seen(p_.slots.size(), 0);
        while (!stack.empty()) {
            auto [s, expanded] = stack.back();
            stack.pop_back();
            if (terms_.count(s)) continue;
            if (expanded) {
                if (!translate(s)) return std::nullopt;
                continue;
            }
            if (seen[s]) continue;  // a cycle cannot be: the bundle validator refuses one
            seen[s] = 1;
            stack.push_back({s, true});
            for (std::uint32_t pc = p_.slots[s].entry; pc < ends_[s]; ++pc) {
                Instr const& i = p_.code[pc];
                if ((i.op == Op::SLOT || i.op == Op::REASON) && !terms_.count(i.b)) stack.push_back({i.b, false});
            }
        }
        return terms_.at(target);
    }

    // A model's facts as a JSON object (what kyotaku eval reads).
    std::string facts_json(z3::model const& m) const {
        std::string out = "{\"id\":\"反例\"";
        for (std::size_t f = 0; f < p_.facts.size(); ++f) {
            auto const& info = p_.facts[f];
            out += ",";
            append_json_string(out, info.name);
            out += ":";
            if (info.type.kind == TypeKind::MonthSet) {
                out += "[";
                bool first = true;
                for (std::int64_t month = first_month_; month <= last_month_; ++month)
                    if (m.eval(months_.at(int(f))(c_.int_val(month)), true).is_true()) {
                        if (!first) out += ",";
                        first = false;
                        append_json_string(out, Month::from_index(month).iso());
                    }
                out += "]";
                continue;
            }
            std::int64_t const v = m.eval(facts_.at(int(f)), true).get_numeral_int64();
            switch (info.type.kind) {
                case TypeKind::Bool: out += v ? "true" : "false"; break;
                case TypeKind::Int: out += std::to_string(v); break;
                case TypeKind::Date: append_json_string(out, Date::from_days(v).iso()); break;
                case TypeKind::Month: append_json_string(out, Month::from_index(v).iso()); break;
                case TypeKind::Enum:
                    append_json_string(out, p_.enums[std::size_t(info.type.enum_id)].values[std::size_t(v)]);
                    break;
                case TypeKind::EnumSet: {
                    out += "[";
                    auto const& values = p_.enums[std::size_t(info.type.enum_id)].values;
                    bool first = true;
                    for (std::size_t k = 0; k < values.size(); ++k)
                        if ((std::uint64_t(v) >> k) & 1u) {
                            if (!first) out += ",";
                            first = false;
                            append_json_string(out, values[k]);
                        }
                    out += "]";
                    break;
                }
                default: out += "null";
            }
        }
        return out + "}";
    }

private:
    void declare_fact(int f) {
        auto const& info = p_.facts[std::size_t(f)];
        std::string const name = "fact:" + info.name;
        if (info.type.kind == TypeKind::MonthSet) {
            // Every set of months within the domain: a predicate free on the domain's months, false outside them.
            months_.emplace(f, c_.function(name.c_str(), c_.int_sort(), c_.bool_sort()));
            return;
        }
        z3::expr const v = c_.int_const(name.c_str());
        facts_.emplace(f, v);
        auto range = [&](std::int64_t lo, std::int64_t hi) {
            domain_.push_back(v >= c_.int_val(lo) && v <= c_.int_val(hi));
        };
        switch (info.type.kind) {
            case TypeKind::Bool: range(0, 1); break;
            case TypeKind::Int: range(-1000000, 1000000); break;
            case TypeKind::Date: range(first_day_, last_day_); break;
            case TypeKind::Month: range(first_month_, last_month_); break;
            case TypeKind::Enum:
                range(0, std::int64_t(p_.enums[std::size_t(info.type.enum_id)].values.size()) - 1);
                break;
            case TypeKind::EnumSet: {
                std::size_t const n = p_.enums[std::size_t(info.type.enum_id)].values.size();
                if (n > 62)
                    error_ = "fact " + info.name +
                             ": 62 を超える値の集合は証明できません / sets of more than 62 values are not supported";
                range(0, (std::int64_t(1) << std::min<std::size_t>(n, 62)) - 1);
                break;
            }
            default:
                error_ =
                    "fact " + info.name + ": この型の fact は証明できません / facts of this type are not supported";
        }
    }

    z3::expr num(std::int64_t v) { return c_.int_val(v); }
    z3::expr truth(z3::expr const& b) { return z3::ite(b, num(1), num(0)); }

    // vm::bit(mask, index): whether value `index` is in the set `mask`.
    z3::expr bit(z3::expr const& mask, z3::expr const& index) {
        z3::expr any = c_.bool_val(false);
        for (std::size_t k = 0; k < enum_bits_ && k < 63; ++k) {
            z3::expr const has = z3::mod(mask / num(std::int64_t(1) << k), 2) == 1;
            if (index.is_numeral()) {
                if (index.get_numeral_int64() == std::int64_t(k)) return truth(has);
                continue;
            }
            any = any || (index == num(std::int64_t(k)) && has);
        }
        return truth(any);
    }
    z3::expr bit_of_constant(std::int64_t mask, z3::expr const& index) {
        z3::expr any = c_.bool_val(false);
        for (std::size_t k = 0; k < 64; ++k)
            if ((std::uint64_t(mask) >> k) & 1u) any = any || index == num(std::int64_t(k));
        return truth(any);
    }

    // Month sets: membership, "every month of a range", "the first month of a range missing" (MonthBits' own).
    z3::expr has(int f, z3::expr const& month) {
        return month >= num(first_month_) && month <= num(last_month_) && months_.at(f)(month);
    }
    z3::expr all_in(int f, z3::expr const& lo, z3::expr const& hi) {
        z3::expr every = lo >= num(first_month_) && hi <= num(last_month_);
        for (std::int64_t m = first_month_; m <= last_month_; ++m)
            every = every && z3::implies(lo <= num(m) && num(m) <= hi, months_.at(f)(num(m)));
        return truth(hi < lo || every);
    }
    z3::expr first_missing(int f, z3::expr const& lo, z3::expr const& hi) {
        // After every month of the domain in [lo, hi] was present: the first month past the domain, or hi + 1.
        z3::expr r = z3::ite(hi > num(last_month_), z3::ite(lo > num(last_month_), lo, num(last_month_ + 1)), hi + 1);
        for (std::int64_t m = last_month_; m >= first_month_; --m)
            r = z3::ite(lo <= num(m) && num(m) <= hi && !months_.at(f)(num(m)), num(m), r);
        return z3::ite(hi < lo, hi + 1, z3::ite(lo < num(first_month_), lo, r));
    }

    struct In {
        z3::expr cond;
        std::map<int, z3::expr> regs;
    };

    bool unsupported(char const* what, std::uint32_t pc) {
        error_ = std::string("命令 ") + what + " (" + std::to_string(pc) +
                 ") は証明できません / the prover does not know instruction " + what;
        return false;
    }

    bool translate(std::uint32_t s) {
        SlotInfo const& slot = p_.slots[s];
        std::uint32_t const entry = slot.entry, end = ends_[s];
        std::vector<std::vector<In>> incoming(end - entry);
        incoming[0].push_back(In{c_.bool_val(true), {}});
        z3::expr_vector returns_cond(c_), returns_value(c_), returns_clause(c_);
        for (std::uint32_t pc = entry; pc < end; ++pc) {
            auto& ins = incoming[pc - entry];
            if (ins.empty()) continue;
            // Merge the paths that reach pc: exactly one of their conditions holds for a given input.
            z3::expr_vector conds(c_);
            for (auto const& in : ins) conds.push_back(in.cond);
            z3::expr reach = ins.size() == 1 ? ins[0].cond : z3::mk_or(conds);
            std::map<int, z3::expr> regs;
            for (auto const& [r, v] : ins.back().regs) {
                bool everywhere = true;
                for (auto const& in : ins) everywhere = everywhere && in.regs.count(r);
                if (!everywhere) continue;  // not written on every path: never read here (the validator proves it)
                z3::expr merged = v;
                for (std::size_t k = ins.size() - 1; k-- > 0;) {
                    z3::expr const& other = ins[k].regs.at(r);
                    if (!z3::eq(other, merged)) merged = z3::ite(ins[k].cond, other, merged);
                }
                regs.insert_or_assign(r, merged);
            }
            ins.clear();
            Instr const& i = p_.code[pc];
            auto R = [&](int r) { return regs.at(r); };
            auto set = [&](int r, z3::expr const& v) { regs.insert_or_assign(r, v); };
            auto go = [&](std::uint32_t target, z3::expr const& cond) {
                incoming[target - entry].push_back(In{cond, regs});
            };
            auto K = [&](std::int64_t k) { return num(p_.consts[std::size_t(k)]); };
            bool falls = true;  // continues to pc + 1 under `reach`
            switch (i.op) {
                case Op::LOADK: set(i.a, K(i.d)); break;
                case Op::LOADF: set(i.a, facts_.at(i.b)); break;
                case Op::LOADP: set(i.a, num(p_.params[i.b].value)); break;
                case Op::SLOT:
                case Op::REASON: {
                    SlotTerm const& callee = terms_.at(i.b);
                    reach = reach && callee.ok;  // the caller has no answer when the callee has none
                    set(i.a, i.op == Op::SLOT ? callee.value : callee.clause);
                    break;
                }
                case Op::MOV: set(i.a, R(i.b)); break;
                case Op::NOT: set(i.a, truth(R(i.b) == 0)); break;
                case Op::NEG: set(i.a, 0 - R(i.b)); break;
                case Op::JMP:
                    go(std::uint32_t(i.d), reach);
                    falls = false;
                    break;
                case Op::JMPF:
                case Op::COND: {
                    z3::expr const t = R(i.a) != 0;
                    go(std::uint32_t(i.d), reach && !t);
                    reach = reach && t;
                    break;
                }
                case Op::JMPT: {
                    z3::expr const t = R(i.a) != 0;
                    go(std::uint32_t(i.d), reach && t);
                    reach = reach && !t;
                    break;
                }
                case Op::CONDLT:
                case Op::CONDLE:
                case Op::CONDNOT: {
                    z3::expr const t = i.op == Op::CONDLT   ? R(i.b) < R(i.c)
                                       : i.op == Op::CONDLE ? R(i.b) <= R(i.c)
                                                            : R(i.b) == 0;
                    go(std::uint32_t(i.d), reach && !t);
                    reach = reach && t;
                    break;
                }
                case Op::ADD: set(i.a, R(i.b) + R(i.c)); break;
                case Op::SUB: set(i.a, R(i.b) - R(i.c)); break;
                case Op::MUL: set(i.a, R(i.b) * R(i.c)); break;
                case Op::EQ: set(i.a, truth(R(i.b) == R(i.c))); break;
                case Op::NE: set(i.a, truth(R(i.b) != R(i.c))); break;
                case Op::LT: set(i.a, truth(R(i.b) < R(i.c))); break;
                case Op::LE: set(i.a, truth(R(i.b) <= R(i.c))); break;
                case Op::EIN: set(i.a, bit(R(i.c), R(i.b))); break;
                case Op::ADDK: set(i.a, R(i.b) + K(i.d)); break;
                case Op::SUBK: set(i.a, R(i.b) - K(i.d)); break;
                case Op::EQK: set(i.a, truth(R(i.b) == K(i.d))); break;
                case Op::NEK: set(i.a, truth(R(i.b) != K(i.d))); break;
                case Op::LTK: set(i.a, truth(R(i.b) < K(i.d))); break;
                case Op::LEK: set(i.a, truth(R(i.b) <= K(i.d))); break;
                case Op::GTK: set(i.a, truth(R(i.b) > K(i.d))); break;
                case Op::GEK: set(i.a, truth(R(i.b) >= K(i.d))); break;
                case Op::EINK: set(i.a, bit_of_constant(p_.consts[std::size_t(i.d)], R(i.b))); break;
                case Op::MIN: set(i.a, truth(has(i.c, R(i.b)))); break;
                case Op::MALL: set(i.a, all_in(i.d, R(i.b), R(i.c))); break;
                case Op::MMISS: set(i.a, first_missing(i.d, R(i.b), R(i.c))); break;
                case Op::PSTART: set(i.a, cal_.period_start(R(i.b), R(i.c))); break;
                case Op::PEND: set(i.a, cal_.period_end(R(i.b), R(i.c), R(i.d))); break;
                case Op::ADDM: set(i.a, cal_.add_months(R(i.b), R(i.c), i.d != 0)); break;
                case Op::MEND: set(i.a, cal_.month_end(R(i.b))); break;
                case Op::MENDM: set(i.a, cal_.month_last(R(i.b))); break;
                case Op::MOF: set(i.a, cal_.month_of(R(i.b))); break;
                case Op::TABLE: {
                    z3::expr const index = R(i.b);
                    reach = reach && index >= 0 && index < num(i.c);  // out of the table: no answer
                    z3::expr v = K(i.d);
                    for (std::int64_t k = 1; k < i.c; ++k) v = z3::ite(index == num(k), K(i.d + k), v);
                    set(i.a, v);
                    break;
                }
                case Op::VERSION: {
                    // The version in force on the as-of date (the first whose period holds it), or no answer.
                    z3::expr const day = facts_.at(p_.asof_fact);
                    z3::expr taken = c_.bool_val(false);
                    for (auto const& v : slot.versions) {
                        z3::expr in = c_.bool_val(true);
                        if (v.from != std::numeric_limits<std::int64_t>::min()) in = in && day >= num(v.from);
                        if (v.until != std::numeric_limits<std::int64_t>::max()) in = in && day <= num(v.until);
                        go(v.entry, reach && !taken && in);
                        taken = taken || in;
                    }
                    falls = false;  // no version in force: no answer
                    break;
                }
                case Op::RET:
                case Op::RETK:
                    returns_cond.push_back(reach);
                    returns_value.push_back(i.op == Op::RET ? R(slot.result_reg) : K(i.d));
                    returns_clause.push_back(num(i.b));
                    falls = false;
                    break;
            }
            if (falls) {
                if (pc + 1 >= end) return unsupported("(path without a return)", pc);
                go(pc + 1, reach);
            }
        }
        if (returns_cond.empty()) return unsupported("(no return)", entry);
        z3::expr value = returns_value[returns_value.size() - 1], clause = returns_clause[returns_clause.size() - 1];
        for (unsigned k = returns_cond.size() - 1; k-- > 0;) {
            value = z3::ite(returns_cond[k], returns_value[k], value);
            clause = z3::ite(returns_cond[k], returns_clause[k], clause);
        }
        // It has an answer exactly when a path reaches a return (every other path ended without one).
        terms_.emplace(s, SlotTerm{z3::mk_or(returns_cond), value, clause});
        return true;
    }

    Program const& p_;
    z3::context& c_;
    Calendar cal_;
    std::vector<std::uint32_t> ends_;
    std::int64_t first_day_, last_day_, first_month_ = 0, last_month_ = 0;
    std::size_t enum_bits_ = 1;
    z3::expr_vector domain_;
    std::map<int, z3::expr> facts_;
    std::map<int, z3::func_decl> months_;
    std::map<std::uint32_t, SlotTerm> terms_;
    std::string error_;
};

double since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// The first day proven: the 1st of the month a year before the earliest date the rules name (versions' 施行日 and
// date constants between 2000 and 2100), so that "before it began" is proven too.
std::optional<std::int64_t> first_day_of(Program const& p) {
    std::int64_t const lo = Date::from_ymd(2000, 1, 1)->days(), hi = Date::from_ymd(2100, 12, 31)->days();
    std::optional<std::int64_t> earliest;
    auto see = [&](std::int64_t d) {
        if (d >= lo && d <= hi && (!earliest || d < *earliest)) earliest = d;
    };
    for (auto k : p.consts) see(k);
    for (auto const& s : p.slots)
        for (auto const& v : s.versions) {
            if (v.from != std::numeric_limits<std::int64_t>::min()) see(v.from);
            if (v.until != std::numeric_limits<std::int64_t>::max()) see(v.until);
        }
    if (!earliest) return std::nullopt;
    return Month::of(Date::from_days(*earliest)).plus(-12).first_day().days();
}
}  // namespace

std::string check_calendar_encoding(Date first, Date last) {
    z3::context c;
    // A table over the middle of the days only: the days before and after it check the exact arithmetic. The terms
    // are built over variables (as the prover builds them), then each day is substituted and the term simplified.
    std::int64_t const lo = Month::of(first).index(), hi = Month::of(last).index();
    Calendar const cal{c, lo + (hi - lo) / 3, hi - (hi - lo) / 3};
    z3::expr const d = c.int_const("d"), m = c.int_const("m"), rule = c.int_const("rule");
    struct Term {
        std::string name;
        z3::expr term;
        std::function<std::int64_t(Date, int)> want;  // the library's answer for a day and a first-day rule
    };
    std::vector<Term> terms{
        {"month_of", cal.month_of(d), [](Date day, int) { return Month::of(day).index(); }},
        {"month_end", cal.month_end(d), [](Date day, int) { return month_end(day).days(); }},
        {"month_last", cal.month_last(m), [](Date day, int) { return Month::of(day).last_day().days(); }},
        {"period_start", cal.period_start(d, rule),
         [](Date day, int r) { return period_start(day, FirstDay(r)).days(); }},
        {"period_end 3 months", cal.period_end(d, c.int_val(3), rule),
         [](Date day, int r) { return period_end(day, 3, FirstDay(r)).days(); }},
    };
    for (int k : {-1, 1, 3, 12, 13})
        for (bool up : {false, true})
            terms.push_back(
                {"add_months " + std::to_string(k) + (up ? " up" : " clamp"), cal.add_months(d, c.int_val(k), up),
                 [k, up](Date day, int) { return add_months(day, k, up ? Rounding::up : Rounding::clamp).days(); }});
    for (std::int64_t x = first.days(); x <= last.days(); ++x) {
        Date const day = Date::from_days(x);
        for (int r = 0; r < 2; ++r) {
            z3::expr_vector from(c), to(c);
            from.push_back(d), to.push_back(c.int_val(x));
            from.push_back(m), to.push_back(c.int_val(Month::of(day).index()));
            from.push_back(rule), to.push_back(c.int_val(r));
            for (auto& t : terms) {
                z3::expr const v = t.term.substitute(from, to).simplify();
                std::int64_t const want = t.want(day, r);
                if (!v.is_numeral() || v.get_numeral_int64() != want)
                    return t.name + " of " + day.iso() + " (rule " + std::to_string(r) + "): Z3 " + v.to_string() +
                           ", calendar " + std::to_string(want);
            }
        }
    }
    return {};
}

ProofReport prove(std::shared_ptr<Program const> const& program, ProveOptions const& options) {
    auto const started = std::chrono::steady_clock::now();
    Program const& p = *program;
    ProofReport report;
    if (p.invariants.empty()) return report;
    if (p.horizon == std::numeric_limits<std::int64_t>::max()) {
        report.error = "horizon (証明する最後の日) が宣言されていません。例: horizon 2030-12-31 / the rules declare no "
                       "horizon (horizon 2030-12-31)";
        return report;
    }
    std::int64_t const first =
        first_day_of(p).value_or(Month::of(Date::from_days(p.horizon)).plus(-24).first_day().days());
    // The month tables and the month-set terms grow with the domain: a century is the bound (a notice is revised
    // far sooner; a horizon beyond it is more likely a typo than a plan).
    if (p.horizon - first > 100 * 366) {
        report.error = "horizon " + Date::from_days(p.horizon).iso() +
                       " はルールの最初の日付から100年を超えています / the horizon is more than a century after the "
                       "rules' first date";
        return report;
    }
    if (p.horizon < first) {
        report.error = "horizon " + Date::from_days(p.horizon).iso() +
                       " はルールの最初の日付より前です / the horizon is before the rules' first date";
        return report;
    }
    report.domain = "日付は " + Date::from_days(first).iso() + "〜" + Date::from_days(p.horizon).iso() +
                    " のすべての日、その間の月のすべての集合、enum と真偽のすべての組合せ";
    try {
        z3::context c;
        Translator t(p, c, first, p.horizon);
        if (!t.error().empty()) {
            report.error = t.error();
            return report;
        }
        z3::solver solver(c);
        z3::params params(c);
        params.set("timeout", options.timeout_ms);
        solver.set(params);
        for (auto const& d : t.domain()) solver.add(d);
        Evaluator evaluator(program);
        JsonlEvaluator reader(program);
        Activation facts(p);
        for (auto const& inv : p.invariants) {
            auto const one = std::chrono::steady_clock::now();
            InvariantResult r;
            r.name = inv.name;
            r.label = inv.label;
            r.location = p.location(inv.loc);
            auto term = t.slot(inv.slot);
            if (!term) {
                report.error = t.error();
                return report;
            }
            solver.push();
            solver.add(term->ok && term->value == 0);  // an answer, and it is false
            z3::check_result const verdict = solver.check();
            if (verdict == z3::unsat) {
                r.status = InvariantResult::Status::proven;
            } else if (verdict == z3::sat) {
                r.facts = t.facts_json(solver.get_model());
                // The ordinary evaluator must agree that these facts break the invariant: the proof's translation
                // and the evaluator are checked against each other on every counterexample.
                std::string id;
                std::string const error = reader.read_facts(r.facts, facts, id);
                Outcome const o = error.empty() ? evaluator.evaluate_slot(facts, inv.slot) : Outcome{};
                if (!error.empty() || o.status != Status::ok || o.value != 0) {
                    r.status = InvariantResult::Status::unknown;
                    r.reason = "内部エラー: 証明器の反例を評価器が反例と認めません / internal: the evaluator does not "
                               "confirm the solver's counterexample " +
                               r.facts + (error.empty() ? std::string() : " (" + error + ")");
                } else {
                    r.status = InvariantResult::Status::counterexample;
                    r.explanation = explain(program, r.facts);
                }
            } else {
                r.reason = solver.reason_unknown();
            }
            solver.pop();
            r.seconds = since(one);
            report.results.push_back(std::move(r));
        }
    } catch (z3::exception const& e) {
        report.error = std::string("Z3: ") + e.msg();
    }
    report.seconds = since(started);
    return report;
}

std::string format_proofs(Program const& p, ProofReport const& report) {
    std::string out;
    if (!report.error.empty()) return "証明できません / cannot prove: " + report.error + "\n";
    if (!report.domain.empty()) out += "範囲: " + report.domain + "\n";
    for (auto const& r : report.results) {
        char time[32];
        std::snprintf(time, sizeof time, "%.2f s", r.seconds);
        std::string const title = r.label.empty() ? r.name : r.name + "「" + r.label + "」";
        switch (r.status) {
            case InvariantResult::Status::proven:
                out += "証明済み  " + title + "  (" + r.location + ", " + time + ")\n";
                break;
            case InvariantResult::Status::counterexample:
                out += "反例あり  " + title + "  (" + r.location + ")\n";
                for (auto const& inv : p.invariants)
                    if (inv.name == r.name) out += "  " + inv.source + "\n";
                out += "  反例の事実: " + r.facts + "\n";
                for (std::size_t at = 0; at < r.explanation.size();) {
                    std::size_t const nl = r.explanation.find('\n', at);
                    out += "  " + r.explanation.substr(at, nl == std::string::npos ? std::string::npos : nl - at + 1);
                    if (nl == std::string::npos) out += "\n";
                    at = nl == std::string::npos ? r.explanation.size() : nl + 1;
                }
                break;
            case InvariantResult::Status::unknown:
                out += "不明      " + title + "  (" + r.location + "): " + r.reason + "\n";
                break;
        }
    }
    out += report.summary() + "\n";
    return out;
}

}  // namespace kyotaku
