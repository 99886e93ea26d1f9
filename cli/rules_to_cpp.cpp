// Build-time tool: the official rules compiled ahead of time into C++ for the `kyotaku` command itself, which
// decides with that code when the rules it is given are these rules (`kyotaku eval`: JsonlEvaluator with
// GeneratedRules; any other rule set is interpreted). It is `kyotaku compile --emit-cpp` without the command,
// which cannot generate code for itself before it is built.
//   kyotaku_rules_to_cpp RULES_DIR OUT.cpp NAMESPACE
#include "kyotaku/engine.hpp"
#include "kyotaku/generated.hpp"

#include <fstream>
#include <iostream>

int main(int argc, char** argv) {
    if (argc != 4) {
        std::cerr << "usage: kyotaku_rules_to_cpp RULES_DIR OUT.cpp NAMESPACE\n";
        return 2;
    }
    auto compiled = kyotaku::compile_directory(argv[1]);
    if (!compiled.ok()) {
        std::cerr << kyotaku::format_diagnostics(compiled.diagnostics);
        return 1;
    }
    std::ofstream out(argv[2], std::ios::binary);
    if (!out || !(out << kyotaku::emit_cpp(*compiled.program, argv[3], "generated_rules")) || !out.flush()) {
        std::cerr << argv[2] << ": cannot write\n";
        return 1;
    }
    return 0;
}
