// The evaluator: a register machine whose loop does nothing but dispatch (Lua's lvm.c style). Slots are
// evaluated on first use and memoised per record; a missing fact makes the decision that needed it null.
#include "kyotaku/engine.hpp"

#include <algorithm>
#include <atomic>
#include <bit>
#include <charconv>
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
        std::uint64_t mask =
            (to == 63 ? ~std::uint64_t(0) : ((std::uint64_t(1) << (to + 1)) - 1)) & (~std::uint64_t(0) << from);
        if ((words[w] & mask) != mask) return false;
    }
    return true;
}

std::int64_t MonthBits::first_missing(std::int64_t lo, std::int64_t hi) const {
    for (std::int64_t m = lo; m <= hi; ++m)
        if (!has(m)) return m;
    return hi + 1;
}

namespace {
std::uint64_t next_identity() {
    static std::atomic<std::uint64_t> counter{0};
    return counter.fetch_add(1, std::memory_order_relaxed) + 1;
}
}  // namespace

Activation::Activation(Program const& program)
    : program_(&program), values_(program.facts.size()), month_slot_(program.facts.size(), -1),
      identity_(next_identity()) {
    int n = 0;
    for (std::size_t f = 0; f < program.facts.size(); ++f) {
        if (program.facts[f].type.kind == TypeKind::MonthSet) month_slot_[f] = n++;
        if (program.facts[f].has_default) defaults_ |= std::uint64_t(1) << f;
    }
    month_sets_.resize(std::size_t(n));
    clear();
}

// A copy is another record: it gets its own identity.
Activation::Activation(Activation const& o)
    : program_(o.program_), values_(o.values_), month_slot_(o.month_slot_), month_sets_(o.month_sets_),
      present_(o.present_), defaults_(o.defaults_), identity_(next_identity()) {}
Activation::Activation(Activation&& o) noexcept
    : program_(o.program_), values_(std::move(o.values_)), month_slot_(std::move(o.month_slot_)),
      month_sets_(std::move(o.month_sets_)), present_(o.present_), defaults_(o.defaults_), identity_(next_identity()) {
    o.identity_ = next_identity();  // what is left of `o` is not the record it was
}
Activation& Activation::operator=(Activation const& o) {
    if (this != &o) {
        program_ = o.program_;
        values_ = o.values_;
        month_slot_ = o.month_slot_;
        month_sets_ = o.month_sets_;
        present_ = o.present_;
        defaults_ = o.defaults_;
        ++changes_;
    }
    return *this;
}
Activation& Activation::operator=(Activation&& o) noexcept {
    if (this != &o) {
        program_ = o.program_;
        values_ = std::move(o.values_);
        month_slot_ = std::move(o.month_slot_);
        month_sets_ = std::move(o.month_sets_);
        present_ = o.present_;
        defaults_ = o.defaults_;
        ++changes_;
        o.identity_ = next_identity();
    }
    return *this;
}

