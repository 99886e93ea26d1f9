// Compiled bundles (cereal, binary). Layout: the 8 bytes "KYTKBNDL", then a cereal archive of
// {format version, compiler version, source hash, payload checksum, payload}, where the payload is itself a
// cereal archive of the Program. The checksum is verified before the payload is read, and the loaded program
// is validated (every operand in range) before it is handed out: a bundle is input, and input is hostile.
#include "kyotaku/engine.hpp"

#include <cereal/archives/binary.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <filesystem>
#include <sstream>

namespace kyotaku {

template <class A> void serialize(A& a, Type& t) { a(t.kind, t.enum_id); }
template <class A> void serialize(A& a, SourceLoc& l) { a(l.file, l.line, l.column); }
template <class A> void serialize(A& a, EnumInfo& e) { a(e.name, e.values); }
template <class A>
void serialize(A& a, FactInfo& f) {
    a(f.name, f.label, f.type, f.has_default, f.default_value, f.loc);
}
template <class A> void serialize(A& a, ParamInfo& p) { a(p.name, p.type, p.value, p.loc); }
template <class A> void serialize(A& a, TextPiece& p) { a(p.kind, p.literal, p.id, p.type); }
template <class A>
void serialize(A& a, ClauseInfo& c) {
    a(c.slot, c.version, c.otherwise, c.loc, c.source, c.because);
}
template <class A> void serialize(A& a, VersionInfo& v) { a(v.label, v.from, v.until, v.entry, v.loc); }
template <class A> void serialize(A& a, SlotInfo& s) {
    a(s.name, s.label, s.decision, s.exported, s.type, s.loc, s.source, s.result_reg, s.entry, s.versions, s.fact_deps);
}
template <class A> void serialize(A& a, TestValue& v) { a(v.is_null, v.scalar, v.months, v.text); }
template <class A> void serialize(A& a, TestBinding& b) { a(b.target, b.id, b.contains, b.value, b.loc); }
template <class A> void serialize(A& a, TestCase& t) { a(t.name, t.loc, t.fixture, t.given, t.expect); }
template <class A> void serialize(A& a, Instr& i) { a(i.op, i.a, i.b, i.c, i.d); }
template <class A> void serialize(A& a, InvariantInfo& i) { a(i.name, i.label, i.slot, i.loc, i.source); }
template <class A> void serialize(A& a, Program& p) {
    a(p.files, p.enums, p.facts, p.params, p.slots, p.clauses, p.outputs, p.code, p.consts, p.strings, p.tests,
      p.fixtures, p.invariants, p.assumptions, p.asof_fact, p.horizon, p.num_regs, p.source_hash);
}

namespace {
constexpr char magic[8] = {'K', 'Y', 'T', 'K', 'B', 'N', 'D', 'L'};
constexpr char signature_magic[8] = {'K', 'Y', 'T', 'K', 'S', 'I', 'G', '1'};

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

// The code, function by function (each slot's instructions run from its entry to the next slot's entry), proved
// from the opcode table: every operand is in range for its kind; every jump goes forward and stays inside its
// function; no path falls off the end of its function, so every path ends in a return (RET, RETK) or a version
// dispatch (VERSION, whose targets are the function's own versions); no instruction reads a register of its
// function's window that every path to it has not written (the register machine's form of "the stack never
// underflows": nothing is read that this record did not put there); a function returns only for its own slot and
// tests only its own clauses; and the slots call one another without a cycle, so the evaluator's call stack (one
// frame per slot at most) never overflows.
std::string validate_code(Program const& p) {
    if (p.num_regs > 65536) return "registers";
    if (p.slots.empty()) return p.code.empty() ? std::string() : "code outside any function";
    std::size_t const n_slots = p.slots.size();
    // Functions: ordered by entry, contiguous, covering the code; register windows likewise.
    std::vector<std::uint32_t> by_entry(n_slots), by_reg(n_slots);
    for (std::uint32_t s = 0; s < n_slots; ++s) by_entry[s] = by_reg[s] = s;
    std::sort(by_entry.begin(), by_entry.end(), [&](auto x, auto y) { return p.slots[x].entry < p.slots[y].entry; });
    std::sort(by_reg.begin(), by_reg.end(),
              [&](auto x, auto y) { return p.slots[x].result_reg < p.slots[y].result_reg; });
    std::vector<std::uint32_t> fn_end(n_slots), window_end(n_slots);
    if (p.slots[by_entry[0]].entry != 0) return "code outside any function";
    for (std::size_t k = 0; k < n_slots; ++k) {
        std::uint32_t const s = by_entry[k];
        fn_end[s] = k + 1 < n_slots ? p.slots[by_entry[k + 1]].entry : std::uint32_t(p.code.size());
        if (fn_end[s] <= p.slots[s].entry) return "empty function";
        std::uint32_t const w = by_reg[k];
        window_end[w] = k + 1 < n_slots ? p.slots[by_reg[k + 1]].result_reg : p.num_regs;
        if (window_end[w] <= p.slots[w].result_reg) return "register windows overlap";
    }
    std::vector<std::vector<std::uint32_t>> calls(n_slots);  // SLOT and REASON, for the cycle check
    std::vector<std::uint64_t> state;  // per instruction: the registers of the window written on every path to it
    std::vector<char> reached;
    std::vector<std::uint64_t> out;
    for (std::uint32_t s = 0; s < n_slots; ++s) {
        SlotInfo const& slot = p.slots[s];
        std::uint32_t const entry = slot.entry, end = fn_end[s];
        std::int64_t const base = slot.result_reg, top = window_end[s];
        std::size_t const words = std::size_t(top - base + 63) / 64, n = end - entry;
        state.assign(n * words, 0);
        reached.assign(n, 0);
        reached[0] = 1;
        out.assign(words, 0);
        auto in_window = [&](std::int64_t r) { return r >= base && r < top; };
        auto written = [&](std::uint64_t const* st, std::int64_t r) {
            return (st[std::size_t(r - base) / 64] >> ((r - base) % 64)) & 1u;
        };
        for (std::uint32_t pc = entry; pc < end; ++pc) {
            Instr const& i = p.code[pc];
            if (!valid_op(i.op)) return "unknown instruction at " + std::to_string(pc);
            OpInfo const& info = op_info(i.op);
            auto where = [&] { return std::string(info.name) + " at " + std::to_string(pc); };  // only for a refusal
            std::int64_t const ops[4] = {i.a, i.b, i.c, i.d};
            std::uint64_t const* st = &state[std::size_t(pc - entry) * words];
            bool const live = reached[pc - entry];
            std::copy(st, st + words, out.begin());
            for (int o = 0; o < 4; ++o) {
                std::int64_t const v = ops[o];
                bool ok = true;
                switch (info.operands[o]) {
                    case OperandKind::none: ok = v == 0; break;
                    case OperandKind::reg_read: ok = in_window(v) && (!live || written(st, v)); break;
                    case OperandKind::reg_write: ok = in_window(v); break;
                    case OperandKind::constant: ok = v >= 0 && std::size_t(v) < p.consts.size(); break;
                    case OperandKind::fact:
                    case OperandKind::month_set:
                        ok = v >= 0 && std::size_t(v) < p.facts.size() &&
                             (p.facts[std::size_t(v)].type.kind == TypeKind::MonthSet) ==
                                 (info.operands[o] == OperandKind::month_set);
                        break;
                    case OperandKind::param: ok = v >= 0 && std::size_t(v) < p.params.size(); break;
                    case OperandKind::slot:
                        ok = v >= 0 && std::size_t(v) < n_slots;
                        if (ok) calls[s].push_back(std::uint32_t(v));
                        break;
                    case OperandKind::own_slot: ok = v == s; break;
                    case OperandKind::clause:
                        ok = v >= 0 && std::size_t(v) < p.clauses.size() && p.clauses[std::size_t(v)].slot == s;
                        break;
                    case OperandKind::jump: ok = v > pc && v < end; break;
                    case OperandKind::literal:
                        if (i.op == Op::ADDM) ok = v == 0 || v == 1;
                        else if (i.op == Op::TABLE)
                            ok = v >= 1 && i.d >= 0 && std::size_t(i.d) + std::size_t(v) <= p.consts.size();
                        else ok = false;
                        break;
                }
                if (!ok) return "operand " + std::string(1, char('a' + o)) + " of " + where();
            }
            if (i.op == Op::RET && live && !written(st, base))
                return "return of an unwritten value at " + std::to_string(pc);
            if (i.op == Op::VERSION) {
                if (pc != entry || slot.versions.empty() || p.asof_fact < 0)
                    return "version dispatch at " + std::to_string(pc);
                for (auto const& v : slot.versions)
                    if (v.entry <= pc || v.entry >= end) return "version entry of " + where();
            }
            for (int o = 0; o < 4; ++o)
                if (info.operands[o] == OperandKind::reg_write) {
                    std::int64_t const r = ops[o] - base;
                    out[std::size_t(r) / 64] |= std::uint64_t(1) << (r % 64);
                }
            if (!live) continue;
            bool falls_off = false;
            for_each_successor(p, pc, [&](std::uint32_t next, bool) {
                if (next >= end || next <= pc) {
                    falls_off = true;
                    return;
                }
                std::uint64_t* target = &state[std::size_t(next - entry) * words];
                if (!reached[next - entry]) std::copy(out.begin(), out.end(), target);
                else
                    for (std::size_t w = 0; w < words; ++w) target[w] &= out[w];
                reached[next - entry] = 1;
            });
            if (falls_off) return "a path without a return after " + where();
        }
    }
    // No cycle among the calls (Kahn's algorithm: every slot can be ordered after the slots it calls).
    std::vector<std::uint32_t> pending(n_slots, 0);
    std::vector<std::vector<std::uint32_t>> callers(n_slots);
    for (std::uint32_t s = 0; s < n_slots; ++s)
        for (auto callee : calls[s]) {
            callers[callee].push_back(s);
            ++pending[s];
        }
    std::vector<std::uint32_t> ready;
    for (std::uint32_t s = 0; s < n_slots; ++s)
        if (pending[s] == 0) ready.push_back(s);
    std::size_t ordered = 0;
    while (!ready.empty()) {
        std::uint32_t const s = ready.back();
        ready.pop_back();
        ++ordered;
        for (auto caller : callers[s])
            if (--pending[caller] == 0) ready.push_back(caller);
    }
    if (ordered != n_slots) return "slots that call each other in a cycle";
    return {};
}

// Every index in the program must point inside it, so that the evaluator never reads out of bounds.
// Empty when the program is valid; otherwise what is wrong (English, short).
std::string validate(Program const& p) {
    auto bad = [](std::string what) { return what; };
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
    for (auto const* list : {&p.invariants, &p.assumptions})
        for (auto const& i : *list)
            if (i.slot >= p.slots.size() || p.slots[i.slot].type.kind != TypeKind::Bool || i.loc.file >= p.files.size())
                return bad("invariant");
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
    for (auto const& c : p.clauses)
        if (c.version >= std::max<std::size_t>(1, p.slots[c.slot].versions.size())) return bad("clause version");
    if (auto e = validate_code(p); !e.empty()) return bad(e);
    return {};
}
}  // namespace

std::uint64_t hash_sources(std::vector<SourceFile> const& sources) {
    std::uint64_t h = 1469598103934665603ull;
    // A file counts by its name, not by the folder it was read from: the same rules give the same hash wherever
    // they are installed (servers compare it across machines: kyotaku_rules_info).
    for (auto const& s : sources) {
        h = fnv1a(std::filesystem::path(s.path).filename().generic_string(), h);
        h = fnv1a(std::string_view("\0", 1), h);
        h = fnv1a(s.text, h);
        h = fnv1a(std::string_view("\0", 1), h);
    }
    return h;
}

namespace {
// The header: format, compiler, source hash, payload checksum and size, then (format 3) the release.
struct Header {
    std::uint32_t format = bundle_format_version;
    std::string compiler = compiler_version;
    std::uint64_t source_hash = 0, checksum = 0, payload_size = 0;
    ReleaseInfo release;
};

std::string write_header(Header const& h) {
    std::ostringstream header_stream(std::ios::binary);
    {
        cereal::BinaryOutputArchive ar(header_stream);
        ar(h.format, h.compiler, h.source_hash, h.checksum, h.payload_size, h.release.release, h.release.key_id,
           h.release.report_sha256);
    }
    std::string header = header_stream.str();
    std::uint32_t const header_size = std::uint32_t(header.size());
    std::string out(magic, sizeof magic);
    out.append(reinterpret_cast<char const*>(&header_size), sizeof header_size);
    return out + header;
}

// Reads the header of `bytes`; `payload_at` receives where the payload starts. The message says why not.
std::optional<Header> read_header(std::string_view bytes, std::size_t& payload_at, Message& error) {
    auto fail = [&](std::string ja, std::string en) {
        error = Message{std::move(ja), std::move(en)};
        return std::nullopt;
    };
    if (bytes.size() < sizeof magic || bytes.substr(0, sizeof magic) != std::string_view(magic, sizeof magic))
        return fail("kyotaku のバンドルではありません", "not a kyotaku bundle");
    auto damaged = [&](char const* what) {
        return fail(std::string("バンドルが壊れています (") + what + ")",
                    std::string("bundle is damaged (") + what + ")");
    };
    std::uint32_t header_size = 0;
    if (bytes.size() < sizeof magic + sizeof header_size) return damaged("truncated");
    std::memcpy(&header_size, bytes.data() + sizeof magic, sizeof header_size);
    std::size_t const header_at = sizeof magic + sizeof header_size;
    if (header_size > bytes.size() - header_at) return damaged("truncated header");
    Header h;
    try {
        MemoryBuffer header_buf(bytes.data() + header_at, header_size);
        std::istream in(&header_buf);
        cereal::BinaryInputArchive ar(in);
        ar(h.format);
        if (h.format != bundle_format_version)
            return fail("バンドルの形式の版が違います (バンドル " + std::to_string(h.format) + "、この kyotaku " +
                            std::to_string(bundle_format_version) + ")。kyotaku compile で作り直してください",
                        "bundle format version " + std::to_string(h.format) + " does not match " +
                            std::to_string(bundle_format_version) + "; recompile it with kyotaku compile");
        ar(h.compiler);
        if (h.compiler != compiler_version)
            return fail("バンドルは別の版のコンパイラで作られています (" + h.compiler + "、この kyotaku は " +
                            compiler_version + ")。kyotaku compile で作り直してください",
                        "bundle was compiled by " + h.compiler + ", this is " + compiler_version + "; recompile it");
        ar(h.source_hash, h.checksum, h.payload_size, h.release.release, h.release.key_id, h.release.report_sha256);
    } catch (std::exception const& e) {
        return fail(std::string("バンドルを読めません: ") + e.what(),
                    std::string("cannot read the bundle: ") + e.what());
    }
    payload_at = header_at + header_size;
    return h;
}
}  // namespace

std::string source_hash_hex(std::uint64_t hash) {
    char out[24];
    std::snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(hash));
    return out;
}

