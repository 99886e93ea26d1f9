// libFuzzer target: kyotaku-bridge's JSON request parser. Bytes from a browser are hostile: any crash or sanitizer
// report fails; a refused message must be a CardError.
#include "protocol.hpp"

#include <string>

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
    std::string text(reinterpret_cast<char const*>(data), size);
    std::optional<std::int64_t> id;
    try {
        kyotaku::bridge::Request r = kyotaku::bridge::parse_request(text, id);
        (void)r;
    } catch (kyotaku::card::CardError const& e) {
        (void)kyotaku::bridge::error(id, e);
    }
    return 0;
}
