// Verifies what a My Number card returned: the 利用者証明用電子証明書 (DER) chains to the card CA, and its key
// signed the server's challenge (COMPUTE DIGITAL SIGNATURE over a SHA-256 DigestInfo, PKCS#1 v1.5, which is
// exactly an RSA-SHA256 signature of the challenge). OpenSSL does all of it.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kyotaku::server {

struct CardCheck {
    bool ok = false;
    std::string field;        // certificate or signature, when !ok
    std::string error_ja, error_en;  // when !ok
    std::string fingerprint;  // SHA-256 of the certificate (hex), when the certificate parsed
};

// Checks the certificate against the card CA and, when `signature` is given, that the card's key signed the
// challenge. 目視確認 has no signature (no PIN, so the card cannot sign): the certificate alone is checked.
CardCheck verify_card_signature(std::string const& card_ca_pem_file, std::vector<unsigned char> const& certificate_der,
                                std::vector<unsigned char> const& challenge,
                                std::vector<unsigned char> const* signature);

// Whether a PEM file holds at least one certificate that loads as a CA (the card CA; the systemd unit hands the
// server a placeholder without one when /etc/kyotaku/tls/card-ca.pem is missing).
bool loads_as_ca_file(std::string const& pem_file);

// SHA-256 of a certificate given as DER, or as PEM text; nullopt when it does not parse.
std::optional<std::string> certificate_fingerprint(std::string const& der_or_pem);

std::string sha256_hex(std::string_view bytes);
std::optional<std::vector<unsigned char>> base64_decode(std::string_view text);
std::string base64_encode(std::vector<unsigned char> const& bytes);

}  // namespace kyotaku::server