std::string save_bundle(Program const& program, ReleaseInfo const& release) {
    std::ostringstream payload_stream(std::ios::binary);
    {
        cereal::BinaryOutputArchive ar(payload_stream);
        ar(const_cast<Program&>(program));
    }
    std::string const payload = payload_stream.str();
    Header h;
    h.source_hash = program.source_hash;
    h.checksum = checksum64(payload);
    h.payload_size = payload.size();
    h.release = release;
    return write_header(h) + payload;
}

std::optional<BundleHeader> read_bundle_header(std::string_view bytes, Message* error) {
    std::size_t payload_at = 0;
    Message m;
    auto h = read_header(bytes, payload_at, m);
    if (!h) {
        if (error) *error = std::move(m);
        return std::nullopt;
    }
    return BundleHeader{h->format, h->compiler, h->source_hash, h->release};
}

std::optional<std::string> stamp_bundle_key_id(std::string_view bytes, std::string const& key_id) {
    bytes = split_bundle(bytes).signed_bytes;
    std::size_t payload_at = 0;
    Message m;
    auto h = read_header(bytes, payload_at, m);
    if (!h || h->payload_size != bytes.size() - payload_at) return std::nullopt;
    h->release.key_id = key_id;
    return write_header(*h) + std::string(bytes.substr(payload_at));
}

