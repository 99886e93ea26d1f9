#include "kyotaku/diagnostics.hpp"

#include <nlohmann/json.hpp>

#include <iterator>

namespace kyotaku {

namespace {
struct KindNames {
    std::string_view code, label_ja;
};
// Indexed by DiagnosticKind, in its order.
constexpr KindNames kind_names[] = {
    {"syntax", "構文"},
    {"unknown-name", "未定義の名前"},
    {"type-mismatch", "型の不一致"},
    {"non-exhaustive", "場合分けの漏れ"},
    {"unreachable", "到達しない条項"},
    {"ambiguous-month-arithmetic", "曖昧な月の加算"},
    {"overlapping-versions", "施行期間の重複"},
    {"version-gap", "施行期間の空白"},
    {"invalid-date", "不正な日付"},
    {"duplicate", "重複した定義"},
    {"cycle", "循環参照"},
    {"missing-otherwise", "otherwise がない"},
    {"limit", "上限超過"},
    {"io", "入出力"},
    {"test", "テスト"},
    {"unused", "未使用"},
};
static_assert(std::size(kind_names) == std::size_t(DiagnosticKind::unused) + 1, "one name per DiagnosticKind");
}  // namespace

std::string_view to_string(DiagnosticKind kind) { return kind_names[std::size_t(kind)].code; }
std::string_view kind_label_ja(DiagnosticKind kind) { return kind_names[std::size_t(kind)].label_ja; }

namespace {
// Display width of one code point in a terminal: East Asian wide and full-width characters take two columns.
int width_of(char32_t cp) {
    if ((cp >= 0x1100 && cp <= 0x115F) || (cp >= 0x2E80 && cp <= 0xA4CF) || (cp >= 0xAC00 && cp <= 0xD7A3) ||
        (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0xFE30 && cp <= 0xFE4F) || (cp >= 0xFF00 && cp <= 0xFF60) ||
        (cp >= 0xFFE0 && cp <= 0xFFE6) || (cp >= 0x20000 && cp <= 0x3FFFD))
        return 2;
    return 1;
}

std::vector<int> widths(std::string const& s) {
    std::vector<int> w;
    for (std::size_t i = 0; i < s.size();) {
        auto c = static_cast<unsigned char>(s[i]);
        char32_t cp = c;
        std::size_t n = 1;
        if (c >= 0xF0) {
            cp = c & 0x07;
            n = 4;
        } else if (c >= 0xE0) {
            cp = c & 0x0F;
            n = 3;
        } else if (c >= 0xC0) {
            cp = c & 0x1F;
            n = 2;
        }
        for (std::size_t k = 1; k < n && i + k < s.size(); ++k)
            cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
        w.push_back(s[i] == '\t' ? 1 : width_of(cp));
        i += n;
    }
    return w;
}
}  // namespace

int display_width(std::string_view s) {
    int total = 0;
    for (int w : widths(std::string(s))) total += w;
    return total;
}

std::string format_diagnostic(Diagnostic const& d) {
    std::string out;
    if (!d.file.empty()) {
        out += d.file;
        if (d.line > 0) out += ":" + std::to_string(d.line) + ":" + std::to_string(d.column);
        out += ": ";
    }
    bool const warning = d.severity == Severity::warning;
    out += (warning ? "警告[" : "エラー[") + std::string(kind_label_ja(d.kind)) + "]: " + d.message_ja + "\n";
    out += (warning ? "  warning[" : "  error[") + std::string(to_string(d.kind)) + "]: " + d.message_en + "\n";
    if (d.line > 0) {
        std::string num = std::to_string(d.line);
        std::string gutter(num.size(), ' ');
        std::string line = d.source_line;
        for (auto& c : line)
            if (c == '\t') c = ' ';
        out += " " + num + " | " + line + "\n";
        auto w = widths(d.source_line);
        std::string marks;
        for (int col = 1; col < d.column && col - 1 < int(w.size()); ++col)
            marks += std::string(std::size_t(w[std::size_t(col - 1)]), ' ');
        int end = std::max(d.end_column, d.column + 1);
        for (int col = d.column; col < end; ++col) {
            int cw = col - 1 < int(w.size()) ? w[std::size_t(col - 1)] : 1;
            for (int k = 0; k < cw; ++k) marks += col == d.column && k == 0 ? '^' : '~';
        }
        out += " " + gutter + " | " + marks + "\n";
    }
    return out;
}

bool has_errors(std::vector<Diagnostic> const& ds) {
    for (auto const& d : ds)
        if (d.severity == Severity::error) return true;
    return false;
}

std::size_t count_warnings(std::vector<Diagnostic> const& ds) {
    std::size_t n = 0;
    for (auto const& d : ds) n += d.severity == Severity::warning;
    return n;
}

std::string diagnostics_json(std::vector<Diagnostic> const& ds) {
    auto out = nlohmann::ordered_json::array();
    for (auto const& d : ds)
        out.push_back({{"severity", d.severity == Severity::warning ? "warning" : "error"},
                       {"kind", to_string(d.kind)},
                       {"label_ja", kind_label_ja(d.kind)},
                       {"file", d.file},
                       {"line", d.line},
                       {"column", d.column},
                       {"end_column", d.end_column},
                       {"source_line", d.source_line},
                       {"ja", d.message_ja},
                       {"en", d.message_en},
                       {"text", format_diagnostic(d)}});
    return out.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

std::string format_diagnostics(std::vector<Diagnostic> const& ds) {
    std::string out;
    for (auto const& d : ds) out += format_diagnostic(d);
    return out;
}

}  // namespace kyotaku
