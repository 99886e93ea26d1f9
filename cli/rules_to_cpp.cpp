// Build-time tool: the official rules compiled ahead of time into C++ for the `kyotaku` command itself, which
// decides with that code when the rules it is given are these rules (`kyotaku eval`: JsonlEvaluator with
// GeneratedRules; any other rule set is interpreted). It is `kyotaku compile --emit-cpp` without the command,
// which cannot generate code for itself before it is built. The file also holds the rules' bundle
// (kyotaku::cli::official_bundle), which `kyotaku eval` loads instead of compiling a rule folder of the same source
// hash.
//   kyotaku_rules_to_cpp RULES_DIR OUT.cpp NAMESPACE
#include "kyotaku/engine.hpp"
#include "kyotaku/generated.hpp"

#include <fstream>
#include <iostream>
#include <string>

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
    // The same rules as a bundle, for `kyotaku eval --rules <this folder>`: loading it takes some 0.1 ms where
    // compiling the folder takes 2-4 ms of the command's start-up.
    std::string const bundle = kyotaku::save_bundle(*compiled.program);
    std::string code = kyotaku::emit_cpp(*compiled.program, argv[3], "generated_rules");
    code += "\nnamespace ";
    code += argv[3];
    code += " {\nnamespace {\nunsigned char const bundle_bytes[] = {";
    for (std::size_t i = 0; i < bundle.size(); ++i) {
        code += i == 0 ? "\n" : i % 24 ? "," : ",\n";
        code += std::to_string(static_cast<unsigned char>(bundle[i]));
    }
    code += "};\n}  // namespace\nextern std::string_view const official_bundle;\nstd::string_view const "
            "official_bundle(reinterpret_cast<char const*>(bundle_bytes), sizeof bundle_bytes);\n}  // namespace ";
    code += argv[3];
    code += "\n";
    std::ofstream out(argv[2], std::ios::binary);
    if (!out || !(out << code) || !out.flush()) {
        std::cerr << argv[2] << ": cannot write\n";
        return 1;
    }
    return 0;
}
