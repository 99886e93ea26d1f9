#include "core/ids.hpp"

#include <openssl/rand.h>

#include <array>
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

}  // namespace kyotaku::server
