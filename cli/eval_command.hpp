// `kyotaku eval`: its options and its run, shared by the two executables of the command (cli/CMakeLists.txt): the
// front `kyotaku`, which answers `eval` without the libraries of serve and prove, and the full command it runs for
// everything else. One definition, so that both parse and answer alike.
#pragma once

#include "kyotaku/engine.hpp"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

namespace kyotaku::cli {

// A JSON Lines input: standard input ("" or "-"), or the named file, closed when done. `file` is null (and the
// reason printed) when it cannot be opened.
struct Input {
    std::FILE* file = stdin;
    explicit Input(std::string const& path) {
        if (path.empty() || path == "-") return;
        file = std::fopen(path.c_str(), "rb");
        if (!file) std::cerr << "kyotaku: " << path << ": 読み込めません / cannot open\n";
    }
    ~Input() {
        if (file && file != stdin) std::fclose(file);
    }
    Input(Input const&) = delete;
    Input& operator=(Input const&) = delete;
};

struct EvalOptions {
    std::string rules = "rules";
    std::string input;  // "" or "-": standard input
    std::vector<std::string> trust;
    bool interpret = false;
    unsigned threads = 1;
};

// --trust PUBKEY (repeatable), as every loader takes it.
void add_trust_option(CLI::App* command, std::vector<std::string>& trust);
// The `eval` subcommand of `app`, its options bound to `options`.
CLI::App* add_eval_command(CLI::App& app, EvalOptions& options);
// The program of a load, or null after printing why there is none (its diagnostics, or the reason).
std::shared_ptr<Program const> reported(std::string const& path, LoadResult const& result,
                                        std::vector<Diagnostic> const& diagnostics);
// Loads rules other than the official ones built in (with --trust: only a bundle signed by a trusted key).
using RulesLoader = std::shared_ptr<Program const> (*)(std::string const& path, std::vector<std::string> const& trust);
// Runs `kyotaku eval`: exit 0, or 2 when the rules or the input cannot be read.
int cmd_eval(EvalOptions const& options, RulesLoader load);

}  // namespace kyotaku::cli
