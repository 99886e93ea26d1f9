// Signed rule bundles (Ed25519, OpenSSL 3): `kyotaku compile --sign KEY` appends a signature; every loader given
// `--trust PUBKEY` (the CLI, `kyotaku serve`) accepts only a bundle signed by one of its trusted keys, and says
// clearly why it refuses one (unsigned, tampered, signed by another key, rule sources instead of a bundle).
//
// A signed bundle is the bundle's bytes followed by a 104-byte trailer: "KYTKSIG1", the signer's raw Ed25519
// public key (32 bytes) and the signature (64 bytes) over every byte before the trailer. Loaders without trusted
// keys (and the WebAssembly engine, whose page checks the signature with WebCrypto first) read a signed bundle
// like an unsigned one. Keys are PEM files: `kyotaku keygen` or `openssl genpkey -algorithm ed25519`.
// Library: kyotaku::signing (links OpenSSL's libcrypto).
#pragma once

#include "kyotaku/cxx20.hpp"  // first: a clear message for a C++17 consumer

#include "kyotaku/engine.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kyotaku {

// An Ed25519 public key, raw (32 bytes), read from a PEM file ("PUBLIC KEY"), or why it could not be read.
struct PublicKey {
    std::string raw;
    Message error;
    bool ok() const { return raw.size() == 32; }
};
PublicKey read_public_key(std::string const& path);
// The public half of an Ed25519 private key (PEM "PRIVATE KEY"): the key a release is signed with.
PublicKey public_key_of_private(std::string const& private_key_path);

// The first 8 bytes of the SHA-256 of a raw public key, in hex: how messages name a key.
std::string key_fingerprint(std::string_view raw_public_key);

// A new key pair as PEM text (private "PRIVATE KEY", public "PUBLIC KEY").
struct KeyPair {
    std::string private_pem, public_pem;
    Message error;
};
KeyPair generate_key_pair();

// The SHA-256 of some bytes, in hex (64 digits): how a release names its diff report.
std::string sha256_hex(std::string_view bytes);

// The bundle with its signature trailer, signed with the Ed25519 private key in the PEM file `private_key_path`.
// The key's fingerprint is first written into the bundle's header (ReleaseInfo::key_id), inside the signed part.
struct SignResult {
    std::string bundle;
    Message error;
    bool ok() const { return error.empty(); }
};
SignResult sign_bundle(std::string_view bundle, std::string const& private_key_path);

// Empty when `bytes` is a bundle signed by one of `trusted` (raw keys), the signature verifies and the header names
// that key; otherwise why not: unsigned, signed by an untrusted key (named by fingerprint), a signature that does
// not verify, or a header that names another key.
Message check_bundle_signature(std::string_view bytes, std::vector<std::string> const& trusted);

// load_rules for a loader with trusted keys: only a file holding a signed bundle that check_bundle_signature
// accepts (a rule directory or .rules file is refused: sources cannot be signed). With no keys, load_rules.
LoadResult load_trusted_rules(std::string const& path, std::vector<std::string> const& trusted,
                              std::vector<Diagnostic>* diagnostics = nullptr);

}  // namespace kyotaku
