// Lowering: each let/decision becomes a run of instructions over its own register window, so a slot can be
// evaluated lazily from the middle of another slot's expression without saving registers. Clauses become
// COND/RET pairs; enums, dates and months are integers, enum sets are bit masks, month sets stay in the facts.
#include "compiler.hpp"

#include <bit>
#include <functional>
#include <map>
#include <numeric>
#include <optional>

namespace kyotaku::lowering {

namespace {
using check::BinOp;
using check::Builtin;
using check::Node;

class Lowering {
public:
    Lowering(Program& p, std::vector<check::Slot>& slots) : p_(p), slots_(slots) {}

    // False when the program does not fit the instruction format (65,536 registers, clauses and slots).
    bool run() {
        for (std::uint32_t s = 0; s < p_.slots.size(); ++s) slot(s);
        p_.num_regs = next_reg_;
        return !overflow_ && next_reg_ <= 0x10000;
    }

private:
    Program& p_;
    std::vector<check::Slot>& slots_;
    std::map<std::int64_t, std::uint32_t> const_index_;
    std::uint32_t next_reg_ = 0;
    std::uint32_t top_ = 0, max_top_ = 0;
    bool overflow_ = false;

    std::uint16_t temp() {
        std::uint32_t r = top_++;
        if (r > 0xFFFF) overflow_ = true;
        if (top_ > max_top_) max_top_ = top_;
        return std::uint16_t(r);
    }
    void release() { --top_; }
    std::size_t emit(Op op, std::uint32_t a = 0, std::uint32_t b = 0, std::uint32_t c = 0, std::int32_t d = 0) {
        if (a > 0xFFFF || b > 0xFFFF || c > 0xFFFF || p_.code.size() >= 0x7FFFFFFF) overflow_ = true;
        p_.code.push_back(Instr{op, std::uint16_t(a), std::uint16_t(b), std::uint16_t(c), d});
        return p_.code.size() - 1;
    }
    void patch(std::size_t at) { p_.code[at].d = std::int32_t(p_.code.size()); }
    std::uint32_t k(std::int64_t v) {
        auto [it, fresh] = const_index_.emplace(v, std::uint32_t(p_.consts.size()));
        if (fresh) p_.consts.push_back(v);
        return it->second;
    }

    void slot(std::uint32_t s) {
        auto& info = p_.slots[s];
        std::uint32_t base = next_reg_;
        info.result_reg = std::uint16_t(base);
        top_ = max_top_ = base + 1;
        info.entry = std::uint32_t(p_.code.size());
        auto& def = slots_[s];
        if (def.versioned) emit(Op::VERSION, s);
        for (std::size_t v = 0; v < def.versions.size(); ++v) {
            if (def.versioned) info.versions[v].entry = std::uint32_t(p_.code.size());
            for (auto& c : def.versions[v].clauses) {
                std::uint32_t id = c.id;
                std::size_t jump = 0;
                if (c.condition) jump = condition(*c.condition, id);
                if (c.value.kind == Node::Kind::Const) {
                    emit(Op::RETK, s, id, 0, std::int32_t(k(c.value.value)));
                } else {
                    expr(c.value, base);
                    emit(Op::RET, s, id);
                }
                if (c.condition) patch(jump);
            }
        }
        next_reg_ = max_top_;
    }

    // A constant right operand is folded into the instruction (the K forms), saving a load and a register.
    static std::optional<Op> constant_form(Op op, bool swap) {
        switch (op) {
            case Op::ADD: return swap ? std::nullopt : std::optional(Op::ADDK);
            case Op::SUB: return swap ? std::nullopt : std::optional(Op::SUBK);
            case Op::EQ: return Op::EQK;
            case Op::NE: return Op::NEK;
            case Op::LT: return swap ? Op::GTK : Op::LTK;  // swapped: a > b
            case Op::LE: return swap ? Op::GEK : Op::LEK;
            case Op::EIN: return swap ? std::nullopt : std::optional(Op::EINK);
            default: return std::nullopt;
        }
    }

