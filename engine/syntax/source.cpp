#include "source.hpp"

#include "grammar.hpp"
#include "kyotaku/calendar.hpp"

#include <algorithm>
#include <cstdio>
#include <optional>

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

namespace {
std::vector<std::uint32_t> line_starts(std::string const& t) {
    std::vector<std::uint32_t> starts{0};
    for (std::size_t i = 0; i < t.size(); ++i)
        if (t[i] == '\n') starts.push_back(std::uint32_t(i + 1));
    return starts;
}
}  // namespace

void ParsedFile::index_lines() {
    text_lines = line_starts(text);
    original_lines = line_starts(original);
}

// Line and column by binary search over the line starts: a rule file's size never makes this quadratic.
std::pair<int, int> ParsedFile::line_col(std::uint32_t offset) const {
    offset = std::min<std::uint32_t>(offset, std::uint32_t(text.size()));
    auto it = std::upper_bound(text_lines.begin(), text_lines.end(), offset);
    std::size_t const line = std::size_t(it - text_lines.begin());  // 1-based
    std::size_t const line_start = text_lines[line - 1];
    int col = 1;
    for (std::size_t i = line_start; i < offset; ++i)
        if (!is_continuation(text[i])) ++col;
    return {int(line), col};
}

std::string ParsedFile::line_text(int line) const {
    if (line < 1 || std::size_t(line) > original_lines.size()) return {};
    std::size_t const start = original_lines[std::size_t(line - 1)];
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

Diagnostic make_diagnostic(ParsedFile const& f, Span s, DiagnosticKind kind, std::string ja, std::string en) {
    Diagnostic d;
    d.kind = kind;
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

namespace {
char32_t code_point_at(std::string_view s, std::size_t i) {
    auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
    char32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
    for (std::size_t k = 1; k < n && i + k < s.size(); ++k)
        cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    return cp;
}

// What the parser expected, in words a policy officer knows.
std::string expected_ja(std::string const& which) {
    if (which == "eoi") return "次の宣言 (enum, fact, param, let, decision, test …) かファイルの終わり";
    // never a C++ type
    if (which.find("boost") != std::string::npos) return "ここに書けるもの (書き方は docs/rules-language.md)";
    return which;
}

// A syntax error whose cause is a character or a habit of Japanese writing gets its own explanation:
// invisible characters, full-width punctuation, a unit written after a plain number.
std::optional<std::pair<std::string, std::string>> explain_found(std::string_view text, std::size_t where) {
    if (where >= text.size()) return std::nullopt;
    char32_t const cp = code_point_at(text, where);
    char buf[16];
    std::snprintf(buf, sizeof buf, "U+%04X", unsigned(cp));
    if (cp == 0xFEFF || cp == 0x200B || cp == 0x200C || cp == 0x200D || cp == 0x2060 || cp == 0x00A0)
        return std::pair{std::string("目に見えない文字 (") + buf + ") があります。その文字を消してください",
                         std::string("an invisible character (") + buf + ") is here; delete it"};
    struct Habit {
        char32_t cp;
        char const* ja;
        char const* en;
    };
    static constexpr Habit habits[] = {
        {0x3001, "全角の読点「、」は使えません。区切りには半角の , を書きます",
         "the ideographic comma 、 is not allowed; separate with ,"},
        {0x3002, "全角の句点「。」は使えません (文章は \"…\" の中に書きます)",
         "the ideographic full stop 。 is not allowed outside \"text\""},
        {0x300C, "かぎかっこ「 は使えません。文字列は半角の \"…\" で囲みます",
         "corner brackets are not allowed; quote text with \"…\""},
        {0x300D, "かぎかっこ 」 は使えません。文字列は半角の \"…\" で囲みます",
         "corner brackets are not allowed; quote text with \"…\""},
        {0x201C, "全角の引用符 “ は使えません。文字列は半角の \"…\" で囲みます",
         "curly quotes are not allowed; quote text with \"…\""},
        {0x201D, "全角の引用符 ” は使えません。文字列は半角の \"…\" で囲みます",
         "curly quotes are not allowed; quote text with \"…\""},
        {0x30FC, "長音記号「ー」はここでは使えません。引き算には半角の - を書きます",
         "the long-vowel mark ー is not a minus; write -"},
        {0x2212, "全角のマイナス「−」は使えません。半角の - を書きます", "the minus sign − is not allowed; write -"},
        {0x2192, "矢印「→」は使えません。条項の値は => で書きます",
         "the arrow → is not allowed; clauses are written =>"},
        {0x21D2, "矢印「⇒」は使えません。条項の値は => で書きます",
         "the arrow ⇒ is not allowed; clauses are written =>"},
    };
    for (auto const& h : habits)
        if (cp == h.cp) return std::pair{std::string(h.ja), std::string(h.en)};
    // A unit after a plain number where the number ends the value: `param 窓の月数 = 3か月`.
    for (std::string_view unit : {"か月", "ヶ月", "カ月", "ケ月", "箇月", "日", "年"}) {
        if (text.substr(where, unit.size()) != unit) continue;
        std::size_t b = where;
        while (b > 0 && (text[b - 1] == ' ' || text[b - 1] == '\t')) --b;
        if (b == 0 || text[b - 1] < '0' || text[b - 1] > '9') break;
        return std::pair{"数のあとに「" + std::string(unit) +
                             "」は書けません。月数や日数は数だけを書きます (例: param 窓の月数 = 3)。"
                             "単位を書くのは日付の足し算だけです (例: d + 3 months、d + 14 days)",
                         "a number cannot be followed by '" + std::string(unit) +
                             "'; write the number alone (param 窓の月数 = 3); "
                             "units belong to date arithmetic only (d + 3 months)"};
    }
    return std::nullopt;
}
}  // namespace

std::unique_ptr<ParsedFile> parse_file(std::string path, std::string text, std::vector<Diagnostic>& diags) {
    auto f = std::make_unique<ParsedFile>();
    f->path = std::move(path);
    f->original = std::move(text);
    // A byte-order mark (what some Windows editors put first) is not part of the text.
    if (f->original.rfind("\xEF\xBB\xBF", 0) == 0) f->original.erase(0, 3);
    f->text = normalize_source(f->original);
    f->index_lines();
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
        diags.push_back(make_diagnostic(*f, Span{0, where, end}, DiagnosticKind::limit,
                                        "式の入れ子が深すぎます (100段まで)",
                                        "expression nested too deeply (100 levels at most)"));
        return f;
    }
    if (auto why = explain_found(f->text, where)) {
        // Point at the one character (or unit) that is the problem.
        std::uint32_t one = where + 1;
        while (one < f->text.size() && (static_cast<unsigned char>(f->text[one]) & 0xC0) == 0x80) ++one;
        diags.push_back(make_diagnostic(*f, Span{0, where, one}, DiagnosticKind::syntax, "構文エラー: " + why->first,
                                        "syntax error: " + why->second));
        return f;
    }
    // `param X` followed by `version …`: a param is one value; what changes on a 施行日 is a let with versions.
    std::string hint_ja, hint_en;
    if (found == "version") {
        std::size_t const decl = f->text.rfind("param", where);
        std::string_view const between =
            decl == std::string::npos ? std::string_view() : std::string_view(f->text).substr(decl, where - decl);
        if (decl != std::string::npos && between.find('=') == std::string_view::npos &&
            between.find('\n') == std::string_view::npos) {
            hint_ja = "。param は一つの値です。施行日で変わる値は version のある let に書きます (例: let 窓の月数 : "
                      "int version \"改正前\" until 2027-03-31 "
                      "{ otherwise => 3 } version \"改正後\" from 2027-04-01 { otherwise => 6 })";
            hint_en = "; a param is one value: a value that changes on a 施行日 is a let with versions (let 窓の月数 : "
                      "int version \"before\" until "
                      "2027-03-31 { otherwise => 3 } version \"after\" from 2027-04-01 { otherwise => 6 })";
        }
    }
    diags.push_back(
        make_diagnostic(*f, Span{0, where, end}, DiagnosticKind::syntax,
                        "構文エラー: " + expected_ja(outcome.error->expected) + " が必要ですが「" + found +
                            "」があります" + hint_ja,
                        "syntax error: expected " +
                            (outcome.error->expected == "eoi" ? std::string("a declaration or the end of the file")
                             : outcome.error->expected.find("boost") != std::string::npos
                                 ? std::string("something else")
                                 : outcome.error->expected) +
                            ", found '" + found_en + "'" + hint_en));
    return f;
}

}  // namespace kyotaku::syntax
