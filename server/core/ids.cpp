#include "core/ids.hpp"

#include <openssl/rand.h>
#include <pthread.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <stdexcept>

namespace kyotaku::server {

namespace {
char const hex[] = "0123456789abcdef";
constexpr std::size_t time_digits = 12, random_bytes = 10;  // 12 hex digits of milliseconds, 80 random bits

// A time-ordered id: the milliseconds now, then the random bytes as hex.
std::string time_ordered(unsigned char const* random) {
    auto const ms = std::uint64_t(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count());
    std::string out(time_digits + 2 * random_bytes, '0');
    for (std::size_t i = 0; i < time_digits; ++i) out[i] = hex[(ms >> (4 * (time_digits - 1 - i))) & 15];
    for (std::size_t i = 0; i < random_bytes; ++i) {
        out[time_digits + 2 * i] = hex[random[i] >> 4];
        out[time_digits + 2 * i + 1] = hex[random[i] & 15];
    }
    return out;
}

// A thread's bytes of RAND_bytes not used yet (drawn): a fork's child never uses what its parent drew (its generation
// moves on, and the buffer is drawn again).
std::atomic<unsigned> fork_generation{0};
struct Drawn {
    std::array<unsigned char, 512> bytes{};
    std::size_t used = bytes.size();
    unsigned generation = 0;
};
thread_local Drawn drawn;

void draw(unsigned char* out, std::size_t n) {
    static int const at_fork = ::pthread_atfork(nullptr, nullptr, [] { fork_generation.fetch_add(1); });
    (void)at_fork;
    unsigned const generation = fork_generation.load(std::memory_order_relaxed);
    if (drawn.generation != generation || drawn.bytes.size() - drawn.used < n) {
        if (RAND_bytes(drawn.bytes.data(), int(drawn.bytes.size())) != 1) throw std::runtime_error("RAND_bytes failed");
        drawn.used = 0;
        drawn.generation = generation;
    }
    std::memcpy(out, drawn.bytes.data() + drawn.used, n);
    std::memset(drawn.bytes.data() + drawn.used, 0, n);  // (used once: not kept)
    drawn.used += n;
}
}  // namespace

std::string request_id() {
    std::array<unsigned char, 8> bytes{};
    draw(bytes.data(), bytes.size());
    std::string out;
    out.reserve(2 * bytes.size());
    for (auto b : bytes) {
        out += hex[b >> 4];
        out += hex[b & 15];
    }
    return out;
}

std::string new_id() {
    std::array<unsigned char, 16> bytes{};
    if (RAND_bytes(bytes.data(), int(bytes.size())) != 1) throw std::runtime_error("RAND_bytes failed");
    std::string out;
    for (auto b : bytes) {
        out += hex[b >> 4];
        out += hex[b & 15];
    }
    return out;
}

std::string time_ordered_id() {
    std::array<unsigned char, random_bytes> bytes{};
    draw(bytes.data(), bytes.size());
    return time_ordered(bytes.data());
}

std::vector<std::string> time_ordered_ids(std::size_t n) {
    std::vector<unsigned char> bytes(n * random_bytes);
    std::vector<std::string> ids;
    ids.reserve(n);
    // RAND_bytes takes an int: draws of at most 2^20 bytes.
    constexpr std::size_t most = std::size_t(1) << 20;
    for (std::size_t at = 0; at < bytes.size(); at += most)
        if (RAND_bytes(bytes.data() + at, int(std::min(most, bytes.size() - at))) != 1)
            throw std::runtime_error("RAND_bytes failed");
    for (std::size_t i = 0; i < n; ++i) ids.push_back(time_ordered(bytes.data() + i * random_bytes));
    return ids;
}

}  // namespace kyotaku::server