    // A clause condition and its jump; comparisons of two values and `not x` fuse into one instruction.
    std::size_t condition(Node const& c, std::uint32_t clause) {
        bool fusable = clause <= 0xFFFF;
        auto plain = [&](Node const& n) { return n.kind != Node::Kind::Const; };
        if (fusable && c.kind == Node::Kind::Binary && plain(c.kids[0]) && plain(c.kids[1]) &&
            (c.op == BinOp::Lt || c.op == BinOp::Le || c.op == BinOp::Gt || c.op == BinOp::Ge)) {
            bool swap = c.op == BinOp::Gt || c.op == BinOp::Ge;
            std::uint16_t x = temp(), y = temp();
            expr(c.kids[0], x);
            expr(c.kids[1], y);
            release();
            release();
            Op op = (c.op == BinOp::Lt || c.op == BinOp::Gt) ? Op::CONDLT : Op::CONDLE;
            return swap ? emit(op, clause, y, x) : emit(op, clause, x, y);
        }
        if (fusable && c.kind == Node::Kind::Not) {
            std::uint16_t x = temp();
            expr(c.kids[0], x);
            release();
            return emit(Op::CONDNOT, clause, x);
        }
        std::uint16_t r = temp();
        expr(c, r);
        release();
        return emit(Op::COND, r, clause);
    }

    void binary_op(Op op, Node const& a, Node const& b, std::uint16_t target, bool swap = false) {
        if (b.kind == Node::Kind::Const) {
            if (auto kop = constant_form(op, swap)) {
                expr(a, target);
                emit(*kop, target, target, 0, std::int32_t(k(b.value)));
                return;
            }
        }
        expr(a, target);
        std::uint16_t t = temp();
        expr(b, t);
        if (swap) emit(op, target, t, target);
        else emit(op, target, target, t);
        release();
    }

