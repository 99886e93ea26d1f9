#include "source.hpp"

#include "grammar.hpp"
#include "kyotaku/calendar.hpp"

#include <algorithm>

namespace kyotaku::syntax {

std::string normalize_source(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    std::size_t i = 0;
    while (i < text.size()) {
        if (text[i] == '"') {  // copy a string literal verbatim, up to its closing quote or the end of the line
            std::size_t j = i + 1;
            while (j < text.size() && text[j] != '"' && text[j] != '\n') ++j;
            if (j < text.size() && text[j] == '"') ++j;
            out.append(text.substr(i, j - i));
            i = j;
            continue;
        }
        if (text[i] == '#') {  // comments are kept as written
            std::size_t j = text.find('\n', i);
            if (j == std::string_view::npos) j = text.size();
            out.append(text.substr(i, j - i));
            i = j;
            continue;
        }
        std::size_t j = i;
        while (j < text.size() && text[j] != '"' && text[j] != '#') ++j;
        out += normalize_width(text.substr(i, j - i));
        i = j;
    }
    return out;
}

namespace {
bool is_continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

// Finds the byte offset in `line` (a normalised line) of the code-point column `col`.
std::size_t offset_of_column(std::string_view line, int col) {
    std::size_t i = 0;
    for (int c = 1; c < col && i < line.size(); ++c) {
        ++i;
        while (i < line.size() && is_continuation(line[i])) ++i;
    }
    return i;
}
}  // namespace

Span ParsedFile::span_of(x3::position_tagged const& node, std::uint16_t index) const {
    Span s{index, 0, 0};
    if (node.id_first < 0) return s;
    auto range = positions->position_of(node);
    s.begin = std::uint32_t(range.begin() - text.cbegin());
    s.end = std::uint32_t(range.end() - text.cbegin());
    // X3 tags a node with the position before its leading blanks were skipped.
    while (s.begin < s.end && (text[s.begin] == ' ' || text[s.begin] == '\n' || text[s.begin] == '\t' ||
                               text[s.begin] == '\r'))
        ++s.begin;
    return s;
}

std::pair<int, int> ParsedFile::line_col(std::uint32_t offset) const {
    offset = std::min<std::uint32_t>(offset, std::uint32_t(text.size()));
    int line = 1;
    std::size_t line_start = 0;
    for (std::size_t i = 0; i < offset; ++i)
        if (text[i] == '\n') {
            ++line;
            line_start = i + 1;
        }
    int col = 1;
    for (std::size_t i = line_start; i < offset; ++i)
        if (!is_continuation(text[i])) ++col;
    return {line, col};
}

std::string ParsedFile::line_text(int line) const {
    std::size_t start = 0;
    for (int l = 1; l < line; ++l) {
        start = original.find('\n', start);
        if (start == std::string::npos) return {};
        ++start;
    }
    std::size_t end = original.find('\n', start);
    std::string s = original.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (!s.empty() && s.back() == '\r') s.pop_back();
    return s;
}

std::string ParsedFile::slice(Span s) const {
    auto [l1, c1] = line_col(s.begin);
    auto [l2, c2] = line_col(s.end);
    std::string out;
    for (int l = l1; l <= l2; ++l) {
        std::string line = line_text(l);
        std::size_t from = l == l1 ? offset_of_column(line, c1) : 0;
        std::size_t to = l == l2 ? offset_of_column(line, c2) : line.size();
        if (l != l1) out += '\n';
        if (from < to) out += line.substr(from, to - from);
    }
    return out;
}

Diagnostic make_diagnostic(ParsedFile const& f, Span s, std::string kind, std::string ja, std::string en) {
    Diagnostic d;
    d.kind = std::move(kind);
    d.file = f.path;
    auto [line, col] = f.line_col(s.begin);
    d.line = line;
    d.column = col;
    auto [end_line, end_col] = f.line_col(s.end);
    std::string lt = f.line_text(line);
    int line_chars = 0;
    for (char c : lt)
        if (!is_continuation(c)) ++line_chars;
    d.end_column = end_line == line ? std::max(end_col, col + 1) : line_chars + 1;
    d.source_line = std::move(lt);
    d.message_ja = std::move(ja);
    d.message_en = std::move(en);
    return d;
}

std::unique_ptr<ParsedFile> parse_file(std::string path, std::string text, std::vector<Diagnostic>& diags) {
    auto f = std::make_unique<ParsedFile>();
    f->path = std::move(path);
    f->original = std::move(text);
    f->text = normalize_source(f->original);
    f->positions = std::make_unique<grammar::position_cache>(f->text.cbegin(), f->text.cend());
    auto outcome = grammar::parse(f->text, *f->positions);
    if (outcome.ok) {
        f->ast = std::move(outcome.file);
        f->ok = true;
        return f;
    }
    auto where = std::uint32_t(outcome.error->where - f->text.cbegin());
    // Point at the next token, not at the blanks before it.
    while (where < f->text.size() && (f->text[where] == ' ' || f->text[where] == '\n' || f->text[where] == '\t' ||
                                      f->text[where] == '\r'))
        ++where;
    std::uint32_t end = where;
    while (end < f->text.size() && f->text[end] != ' ' && f->text[end] != '\n' && f->text[end] != '\t') ++end;
    if (end == where) end = where + 1;
    std::string found = where < f->text.size() ? f->slice(Span{0, where, end}) : std::string("ファイルの終わり");
    std::string found_en = where < f->text.size() ? found : std::string("end of file");
    if (outcome.error->expected == "nesting-limit") {
        diags.push_back(make_diagnostic(*f, Span{0, where, end}, "limit", "式の入れ子が深すぎます (100段まで)",
                                        "expression nested too deeply (100 levels at most)"));
        return f;
    }
    diags.push_back(make_diagnostic(*f, Span{0, where, end}, "syntax",
                                    "構文エラー: " + outcome.error->expected + " が必要ですが「" + found + "」があります",
                                    "syntax error: expected " + outcome.error->expected + ", found '" + found_en + "'"));
    return f;
}

}  // namespace kyotaku::syntax
