// Native (OpenSSL) parts of the card layer: the virtual card's key from a PEM file, certificates, SHA-256 and
// signature verification. Not built for WebAssembly.
#pragma once

#include "kyotaku/card/jpki.hpp"
#include "kyotaku/card/virtual_card.hpp"

#include <filesystem>

namespace kyotaku::card {

/// An RSA private key read from a PEM file (the test card key from scripts/make-test-pki).
std::unique_ptr<CardKey> load_card_key(std::filesystem::path const& pem);
/// The DER bytes of the first certificate in a PEM file.
Bytes load_certificate_der(std::filesystem::path const& pem);

/// The files of a virtual card: each side's certificate, its private key and its CA certificate (PEM).
struct VirtualCardFiles {
    std::filesystem::path certificate, key, ca;                 ///< 利用者証明用
    std::filesystem::path sign_certificate, sign_key, sign_ca;  ///< 署名用
    /// Test card N of a make-test-pki directory: card-N.pem/.key, card-ca.pem, card-N-sign.pem/.key, card-sign-ca.pem.
    static VirtualCardFiles test_card(std::filesystem::path const& dir, int n);
};

/// A virtual card with both sides of the JPKI application; throws CardError naming a missing or bad file.
std::unique_ptr<VirtualCard> make_virtual_card(VirtualCardFiles const& files, VirtualCardOptions options = {});

Bytes sha256(ByteView message);
/// RSA PKCS#1 v1.5 / SHA-256 signature over `message`, checked with the certificate's public key.
bool verify_signature(ByteView certificate_der, ByteView message, ByteView signature);
/// The certificate chains to the CA certificate (one level, as the test card CA issues them).
bool verify_chain(ByteView certificate_der, ByteView ca_der);
/// Random bytes from OpenSSL (pairing tokens, challenges in tests).
Bytes random_bytes(std::size_t n);
std::string base64(ByteView bytes);
Bytes base64_decode(std::string_view text);  ///< throws CardError(malformed)

}  // namespace kyotaku::card