    void expr(Node const& n, std::uint16_t target) {
        switch (n.kind) {
            case Node::Kind::Const: emit(Op::LOADK, target, 0, 0, std::int32_t(k(n.value))); return;
            case Node::Kind::Fact: emit(Op::LOADF, target, std::uint32_t(n.value)); return;
            case Node::Kind::Param: emit(Op::LOADP, target, std::uint32_t(n.value)); return;
            case Node::Kind::Slot: emit(Op::SLOT, target, std::uint32_t(n.value)); return;
            case Node::Kind::Reason: emit(Op::REASON, target, std::uint32_t(n.value)); return;
            case Node::Kind::Not: expr(n.kids[0], target); emit(Op::NOT, target, target); return;
            case Node::Kind::Neg: expr(n.kids[0], target); emit(Op::NEG, target, target); return;
            case Node::Kind::And:
            case Node::Kind::Or: {
                expr(n.kids[0], target);
                std::size_t j = emit(n.kind == Node::Kind::And ? Op::JMPF : Op::JMPT, target);
                expr(n.kids[1], target);
                patch(j);
                return;
            }
            case Node::Kind::If: {
                expr(n.kids[0], target);
                std::size_t j = emit(Op::JMPF, target);
                expr(n.kids[1], target);
                std::size_t j2 = emit(Op::JMP);
                patch(j);
                expr(n.kids[2], target);
                patch(j2);
                return;
            }
            case Node::Kind::Match: {
                bool constant_arms = true;
                for (std::size_t a = 1; a < n.kids.size(); ++a)
                    constant_arms = constant_arms && n.kids[a].kind == Node::Kind::Const;
                std::size_t values = std::size_t(std::bit_width(
                    std::accumulate(n.arm_masks.begin(), n.arm_masks.end(), std::uint64_t(0), std::bit_or<>())));
                if (constant_arms) {
                    // One constant per enum value, contiguous in the constant table.
                    std::int32_t at = std::int32_t(p_.consts.size());
                    for (std::size_t v = 0; v < values; ++v)
                        for (std::size_t a = 0; a < n.arm_masks.size(); ++a)
                            if ((n.arm_masks[a] >> v) & 1u) {
                                p_.consts.push_back(n.kids[a + 1].value);
                                break;
                            }
                    expr(n.kids[0], target);
                    emit(Op::TABLE, target, target, std::uint32_t(values), at);
                    return;
                }
                std::uint16_t subject = temp();
                std::uint16_t t = temp();
                expr(n.kids[0], subject);
                std::vector<std::size_t> ends;
                for (std::size_t i = 0; i < n.arm_masks.size(); ++i) {
                    if (i + 1 == n.arm_masks.size()) {  // exhaustive: the last arm takes what is left
                        expr(n.kids[i + 1], target);
                        break;
                    }
                    emit(Op::EINK, t, subject, 0, std::int32_t(k(std::int64_t(n.arm_masks[i]))));
                    std::size_t next = emit(Op::JMPF, t);
                    expr(n.kids[i + 1], target);
                    ends.push_back(emit(Op::JMP));
                    patch(next);
                }
                for (auto e : ends) patch(e);
                release();
                release();
                return;
            }
            case Node::Kind::Range: return;  // only inside calls and `in`, handled there
            case Node::Kind::Call: call(n, target); return;
            case Node::Kind::Binary: break;
        }
        Node const& a = n.kids[0];
        Node const& b = n.kids[1];
        switch (n.op) {
            case BinOp::Add: binary_op(Op::ADD, a, b, target); return;
            case BinOp::Sub: binary_op(Op::SUB, a, b, target); return;
            case BinOp::Mul: binary_op(Op::MUL, a, b, target); return;
            case BinOp::Eq: binary_op(Op::EQ, a, b, target); return;
            case BinOp::Ne: binary_op(Op::NE, a, b, target); return;
            case BinOp::Lt: binary_op(Op::LT, a, b, target); return;
            case BinOp::Le: binary_op(Op::LE, a, b, target); return;
            case BinOp::Gt: binary_op(Op::LT, a, b, target, true); return;
            case BinOp::Ge: binary_op(Op::LE, a, b, target, true); return;
            case BinOp::EnumIn:
            case BinOp::EnumNotIn:
                binary_op(Op::EIN, a, b, target);
                if (n.op == BinOp::EnumNotIn) emit(Op::NOT, target, target);
                return;
            case BinOp::MonthIn:
            case BinOp::MonthNotIn:
                expr(a, target);
                emit(Op::MIN, target, target, std::uint32_t(b.value));
                if (n.op == BinOp::MonthNotIn) emit(Op::NOT, target, target);
                return;
            case BinOp::RangeIn:
            case BinOp::RangeNotIn: {
                expr(a, target);
                std::uint16_t lo = temp(), hi = temp();
                expr(b.kids[0], lo);
                expr(b.kids[1], hi);
                emit(Op::LE, lo, lo, target);
                emit(Op::LE, hi, target, hi);
                emit(Op::MUL, target, lo, hi);
                if (n.op == BinOp::RangeNotIn) emit(Op::NOT, target, target);
                release();
                release();
                return;
            }
            case BinOp::AddMonths: {
                expr(a, target);
                std::uint16_t t = temp();
                expr(b, t);
                emit(Op::ADDM, target, target, t, n.rounding);
                release();
                return;
            }
        }
    }

    void call(Node const& n, std::uint16_t target) {
        switch (n.builtin) {
            case Builtin::PeriodStart: binary_op(Op::PSTART, n.kids[0], n.kids[1], target); return;
            case Builtin::PeriodEnd: {
                expr(n.kids[0], target);
                std::uint16_t m = temp(), r = temp();
                expr(n.kids[1], m);
                expr(n.kids[2], r);
                emit(Op::PEND, target, target, m, r);
                release();
                release();
                return;
            }
            case Builtin::MonthEnd: expr(n.kids[0], target); emit(Op::MEND, target, target); return;
            case Builtin::MonthEndOfMonth: expr(n.kids[0], target); emit(Op::MENDM, target, target); return;
            case Builtin::MonthOf: expr(n.kids[0], target); emit(Op::MOF, target, target); return;
            case Builtin::AllIn:
            case Builtin::FirstMissing: {
                Node const& range = n.kids[0];
                expr(range.kids[0], target);
                std::uint16_t hi = temp();
                expr(range.kids[1], hi);
                emit(n.builtin == Builtin::AllIn ? Op::MALL : Op::MMISS, target, target, hi,
                     std::int32_t(n.kids[1].value));
                release();
                return;
            }
        }
    }
};
}  // namespace

std::optional<Program> lower(check::Checked&& checked) {
    Program p = std::move(checked.program);
    if (!Lowering(p, checked.slots).run()) return std::nullopt;
    return p;
}

}  // namespace kyotaku::lowering
