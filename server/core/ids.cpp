#include "core/ids.hpp"

#include <openssl/rand.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <stdexcept>

namespace kyotaku::server {

std::string new_id() {
    std::array<unsigned char, 16> bytes{};
    if (RAND_bytes(bytes.data(), int(bytes.size())) != 1) throw std::runtime_error("RAND_bytes failed");
    static char const hex[] = "0123456789abcdef";
    std::string out;
    for (auto b : bytes) {
        out += hex[b >> 4];
        out += hex[b & 15];
    }
    return out;
}

std::string time_ordered_id() {
    auto const ms = std::uint64_t(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count());
    static char const hex[] = "0123456789abcdef";
    std::string out = new_id();
    for (int i = 0; i < 12; ++i) out[std::size_t(i)] = hex[(ms >> (4 * (11 - i))) & 15];
    return out;
}

}  // namespace kyotaku::server
