#include "kyotaku/card/isodep.hpp"

#include <algorithm>

namespace kyotaku::card::isodep {

namespace {
[[noreturn]] void bad(std::string const& what) {
    throw CardError(ErrorKind::malformed, Message{"不正なISO-DEPブロック", "malformed ISO-DEP block: " + what});
}
}  // namespace

Bytes encode(Block const& b) {
    Bytes out;
    out.reserve(2 + b.inf.size());
    switch (b.type) {
        case BlockType::i:
            out.push_back(std::uint8_t(0x02 | (b.chaining ? 0x10 : 0) | (b.number & 1)));
            out.insert(out.end(), b.inf.begin(), b.inf.end());
            break;
        case BlockType::r_ack: out.push_back(std::uint8_t(0xA2 | (b.number & 1))); break;
        case BlockType::r_nak: out.push_back(std::uint8_t(0xB2 | (b.number & 1))); break;
        case BlockType::s_wtx:
            out.push_back(0xF2);
            out.push_back(std::uint8_t(b.wtxm & 0x3F));
            break;
        case BlockType::s_deselect: out.push_back(0xC2); break;
    }
    return out;
}

Block parse(ByteView bytes) {
    if (bytes.empty()) bad("empty");
    std::uint8_t const pcb = bytes[0];
    Block b;
    if ((pcb & 0xC0) == 0x00) {  // I-block: 00x0 xx1x
        if ((pcb & 0x02) == 0) bad("I-block PCB " + to_hex(bytes.first(1)) + " without bit 2 set");
        if (pcb & 0x20) bad("I-block PCB " + to_hex(bytes.first(1)) + " has bit 6 set");
        if (pcb & 0x08) bad("CID is not used");
        if (pcb & 0x04) bad("NAD is not used");
        b.type = BlockType::i;
        b.chaining = pcb & 0x10;
        b.number = pcb & 1;
        b.inf.assign(bytes.begin() + 1, bytes.end());
        return b;
    }
    if ((pcb & 0xC0) == 0x80) {  // R-block: 101x x01x
        if ((pcb & 0xE6) != 0xA2) bad("R-block PCB " + to_hex(bytes.first(1)) + " is not 101x x01x");
        if (pcb & 0x08) bad("CID is not used");
        if (bytes.size() != 1) bad("R-block with " + std::to_string(bytes.size() - 1) + " bytes of data");
        b.type = (pcb & 0x10) ? BlockType::r_nak : BlockType::r_ack;
        b.number = pcb & 1;
        return b;
    }
    if ((pcb & 0xC0) == 0xC0) {  // S-block: 11xx x010
        if ((pcb & 0x07) != 0x02) bad("S-block PCB " + to_hex(bytes.first(1)) + " is not 11xx x010");
        if (pcb & 0x08) bad("CID is not used");
        if ((pcb & 0x30) == 0x30) {
            if (bytes.size() != 2) bad("S(WTX) must carry exactly one WTXM byte");
            b.type = BlockType::s_wtx;
            b.wtxm = bytes[1] & 0x3F;
            if (b.wtxm == 0 || b.wtxm > 59) bad("WTXM " + std::to_string(b.wtxm) + " outside 1..59");
            if (bytes[1] & 0xC0) bad("WTXM power-level bits are not used");
            return b;
        }
        if ((pcb & 0x30) == 0x00) {
            if (bytes.size() != 1) bad("S(DESELECT) with data");
            b.type = BlockType::s_deselect;
            return b;
        }
        bad("S-block PCB " + to_hex(bytes.first(1)) + " is neither WTX nor DESELECT");
    }
    bad("PCB " + to_hex(bytes.first(1)) + " is reserved");
}

std::size_t frame_size(int code) {
    static constexpr std::size_t sizes[] = {16, 24, 32, 40, 48, 64, 96, 128, 256, 512, 1024, 2048, 4096};
    if (code < 0 || code > 12) return 256;  // RFU codes are read as 256 (ISO 14443-3:2016)
    return sizes[code];
}

// ---- reader side ------------------------------------------------------------------------------------------

Block Initiator::send(Block const& block) {
    Bytes const out = encode(block);
    int timeout = fwt_ms_;
    for (int attempt = 0;; ++attempt) {
        Bytes raw;
        try {
            raw = transceive_(out, timeout);
        } catch (CardError const& e) {
            // One retransmission on silence (ISO 14443-4 7.5.4), then the card is gone.
            if (e.kind() != ErrorKind::timeout || attempt >= 1) {
                if (e.kind() == ErrorKind::timeout)
                    throw CardError(ErrorKind::card_removed, Message{"カードが離れたか応答がありません",
                                                                     "the card left the field or stopped answering"});
                throw;
            }
            continue;
        }
        Block answer = parse(raw);
        if (answer.type == BlockType::s_wtx) {
            // The card needs more time: acknowledge with the same WTXM and wait WTXM × FWT (bounded).
            if (attempt > 64) bad("more than 64 waiting-time extensions in a row");
            Block wtx{BlockType::s_wtx, false, 0, {}, answer.wtxm};
            Bytes const again = encode(wtx);
            timeout = fwt_ms_ * answer.wtxm;
            Bytes raw2 = transceive_(again, timeout);
            Block next = parse(raw2);
            while (next.type == BlockType::s_wtx) {
                if (++attempt > 64) bad("more than 64 waiting-time extensions in a row");
                timeout = fwt_ms_ * next.wtxm;
                next = parse(transceive_(encode(Block{BlockType::s_wtx, false, 0, {}, next.wtxm}), timeout));
            }
            return next;
        }
        return answer;
    }
}

Bytes Initiator::exchange(ByteView apdu) {
    std::size_t const max_inf = fsc_ > 3 ? fsc_ - 3 : 1;  // PCB + CRC
    std::size_t offset = 0;
    Block answer;
    // Send the command, chained when longer than the card's frame.
    while (true) {
        std::size_t const n = std::min(max_inf, apdu.size() - offset);
        bool const more = offset + n < apdu.size();
        Block i{BlockType::i, more, number_, Bytes(apdu.begin() + long(offset), apdu.begin() + long(offset + n)), 0};
        answer = send(i);
        offset += n;
        if (more) {
            if (answer.type != BlockType::r_ack || answer.number != number_)
                bad("expected R(ACK) for block " + std::to_string(number_) + " while chaining the command");
            number_ ^= 1;
            continue;
        }
        break;
    }
    number_ ^= 1;
    // Receive the response, following the card's chaining.
    Bytes response;
    for (int blocks = 0;; ++blocks) {
        if (answer.type != BlockType::i) bad("expected an I-block with the response");
        if (answer.number != (number_ ^ 1)) bad("I-block number " + std::to_string(answer.number) + " out of sequence");
        response.insert(response.end(), answer.inf.begin(), answer.inf.end());
        if (response.size() > 65538 || blocks > 4096) bad("response longer than 65538 bytes");
        if (!answer.chaining) break;
        answer = send(Block{BlockType::r_ack, false, number_, {}, 0});
        number_ ^= 1;
    }
    return response;
}

// ---- card side --------------------------------------------------------------------------------------------

Bytes Target::next_response_block() {
    std::size_t const max_inf = fsd_ > 3 ? fsd_ - 3 : 1;
    std::size_t const n = std::min(max_inf, response_.size() - response_offset_);
    bool const more = response_offset_ + n < response_.size();
    Block b{BlockType::i, more, last_number_,
            Bytes(response_.begin() + long(response_offset_), response_.begin() + long(response_offset_ + n)), 0};
    response_offset_ += n;
    responding_ = more;
    return encode(b);
}

std::optional<Bytes> Target::on_block(ByteView bytes) {
    Block b;
    try {
        b = parse(bytes);
    } catch (CardError const&) {
        return std::nullopt;  // a card ignores a frame it cannot read (the reader times out)
    }
    switch (b.type) {
        case BlockType::s_deselect:
            deselected_ = true;
            return encode(Block{BlockType::s_deselect, false, 0, {}, 0});
        case BlockType::s_wtx:
            // The reader's answer to our WTX request: now give the real answer.
            if (wtx_pending_ > 0 && --wtx_pending_ > 0) return encode(Block{BlockType::s_wtx, false, 0, {}, 1});
            return last_sent_ = next_response_block();
        case BlockType::r_nak:
            if (last_sent_.empty()) return std::nullopt;
            return last_sent_;  // resend
        case BlockType::r_ack:
            // The reader acknowledges our chained block with the next number; the same number asks us to resend.
            if (responding_ && b.number == (last_number_ ^ 1)) {
                last_number_ = b.number;
                return last_sent_ = next_response_block();
            }
            if (last_sent_.empty()) return std::nullopt;
            return last_sent_;
        case BlockType::i:
            // Every block answers with the number of the block it answers; a repeated number is a retransmission.
            if (b.number != (last_number_ ^ 1) && !last_sent_.empty()) return last_sent_;
            last_number_ = b.number;
            command_.insert(command_.end(), b.inf.begin(), b.inf.end());
            if (command_.size() > 65544) {
                command_.clear();
                return std::nullopt;
            }
            if (b.chaining) return last_sent_ = encode(Block{BlockType::r_ack, false, b.number, {}, 0});
            response_ = handler_(command_);
            secure_wipe(command_.data(), command_.size());  // it may have carried a PIN
            command_.clear();
            response_offset_ = 0;
            if (wtx_pending_ > 0) return last_sent_ = encode(Block{BlockType::s_wtx, false, 0, {}, 1});
            return last_sent_ = next_response_block();
    }
    return std::nullopt;
}

}  // namespace kyotaku::card::isodep
