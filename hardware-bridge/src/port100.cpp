#include "kyotaku/card/port100.hpp"

#include <algorithm>
#include <cmath>

namespace kyotaku::card {

namespace port100 {

namespace {
[[noreturn]] void bad(std::string const& what) {
    throw CardError(ErrorKind::malformed, Message{"不正なリーダーのフレーム", "malformed reader frame: " + what});
}
std::uint8_t checksum(ByteView bytes) {
    std::uint8_t sum = 0;
    for (auto b : bytes) sum = std::uint8_t(sum + b);
    return std::uint8_t(-sum);
}
}  // namespace

Bytes encode(std::uint8_t direction, std::uint8_t command, ByteView payload) {
    if (payload.size() > max_payload) bad("payload of " + std::to_string(payload.size()) + " bytes");
    Bytes data{direction, command};
    data.insert(data.end(), payload.begin(), payload.end());
    std::uint16_t const len = std::uint16_t(data.size());
    Bytes out{0x00, 0x00, 0xFF, 0xFF, 0xFF, std::uint8_t(len & 0xFF), std::uint8_t(len >> 8)};
    out.push_back(checksum(ByteView(out).subspan(5, 2)));
    out.insert(out.end(), data.begin(), data.end());
    out.push_back(checksum(data));
    out.push_back(0x00);
    return out;
}

Bytes ack_frame() { return {0x00, 0x00, 0xFF, 0x00, 0xFF, 0x00}; }

Frame parse(ByteView b) {
    if (b.size() < 6) bad(std::to_string(b.size()) + " bytes, shorter than an ACK");
    if (b[0] != 0x00 || b[1] != 0x00 || b[2] != 0xFF) bad("no start of frame (00 00 FF) at the beginning");
    if (b[3] == 0x00 && b[4] == 0xFF) {
        if (b.size() != 6 || b[5] != 0x00) bad("ACK frame with trailing bytes");
        return Frame{true, 0, 0, {}};
    }
    if (b[3] != 0xFF || b[4] != 0xFF)
        bad("not an extended frame (00 00 FF FF FF); normal frames are not used by Port-100");
    if (b.size() < 10) bad("extended frame cut short at " + std::to_string(b.size()) + " bytes");
    std::size_t const len = std::size_t(b[5]) | std::size_t(b[6]) << 8;
    if (checksum(b.subspan(5, 2)) != b[7])
        bad("length checksum " + to_hex(b.subspan(7, 1)) + " does not match the length");
    if (len < 2) bad("data length " + std::to_string(len) + " (direction and command need 2)");
    if (len > max_payload + 2) bad("data length " + std::to_string(len) + " above " + std::to_string(max_payload + 2));
    if (b.size() != 8 + len + 2)
        bad("frame of " + std::to_string(b.size()) + " bytes for a data length of " + std::to_string(len));
    ByteView const data = b.subspan(8, len);
    if (checksum(data) != b[8 + len]) bad("data checksum " + to_hex(b.subspan(8 + len, 1)) + " does not match");
    if (b[9 + len] != 0x00) bad("postamble is not 00");
    if (data[0] != to_device && data[0] != from_device)
        bad("direction byte " + to_hex(data.first(1)) + " is neither D6 nor D7");
    return Frame{false, data[0], data[1], Bytes(data.begin() + 2, data.end())};
}

Bytes wupb() { return {0x05, 0x00, 0x08}; }

Atqb parse_atqb(ByteView b) {
    if (b.size() != 12 && b.size() != 13)
        throw CardError(ErrorKind::malformed, Message{"不正なATQB", "malformed ATQB: " + std::to_string(b.size()) +
                                                                        " bytes (12 or 13 expected)"});
    if (b[0] != 0x50)
        throw CardError(ErrorKind::malformed,
                        Message{"不正なATQB", "malformed ATQB: first byte " + to_hex(b.first(1)) + " is not 50"});
    Atqb a;
    a.pupi.assign(b.begin() + 1, b.begin() + 5);
    a.application_data.assign(b.begin() + 5, b.begin() + 9);
    std::uint8_t const proto2 = b[10], proto3 = b[11];
    if ((proto2 & 0x01) == 0)
        throw CardError(ErrorKind::not_supported,
                        Message{"ISO 14443-4 に対応していないカードです", "the card does not support ISO 14443-4"});
    a.fsc = isodep::frame_size(proto2 >> 4);
    a.fwi = proto3 >> 4;
    if (a.fwi == 15) a.fwi = 4;  // RFU: the default
    return a;
}

Bytes attrib(ByteView pupi) {
    Bytes out;
    out.reserve(5 + pupi.size());
    out.push_back(0x1D);
    out.insert(out.end(), pupi.begin(), pupi.end());
    out.insert(out.end(), {0x00, 0x08, 0x01, 0x00});
    return out;
}

Bytes Host::command(std::uint8_t code, ByteView payload, int timeout_ms) {
    pipe_.write(encode(to_device, code, payload));
    Frame ack = parse(pipe_.read(1280, std::min(timeout_ms, 1000)));
    if (!ack.ack) bad("expected an ACK from the reader");
    Frame response = parse(pipe_.read(1280, timeout_ms + 500));
    if (response.ack || response.direction != from_device || response.command != std::uint8_t(code + 1))
        bad("expected the response to command " + to_hex(Bytes{code}) + ", got " + to_hex(Bytes{response.command}));
    return response.payload;
}

std::uint16_t Host::initialize() {
    pipe_.write(ack_frame());  // cancels whatever a previous page left running
    Bytes r = command(set_command_type, Bytes{0x01});
    if (r.empty() || r[0] != 0)
        throw CardError(ErrorKind::not_supported,
                        Message{"このリーダーはコマンドタイプ1に対応していません", "reader refused command type 1"});
    r = command(get_firmware_version, {});
    if (r.size() < 2) bad("firmware version of " + std::to_string(r.size()) + " bytes");
    std::uint16_t const version = std::uint16_t(r[0] | r[1] << 8);
    rf(false);
    return version;
}

void Host::rf(bool on) {
    Bytes r = command(switch_rf, Bytes{std::uint8_t(on ? 1 : 0)});
    if (r.empty() || r[0] != 0)
        throw CardError(ErrorKind::transport, Message{"リーダーの電波を切り替えられません", "SwitchRF failed"});
}

void Host::configure_type_b() {
    Bytes r = command(in_set_rf, Bytes{0x03, 0x07, 0x0F, 0x07});  // send: set 3, 106B; receive: set 15, 106B
    if (r.empty() || r[0] != 0) throw CardError(ErrorKind::transport, "InSetRF (106B) failed");
    // Guard time 20, add/check CRC, no parity, 8 valid bits, add/check SOF and EOF, deaf time 4, guard 6.
    static constexpr std::uint8_t protocol[] = {0x00, 0x14, 0x01, 0x01, 0x02, 0x01, 0x03, 0x00, 0x04, 0x00, 0x05, 0x00,
                                                0x06, 0x00, 0x07, 0x08, 0x08, 0x00, 0x09, 0x01, 0x0A, 0x01, 0x0B, 0x01,
                                                0x0C, 0x01, 0x0E, 0x04, 0x0F, 0x00, 0x10, 0x00, 0x11, 0x00, 0x12, 0x00,
                                                0x13, 0x06};
    r = command(in_set_protocol, ByteView(protocol, sizeof protocol));
    if (r.empty() || r[0] != 0) throw CardError(ErrorKind::transport, "InSetProtocol (Type B) failed");
}

Bytes Host::transceive(ByteView data, int timeout_ms) {
    std::uint16_t const units = std::uint16_t(std::clamp(timeout_ms, 1, 6000) * 10);  // 0.1 ms units
    Bytes payload{std::uint8_t(units & 0xFF), std::uint8_t(units >> 8)};
    payload.insert(payload.end(), data.begin(), data.end());
    Bytes r = command(in_comm_rf, payload, timeout_ms);
    if (r.size() < 5) bad("InCommRF response of " + std::to_string(r.size()) + " bytes");
    std::uint32_t const status =
        std::uint32_t(r[0]) | std::uint32_t(r[1]) << 8 | std::uint32_t(r[2]) << 16 | std::uint32_t(r[3]) << 24;
    if (status == 0x80) throw CardError(ErrorKind::timeout, Message{"カードが応答しません", "no answer from a card"});
    if (status != 0)
        throw CardError(ErrorKind::transport,
                        Message{"無線通信のエラーです", "RF error, InCommRF status " + to_hex(ByteView(r).first(4))});
    return Bytes(r.begin() + 5, r.end());
}

}  // namespace port100

void Rcs380Channel::connect(int timeout_ms) {
    firmware_ = host_.initialize();
    host_.configure_type_b();
    int const attempts = std::max(1, timeout_ms / 30);
    std::optional<port100::Atqb> atqb;
    for (int i = 0; i < attempts && !atqb; ++i) {
        try {
            atqb = port100::parse_atqb(host_.transceive(port100::wupb(), 30));
        } catch (CardError const& e) {
            if (e.kind() != ErrorKind::timeout) throw;
        }
    }
    if (!atqb)
        throw CardError(ErrorKind::no_card, Message{"カードがリーダーに置かれていません", "no card on the reader"});
    Bytes const answer = host_.transceive(port100::attrib(atqb->pupi), 100);
    if (answer.empty() || (answer[0] & 0x0F) != 0)
        throw CardError(ErrorKind::card_error, Message{"カードが ATTRIB を受け付けません", "the card refused ATTRIB"});
    int const fwt_ms = std::max(50, int(std::ceil(0.302 * double(1 << std::min(atqb->fwi, 14)))) + 10);
    isodep_ = std::make_unique<isodep::Initiator>(
        [this](ByteView block, int timeout) { return host_.transceive(block, timeout); }, atqb->fsc, fwt_ms);
}

Bytes Rcs380Channel::transmit(ByteView apdu) {
    if (!isodep_) throw CardError(ErrorKind::no_card, Message{"カードに接続していません", "not connected to a card"});
    try {
        return isodep_->exchange(apdu);
    } catch (CardError const& e) {
        if (e.kind() == ErrorKind::card_removed) isodep_.reset();
        throw;
    }
}

void Rcs380Channel::disconnect() {
    if (isodep_) {
        try {
            host_.transceive(isodep::encode(isodep::Block{isodep::BlockType::s_deselect, false, 0, {}, 0}), 50);
        } catch (CardError const&) {
        }
        isodep_.reset();
    }
    host_.rf(false);
}

// ---- the simulated reader ---------------------------------------------------------------------------------

void Rcs380Simulator::place_card(VirtualCard* card) {
    card_ = card;
    state_ = CardState::idle;
    target_.reset();
}

void Rcs380Simulator::write(ByteView bytes) {
    if (unplugged_)
        throw CardError(ErrorKind::transport, Message{"カードリーダーが外されました", "the reader was unplugged"});
    ++frames_;
    port100::Frame f;
    try {
        f = port100::parse(bytes);
    } catch (CardError const&) {
        return;  // the device ignores what it cannot read; the host times out
    }
    if (f.ack) {
        out_.clear();  // cancel
        return;
    }
    if (f.direction != port100::to_device) return;
    out_.push_back(port100::ack_frame());
    out_.push_back(port100::encode(port100::from_device, std::uint8_t(f.command + 1), handle(f.command, f.payload)));
}

Bytes Rcs380Simulator::read(std::size_t max, int) {
    if (unplugged_)
        throw CardError(ErrorKind::transport, Message{"カードリーダーが外されました", "the reader was unplugged"});
    if (out_.empty())
        throw CardError(ErrorKind::timeout, Message{"リーダーが応答しません", "the reader did not answer"});
    Bytes b = std::move(out_.front());
    out_.pop_front();
    if (b.size() > max) throw CardError(ErrorKind::transport, "USB transfer larger than the buffer");
    return b;
}

Bytes Rcs380Simulator::handle(std::uint8_t command, ByteView payload) {
    switch (command) {
        case port100::get_command_type: return {0, 0, 0, 0, 0, 0, 0, 0x03};  // types 0 and 1
        case port100::set_command_type:
            if (payload.size() != 1 || payload[0] > 1) return {0x01};
            command_type_ = payload[0];
            return {0x00};
        case port100::get_firmware_version: return {0x11, 0x01};  // 1.11
        case port100::switch_rf:
            if (payload.size() != 1) return {0x01};
            rf_on_ = payload[0] != 0;
            if (!rf_on_) {
                state_ = CardState::idle;  // no field, no power: the card forgets everything
                target_.reset();
                if (card_) card_->reset();
            }
            return {0x00};
        case port100::in_set_rf:
            if (payload.size() != 4) return {0x01};
            type_b_ = payload[1] == 0x07 && payload[3] == 0x07;
            rf_on_ = true;
            return {0x00};
        case port100::in_set_protocol:
            if (payload.size() % 2 != 0) return {0x01};
            return {0x00};
        case port100::in_comm_rf: {
            if (payload.size() < 2) return {0x01, 0, 0, 0, 0};
            bool timeout = false;
            Bytes answer = rf_exchange(payload.subspan(2), timeout);
            Bytes out = timeout ? Bytes{0x80, 0, 0, 0, 0} : Bytes{0, 0, 0, 0, 0};
            out.insert(out.end(), answer.begin(), answer.end());
            return out;
        }
        default: return {0x01};
    }
}

Bytes Rcs380Simulator::rf_exchange(ByteView data, bool& timeout) {
    timeout = true;
    if (!rf_on_ || !type_b_ || command_type_ != 1 || !card_ || !card_->present() || data.empty()) {
        if (card_ && !card_->present()) place_card(card_);  // a card taken away starts over when it comes back
        return {};
    }
    if (data[0] == 0x05 && data.size() == 3 && state_ != CardState::active) {
        state_ = CardState::ready;
        timeout = false;
        // PUPI, application data, protocol info: 106 kbit/s, FSCI 8 (256 bytes), ISO 14443-4, FWI 7.
        return {0x50, 0x4B, 0x59, 0x4F, 0x54, 0x00, 0x00, 0x00, 0x00, 0x00, 0x81, 0x70};
    }
    if (data[0] == 0x1D && state_ == CardState::ready) {
        if (data.size() < 9 || !std::equal(data.begin() + 1, data.begin() + 5, Bytes{0x4B, 0x59, 0x4F, 0x54}.begin()))
            return {};
        std::size_t const fsd = isodep::frame_size(data[6] & 0x0F);
        VirtualCard* card = card_;
        target_ = std::make_unique<isodep::Target>(
            [card](ByteView apdu) {
                Bytes r = card->process(apdu);
                bool const removed = card->take_removal_event();
                if (removed || r.empty())
                    throw CardError(ErrorKind::card_removed, "the card left the field");
                return r;
            },
            fsd);
        state_ = CardState::active;
        timeout = false;
        return {0x00};
    }
    if (state_ == CardState::active && target_) {
        if (wtx_ > 0) {
            target_->request_wtx(wtx_);
            wtx_ = 0;
        }
        try {
            std::optional<Bytes> answer = target_->on_block(data);
            if (!answer) return {};
            timeout = false;
            return *answer;
        } catch (CardError const&) {
            place_card(card_);  // removed mid-command
            return {};
        }
    }
    return {};
}

}  // namespace kyotaku::card
