// The online-eligibility flow on the My Number card's JPKI application (公的個人認証, interfaces.md section 3):
// select the application, read the 利用者証明用電子証明書 (EF 000A) sized from its DER header, read the remaining
// PIN tries without consuming one, verify the 4-digit PIN (EF 0018), sign a SHA-256 DigestInfo with the
// user-authentication key (EF 0017). Portable C++ (no OpenSSL): the caller hashes; the browser build uses it too.
#pragma once

#include "kyotaku/card/apdu.hpp"

#include <array>
#include <string_view>

namespace kyotaku::card::jpki {

inline constexpr std::array<std::uint8_t, 10> jpki_aid{0xD3, 0x92, 0xF0, 0x00, 0x26, 0x01, 0x00, 0x00, 0x00, 0x01};
/// 券面事項入力補助 AP: listed so that the virtual card can answer it; the eligibility flow never uses it.
inline constexpr std::array<std::uint8_t, 10> kenmen_aid{0xD3, 0x92, 0x10, 0x00, 0x31, 0x00, 0x01, 0x01, 0x04, 0x08};

// The JPKI application's files (docs/card.md lists each with its source). The eligibility flow uses the
// 利用者証明用 side only; the 署名用 side is here so that the virtual card presents the application as a real
// card does (OpenSC's JPKI driver and jpki/myna expect both).
inline constexpr std::uint16_t ef_token = 0x0006;             ///< token information ("JPKIAPICCTOKEN2", space-padded)
inline constexpr std::uint16_t ef_auth_certificate = 0x000A;  ///< 利用者証明用電子証明書
inline constexpr std::uint16_t ef_auth_ca = 0x000B;           ///< its issuing CA certificate
inline constexpr std::uint16_t ef_auth_key = 0x0017;          ///< user-authentication private key
inline constexpr std::uint16_t ef_auth_pin = 0x0018;          ///< its PIN (4 digits, 3 tries)
inline constexpr std::uint16_t ef_sign_certificate = 0x0001;  ///< 署名用電子証明書 (readable after the password)
inline constexpr std::uint16_t ef_sign_ca = 0x0002;           ///< its issuing CA certificate
inline constexpr std::uint16_t ef_sign_key = 0x001A;          ///< digital-signature private key
inline constexpr std::uint16_t ef_sign_password = 0x001B;     ///< its password (6-16 of A-Z 0-9, 5 tries)

inline constexpr int auth_pin_tries = 3;
inline constexpr int sign_password_tries = 5;
/// The first 32 bytes of EF 0006 on a My Number card (a 住基カード says "JPKIAPICCTOKEN").
inline constexpr std::string_view my_number_card_token = "JPKIAPICCTOKEN2";

/// 署名用パスワード rules: 6 to 16 characters, upper-case letters A-Z and digits only.
bool is_valid_sign_password(std::string_view password);

/// Largest certificate we accept from a card (the JPKI certificate is about 1.5 KB).
inline constexpr std::size_t max_certificate_size = 8192;

/// A 4-digit PIN. It lives only in this object and in the APDU buffer sent to the card; both are wiped.
/// It has no operator<< and no accessor returning a string, so it cannot end up in a log by accident.
class Pin {
public:
    /// Accepts exactly 4 ASCII digits; anything else throws CardError(malformed) without echoing the input.
    static Pin parse(std::string_view digits);
    Pin(Pin&& other) noexcept;
    Pin& operator=(Pin&&) = delete;
    Pin(Pin const&) = delete;
    ~Pin();
    ByteView bytes() const { return {digits_.data(), digits_.size()}; }

private:
    Pin() = default;
    std::array<std::uint8_t, 4> digits_{};
};

/// The DER DigestInfo for a SHA-256 digest (PKCS#1 v1.5, RFC 8017 section 9.2): fixed 19-byte prefix + digest.
Bytes digest_info_sha256(ByteView sha256_digest);

/// Total length (header + content) of the DER element whose first bytes are given; throws CardError(malformed)
/// for a header that is not a SEQUENCE with a definite length, or longer than `limit`.
std::size_t der_total_length(ByteView first_bytes, std::size_t limit = max_certificate_size);

/// The APDUs of the flow, as commands (for tests, docs and the virtual card's own tests).
Command select_jpki();
Command select_ef(std::uint16_t fid);
Command read_binary(std::size_t offset, std::uint32_t ne);
Command verify_pin_status();  ///< VERIFY without data: 63Cx, consumes no try
Command compute_signature(ByteView digest_info);

/// The flow over any channel.
class Client {
public:
    explicit Client(Channel& channel) : channel_(&channel) {}

    void select_application();
    /// Reads an EF whose content is one DER element (a certificate), sized from its header.
    Bytes read_certificate(std::uint16_t fid = ef_auth_certificate);
    /// Remaining tries of the user-authentication PIN; 0 means locked. Consumes no try.
    int pin_tries_left();
    /// Throws CardError(wrong_pin, tries_left) or CardError(locked). The command buffer is wiped afterwards.
    void verify_pin(Pin const& pin);
    /// Signs a DER DigestInfo with the user-authentication key (the PIN must have been verified).
    Bytes sign_digest_info(ByteView digest_info);

private:
    Response run(Command const& command, std::string_view what);
    Channel* channel_;
    bool selected_ = false;
};

/// What a consent registration needs from the card.
struct Signed {
    Bytes certificate;  ///< 利用者証明用電子証明書, DER
    Bytes signature;    ///< RSA PKCS#1 v1.5 over SHA-256 of the challenge
};

/// 暗証番号 mode: read the certificate, verify the PIN, sign the challenge's SHA-256 digest.
Signed sign_challenge(Channel& channel, Pin const& pin, ByteView challenge_sha256);
/// 目視確認 mode: the certificate only, no PIN, no signature.
Bytes read_certificate_only(Channel& channel);

}  // namespace kyotaku::card::jpki