BundleParts split_bundle(std::string_view bytes) {
    BundleParts parts{bytes, {}, {}};
    if (bytes.size() < sizeof magic + bundle_trailer_size) return parts;
    std::string_view const trailer = bytes.substr(bytes.size() - bundle_trailer_size);
    if (trailer.substr(0, 8) != std::string_view(signature_magic, 8)) return parts;
    parts.signed_bytes = bytes.substr(0, bytes.size() - bundle_trailer_size);
    parts.public_key = trailer.substr(8, 32);
    parts.signature = trailer.substr(40, 64);
    return parts;
}

LoadResult load_bundle(std::string_view bytes, std::optional<std::uint64_t> expected_source_hash) {
    // Layout: "KYTKBNDL", u32 header size, header (cereal: format, compiler, source hash, checksum, payload
    // size, release), payload (cereal: the Program), and for a signed bundle the signature trailer. Read in place.
    LoadResult r;
    auto fail = [&](std::string ja, std::string en) {
        r.message = Message{std::move(ja), std::move(en)};
        return r;
    };
    auto damaged = [&](char const* what) {
        return fail(std::string("バンドルが壊れています (") + what + ")",
                    std::string("bundle is damaged (") + what + ")");
    };
    std::size_t payload_at = 0;
    Message header_error;
    auto const header = read_header(bytes, payload_at, header_error);
    if (!header) {
        r.message = std::move(header_error);
        return r;
    }
    try {
        // The payload ends the bundle, or the signature trailer follows it.
        std::uint64_t const payload_size = header->payload_size;
        std::size_t const rest = bytes.size() - payload_at;
        bool const with_trailer =
            payload_size <= rest && payload_size + bundle_trailer_size == rest && split_bundle(bytes).is_signed();
        if (payload_size != rest && !with_trailer) return damaged("payload size");
        std::string_view payload = bytes.substr(payload_at, std::size_t(payload_size));
        if (checksum64(payload) != header->checksum) return damaged("checksum mismatch");
        if (expected_source_hash && *expected_source_hash != header->source_hash)
            return fail("バンドルは現在のルールファイルから作られたものではありません "
                        "(ソースのハッシュ不一致)。kyotaku compile で作り直してください",
                        "bundle was not compiled from these rule sources (source hash mismatch); recompile it");
        auto program = std::make_shared<Program>();
        MemoryBuffer payload_buf(payload.data(), payload.size());
        std::istream pin(&payload_buf);
        cereal::BinaryInputArchive par(pin);
        par(*program);
        if (program->source_hash != header->source_hash) return damaged("inconsistent source hash");
        if (auto e = validate(*program); !e.empty())
            return fail("バンドルの内容が不正です (" + e + ")", "invalid bundle contents (" + e + ")");
        r.program = std::move(program);
        r.release = header->release;
    } catch (std::exception const& e) {
        return fail(std::string("バンドルを読めません: ") + e.what(),
                    std::string("cannot read the bundle: ") + e.what());
    }
    return r;
}

}  // namespace kyotaku
