// libFuzzer target: what an RC-S380 (or a page pretending to be one) can send us — Port-100 frames, ATQB, ISO-DEP
// blocks — on the host side, and what a host can send the simulated reader and card. Never a crash, never a hang.
#include "kyotaku/card/isodep.hpp"
#include "kyotaku/card/port100.hpp"

#include <cstdlib>

using namespace kyotaku::card;

namespace {
struct FakeKey : CardKey {
    Bytes sign_pkcs1(ByteView) override { return Bytes(256, 0x5A); }
    std::size_t modulus_bytes() const override { return 256; }
};

// A reader whose every bulk-in transfer is the next slice of the fuzz input.
struct HostilePipe : UsbPipe {
    ByteView rest;
    void write(ByteView) override {}
    Bytes read(std::size_t max, int) override {
        if (rest.size() < 2) throw CardError(ErrorKind::timeout, "end of input");
        std::size_t const n = std::min<std::size_t>({rest[0], rest.size() - 1, max});
        Bytes out(rest.begin() + 1, rest.begin() + 1 + long(n));
        rest = rest.subspan(1 + n);
        return out;
    }
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
    ByteView in(data, size);
    try {
        port100::Frame f = port100::parse(in);
        if (!f.ack && port100::parse(port100::encode(f.direction, f.command, f.payload)).payload != f.payload)
            std::abort();
    } catch (CardError const&) {
    }
    try {
        isodep::Block b = isodep::parse(in);
        if (!(isodep::parse(isodep::encode(b)) == b)) std::abort();
    } catch (CardError const&) {
    }
    try {
        (void)port100::parse_atqb(in);
    } catch (CardError const&) {
    }
    // The host side facing a hostile device: every answer is fuzz.
    {
        HostilePipe pipe;
        pipe.rest = in;
        Rcs380Channel channel(pipe);
        try {
            channel.connect(60);
            (void)channel.transmit(Bytes{0x00, 0xA4, 0x04, 0x0C});
        } catch (CardError const&) {
        }
    }
    // The simulated reader and card facing a hostile host: each chunk is written as a frame, and InCommRF
    // payloads are taken from the input too.
    {
        static VirtualCard card(Bytes{0x30, 0x00}, Bytes{0x30, 0x00}, std::make_unique<FakeKey>());
        card.insert();
        Rcs380Simulator sim(&card);
        ByteView rest = in;
        while (rest.size() >= 2) {
            std::size_t const n = std::min<std::size_t>(rest[0], rest.size() - 1);
            ByteView chunk = rest.subspan(1, n);
            rest = rest.subspan(1 + n);
            try {
                if (!chunk.empty() && chunk[0] & 1) sim.write(port100::encode(0xD6, chunk[0] >> 1, chunk.subspan(1)));
                else sim.write(chunk);
                while (true) (void)sim.read(4096, 0);
            } catch (CardError const&) {
            }
        }
    }
    return 0;
}
