// libFuzzer target: command/response APDU parsing (with an encode round trip), the DER length header, vpcd frames,
// and the virtual card answering whatever bytes arrive. Any crash, sanitizer report or broken round trip fails.
#include "kyotaku/card/apdu.hpp"
#include "kyotaku/card/jpki.hpp"
#include "kyotaku/card/virtual_card.hpp"
#include "kyotaku/card/vpcd.hpp"

#include <cstdlib>

using namespace kyotaku::card;

namespace {
struct FakeKey : CardKey {
    Bytes sign_pkcs1(ByteView) override { return Bytes(256, 0x5A); }
    std::size_t modulus_bytes() const override { return 256; }
};

VirtualCard& card() {
    // Both sides of the JPKI application, so that the 署名用 files and password are fuzzed too.
    static VirtualCard c(JpkiKeySide{Bytes{0x30, 0x03, 0x02, 0x01, 0x00}, Bytes{0x30, 0x00},
                                     std::make_unique<FakeKey>()},
                         JpkiKeySide{Bytes{0x30, 0x03, 0x02, 0x01, 0x01}, Bytes{0x30, 0x00},
                                     std::make_unique<FakeKey>()},
                         [] {
                             VirtualCardOptions o;
                             o.max_response = 64;
                             return o;
                         }());
    return c;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
    ByteView in(data, size);
    try {
        Command c = parse_command(in);
        if (!(parse_command(encode(c)) == c)) std::abort();  // what we parse, we can encode and parse back
    } catch (CardError const&) {
    }
    try {
        Response r = parse_response(in);
        if (encode(r).size() != size) std::abort();
        (void)describe_status(r.sw);
    } catch (CardError const&) {
    }
    try {
        (void)jpki::der_total_length(in);
    } catch (CardError const&) {
    }
    try {
        (void)parse_vpcd_frame(in);
    } catch (CardError const&) {
    }
    // The card never throws and always answers with at least a status word.
    Bytes answer = card().process(in);
    if (answer.size() < 2) std::abort();
    if (size > 0 && data[0] == 0xEE) card().reset();
    return 0;
}
