#include "http/limits.hpp"

#include "ops/observability.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>

namespace kyotaku::server {

namespace net = boost::asio;
using tcp = net::ip::tcp;

int effective_max_connections(int wanted) {
    rlimit r{};
    if (::getrlimit(RLIMIT_NOFILE, &r) != 0) return wanted;
    if (r.rlim_cur < r.rlim_max) {
        rlimit raised = r;
        raised.rlim_cur = r.rlim_max;
        if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) r = raised;
    }
    long long const descriptors = r.rlim_cur == RLIM_INFINITY ? (1ll << 20) : static_cast<long long>(r.rlim_cur);
    return int(std::max(1ll, std::min<long long>(wanted, (descriptors - 32) / 2)));
}

std::pair<int, int> effective_max_connections(int main, int patients) {
    int const total = effective_max_connections(main + patients);
    if (total >= main + patients) return {main, patients};
    int const m = std::max(1, int(static_cast<long long>(total) * main / (main + patients)));
    return {m, std::max(1, total - m)};
}

ConnectionCounter::Slot ConnectionCounter::try_acquire(int max) {
    int n = count_->load();
    do {
        if (n >= max) return nullptr;
    } while (!count_->compare_exchange_weak(n, n + 1));
    auto count = count_;
    return Slot(count.get(), [count](void*) { --*count; });
}

struct HandshakeBudget::Entry {
    std::function<void()> evict;
    int fd = -1;
    std::list<Ticket>::iterator at;
    bool waiting = false;
};

namespace {
// Whether a connection has sent bytes the server has not read yet (its ClientHello, waiting to be read).
bool has_unread_bytes(int fd) {
    int pending = 0;
    return fd >= 0 && ::ioctl(fd, FIONREAD, &pending) == 0 && pending > 0;
}
}  // namespace

HandshakeBudget::Ticket HandshakeBudget::enter(int max, std::function<void()> evict, int fd) {
    auto ticket = std::make_shared<Entry>();
    ticket->evict = std::move(evict);
    ticket->fd = fd;
    Ticket evicted_one;
    {
        std::lock_guard lock(mutex_);
        if (int(waiting_.size()) >= max && !waiting_.empty()) {
            auto victim = waiting_.begin();
            for (auto it = waiting_.begin(); it != waiting_.end(); ++it)
                if ((*it)->fd >= 0 && !has_unread_bytes((*it)->fd)) {
                    victim = it;
                    break;
                }
            evicted_one = *victim;
            waiting_.erase(victim);
            evicted_one->waiting = false;
        }
        ticket->at = waiting_.insert(waiting_.end(), ticket);
        ticket->waiting = true;
    }
    if (evicted_one) {
        ++evicted;
        evicted_one->evict();
    }
    return ticket;
}

void HandshakeBudget::leave(Ticket const& ticket) {
    std::lock_guard lock(mutex_);
    if (!ticket->waiting) return;
    waiting_.erase(ticket->at);
    ticket->waiting = false;
}

int HandshakeBudget::size() const {
    std::lock_guard lock(mutex_);
    return int(waiting_.size());
}

std::optional<std::uint64_t> free_disk_bytes(std::string const& dir) {
    struct statvfs st {};
    if (::statvfs(dir.c_str(), &st) != 0) return std::nullopt;
    return std::uint64_t(st.f_bavail) * std::uint64_t(st.f_frsize);
}

struct UploadBudget::State {
    std::mutex mutex;
    std::uint64_t used[2] = {0, 0};
    std::map<std::string, int> uploads;  // by facility; only facilities with an upload under way
    int total = 0;
};

UploadBudget::UploadBudget(std::uint64_t memory_bytes, std::uint64_t spool_bytes, int per_facility)
    : capacity_{memory_bytes, spool_bytes}, per_facility_(per_facility), state_(std::make_shared<State>()) {}

