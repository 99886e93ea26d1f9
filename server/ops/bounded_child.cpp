#include "ops/bounded_child.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace kyotaku::server {

char const* end_name(ChildRun::End end) {
    switch (end) {
        case ChildRun::End::exited: return "exited";
        case ChildRun::End::signalled: return "signalled";
        case ChildRun::End::cpu_limit: return "cpu_limit";
        case ChildRun::End::deadline: return "deadline";
        case ChildRun::End::client_gone: return "client_gone";
        case ChildRun::End::output_limit: return "output_limit";
        case ChildRun::End::stopped: return "stopped";
        case ChildRun::End::not_started: return "not_started";
    }
    return "?";
}

namespace {
struct Fd {
    int fd = -1;
    Fd() = default;
    explicit Fd(int f) : fd(f) {}
    ~Fd() { reset(); }
    Fd(Fd const&) = delete;
    Fd& operator=(Fd const&) = delete;
    void reset() {
        if (fd >= 0) ::close(fd);
        fd = -1;
    }
};

// Only async-signal-safe calls between fork and execve (the server has threads): everything is prepared before.
[[noreturn]] void exec_child(char const* path, char* const* argv, char* const* envp, char const* directory, int in,
                             int out, int err, ChildLimits const& limits, pid_t parent) {
    ::setpgid(0, 0);
    // The child dies with the server (a SIGKILL, a crash): no orphan proving on, alone, until its CPU limit. (The
    // signal comes when the thread that forked ends; it waits for the child, so that is the server's end.)
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != parent) ::_exit(126);
    if (::dup2(in, 0) < 0 || ::dup2(out, 1) < 0 || ::dup2(err, 2) < 0) ::_exit(126);
    // No descriptor of the server's (its sockets, its database, its key file) reaches the child.
#ifdef SYS_close_range
    if (::syscall(SYS_close_range, 3u, ~0u, 0u) != 0)
#endif
        for (int fd = 3; fd < 65536; ++fd) ::close(fd);
    if (::chdir(directory) != 0) ::_exit(126);
    // Signals the server ignores (SIGPIPE) would stay ignored across execve; blocked ones stay blocked.
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; ++s)
        if (s != SIGKILL && s != SIGSTOP) ::sigaction(s, &dfl, nullptr);
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    rlimit const cpu{rlim_t(limits.cpu_seconds), rlim_t(limits.cpu_seconds + 1)};
    rlimit const as{rlim_t(limits.address_space), rlim_t(limits.address_space)};
    rlimit const zero{0, 0};
    if (::setrlimit(RLIMIT_CPU, &cpu) != 0 || ::setrlimit(RLIMIT_AS, &as) != 0 ||
        ::setrlimit(RLIMIT_FSIZE, &zero) != 0 || ::setrlimit(RLIMIT_CORE, &zero) != 0)
        ::_exit(126);
    ::execve(path, argv, envp);
    ::_exit(127);
}

// Reads what is there (non-blocking); false at end of file or an error.
bool drain(int fd, std::string& into, std::size_t max, bool& over) {
    char buf[65536];
    for (;;) {
        ssize_t const n = ::read(fd, buf, sizeof buf);
        if (n > 0) {
            std::size_t const room = into.size() < max ? max - into.size() : 0;
            into.append(buf, std::min(room, std::size_t(n)));
            if (std::size_t(n) > room) over = true;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }
}
}  // namespace

