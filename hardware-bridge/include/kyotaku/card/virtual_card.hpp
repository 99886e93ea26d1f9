// A simulated My Number card for tests and demos: the JPKI commands of interfaces.md section 3 with its own
// RSA-2048 key and a certificate from the project's test card CA. The PIN locks after 3 wrong tries; the card can
// be removed (also in the middle of a command). Portable C++: the RSA private operation is supplied by a CardKey
// (OpenSSL natively, see native.hpp). Every command APDU is parsed strictly; bad bytes get a status word, never
// a crash.
#pragma once

#include "kyotaku/card/apdu.hpp"

#include <memory>
#include <string>

namespace kyotaku::card {

/// The card's private key: RSA PKCS#1 v1.5 private-key operation (block type 1) over a DigestInfo.
class CardKey {
public:
    virtual ~CardKey() = default;
    virtual Bytes sign_pkcs1(ByteView digest_info) = 0;
    virtual std::size_t modulus_bytes() const = 0;
};

struct VirtualCardOptions {
    std::string pin = "1234";          ///< 4 digits
    int pin_tries = 3;                 ///< tries before the PIN locks
    std::size_t max_response = 256;    ///< longer answers are chained with 61xx / GET RESPONSE
};

class VirtualCard {
public:
    VirtualCard(Bytes certificate_der, Bytes ca_certificate_der, std::unique_ptr<CardKey> key,
                VirtualCardOptions options = {});

    /// One command APDU in, one response APDU out. Never throws.
    Bytes process(ByteView command_apdu);

    /// ATR of a contactless card as PC/SC part 3 reports it (T=1, historical bytes "KYOTAKU-VC").
    Bytes const& atr() const { return atr_; }
    /// Power off / reset: the selection and the verified-PIN state are lost, the try counter is kept.
    void reset();

    void remove() { present_ = false; reset(); }
    void insert() { present_ = true; }
    bool present() const { return present_; }
    /// Fault injection: the card is taken away when the n-th command from now arrives (it is not answered).
    void remove_at_command(int n) { remove_countdown_ = n; }
    /// True (once) when the countdown just removed the card: transports drop the connection.
    bool take_removal_event();

    int pin_tries_left() const { return tries_left_; }
    std::size_t commands_seen() const { return commands_; }

private:
    Response handle(Command const& c);
    Response select(Command const& c);
    Response read_binary(Command const& c);
    Response verify(Command const& c);
    Response sign(Command const& c);
    Response get_response(Command const& c);
    Response answer(Bytes data, std::uint32_t ne);

    Bytes certificate_, ca_certificate_;
    std::unique_ptr<CardKey> key_;
    VirtualCardOptions options_;
    Bytes atr_;
    enum class App { none, jpki, kenmen } app_ = App::none;
    std::uint16_t ef_ = 0;
    bool pin_verified_ = false;
    int tries_left_;
    bool present_ = true;
    int remove_countdown_ = 0;
    bool removal_event_ = false;
    Bytes pending_;  ///< data waiting for GET RESPONSE
    std::size_t commands_ = 0;
};

/// The virtual card reached directly, in the same process.
class InProcessChannel : public Channel {
public:
    explicit InProcessChannel(VirtualCard& card) : card_(card) {}
    Bytes transmit(ByteView command_apdu) override;

private:
    VirtualCard& card_;
};

}  // namespace kyotaku::card