std::pair<UploadBudget::Grant, UploadBudget::Refusal> UploadBudget::reserve(Store store, std::uint64_t bytes,
                                                                            std::string const& facility) {
    int const s = int(store);
    std::optional<std::uint64_t> const free = store == Store::spool && spool_free ? spool_free() : std::nullopt;
    {
        std::lock_guard lock(state_->mutex);
        auto const mine = state_->uploads.find(facility);
        if (mine != state_->uploads.end() && mine->second >= per_facility_) {
            ++refused_facility;
            return {nullptr, Refusal::facility};
        }
        if (bytes > capacity_[s] - state_->used[s]) {
            ++refused_budget;
            return {nullptr, Refusal::budget};
        }
        if (free && *free < state_->used[s] + bytes) {
            ++refused_disk;
            return {nullptr, Refusal::disk};
        }
        state_->used[s] += bytes;
        ++state_->uploads[facility];
        ++state_->total;
    }
    auto state = state_;
    return {Grant(state.get(),
                  [state, s, bytes, facility](void*) {
                      std::lock_guard lock(state->mutex);
                      state->used[s] -= bytes;
                      --state->total;
                      if (auto const mine = state->uploads.find(facility);
                          mine != state->uploads.end() && --mine->second == 0)
                          state->uploads.erase(mine);
                  }),
            Refusal::none};
}

std::uint64_t UploadBudget::in_use(Store store) const {
    std::lock_guard lock(state_->mutex);
    return state_->used[int(store)];
}

int UploadBudget::uploads() const {
    std::lock_guard lock(state_->mutex);
    return state_->total;
}

net::awaitable<void> accept_loop(tcp::acceptor& acceptor, int max_connections, ConnectionCounter& counter,
                                 AcceptStats& stats, std::function<void(tcp::socket, ConnectionCounter::Slot)> start) {
    net::steady_timer pause(acceptor.get_executor());
    bool reported = false;
    while (acceptor.is_open()) {
        boost::system::error_code ec;
        tcp::socket socket = co_await acceptor.async_accept(net::make_strand(acceptor.get_executor()),
                                                            net::redirect_error(net::use_awaitable, ec));
        if (ec) {
            if (ec == net::error::operation_aborted || !acceptor.is_open()) co_return;
            // Out of descriptors (or memory), or a connection that died in the backlog: the server goes on; the
            // pause lets connections close (and keeps a persistent error from spinning).
            ++stats.errors;
            // One JSON log line per run of failures (operators' jq reads every line of a serving server).
            if (!reported)
                log_line({{"event", "accept_failed"}, {"error", ec.message()}, {"message", "retrying every 100 ms"}},
                         "warning");
            reported = true;
            pause.expires_after(std::chrono::milliseconds(100));
            co_await pause.async_wait(net::redirect_error(net::use_awaitable, ec));
            continue;
        }
        reported = false;
        auto slot = counter.try_acquire(max_connections);
        if (!slot) {
            ++stats.refused_at_cap;
            socket.close(ec);
            continue;
        }
        ++stats.accepted;
        start(std::move(socket), std::move(slot));
    }
}

std::string spool_dir_problem(struct stat const& st) {
    if (!S_ISDIR(st.st_mode))
        return "ディレクトリではありません (シンボリックリンクは使えません) / not a directory (a symlink is refused)";
    if (st.st_uid != ::geteuid()) return "別のユーザのディレクトリです / owned by another user";
    if (st.st_mode & 077) return "他のユーザが使えます (chmod 700) / open to other users (chmod 700)";
    return {};
}

std::string prepare_spool_dir(std::string const& dir) {
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
        return std::string("作れません / cannot create it: ") + std::strerror(errno);
    struct stat st {};
    if (::lstat(dir.c_str(), &st) != 0) return std::string("読めません / cannot stat it: ") + std::strerror(errno);
    if (auto problem = spool_dir_problem(st); !problem.empty()) return problem;
    // Whatever a killed server left (a file is unlinked as soon as it is made, so only that instant's; a workbench
    // proof's rule folder, http/workbench_proofs.hpp, while it ran).
    std::error_code ec;
    for (auto const& entry : std::filesystem::directory_iterator(dir, ec)) {
        std::string const name = entry.path().filename().string();
        if (name.rfind("upload-", 0) == 0) std::filesystem::remove(entry.path(), ec);
        if (name.rfind("prove-", 0) == 0 && entry.is_directory(ec) && !entry.is_symlink(ec))
            std::filesystem::remove_all(entry.path(), ec);
    }
    return {};
}

SpoolFile::SpoolFile(std::string const& dir) {
    std::string name = dir + "/upload-XXXXXX";
    fd = ::mkostemp(name.data(), O_CLOEXEC);
    if (fd < 0) return;
    ::unlink(name.c_str());
    path = "/proc/self/fd/" + std::to_string(fd);
}

SpoolFile::~SpoolFile() {
    if (fd >= 0) ::close(fd);
}

}  // namespace kyotaku::server
