// Compiled bundles (cereal, binary). Layout: the 8 bytes "KYTKBNDL", then a cereal archive of
// {format version, compiler version, source hash, payload checksum, payload}, where the payload is itself a
// cereal archive of the Program. The checksum is verified before the payload is read, and the loaded program
// is validated (every operand in range) before it is handed out: a bundle is input, and input is hostile.
#include "kyotaku/engine.hpp"

#include <cereal/archives/binary.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

#include <cstring>
#include <fstream>
#include <sstream>

namespace kyotaku {

template <class A> void serialize(A& a, Type& t) { a(t.kind, t.enum_id); }
template <class A> void serialize(A& a, SourceLoc& l) { a(l.file, l.line, l.column); }
template <class A> void serialize(A& a, EnumInfo& e) { a(e.name, e.values); }
template <class A> void serialize(A& a, FactInfo& f) { a(f.name, f.type, f.has_default, f.default_value, f.loc); }
template <class A> void serialize(A& a, ParamInfo& p) { a(p.name, p.type, p.value, p.loc); }
template <class A> void serialize(A& a, TextPiece& p) { a(p.kind, p.literal, p.id, p.type); }
template <class A> void serialize(A& a, ClauseInfo& c) { a(c.slot, c.version, c.otherwise, c.loc, c.source, c.because); }
template <class A> void serialize(A& a, VersionInfo& v) { a(v.label, v.from, v.until, v.entry, v.loc); }
template <class A> void serialize(A& a, SlotInfo& s) {
    a(s.name, s.decision, s.type, s.loc, s.source, s.result_reg, s.entry, s.versions, s.fact_deps);
}
template <class A> void serialize(A& a, TestValue& v) { a(v.is_null, v.scalar, v.months, v.text); }
template <class A> void serialize(A& a, TestBinding& b) { a(b.target, b.id, b.contains, b.value, b.loc); }
template <class A> void serialize(A& a, TestCase& t) { a(t.name, t.loc, t.fixture, t.given, t.expect); }
template <class A> void serialize(A& a, Instr& i) { a(i.op, i.a, i.b, i.c, i.d); }
template <class A> void serialize(A& a, Program& p) {
    a(p.files, p.enums, p.facts, p.params, p.slots, p.clauses, p.outputs, p.code, p.consts, p.strings, p.tests,
      p.fixtures, p.asof_fact, p.num_regs, p.source_hash);
}

namespace {
constexpr char magic[8] = {'K', 'Y', 'T', 'K', 'B', 'N', 'D', 'L'};

// FNV-1a, 64 bit: a fingerprint of the payload and of the rule sources (not a security measure).
std::uint64_t fnv1a(std::string_view bytes, std::uint64_t h = 1469598103934665603ull) {
    for (unsigned char c : bytes) {
        h ^= c;
        h *= 1099511628211ull;
    }
    return h;
}

// A checksum of the payload, eight bytes at a time (a corruption check, not a security measure).
std::uint64_t checksum64(std::string_view bytes) {
    std::uint64_t h = 0x9E3779B97F4A7C15ull ^ bytes.size();
    std::size_t i = 0;
    for (; i + 8 <= bytes.size(); i += 8) {
        std::uint64_t w;
        std::memcpy(&w, bytes.data() + i, 8);
        h = (h ^ w) * 0xFF51AFD7ED558CCDull;
        h ^= h >> 32;
    }
    for (; i < bytes.size(); ++i) h = (h ^ static_cast<unsigned char>(bytes[i])) * 1099511628211ull;
    return h ^ (h >> 29);
}

// Reads from memory without copying it (std::istream over a span).
struct MemoryBuffer : std::streambuf {
    MemoryBuffer(char const* data, std::size_t size) {
        char* p = const_cast<char*>(data);
        setg(p, p, p + size);
    }
};

// Every index in the program must point inside it, so that the evaluator never reads out of bounds.
std::string validate(Program const& p) {
    auto bad = [](std::string what) { return "バンドルの内容が不正です (" + what + ") / invalid bundle contents (" + what + ")"; };
    if (p.facts.size() > 64) return bad("facts");
    if (p.enums.empty()) return bad("enums");
    for (auto const& e : p.enums)
        if (e.values.size() > 64) return bad("enum size");
    auto type_ok = [&](Type t) {
        bool needs_enum = t.kind == TypeKind::Enum || t.kind == TypeKind::EnumSet;
        return !needs_enum || (t.enum_id >= 0 && std::size_t(t.enum_id) < p.enums.size());
    };
    if (p.asof_fact >= int(p.facts.size()) || p.asof_fact < -1) return bad("asof");
    for (auto const& f : p.facts)
        if (!type_ok(f.type)) return bad("fact type");
    for (auto const& s : p.slots) {
        if (!type_ok(s.type) || s.result_reg >= p.num_regs || s.entry >= p.code.size()) return bad("slot");
        for (auto const& v : s.versions)
            if (v.entry >= p.code.size()) return bad("version");
        if (!s.versions.empty() && p.asof_fact < 0) return bad("version without asof");
    }
    for (auto o : p.outputs)
        if (o >= p.slots.size()) return bad("outputs");
    auto binding_ok = [&](TestBinding const& b) {
        switch (b.target) {
            case TestBinding::Target::Fact: return b.id < p.facts.size();
            case TestBinding::Target::Param: return b.id < p.params.size();
            case TestBinding::Target::Slot: return b.id < p.slots.size();
        }
        return false;
    };
    for (auto const& f : p.fixtures)
        for (auto const& b : f)
            if (!binding_ok(b)) return bad("fixture");
    for (auto const& t : p.tests) {
        if (t.fixture >= int(p.fixtures.size()) || t.fixture < -1) return bad("test");
        for (auto const& b : t.given)
            if (!binding_ok(b) || b.target == TestBinding::Target::Slot) return bad("test");
        for (auto const& b : t.expect)
            if (!binding_ok(b) || b.target != TestBinding::Target::Slot) return bad("test");
    }
    for (auto const& c : p.clauses) {
        if (c.slot >= p.slots.size() || c.loc.file >= p.files.size()) return bad("clause");
        for (auto const& piece : c.because) {
            if (!type_ok(piece.type)) return bad("text");
            if (piece.kind == TextPiece::Kind::Fact && piece.id >= p.facts.size()) return bad("text");
            if (piece.kind == TextPiece::Kind::Param && piece.id >= p.params.size()) return bad("text");
            if (piece.kind == TextPiece::Kind::Slot && piece.id >= p.slots.size()) return bad("text");
        }
    }
    auto reg = [&](std::uint32_t r) { return r < p.num_regs; };
    auto fact = [&](std::int64_t f, TypeKind k) {
        return f >= 0 && std::size_t(f) < p.facts.size() && (k == TypeKind::Bool || p.facts[std::size_t(f)].type.kind == k);
    };
    // The compiler only jumps forward, so a valid program always terminates: refuse any backward jump.
    for (std::size_t at = 0; at < p.code.size(); ++at) {
        auto const& i = p.code[at];
        bool jumps = i.op == Op::JMP || i.op == Op::JMPF || i.op == Op::JMPT || i.op == Op::COND || i.op == Op::CONDLT ||
                     i.op == Op::CONDLE || i.op == Op::CONDNOT;
        if (jumps && std::size_t(i.d) <= at)
            return bad("backward jump");
    }
    for (auto const& s : p.slots)
        for (auto const& v : s.versions)
            if (v.entry <= s.entry) return bad("version entry");
    for (auto const& i : p.code) {
        bool ok = true;
        switch (i.op) {
            case Op::LOADK: ok = reg(i.a) && i.d >= 0 && std::size_t(i.d) < p.consts.size(); break;
            case Op::LOADF: ok = reg(i.a) && fact(i.b, TypeKind::Bool) && p.facts[i.b].type.kind != TypeKind::MonthSet; break;
            case Op::LOADP: ok = reg(i.a) && i.b < p.params.size(); break;
            case Op::SLOT:
            case Op::REASON: ok = reg(i.a) && i.b < p.slots.size(); break;
            case Op::MOV:
            case Op::NOT:
            case Op::NEG:
            case Op::MEND:
            case Op::MENDM:
            case Op::MOF: ok = reg(i.a) && reg(i.b); break;
            case Op::JMP: ok = i.d >= 0 && std::size_t(i.d) < p.code.size(); break;
            case Op::JMPF:
            case Op::JMPT: ok = reg(i.a) && i.d >= 0 && std::size_t(i.d) < p.code.size(); break;
            case Op::COND: ok = reg(i.a) && i.b < p.clauses.size() && i.d >= 0 && std::size_t(i.d) < p.code.size(); break;
            case Op::ADD:
            case Op::SUB:
            case Op::MUL:
            case Op::EQ:
            case Op::NE:
            case Op::LT:
            case Op::LE:
            case Op::EIN:
            case Op::PSTART: ok = reg(i.a) && reg(i.b) && reg(i.c); break;
            case Op::ADDK:
            case Op::SUBK:
            case Op::EQK:
            case Op::NEK:
            case Op::LTK:
            case Op::LEK:
            case Op::GTK:
            case Op::GEK:
            case Op::EINK: ok = reg(i.a) && reg(i.b) && i.d >= 0 && std::size_t(i.d) < p.consts.size(); break;
            case Op::PEND: ok = reg(i.a) && reg(i.b) && reg(i.c) && i.d >= 0 && reg(std::uint32_t(i.d)); break;
            case Op::ADDM: ok = reg(i.a) && reg(i.b) && reg(i.c) && (i.d == 0 || i.d == 1); break;
            case Op::MIN: ok = reg(i.a) && reg(i.b) && fact(i.c, TypeKind::MonthSet); break;
            case Op::MALL:
            case Op::MMISS: ok = reg(i.a) && reg(i.b) && reg(i.c) && fact(i.d, TypeKind::MonthSet); break;
            case Op::VERSION: ok = i.a < p.slots.size() && !p.slots[i.a].versions.empty(); break;
            case Op::RET: ok = i.a < p.slots.size() && i.b < p.clauses.size(); break;
            case Op::RETK:
                ok = i.a < p.slots.size() && i.b < p.clauses.size() && i.d >= 0 && std::size_t(i.d) < p.consts.size();
                break;
            case Op::TABLE: ok = reg(i.a) && reg(i.b) && i.d >= 0 && std::size_t(i.d) + i.c <= p.consts.size(); break;
            case Op::CONDLT:
            case Op::CONDLE:
                ok = i.a < p.clauses.size() && reg(i.b) && reg(i.c) && i.d >= 0 && std::size_t(i.d) < p.code.size();
                break;
            case Op::CONDNOT: ok = i.a < p.clauses.size() && reg(i.b) && i.d >= 0 && std::size_t(i.d) < p.code.size(); break;
            default: ok = false;
        }
        if (!ok) return bad("instruction");
    }
    return {};
}
}  // namespace

std::uint64_t hash_sources(std::vector<SourceFile> const& sources) {
    std::uint64_t h = 1469598103934665603ull;
    for (auto const& s : sources) {
        h = fnv1a(s.path, h);
        h = fnv1a(std::string_view("\0", 1), h);
        h = fnv1a(s.text, h);
        h = fnv1a(std::string_view("\0", 1), h);
    }
    return h;
}

std::string save_bundle(Program const& program) {
    std::ostringstream payload_stream(std::ios::binary);
    {
        cereal::BinaryOutputArchive ar(payload_stream);
        ar(const_cast<Program&>(program));
    }
    std::string payload = payload_stream.str();
    std::ostringstream header_stream(std::ios::binary);
    {
        cereal::BinaryOutputArchive ar(header_stream);
        std::uint32_t format = bundle_format_version;
        std::string compiler = compiler_version;
        std::uint64_t source_hash = program.source_hash, checksum = checksum64(payload), size = payload.size();
        ar(format, compiler, source_hash, checksum, size);
    }
    std::string header = header_stream.str();
    std::uint32_t header_size = std::uint32_t(header.size());
    std::string out(magic, sizeof magic);
    out.append(reinterpret_cast<char const*>(&header_size), sizeof header_size);
    out += header;
    out += payload;
    return out;
}

LoadResult load_bundle(std::string_view bytes, std::optional<std::uint64_t> expected_source_hash) {
    // Layout: "KYTKBNDL", u32 header size, header (cereal: format, compiler, source hash, checksum, payload
    // size), payload (cereal: the Program). Read in place, without copying the payload.
    LoadResult r;
    if (bytes.size() < sizeof magic || bytes.substr(0, sizeof magic) != std::string_view(magic, sizeof magic)) {
        r.error = "kyotaku のバンドルではありません / not a kyotaku bundle";
        return r;
    }
    auto damaged = [&](char const* what) {
        r.error = std::string("バンドルが壊れています / bundle is damaged (") + what + ")";
        return r;
    };
    std::uint32_t header_size = 0;
    if (bytes.size() < sizeof magic + sizeof header_size) return damaged("truncated");
    std::memcpy(&header_size, bytes.data() + sizeof magic, sizeof header_size);
    std::size_t header_at = sizeof magic + sizeof header_size;
    if (header_size > bytes.size() - header_at) return damaged("truncated header");
    try {
        MemoryBuffer header_buf(bytes.data() + header_at, header_size);
        std::istream in(&header_buf);
        cereal::BinaryInputArchive ar(in);
        std::uint32_t format = 0;
        ar(format);
        if (format != bundle_format_version) {
            r.error = "バンドルの形式の版が違います (バンドル " + std::to_string(format) + "、この kyotaku " +
                      std::to_string(bundle_format_version) + ")。kyotaku compile で作り直してください / bundle format version " +
                      std::to_string(format) + " does not match " + std::to_string(bundle_format_version) +
                      "; recompile it with kyotaku compile";
            return r;
        }
        std::string compiler;
        std::uint64_t source_hash = 0, checksum = 0, payload_size = 0;
        ar(compiler);
        if (compiler != compiler_version) {
            r.error = "バンドルは別の版のコンパイラで作られています (" + compiler + "、この kyotaku は " + compiler_version +
                      ")。kyotaku compile で作り直してください / bundle was compiled by " + compiler + ", this is " +
                      compiler_version + "; recompile it";
            return r;
        }
        ar(source_hash, checksum, payload_size);
        std::size_t payload_at = header_at + header_size;
        if (payload_size != bytes.size() - payload_at) return damaged("payload size");
        std::string_view payload = bytes.substr(payload_at);
        if (checksum64(payload) != checksum) return damaged("checksum mismatch");
        if (expected_source_hash && *expected_source_hash != source_hash) {
            r.error = "バンドルは現在のルールファイルから作られたものではありません (ソースのハッシュ不一致)。kyotaku compile で作り直してください / "
                      "bundle was not compiled from these rule sources (source hash mismatch); recompile it";
            return r;
        }
        auto program = std::make_shared<Program>();
        MemoryBuffer payload_buf(payload.data(), payload.size());
        std::istream pin(&payload_buf);
        cereal::BinaryInputArchive par(pin);
        par(*program);
        if (program->source_hash != source_hash) return damaged("inconsistent source hash");
        if (auto e = validate(*program); !e.empty()) {
            r.error = e;
            return r;
        }
        r.program = std::move(program);
    } catch (std::exception const& e) {
        r.error = std::string("バンドルを読めません / cannot read the bundle: ") + e.what();
    }
    return r;
}

}  // namespace kyotaku
