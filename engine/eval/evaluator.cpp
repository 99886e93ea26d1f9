// The evaluator: a register machine whose loop does nothing but dispatch (Lua's lvm.c style). Slots are
// evaluated on first use and memoised per record; a missing fact makes the decision that needed it null.
#include "kyotaku/engine.hpp"

#include <algorithm>
#include <bit>
#include <cstring>

namespace kyotaku {

bool MonthBits::set(std::int64_t m) {
    std::int64_t i = m - base;
    if (i < 0 || i >= size) return false;
    words[i >> 6] |= std::uint64_t(1) << (i & 63);
    return true;
}

void MonthBits::clear() { std::memset(words, 0, sizeof words); }

bool MonthBits::all(std::int64_t lo, std::int64_t hi) const {
    if (hi < lo) return true;  // an empty range: nothing is required
    std::int64_t a = lo - base, b = hi - base;
    if (a < 0 || b >= size) return false;
    std::int64_t wa = a >> 6, wb = b >> 6;
    for (std::int64_t w = wa; w <= wb; ++w) {
        int from = w == wa ? int(a & 63) : 0;
        int to = w == wb ? int(b & 63) : 63;
        std::uint64_t mask = (to == 63 ? ~std::uint64_t(0) : ((std::uint64_t(1) << (to + 1)) - 1)) & (~std::uint64_t(0) << from);
        if ((words[w] & mask) != mask) return false;
    }
    return true;
}

std::int64_t MonthBits::first_missing(std::int64_t lo, std::int64_t hi) const {
    for (std::int64_t m = lo; m <= hi; ++m)
        if (!has(m)) return m;
    return hi + 1;
}

Activation::Activation(Program const& program) : program_(&program), values_(program.facts.size()), month_slot_(program.facts.size(), -1) {
    int n = 0;
    for (std::size_t f = 0; f < program.facts.size(); ++f)
        if (program.facts[f].type.kind == TypeKind::MonthSet) month_slot_[f] = n++;
    month_sets_.resize(std::size_t(n));
    clear();
}

void Activation::clear() {
    present_ = 0;
    for (std::size_t f = 0; f < program_->facts.size(); ++f)
        if (program_->facts[f].has_default) set_raw(int(f), program_->facts[f].default_value);
}

namespace {
int typed_fact(Program const& p, std::string_view name, TypeKind kind) {
    int f = p.find_fact(name);
    if (f < 0 || p.facts[std::size_t(f)].type.kind != kind) return -1;
    return f;
}
}  // namespace

bool Activation::set_bool(std::string_view fact, bool v) {
    int f = typed_fact(*program_, fact, TypeKind::Bool);
    if (f >= 0) set_raw(f, v);
    return f >= 0;
}
bool Activation::set_int(std::string_view fact, std::int64_t v) {
    int f = typed_fact(*program_, fact, TypeKind::Int);
    if (f >= 0) set_raw(f, v);
    return f >= 0;
}
bool Activation::set_date(std::string_view fact, Date v) {
    int f = typed_fact(*program_, fact, TypeKind::Date);
    if (f >= 0) set_raw(f, v.days());
    return f >= 0;
}
bool Activation::set_month(std::string_view fact, Month v) {
    int f = typed_fact(*program_, fact, TypeKind::Month);
    if (f >= 0) set_raw(f, v.index());
    return f >= 0;
}
bool Activation::set_enum(std::string_view fact, std::string_view value) {
    int f = typed_fact(*program_, fact, TypeKind::Enum);
    if (f < 0) return false;
    int v = program_->find_enum_value(program_->facts[std::size_t(f)].type.enum_id, value);
    if (v < 0) return false;
    set_raw(f, v);
    return true;
}
bool Activation::set_enum_set(std::string_view fact, std::vector<std::string_view> const& values) {
    int f = typed_fact(*program_, fact, TypeKind::EnumSet);
    if (f < 0) return false;
    std::uint64_t mask = 0;
    for (auto v : values) {
        int i = program_->find_enum_value(program_->facts[std::size_t(f)].type.enum_id, v);
        if (i < 0) return false;
        mask |= std::uint64_t(1) << i;
    }
    set_raw(f, std::int64_t(mask));
    return true;
}
bool Activation::set_month_set(std::string_view fact, std::vector<Month> const& months) {
    int f = typed_fact(*program_, fact, TypeKind::MonthSet);
    if (f < 0) return false;
    auto& bits = month_set(f);
    for (auto m : months)
        if (!bits.set(m.index())) {
            unset(f);
            return false;
        }
    return true;
}

Evaluator::Evaluator(std::shared_ptr<Program const> program)
    : program_(std::move(program)),
      regs_(std::max<std::size_t>(program_->num_regs, 1)),
      done_(program_->slots.size()),
      clause_of_(program_->slots.size()),
      version_of_(program_->slots.size()),
      outcomes_(program_->outputs.size()) {
    reset_params();
}

bool Evaluator::set_param(std::uint32_t param, std::int64_t value) {
    if (param >= params_.size()) return false;
    params_[param] = value;
    return true;
}

void Evaluator::reset_params() {
    params_.clear();
    for (auto const& p : program_->params) params_.push_back(p.value);
}

void Evaluator::begin_record(Activation const& facts) {
    facts_ = &facts;
    if (!done_.empty()) std::memset(done_.data(), 0, done_.size());
    missing_hit_ = 0;
    no_version_ = false;
}

bool Evaluator::slot(std::uint32_t s) {
    if (done_[s]) return true;
    if (!run(program_->slots[s].entry)) return false;
    done_[s] = 1;
    if (trace_) trace_->push_back(TraceEvent{TraceEvent::Kind::Slot, s, regs_[program_->slots[s].result_reg]});
    return true;
}

bool Evaluator::run(std::uint32_t pc) {
    Instr const* code = program_->code.data();
    std::int64_t const* consts = program_->consts.data();
    std::int64_t* r = regs_.data();
    Activation const& facts = *facts_;
    auto need = [&](int f) {
        if (facts.has(f)) return true;
        missing_hit_ |= std::uint64_t(1) << f;
        return false;
    };
    for (;;) {
        Instr const& i = code[pc++];
        switch (i.op) {
            case Op::LOADK: r[i.a] = consts[i.d]; break;
            case Op::LOADF:
                if (!need(i.b)) return false;
                r[i.a] = facts.raw(i.b);
                break;
            case Op::LOADP: r[i.a] = params_[i.b]; break;
            case Op::SLOT:
                if (!slot(i.b)) return false;
                r[i.a] = r[program_->slots[i.b].result_reg];
                break;
            case Op::MOV: r[i.a] = r[i.b]; break;
            case Op::NOT: r[i.a] = !r[i.b]; break;
            case Op::NEG: r[i.a] = -r[i.b]; break;
            case Op::JMP: pc = std::uint32_t(i.d); break;
            case Op::JMPF:
                if (!r[i.a]) pc = std::uint32_t(i.d);
                break;
            case Op::JMPT:
                if (r[i.a]) pc = std::uint32_t(i.d);
                break;
            case Op::COND:
                if (trace_) trace_->push_back(TraceEvent{TraceEvent::Kind::Condition, i.b, r[i.a]});
                if (!r[i.a]) pc = std::uint32_t(i.d);
                break;
            case Op::ADD: r[i.a] = r[i.b] + r[i.c]; break;
            case Op::SUB: r[i.a] = r[i.b] - r[i.c]; break;
            case Op::MUL: r[i.a] = r[i.b] * r[i.c]; break;
            case Op::EQ: r[i.a] = r[i.b] == r[i.c]; break;
            case Op::NE: r[i.a] = r[i.b] != r[i.c]; break;
            case Op::LT: r[i.a] = r[i.b] < r[i.c]; break;
            case Op::LE: r[i.a] = r[i.b] <= r[i.c]; break;
            case Op::EIN: r[i.a] = (std::uint64_t(r[i.c]) >> r[i.b]) & 1u; break;
            case Op::MIN:
                if (!need(i.c)) return false;
                r[i.a] = facts.months(i.c).has(r[i.b]);
                break;
            case Op::MALL:
                if (!need(i.d)) return false;
                r[i.a] = facts.months(i.d).all(r[i.b], r[i.c]);
                break;
            case Op::MMISS:
                if (!need(i.d)) return false;
                r[i.a] = facts.months(i.d).first_missing(r[i.b], r[i.c]);
                break;
            case Op::PSTART: r[i.a] = period_start(Date::from_days(r[i.b]), FirstDay(r[i.c])).days(); break;
            case Op::PEND: r[i.a] = period_end(Date::from_days(r[i.b]), r[i.c], FirstDay(r[i.d])).days(); break;
            case Op::ADDM: r[i.a] = add_months(Date::from_days(r[i.b]), r[i.c], Rounding(i.d)).days(); break;
            case Op::MEND: r[i.a] = month_end(Date::from_days(r[i.b])).days(); break;
            case Op::MENDM: r[i.a] = Month::from_index(r[i.b]).last_day().days(); break;
            case Op::MOF: r[i.a] = Month::of(Date::from_days(r[i.b])).index(); break;
            case Op::REASON:
                if (!slot(i.b)) return false;
                r[i.a] = clause_of_[i.b];
                break;
            case Op::VERSION: {
                auto const& s = program_->slots[i.a];
                int asof = program_->asof_fact;
                if (!need(asof)) return false;
                std::int64_t day = facts.raw(asof);
                auto it = std::find_if(s.versions.begin(), s.versions.end(),
                                       [&](VersionInfo const& v) { return v.from <= day && day <= v.until; });
                if (it == s.versions.end()) {
                    no_version_ = true;
                    failed_slot_ = i.a;
                    return false;
                }
                version_of_[i.a] = std::uint32_t(it - s.versions.begin());
                pc = it->entry;
                break;
            }
            case Op::RET:
                clause_of_[i.a] = i.b;
                if (trace_) trace_->push_back(TraceEvent{TraceEvent::Kind::Decided, i.b, 0});
                return true;
        }
    }
}

void Evaluator::evaluate(Activation const& facts) {
    begin_record(facts);
    auto const& outputs = program_->outputs;
    for (std::size_t o = 0; o < outputs.size(); ++o) {
        std::uint32_t s = outputs[o];
        Outcome& out = outcomes_[o];
        no_version_ = false;
        if (slot(s)) {
            out.status = Status::ok;
            out.value = regs_[program_->slots[s].result_reg];
            out.clause = clause_of_[s];
            out.version = version_of_[s];
            out.missing = 0;
        } else if (no_version_) {
            out.status = Status::no_version;
            out.failed_slot = failed_slot_;
            out.missing = 0;
        } else {
            out.status = Status::missing_facts;
            out.missing = program_->slots[s].fact_deps & ~facts.present();
        }
    }
}

void Evaluator::evaluate_batch(std::span<Activation const> records, std::span<Outcome> results) {
    std::size_t n = program_->outputs.size();
    for (std::size_t i = 0; i < records.size() && (i + 1) * n <= results.size(); ++i) {
        evaluate(records[i]);
        std::copy(outcomes_.begin(), outcomes_.end(), results.begin() + std::ptrdiff_t(i * n));
    }
}

Outcome Evaluator::evaluate_slot(Activation const& facts, std::uint32_t s) {
    if (facts_ != &facts) begin_record(facts);
    Outcome out;
    no_version_ = false;
    if (slot(s)) {
        out.value = regs_[program_->slots[s].result_reg];
        out.clause = clause_of_[s];
        out.version = version_of_[s];
    } else if (no_version_) {
        out.status = Status::no_version;
        out.failed_slot = failed_slot_;
    } else {
        out.status = Status::missing_facts;
        out.missing = program_->slots[s].fact_deps & ~facts.present();
    }
    return out;
}

std::string Evaluator::format_value(Type type, std::int64_t v, Activation const& facts) {
    switch (type.kind) {
        case TypeKind::Bool: return v ? "true" : "false";
        case TypeKind::Int: return std::to_string(v);
        case TypeKind::Date: return Date::from_days(v).iso();
        case TypeKind::Month: return Month::from_index(v).iso();
        case TypeKind::Enum: {
            auto const& vals = program_->enums[std::size_t(type.enum_id)].values;
            return v >= 0 && std::size_t(v) < vals.size() ? vals[std::size_t(v)] : "?";
        }
        case TypeKind::EnumSet: {
            auto const& vals = program_->enums[std::size_t(type.enum_id)].values;
            std::string out;
            for (std::size_t i = 0; i < vals.size(); ++i)
                if ((std::uint64_t(v) >> i) & 1u) out += (out.empty() ? "" : "・") + vals[i];
            return out.empty() ? "なし" : out;
        }
        case TypeKind::Text: return render_text(v, facts, false);
        case TypeKind::MonthSet:
        case TypeKind::MonthRange: return "?";
    }
    return "?";
}

std::string Evaluator::render_text(std::int64_t text, Activation const& facts, bool with_location) {
    if (text < 0) return program_->strings[std::size_t(-text - 1)];
    auto const& clause = program_->clauses[std::size_t(text)];
    std::string out;
    for (auto const& p : clause.because) {
        switch (p.kind) {
            case TextPiece::Kind::Literal: out += p.literal; break;
            case TextPiece::Kind::Param: out += format_value(p.type, params_[p.id], facts); break;
            case TextPiece::Kind::Fact:
                if (p.type.kind == TypeKind::MonthSet) out += "{…}";
                else out += facts.has(int(p.id)) ? format_value(p.type, facts.raw(int(p.id)), facts) : "(不明)";
                break;
            case TextPiece::Kind::Slot: {
                if (facts_ != &facts) begin_record(facts);
                bool ok = slot(p.id);
                out += ok ? format_value(p.type, regs_[program_->slots[p.id].result_reg], facts) : "(不明)";
                break;
            }
        }
    }
    if (clause.because.empty()) out = program_->slots[clause.slot].name + " の条項";
    if (with_location) out += " (" + program_->location(clause.loc) + ")";
    return out;
}

}  // namespace kyotaku
