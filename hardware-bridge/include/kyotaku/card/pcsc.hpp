// PC/SC (pcsclite) transport: list readers, wait for a card, connect, transmit, removal and unplugging mapped to
// CardError kinds (card_removed, no_card, no_reader, transport, timeout).
#pragma once

#include "kyotaku/card/apdu.hpp"

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace kyotaku::card {

class PcscChannel;

class PcscContext {
public:
    PcscContext();  ///< throws CardError(transport) when pcscd is not running
    ~PcscContext();
    PcscContext(PcscContext const&) = delete;
    PcscContext& operator=(PcscContext const&) = delete;

    std::vector<std::string> readers();
    /// Waits until a card is present in `reader` (or any reader when empty); returns the reader's name.
    /// Throws CardError(timeout / no_reader). `cancelled` is asked about once a second (a WebSocket closed …).
    std::string wait_for_card(std::string const& reader, std::chrono::milliseconds timeout,
                              std::function<bool()> const& cancelled = {});
    /// Connects to the card (shared mode, T=0 or T=1).
    std::unique_ptr<PcscChannel> connect(std::string const& reader);
    /// Interrupts a wait_for_card in progress (from another thread).
    void cancel();

private:
    std::intptr_t context_ = 0;
};

class PcscChannel : public Channel {
public:
    PcscChannel(std::intptr_t card, unsigned long protocol) : card_(card), protocol_(protocol) {}
    ~PcscChannel() override;
    Bytes transmit(ByteView command_apdu) override;
    Bytes atr();

private:
    std::intptr_t card_;
    unsigned long protocol_;
};

/// Maps a PC/SC result code to a CardError (never returns).
[[noreturn]] void throw_pcsc(long rv, std::string_view what);

}  // namespace kyotaku::card
