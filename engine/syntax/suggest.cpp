// "Did you mean …?" for a misspelt name: the nearest candidate by edit distance in characters (not bytes).
#include "kyotaku/diagnostics.hpp"

#include <algorithm>

namespace kyotaku {

namespace {
std::u32string code_points(std::string_view s) {
    std::u32string out;
    for (std::size_t i = 0; i < s.size();) {
        auto c = static_cast<unsigned char>(s[i]);
        std::size_t n = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
        char32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
        for (std::size_t k = 1; k < n && i + k < s.size(); ++k)
            cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
        out.push_back(cp);
        i += n;
    }
    return out;
}
}  // namespace

std::size_t edit_distance(std::string_view a8, std::string_view b8) {
    std::u32string a = code_points(a8), b = code_points(b8);
    std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        cur[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j)
            cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
        std::swap(prev, cur);
    }
    return prev[b.size()];
}

std::string nearest_name(std::string_view name, std::vector<std::string> const& candidates) {
    std::string best;
    std::size_t const len = code_points(name).size();
    std::size_t best_d = len <= 2 ? 2 : 3;  // at most one edit for short names, two otherwise
    for (auto const& cand : candidates) {
        if (cand == name) continue;
        std::size_t const d = edit_distance(name, cand);
        if (d < best_d) best_d = d, best = cand;
    }
    return best;
}

}  // namespace kyotaku