ChildRun run_bounded(std::vector<std::string> const& argv, std::vector<std::string> const& environment,
                     std::string const& directory, ChildLimits const& limits, int client_fd, int stop_fd) {
    ChildRun run;
    auto const started = std::chrono::steady_clock::now();
    if (argv.empty()) {
        run.error = "no program";
        return run;
    }
    std::vector<char*> args, env;
    for (auto const& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    for (auto const& e : environment) env.push_back(const_cast<char*>(e.c_str()));
    env.push_back(nullptr);
    int out_pipe[2], err_pipe[2];
    if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
        run.error = std::string("pipe: ") + std::strerror(errno);
        return run;
    }
    Fd out_r(out_pipe[0]), out_w(out_pipe[1]);
    if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
        run.error = std::string("pipe: ") + std::strerror(errno);
        return run;
    }
    Fd err_r(err_pipe[0]), err_w(err_pipe[1]);
    Fd null_in(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (null_in.fd < 0) {
        run.error = std::string("/dev/null: ") + std::strerror(errno);
        return run;
    }
    pid_t const parent = ::getpid();
    pid_t const pid = ::fork();
    if (pid < 0) {
        run.error = std::string("fork: ") + std::strerror(errno);
        return run;
    }
    if (pid == 0)
        exec_child(args[0], args.data(), env.data(), directory.c_str(), null_in.fd, out_w.fd, err_w.fd, limits, parent);
    ::setpgid(pid, pid);  // (also in the child: whichever runs first)
    out_w.reset();
    err_w.reset();
    ::fcntl(out_r.fd, F_SETFL, O_NONBLOCK);
    ::fcntl(err_r.fd, F_SETFL, O_NONBLOCK);
#ifdef SYS_pidfd_open
    Fd exit_fd(int(::syscall(SYS_pidfd_open, pid, 0)));
#else
    Fd exit_fd;
#endif
    bool out_open = true, err_open = true, exited = false, over = false;
    ChildRun::End killed = ChildRun::End::exited;
    auto has_exited = [&] {
        siginfo_t info{};
        return ::waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid;
    };
    while (!(exited && !out_open && !err_open)) {
        auto const now = std::chrono::steady_clock::now();
        if (now >= limits.deadline) {
            killed = ChildRun::End::deadline;
            break;
        }
        pollfd fds[5];
        nfds_t n = 0;
        int at_out = -1, at_err = -1, at_exit = -1, at_client = -1, at_stop = -1;
        if (out_open) fds[at_out = int(n++)] = {out_r.fd, POLLIN, 0};
        if (err_open) fds[at_err = int(n++)] = {err_r.fd, POLLIN, 0};
        if (!exited && exit_fd.fd >= 0) fds[at_exit = int(n++)] = {exit_fd.fd, POLLIN, 0};
        if (client_fd >= 0) fds[at_client = int(n++)] = {client_fd, POLLRDHUP, 0};
        if (stop_fd >= 0) fds[at_stop = int(n++)] = {stop_fd, POLLIN, 0};
        auto const left = std::chrono::duration_cast<std::chrono::milliseconds>(limits.deadline - now).count() + 1;
        int const timeout = int(std::min<long long>(left, exit_fd.fd >= 0 ? 60000 : 50));
        if (::poll(fds, n, timeout) < 0 && errno != EINTR) {
            killed = ChildRun::End::deadline;  // cannot wait for it: it does not outlive this call
            break;
        }
        if (at_out >= 0 && fds[at_out].revents) out_open = drain(out_r.fd, run.out, limits.max_output, over);
        if (at_err >= 0 && fds[at_err].revents) err_open = drain(err_r.fd, run.err, limits.max_output, over);
        if (over) {
            killed = ChildRun::End::output_limit;
            break;
        }
        if (at_client >= 0 && (fds[at_client].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))) {
            killed = ChildRun::End::client_gone;
            break;
        }
        if (at_stop >= 0 && fds[at_stop].revents) {
            killed = ChildRun::End::stopped;
            break;
        }
        if (!exited && (at_exit >= 0 ? fds[at_exit].revents != 0 : true)) exited = has_exited();
    }
    if (killed != ChildRun::End::exited) {  // the whole group (and the child itself, had setpgid not happened yet)
        ::kill(-pid, SIGKILL);
        ::kill(pid, SIGKILL);
    }
    int status = 0;
    rusage usage{};
    while (::wait4(pid, &status, 0, &usage) < 0 && errno == EINTR) {
    }
    run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    if (killed != ChildRun::End::exited) {
        run.end = killed;
        return run;
    }
    if (WIFEXITED(status)) {
        run.end = ChildRun::End::exited;
        run.exit_code = WEXITSTATUS(status);
        return run;
    }
    run.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    double const cpu = double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                       double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
    bool const cpu_spent = run.signal == SIGXCPU || (run.signal == SIGKILL && cpu + 0.05 >= double(limits.cpu_seconds));
    run.end = cpu_spent ? ChildRun::End::cpu_limit : ChildRun::End::signalled;
    return run;
}

}  // namespace kyotaku::server
