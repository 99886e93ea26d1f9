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

std::string Program::disassemble() const {
    static char const* const names[] = {"LOADK", "LOADF", "LOADP", "SLOT", "MOV", "NOT", "NEG", "JMP", "JMPF", "JMPT",
                                        "COND", "ADD", "SUB", "MUL", "EQ", "NE", "LT", "LE", "EIN", "ADDK", "SUBK",
                                        "EQK", "NEK", "LTK", "LEK", "GTK", "GEK", "EINK", "MIN", "MALL", "MMISS",
                                        "PSTART", "PEND", "ADDM", "MEND", "MENDM", "MOF", "REASON", "VERSION", "RET",
                                        "RETK", "TABLE", "CONDLT", "CONDLE", "CONDNOT"};
    static_assert(sizeof names / sizeof names[0] == std::size_t(Op::CONDNOT) + 1);
    std::string out;
    for (std::size_t pc = 0; pc < code.size(); ++pc) {
        for (auto const& s : slots)
            if (s.entry == pc) out += "; " + std::string(s.decision ? "decision " : "let ") + s.name + " (r" + std::to_string(s.result_reg) + ")\n";
        auto const& i = code[pc];
        char buf[96];
        std::snprintf(buf, sizeof buf, "%5zu  %-8s a=%u b=%u c=%u d=%d\n", pc, names[std::size_t(i.op)], i.a, i.b, i.c, i.d);
        out += buf;
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
    for (auto const& s : slots) n += sizeof s + str(s.name) + str(s.source) + s.versions.capacity() * sizeof(VersionInfo);
    for (auto const& c : clauses) {
        n += sizeof c + str(c.source);
        for (auto const& p : c.because) n += sizeof p + str(p.literal);
    }
    n += outputs.capacity() * sizeof(std::uint32_t) + code.capacity() * sizeof(Instr) + consts.capacity() * sizeof(std::int64_t);
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
