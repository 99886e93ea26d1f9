// Golden files (Wren style): each tests/golden/diagnostics/NAME.rules is compiled and its rendered
// diagnostics must equal NAME.expected. Adding a case is adding two files.
#include "kyotaku/engine.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace fs = std::filesystem;
using namespace kyotaku;

namespace {
std::string read(fs::path const& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}
}  // namespace

TEST(GoldenDiagnostics, EveryKindRendersAsExpected) {
    fs::path dir = KYOTAKU_SOURCE_DIR "/tests/golden/diagnostics";
    std::vector<fs::path> cases;
    for (auto const& e : fs::directory_iterator(dir))
        if (e.path().extension() == ".rules") cases.push_back(e.path());
    std::sort(cases.begin(), cases.end());
    ASSERT_GE(cases.size(), 7u);
    std::set<std::string> kinds;
    for (auto const& c : cases) {
        std::string name = c.filename().string();
        auto r = compile({SourceFile{name, read(c)}});
        ASSERT_FALSE(r.ok()) << name << " compiled without a diagnostic";
        kinds.insert(std::string(to_string(r.diagnostics.front().kind)));
        std::string got = format_diagnostics(r.diagnostics);
        fs::path expected = c;
        expected.replace_extension(".expected");
        if (std::getenv("KYOTAKU_UPDATE_GOLDEN")) {
            std::ofstream(expected, std::ios::binary) << got;
            continue;
        }
        EXPECT_EQ(got, read(expected)) << name;
    }
    for (char const* k : {"syntax", "unknown-name", "type-mismatch", "non-exhaustive", "unreachable",
                          "ambiguous-month-arithmetic", "overlapping-versions"})
        EXPECT_TRUE(kinds.count(k)) << "no golden file for " << k;
}
