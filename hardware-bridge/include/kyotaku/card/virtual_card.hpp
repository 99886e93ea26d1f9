// A simulated My Number card for tests and demos: the JPKI application as a real card presents it (docs/card.md
// records each file and status word with its source), with the 利用者証明用 side (certificate 000A, its CA 000B,
// key 0017, 4-digit PIN 0018, 3 tries) and the 署名用 side (certificate 0001, its CA 0002, key 001A, password 001B
// of 6-16 upper-case letters and digits, 5 tries), each with its own RSA-2048 key and a certificate from the
// project's test CAs. The card can be removed (also in the middle of a command). Portable C++: the RSA private
// operation is supplied by a CardKey (OpenSSL natively, see native.hpp). Every command APDU is parsed strictly;
// bad bytes get a status word, never a crash.
#pragma once

#include "kyotaku/card/apdu.hpp"

#include <memory>
#include <set>
#include <string>

namespace kyotaku::card {

/// The card's private key: RSA PKCS#1 v1.5 private-key operation (block type 1) over a DigestInfo.
class CardKey {
public:
    virtual ~CardKey() = default;
    virtual Bytes sign_pkcs1(ByteView digest_info) = 0;
    virtual std::size_t modulus_bytes() const = 0;
};

/// One side of the JPKI application: a certificate, the CA certificate that issued it, and the private key.
struct JpkiKeySide {
    Bytes certificate;     ///< DER
    Bytes ca_certificate;  ///< DER
    std::unique_ptr<CardKey> key;
};

struct VirtualCardOptions {
    std::string pin = "1234";                ///< 利用者証明用暗証番号: 4 digits
    int pin_tries = 3;                       ///< tries before it locks (a real card: 3)
    std::string sign_password = "KYOTAKU1";  ///< 署名用パスワード: 6-16 of A-Z and 0-9
    int sign_password_tries = 5;             ///< tries before it locks (a real card: 5)
    std::size_t max_response = 256;          ///< longer answers are chained with 61xx / GET RESPONSE
};

class VirtualCard {
public:
    /// A card with both sides, as a real My Number card that carries a 署名用電子証明書.
    VirtualCard(JpkiKeySide authentication, JpkiKeySide signature, VirtualCardOptions options = {});
    /// The 利用者証明用 side only (the WebAssembly simulator of the browser tests, whose page holds one key): the
    /// 署名用 EFs answer 6A82 on this card. Every native virtual card (native.hpp) has both sides.
    VirtualCard(Bytes certificate_der, Bytes ca_certificate_der, std::unique_ptr<CardKey> key,
                VirtualCardOptions options = {});

    /// One command APDU in, one response APDU out. Never throws.
    Bytes process(ByteView command_apdu);

    /// ATR of a contactless card as PC/SC part 3 reports it (T=1, historical bytes "KYOTAKU-VC").
    Bytes const& atr() const { return atr_; }
    /// Power off / reset: the selection and the verified states are lost, the try counters are kept.
    void reset();

    void remove() { present_ = false; reset(); }
    void insert() { present_ = true; }
    bool present() const { return present_; }
    /// Fault injection: the card is taken away when the n-th command from now arrives (it is not answered).
    void remove_at_command(int n) { remove_countdown_ = n; }
    /// True (once) when the countdown just removed the card: transports drop the connection.
    bool take_removal_event();

    int pin_tries_left() const { return auth_pin_.tries_left; }
    int sign_password_tries_left() const { return sign_password_.tries_left; }
    bool has_signature_side() const { return signature_.key != nullptr; }
    std::size_t commands_seen() const { return commands_; }
    /// Every EF identifier a SELECT asked for (found or not) since the card was made: the tests show with it that
    /// the consent flow never touches the 署名用 files.
    std::set<std::uint16_t> const& files_selected() const { return files_selected_; }

private:
    struct Secret {
        std::string value;
        int max_tries;
        int tries_left;
        bool verified = false;
    };
    Response handle(Command const& c);
    Response select(Command const& c);
    Response read_binary(Command const& c);
    Response verify(Command const& c);
    Response sign(Command const& c);
    Response get_response(Command const& c);
    Response answer(Bytes data, std::uint32_t ne);
    bool has_ef(std::uint16_t fid) const;
    Secret* secret_of_current_ef();

    JpkiKeySide authentication_, signature_;
    Bytes token_;  ///< EF 0006
    VirtualCardOptions options_;
    Secret auth_pin_, sign_password_;
    Bytes atr_;
    enum class App { none, jpki, kenmen } app_ = App::none;
    std::uint16_t ef_ = 0;
    bool present_ = true;
    int remove_countdown_ = 0;
    bool removal_event_ = false;
    Bytes pending_;  ///< data waiting for GET RESPONSE
    std::size_t commands_ = 0;
    std::set<std::uint16_t> files_selected_;
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
