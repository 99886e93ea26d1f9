// compile(): read → parse → check → lower, each stage's errors returned as diagnostics.
#include "../check/ir.hpp"
#include "../syntax/source.hpp"
#include "compiler.hpp"
#include "kyotaku/engine.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace kyotaku {

namespace fs = std::filesystem;

namespace {
Diagnostic io_error(std::string const& path, std::string ja, std::string en) {
    Diagnostic d;
    d.kind = DiagnosticKind::io;
    d.file = path;
    d.message_ja = std::move(ja);
    d.message_en = std::move(en);
    return d;
}

bool read_file(std::string const& path, std::string& out) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return false;
    std::ostringstream ss;
    ss << in.rdbuf();
    out = ss.str();
    return true;
}

bool valid_utf8(std::string_view s) {
    for (std::size_t i = 0; i < s.size();) {
        auto c = static_cast<unsigned char>(s[i]);
        std::size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
        if (n == 0 || i + n > s.size()) return false;
        for (std::size_t k = 1; k < n; ++k)
            if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
        i += n;
    }
    return true;
}
}  // namespace

std::vector<SourceFile> read_rule_sources(std::string const& path, std::vector<Diagnostic>& errors) {
    std::vector<SourceFile> out;
    std::error_code ec;
    std::vector<std::string> paths;
    if (fs::is_directory(path, ec)) {
        for (auto it = fs::recursive_directory_iterator(path, ec); !ec && it != fs::recursive_directory_iterator();
             it.increment(ec))
            if (it->is_regular_file() && it->path().extension() == ".rules")
                paths.push_back(it->path().generic_string());
        std::sort(paths.begin(), paths.end());
        if (paths.empty())
            errors.push_back(io_error(path, "ルールファイル (*.rules) がありません", "no rule files (*.rules) found"));
    } else if (fs::exists(path, ec)) {
        paths.push_back(path);
    } else {
        errors.push_back(io_error(path, "ファイルもディレクトリもありません", "no such file or directory"));
    }
    bool const folder = fs::is_directory(path, ec);
    for (auto const& p : paths) {
        SourceFile f{p,
                     {},
                     folder ? fs::path(p).lexically_relative(path).generic_string()
                            : fs::path(p).filename().generic_string()};
        if (!read_file(p, f.text)) {
            errors.push_back(io_error(p, "読み込めません", "cannot read the file"));
            continue;
        }
        if (!valid_utf8(f.text)) {
            errors.push_back(io_error(p, "UTF-8 ではありません", "the file is not valid UTF-8"));
            continue;
        }
        out.push_back(std::move(f));
    }
    return out;
}

CompileResult compile(std::vector<SourceFile> sources) {
    CompileResult result;
    std::uint64_t hash = hash_sources(sources);
    std::vector<std::unique_ptr<syntax::ParsedFile>> parsed;
    bool syntax_ok = true;
    for (auto& s : sources) {
        parsed.push_back(syntax::parse_file(s.path, std::move(s.text), result.diagnostics));
        parsed.back()->name = s.name.empty() ? s.path : std::move(s.name);
        syntax_ok = syntax_ok && parsed.back()->ok;
    }
    if (!syntax_ok) return result;
    auto checked = check::check(parsed, result.diagnostics);
    if (!checked) return result;
    auto lowered = lowering::lower(std::move(*checked));
    if (!lowered) {
        Diagnostic d;
        d.kind = DiagnosticKind::limit;
        d.file = sources.empty() ? std::string() : sources.front().path;
        d.message_ja = "ルールセットが大きすぎます (レジスタ・条項・let と decision はそれぞれ 65,536 個まで)";
        d.message_en = "the rule set is too large (65,536 registers, clauses, lets and decisions at most)";
        result.diagnostics.push_back(std::move(d));
        return result;
    }
    auto program = std::make_shared<Program>(std::move(*lowered));
    program->source_hash = hash;
    result.program = std::move(program);
    return result;
}

CompileResult compile_directory(std::string const& dir) {
    CompileResult r;
    auto sources = read_rule_sources(dir, r.diagnostics);
    if (!r.diagnostics.empty()) return r;
    return compile(std::move(sources));
}

std::string LoadResult::describe() const {
    return diagnostics.empty() ? message.text() : format_diagnostics(diagnostics);
}

LoadResult load_rules(std::string const& path, std::vector<Diagnostic>* diagnostics) {
    LoadResult r;
    std::error_code ec;
    if (fs::is_regular_file(path, ec)) {
        std::string bytes;
        if (!read_file(path, bytes)) {
            r.message = Message{"読み込めません: " + path, "cannot read " + path};
            return r;
        }
        if (bytes.rfind("KYTKBNDL", 0) == 0) return load_bundle(bytes);
    }
    auto c = compile_directory(path);
    if (!c.ok()) {
        r.message = Message{"ルールにエラーがあります", "the rules have errors"};
        if (diagnostics) *diagnostics = c.diagnostics;
        r.diagnostics = std::move(c.diagnostics);
        return r;
    }
    r.program = c.program;
    return r;
}

}  // namespace kyotaku
