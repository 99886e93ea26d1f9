// Sony RC-S380 (PaSoRi), "Port-100" command set, for reading the My Number card from a web page over WebUSB:
// the reader's frames, its commands (SetCommandType, SwitchRF, InSetRF, InSetProtocol, InCommRF), ISO/IEC
// 14443-B activation (WUPB → ATQB → ATTRIB) and ISO-DEP on top: Rcs380Channel is a card::Channel like PC/SC.
// The USB transfers themselves are a UsbPipe: navigator.usb in the browser (js/webusb-rcs380.js), or the
// simulated reader below in tests. Every frame from the device is parsed strictly.
#pragma once

#include "kyotaku/card/apdu.hpp"
#include "kyotaku/card/isodep.hpp"
#include "kyotaku/card/virtual_card.hpp"

#include <deque>
#include <memory>
#include <optional>

namespace kyotaku::card {

/// Bulk transfers to and from the reader.
class UsbPipe {
public:
    virtual ~UsbPipe() = default;
    virtual void write(ByteView bytes) = 0;
    /// One bulk-in transfer of at most `max` bytes; throws CardError(timeout / transport).
    virtual Bytes read(std::size_t max, int timeout_ms) = 0;
};

namespace port100 {

inline constexpr std::uint16_t vendor_id = 0x054C;
inline constexpr std::uint16_t product_ids[] = {0x06C1, 0x06C3};  ///< RC-S380/S, RC-S380/P
inline constexpr std::uint8_t to_device = 0xD6, from_device = 0xD7;

enum Command : std::uint8_t {
    in_set_rf = 0x00,
    in_set_protocol = 0x02,
    in_comm_rf = 0x04,
    switch_rf = 0x06,
    get_firmware_version = 0x20,
    get_command_type = 0x28,
    set_command_type = 0x2A,
};

/// Largest payload we accept in one frame (the RC-S380's limit is a little above 1000 bytes).
inline constexpr std::size_t max_payload = 1100;

struct Frame {
    bool ack = false;
    std::uint8_t direction = 0;  ///< D6 host → reader, D7 reader → host
    std::uint8_t command = 0;    ///< command code (responses: code + 1)
    Bytes payload;
};

/// 00 00 FF FF FF LEN(le16) LCS DATA DCS 00, DATA = direction, command, payload.
Bytes encode(std::uint8_t direction, std::uint8_t command, ByteView payload);
Bytes ack_frame();
/// Parses one frame (ACK or extended data frame); throws CardError(malformed) naming the bad byte or checksum.
Frame parse(ByteView bytes);

/// ISO 14443-B pieces.
Bytes wupb();  ///< 05 00 08: wake up every Type B card, one slot
struct Atqb {
    Bytes pupi;              ///< 4 bytes
    Bytes application_data;  ///< 4 bytes
    std::size_t fsc = 32;    ///< the card's frame size
    int fwi = 4;             ///< frame waiting time integer
};
Atqb parse_atqb(ByteView bytes);  ///< 50 PUPI(4) APP(4) PROTO(3); throws CardError(malformed)
Bytes attrib(ByteView pupi);      ///< 1D PUPI 00 08 01 00: FSD 256, 106 kbit/s, ISO 14443-4, CID 0

/// The host side: talks Port-100 to the reader over a UsbPipe.
class Host {
public:
    explicit Host(UsbPipe& pipe) : pipe_(pipe) {}
    /// Sends a command, waits for the ACK, then for the response (command + 1); returns the response payload.
    Bytes command(std::uint8_t code, ByteView payload, int timeout_ms = 1000);
    /// Cancels anything pending, selects command type 1, reads the firmware version, RF off.
    std::uint16_t initialize();
    void rf(bool on);
    /// Configures the reader for ISO 14443-B at 106 kbit/s (reader adds/checks CRC-B, SOF, EOF).
    void configure_type_b();
    /// One RF exchange; throws CardError(timeout) when no card answers (status 0x80).
    Bytes transceive(ByteView data, int timeout_ms);

private:
    UsbPipe& pipe_;
};

}  // namespace port100

/// A My Number card on an RC-S380: activates the card (Type B) and carries APDUs over ISO-DEP.
class Rcs380Channel : public Channel {
public:
    explicit Rcs380Channel(UsbPipe& pipe) : host_(pipe) {}
    /// Initialises the reader and polls for a card for up to `timeout_ms`; throws CardError(no_card / timeout).
    void connect(int timeout_ms);
    Bytes transmit(ByteView command_apdu) override;
    void disconnect();  ///< S(DESELECT) and RF off
    std::uint16_t firmware_version() const { return firmware_; }

private:
    port100::Host host_;
    std::unique_ptr<isodep::Initiator> isodep_;
    std::uint16_t firmware_ = 0;
};

/// A simulated RC-S380 with an optional card in its field: the device side of Port-100 and a Type B card
/// (WUPB/ATTRIB, ISO-DEP target) in front of a VirtualCard. For tests, natively and in the browser.
class Rcs380Simulator : public UsbPipe {
public:
    explicit Rcs380Simulator(VirtualCard* card = nullptr) : card_(card) {}
    void write(ByteView bytes) override;
    Bytes read(std::size_t max, int timeout_ms) override;

    void place_card(VirtualCard* card);  ///< nullptr takes it out of the field
    void unplug() { unplugged_ = true; }
    /// The card asks for `count` waiting-time extensions before its next answer.
    void request_wtx(int count) { wtx_ = count; }
    std::size_t frames_seen() const { return frames_; }

private:
    Bytes handle(std::uint8_t command, ByteView payload);
    Bytes rf_exchange(ByteView data, bool& timeout);
    VirtualCard* card_;
    std::deque<Bytes> out_;
    bool unplugged_ = false;
    bool rf_on_ = false;
    bool type_b_ = false;
    int command_type_ = 0;
    enum class CardState { idle, ready, active } state_ = CardState::idle;
    std::unique_ptr<isodep::Target> target_;
    int wtx_ = 0;
    std::size_t frames_ = 0;
};

}  // namespace kyotaku::card
