// The virtual card on vsmartcard's vpcd protocol, so that the real pcscd sees a real reader and a real card.
// Frames in both directions: a 2-byte big-endian length, then the bytes. From vpcd, a 1-byte frame is a control
// (00 power off, 01 power on, 02 reset, 04 "send the ATR"); anything longer is a command APDU, answered with the
// response APDU. Removing the card closes the connection (pcscd then reports the card absent).
#pragma once

#include "kyotaku/card/virtual_card.hpp"

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

namespace kyotaku::card {

/// One decoded vpcd frame (parse_vpcd_frame is the part a fuzzer drives).
struct VpcdFrame {
    enum class Kind { power_off, power_on, reset, atr, apdu } kind;
    Bytes apdu;
};
/// Interprets a frame's payload (without the length prefix). Throws CardError(malformed) for an empty frame or
/// an unknown control byte.
VpcdFrame parse_vpcd_frame(ByteView payload);

/// The card side of vpcd (vsmartcard calls it the vicc): connects to the vpcd reader driver inside pcscd and
/// answers its frames. Debian's reader.conf (`DEVICENAME /dev/null:0x8C7B`) makes vpcd listen on port 35963 for
/// slot 0 (35964 for slot 1); we connect over loopback only. (vpcd's "reversed" mode, where the card listens,
/// crashes pcscd 1.9.9 whenever the card is absent, so it is not used.)
class VpcdCard {
public:
    VpcdCard(VirtualCard& card, std::uint16_t port = 35963);
    ~VpcdCard();

    /// Connects (retrying every 100 ms while pcscd is not up), answers frames; after a removal, waits for
    /// insert() and connects again. Returns after stop().
    void run();
    void stop();
    /// True while vpcd is connected to us (the reader shows the card).
    bool connected() const { return client_fd_ >= 0; }

    /// Thread-safe card handling for tests and the demo command.
    void remove_card();
    void insert_card();
    std::mutex& card_mutex() { return mutex_; }

private:
    VirtualCard& card_;
    std::uint16_t port_;
    std::atomic<int> client_fd_{-1};
    std::atomic<bool> stopping_{false};
    std::mutex mutex_;
};

}  // namespace kyotaku::card
