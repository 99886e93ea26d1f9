// A child process the server runs on a caller's behalf (the workbench's proofs: http/workbench_proofs.hpp), held
// within bounds: started with fork and execve — never a shell, the argument vector as given — in its own process
// group, in a given directory, with no descriptor of the server's but its standard output and error (pipes) and
// /dev/null as input, a minimal environment, and the kernel's limits on CPU time (RLIMIT_CPU: SIGXCPU, then
// SIGKILL a second later), address space (RLIMIT_AS), file size (nothing written but to its pipes) and core dumps
// (none). The server waits for it with poll(2) — its pipes, its exit (a pidfd) and, when given, the client's socket
// (POLLRDHUP: the client closed or reset the connection) and a stop signal — until it exits, and kills the whole group
// (SIGKILL) and reaps it when the wall-clock deadline passes, its output exceeds the bound, or the client goes. It is
// always reaped before run_bounded returns: no zombie, no orphan.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace kyotaku::server {

struct ChildLimits {
    std::chrono::steady_clock::time_point deadline;  // wall clock; killed when it passes
    std::uint64_t cpu_seconds = 60;                  // RLIMIT_CPU
    std::uint64_t address_space = 4ull << 30;        // RLIMIT_AS, bytes
    // bytes of standard output (and as many of error) kept; beyond: killed
    std::size_t max_output = 8u << 20;
};

struct ChildRun {
    enum class End {
        exited,         // it exited by itself: exit_code
        signalled,      // a signal it did not get from us ended it (a crash, an abort): signal
        cpu_limit,      // RLIMIT_CPU ended it (SIGXCPU, or SIGKILL at the hard limit)
        deadline,       // we killed it: the wall-clock deadline passed
        client_gone,    // we killed it: the client closed its connection
        output_limit,   // we killed it: more output than max_output
        stopped,        // we killed it: `stop_fd` became readable (the server is stopping)
        not_started,    // fork or the pipes failed (error says why); execve failing is exit code 127
    } end = End::not_started;
    int exit_code = -1;
    int signal = 0;
    std::string out, err;  // what it wrote (at most max_output each)
    std::string error;     // not_started: why
    double seconds = 0;    // wall clock
};
char const* end_name(ChildRun::End end);

// Runs `argv` (argv[0]: the executable's path; no PATH search) in `directory`, with `environment` ("NAME=value")
// as its whole environment. `client_fd`: the caller's socket, watched for the client going (-1: none); `stop_fd`:
// readable when the child is to be killed at once (-1: none).
ChildRun run_bounded(std::vector<std::string> const& argv, std::vector<std::string> const& environment,
                     std::string const& directory, ChildLimits const& limits, int client_fd = -1, int stop_fd = -1);

}  // namespace kyotaku::server