void Activation::clear() {
    present_ = 0;
    ++changes_;
    for (std::uint64_t d = defaults_; d; d &= d - 1) {
        int const f = std::countr_zero(d);
        set_raw(f, program_->facts[std::size_t(f)].default_value);
    }
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
      outcomes_(program_->outputs.size()),
      frames_(program_->slots.size() + 1) {
    reset_params();
}

// A param changes what every let may be: the memoised values are forgotten.
bool Evaluator::set_param(std::uint32_t param, std::int64_t value) {
    if (param >= params_.size()) return false;
    params_[param] = value;
    facts_ = nullptr;
    return true;
}

void Evaluator::reset_params() {
    params_.clear();
    for (auto const& p : program_->params) params_.push_back(p.value);
    facts_ = nullptr;
}

void Evaluator::begin_record(Activation const& facts) {
    facts_ = &facts;
    facts_identity_ = facts.identity();
    facts_changes_ = facts.changes();
    if (!done_.empty()) std::memset(done_.data(), 0, done_.size());
    missing_hit_ = 0;
    no_version_ = false;
}

// The dispatch loop. Computed goto (GCC/Clang "labels as values") jumps straight from one instruction's
// handler to the next. The handlers of every instruction but the five control ones are expanded from the
// semantics column of the opcode table (kyotaku/opcodes.hpp), which the C++ emitter prints too.
bool Evaluator::run(std::uint32_t entry_slot) {
    Program const& p = *program_;
    Instr const* code = p.code.data();
    std::int64_t const* k = p.consts.data();
    std::int64_t* r = regs_.data();
    SlotInfo const* slots = p.slots.data();
    Activation const& facts = *facts_;
    // Everything the loop touches lives in locals: a store through the uint8_t `done` may alias any object in
    // memory, which would otherwise make the compiler reload every member after it.
    std::int64_t const* values = facts.values();
    std::uint64_t const present = facts.present();
    std::uint8_t* done = done_.data();
    std::uint32_t* clause_of = clause_of_.data();
    std::int64_t const* params = params_.data();
    std::vector<TraceEvent>* const trace = trace_;
    Frame* frames = frames_.data();
    std::size_t const max_depth = frames_.size() - 1;
    std::size_t depth = 0;
    std::uint32_t pc = slots[entry_slot].entry;
    Instr const* i = nullptr;

    static void* const table[] = {
#define KYOTAKU_OP_LABEL(name, ...) &&op_##name,
        KYOTAKU_OPCODES(KYOTAKU_OP_LABEL)
#undef KYOTAKU_OP_LABEL
    };
    static_assert(sizeof table / sizeof table[0] == op_count, "one handler per opcode, in order");
#define NEXT                    \
    do {                        \
        i = &code[pc++];        \
        goto* table[int(i->op)]; \
    } while (0)
#define NEED(f)                                      \
    if (!((present >> (f)) & 1u)) {                  \
        missing_hit_ |= std::uint64_t(1) << (f);     \
        return false;                                \
    }
#define A i->a
#define B i->b
#define C i->c
#define D i->d
#define K(x) k[x]
#define V(f) values[f]
#define P(x) params[x]
#define MONTHS(f) facts.months(f)
#define JUMP(x) pc = std::uint32_t(x)
#define FAIL() return false
#define TRACE_COND(clause, truth) \
    if (trace) trace->push_back(TraceEvent{TraceEvent::Kind::Condition, std::uint32_t(clause), std::int64_t(truth)})
#define KYOTAKU_OP_HANDLER(name, flow, a, b, c, d, ...) __VA_OPT__(op_##name : {__VA_ARGS__;} NEXT;)

    NEXT;
    KYOTAKU_OPCODES(KYOTAKU_OP_HANDLER)
#undef KYOTAKU_OP_HANDLER
#undef A
#undef B
#undef C
#undef D
#undef K
#undef V
#undef P
#undef MONTHS
#undef JUMP
#undef FAIL
#undef TRACE_COND

    // The control instructions: calls into other slots, versions and returns.
op_SLOT:
    if (done[i->b]) {
        r[i->a] = r[slots[i->b].result_reg];
        NEXT;
    }
    if (depth >= max_depth) return false;  // unreachable for a validated program (its slots form no cycle)
    frames[depth++] = Frame{pc, i->b, i->a, false};
    pc = slots[i->b].entry;
    NEXT;
op_REASON:
    if (done[i->b]) {
        r[i->a] = clause_of[i->b];
        NEXT;
    }
    if (depth >= max_depth) return false;
    frames[depth++] = Frame{pc, i->b, i->a, true};
    pc = slots[i->b].entry;
    NEXT;
op_VERSION: {
    auto const& s = slots[i->a];
    int asof = p.asof_fact;
    NEED(asof);
    std::int64_t day = facts.raw(asof);
    auto it = std::find_if(s.versions.begin(), s.versions.end(),
                           [&](VersionInfo const& v) { return v.from <= day && day <= v.until; });
    if (it == s.versions.end()) {
        no_version_ = true;
        failed_slot_ = i->a;
        return false;
    }
    version_of_[i->a] = std::uint32_t(it - s.versions.begin());
    pc = it->entry;
    NEXT;
}
op_RETK:
    r[slots[i->a].result_reg] = k[i->d];
    goto ret;
op_RET:
ret: {
    std::uint32_t s = i->a;
    clause_of[s] = i->b;
    done[s] = 1;
    if (trace) {
        trace->push_back(TraceEvent{TraceEvent::Kind::Decided, i->b, 0});
        trace->push_back(TraceEvent{TraceEvent::Kind::Slot, s, r[slots[s].result_reg]});
    }
    if (depth == 0) return true;
    Frame const& f = frames[--depth];
    r[f.target] = f.reason ? std::int64_t(i->b) : r[slots[s].result_reg];
    pc = f.return_pc;
    NEXT;
}
#undef NEXT
#undef NEED
}

// Evaluates slot s of the current record into `out`: its value, or why it is null.
inline void Evaluator::decide(std::uint32_t s, Activation const& facts, Outcome& out) {
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

void Evaluator::evaluate(Activation const& facts) {
    begin_record(facts);
    auto const& outputs = program_->outputs;
    for (std::size_t o = 0; o < outputs.size(); ++o) decide(outputs[o], facts, outcomes_[o]);
}

void Evaluator::evaluate_batch(std::span<Activation const> records, std::span<Outcome> results) {
    std::size_t n = program_->outputs.size();
    for (std::size_t i = 0; i < records.size() && (i + 1) * n <= results.size(); ++i) {
        evaluate(records[i]);
        std::copy(outcomes_.begin(), outcomes_.end(), results.begin() + std::ptrdiff_t(i * n));
    }
}

void Evaluator::evaluate_slot_batch(std::span<Activation const> records, std::uint32_t s, std::span<Outcome> results) {
    std::size_t n = std::min(records.size(), results.size());
    for (std::size_t i = 0; i < n; ++i) {
        begin_record(records[i]);
        decide(s, records[i], results[i]);
    }
}

Outcome Evaluator::evaluate_slot(Activation const& facts, std::uint32_t s) {
    same_record(facts);
    Outcome out;
    decide(s, facts, out);
    return out;
}

std::string Evaluator::format_value(Type type, std::int64_t v, Activation const& facts) {
    std::string out;
    append_value(out, type, v, facts);
    return out;
}

namespace {
void append_int(std::string& out, std::int64_t v) {
    char buf[24];
    auto const r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, std::size_t(r.ptr - buf));
}
}  // namespace

void Evaluator::append_value(std::string& out, Type type, std::int64_t v, Activation const& facts) {
    switch (type.kind) {
        case TypeKind::Bool: out += v ? "true" : "false"; return;
        case TypeKind::Int: append_int(out, v); return;
        case TypeKind::Date: out += Date::from_days(v).iso(); return;
        case TypeKind::Month: out += Month::from_index(v).iso(); return;
        case TypeKind::Enum: {
            auto const& vals = program_->enums[std::size_t(type.enum_id)].values;
            out +=
                v >= 0 && std::size_t(v) < vals.size() ? std::string_view(vals[std::size_t(v)]) : std::string_view("?");
            return;
        }
        case TypeKind::EnumSet: {
            auto const& vals = program_->enums[std::size_t(type.enum_id)].values;
            bool any = false;
            for (std::size_t i = 0; i < vals.size(); ++i)
                if ((std::uint64_t(v) >> i) & 1u) {
                    if (any) out += "・";
                    out += vals[i];
                    any = true;
                }
            if (!any) out += "なし";
            return;
        }
        case TypeKind::Text: append_text(out, v, facts, false); return;
        case TypeKind::MonthSet:
        case TypeKind::MonthRange: out += '?'; return;
    }
    out += '?';
}

std::string Evaluator::render_text(std::int64_t text, Activation const& facts, bool with_location) {
    std::string out;
    append_text(out, text, facts, with_location);
    return out;
}

void Evaluator::append_text(std::string& out, std::int64_t text, Activation const& facts, bool with_location) {
    if (text < 0) {
        out += program_->strings[std::size_t(-text - 1)];
        return;
    }
    auto const& clause = program_->clauses[std::size_t(text)];
    for (auto const& p : clause.because) {
        switch (p.kind) {
            case TextPiece::Kind::Literal: out += p.literal; break;
            case TextPiece::Kind::Param: append_value(out, p.type, params_[p.id], facts); break;
            case TextPiece::Kind::Fact:
                if (p.type.kind == TypeKind::MonthSet) out += "{…}";
                else if (facts.has(int(p.id))) append_value(out, p.type, facts.raw(int(p.id)), facts);
                else out += "(不明)";
                break;
            case TextPiece::Kind::Slot: {
                if (slot_value_) {
                    std::int64_t v;
                    if (slot_value_(slot_context_, p.id, v)) append_value(out, p.type, v, facts);
                    else out += "(不明)";
                    break;
                }
                same_record(facts);
                if (slot(p.id)) append_value(out, p.type, regs_[program_->slots[p.id].result_reg], facts);
                else out += "(不明)";
                break;
            }
        }
    }
    if (clause.because.empty()) {
        out += program_->slots[clause.slot].name;
        out += " の条項";
    }
    if (with_location) {
        out += " (";
        out += clause.loc.file < program_->files.size() ? std::string_view(program_->files[clause.loc.file])
                                                        : std::string_view("?");
        out += ':';
        append_int(out, clause.loc.line);
        out += ')';
    }
}

void Evaluator::append_text(std::string& out, std::int64_t text, Activation const& facts, SlotValue value,
                            void* context) {
    slot_value_ = value;
    slot_context_ = context;
    append_text(out, text, facts, true);
    slot_value_ = nullptr;
    slot_context_ = nullptr;
}

}  // namespace kyotaku
