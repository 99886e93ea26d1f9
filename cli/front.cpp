// The `kyotaku` command's front (cli/CMakeLists.txt). `kyotaku eval` without --trust is answered here, by a program
// that links the engine alone: the libraries of serve, prove and signed bundles (Z3, OpenSSL, libpq with GnuTLS,
// Kerberos and LDAP, SQLite …) are not loaded and relocated at its start, which cost `eval` some 7 ms of CPU each time
// (issue 26). Everything else — every other command, `--help` and `--version`, eval with --trust or with arguments
// its options do not take — is the full command (KYOTAKU_FULL_COMMAND, relative to this program's folder), run in
// this process with the same arguments (exec): the same output and exit codes as ever, one command line.
#include "eval_command.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string_view>

namespace {

// Rules other than the official ones built in: without --trust (the front never takes it), as the full command's
// loader loads them.
std::shared_ptr<kyotaku::Program const> load_untrusted(std::string const& path, std::vector<std::string> const&) {
    std::vector<kyotaku::Diagnostic> diags;
    auto r = kyotaku::load_rules(path, &diags);
    return kyotaku::cli::reported(path, r, diags);
}

// Whether the front answers this command line itself: `kyotaku eval …` with no --trust among its arguments (then its
// options are parsed as the full command parses them, and anything they refuse is left to the full command).
bool answered_here(int argc, char** argv) {
    if (argc < 2 || std::string_view(argv[1]) != "eval") return false;
    for (int i = 2; i < argc; ++i)
        if (std::string_view(argv[i]).starts_with("--trust")) return false;
    return true;
}

[[noreturn]] void run_full_command(char** argv) {
    std::error_code ec;
    auto const self = std::filesystem::read_symlink("/proc/self/exe", ec);
    auto const full = (ec ? std::filesystem::path(".") : self.parent_path()) / KYOTAKU_FULL_COMMAND;
    ::execv(full.c_str(), argv);
    std::cerr << "kyotaku: " << full.string() << ": 実行できません / cannot run the full command ("
              << std::strerror(errno) << ")\n";
    std::_Exit(2);
}

}  // namespace

int main(int argc, char** argv) {
    if (answered_here(argc, argv)) {
        CLI::App app;
        app.require_subcommand(1);
        kyotaku::cli::EvalOptions options;
        kyotaku::cli::add_eval_command(app, options);
        try {
            app.parse(argc, argv);
        } catch (CLI::ParseError const&) {  // --help, or an argument eval does not take: the full command says it
            run_full_command(argv);
        }
        return kyotaku::cli::cmd_eval(options, load_untrusted);
    }
    run_full_command(argv);
}
