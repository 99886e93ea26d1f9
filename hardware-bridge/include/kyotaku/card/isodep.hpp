// ISO/IEC 14443-4 (ISO-DEP) block framing, both sides: the reader side carries APDUs to a contactless card with
// chaining in both directions and waiting-time extensions (WTX); the card side is used by the simulated reader.
// Blocks arrive from a USB device driven by a web page: every block is parsed strictly (CID and NAD are not used
// by the My Number card flow and are refused).
#pragma once

#include "kyotaku/card/apdu.hpp"

#include <functional>
#include <optional>

namespace kyotaku::card::isodep {

enum class BlockType { i, r_ack, r_nak, s_wtx, s_deselect };

struct Block {
    BlockType type = BlockType::i;
    bool chaining = false;   ///< I-block: more follows
    int number = 0;          ///< block number (0/1) for I- and R-blocks
    Bytes inf;               ///< I-block information field
    std::uint8_t wtxm = 0;   ///< S(WTX): multiplier 1..59
    bool operator==(Block const&) const = default;
};

Bytes encode(Block const& block);
/// Throws CardError(malformed) naming what is wrong with the PCB or the length.
Block parse(ByteView bytes);

/// Frame size (FSC / FSD) for a 4-bit code (ISO 14443-3 table): 16, 24, 32, 40, 48, 64, 96, 128, 256, (512…4096).
std::size_t frame_size(int code);

/// The reader side. `transceive(block, timeout_ms)` sends one block and returns the card's block (without CRC:
/// the reader adds and checks it); it throws CardError(timeout) when the card does not answer.
class Initiator {
public:
    using Transceive = std::function<Bytes(ByteView block, int timeout_ms)>;
    Initiator(Transceive transceive, std::size_t fsc, int fwt_ms = 300)
        : transceive_(std::move(transceive)), fsc_(fsc), fwt_ms_(fwt_ms) {}
    /// One APDU out, one response APDU back.
    Bytes exchange(ByteView apdu);

private:
    Block send(Block const& block);
    Transceive transceive_;
    std::size_t fsc_;
    int fwt_ms_;
    int number_ = 0;
};

/// The card side: reassembles chained I-blocks into an APDU, answers through `handler`, chains the answer within
/// the reader's FSD, and can ask for waiting-time extensions before answering (for tests).
class Target {
public:
    using Handler = std::function<Bytes(ByteView apdu)>;
    Target(Handler handler, std::size_t fsd) : handler_(std::move(handler)), fsd_(fsd) {}
    /// One block from the reader → the block to answer with (nullopt: stay silent, e.g. after DESELECT's answer).
    std::optional<Bytes> on_block(ByteView bytes);
    /// The next answer is preceded by `count` S(WTX) requests.
    void request_wtx(int count) { wtx_pending_ = count; }
    bool deselected() const { return deselected_; }

private:
    Bytes next_response_block();
    Handler handler_;
    std::size_t fsd_;
    Bytes command_, response_;
    std::size_t response_offset_ = 0;
    bool responding_ = false;
    int last_number_ = 1;  ///< number of the last block received (the first I-block carries 0)
    int wtx_pending_ = 0;
    bool deselected_ = false;
    Bytes last_sent_;
};

}  // namespace kyotaku::card::isodep
