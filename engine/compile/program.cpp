#include "kyotaku/program.hpp"

#include <cstdio>

namespace kyotaku {

int Program::find_fact(std::string_view name) const {
    for (std::size_t i = 0; i < facts.size(); ++i)
        if (facts[i].name == name) return int(i);
    return -1;
}
int Program::find_slot(std::string_view name) const {
    for (std::size_t i = 0; i < slots.size(); ++i)
        if (slots[i].name == name) return int(i);
    return -1;
}
int Program::find_param(std::string_view name) const {
    for (std::size_t i = 0; i < params.size(); ++i)
        if (params[i].name == name) return int(i);
    return -1;
}
int Program::find_enum_value(int enum_id, std::string_view value) const {
    if (enum_id < 0 || std::size_t(enum_id) >= enums.size()) return -1;
    auto const& vals = enums[std::size_t(enum_id)].values;
    for (std::size_t i = 0; i < vals.size(); ++i)
        if (vals[i] == value) return int(i);
    return -1;
}
std::string Program::location(SourceLoc const& loc) const {
    std::string f = loc.file < files.size() ? files[loc.file] : "?";
    return f + ":" + std::to_string(loc.line);
}

// One line per instruction, its operands named by their kind in the opcode table.
std::string Program::disassemble() const {
    auto name_of = [](auto const& list, std::int64_t i) -> std::string {
        return i >= 0 && std::size_t(i) < list.size() ? list[std::size_t(i)].name : "?";
    };
    std::string out;
    for (std::size_t pc = 0; pc < code.size(); ++pc) {
        for (auto const& s : slots)
            if (s.entry == pc)
                out += "; " + std::string(s.decision ? "decision " : "let ") + s.name + " (r" +
                       std::to_string(s.result_reg) + ")\n";
        auto const& i = code[pc];
        if (!valid_op(i.op)) {
            out += std::to_string(pc) + "  ?\n";
            continue;
        }
        OpInfo const& info = op_info(i.op);
        char buf[32];
        std::snprintf(buf, sizeof buf, "%5zu  %-8s", pc, info.name);
        std::string line = buf;
        std::int64_t const values[4] = {i.a, i.b, i.c, i.d};
        for (int o = 0; o < 4; ++o) {
            std::int64_t const v = values[o];
            switch (info.operands[o]) {
                case OperandKind::none: continue;
                case OperandKind::reg_read:
                case OperandKind::reg_write: line += " r" + std::to_string(v); break;
                case OperandKind::constant:
                    line +=
                        " k" + std::to_string(v) +
                        (v >= 0 && std::size_t(v) < consts.size() ? "=" + std::to_string(consts[std::size_t(v)]) : "");
                    break;
                case OperandKind::fact:
                case OperandKind::month_set: line += " fact:" + name_of(facts, v); break;
                case OperandKind::param: line += " param:" + name_of(params, v); break;
                case OperandKind::slot:
                case OperandKind::own_slot: line += " slot:" + name_of(slots, v); break;
                case OperandKind::clause:
                    line +=
                        " clause:" + std::to_string(v) +
                        (v >= 0 && std::size_t(v) < clauses.size() ? "(" + location(clauses[std::size_t(v)].loc) + ")"
                                                                   : "");
                    break;
                case OperandKind::jump: line += " -> " + std::to_string(v); break;
                case OperandKind::literal: line += " " + std::to_string(v); break;
            }
        }
        out += line + "\n";
    }
    return out;
}

std::size_t Program::memory_bytes() const {
    auto str = [](std::string const& s) { return s.capacity() > 15 ? s.capacity() : 0; };
    std::size_t n = sizeof(Program);
    for (auto const& f : files) n += sizeof f + str(f);
    for (auto const& e : enums) {
        n += sizeof e + str(e.name);
        for (auto const& v : e.values) n += sizeof v + str(v);
    }
    for (auto const& f : facts) n += sizeof f + str(f.name);
    for (auto const& p : params) n += sizeof p + str(p.name);
    for (auto const& s : slots)
        n += sizeof s + str(s.name) + str(s.source) + s.versions.capacity() * sizeof(VersionInfo);
    for (auto const& c : clauses) {
        n += sizeof c + str(c.source);
        for (auto const& p : c.because) n += sizeof p + str(p.literal);
    }
    n += outputs.capacity() * sizeof(std::uint32_t) + code.capacity() * sizeof(Instr) +
         consts.capacity() * sizeof(std::int64_t);
    for (auto const& s : strings) n += sizeof s + str(s);
    for (auto const& f : fixtures)
        for (auto const& b : f) n += sizeof b + b.value.months.capacity() * 8 + str(b.value.text);
    for (auto const& t : tests) {
        n += sizeof t + str(t.name);
        for (auto const& b : t.given) n += sizeof b + b.value.months.capacity() * 8 + str(b.value.text);
        for (auto const& b : t.expect) n += sizeof b + b.value.months.capacity() * 8 + str(b.value.text);
    }
    return n;
}

}  // namespace kyotaku
