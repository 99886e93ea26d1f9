// The server's secrets, kept apart from the database (issue 10): a key file given at start (`kyotaku serve
// --key-file`, 0600) holds a 256-bit master key. From it (HKDF-SHA-256) come the key that seals the URL keys stored in
// the database (AES-256-GCM) and the key of the 目視確認 passcodes' keyed hash (HMAC-SHA-256). A copy of the
// database alone opens no facility URL and cracks no passcode. docs/security.md.
#pragma once

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kyotaku::server {

// AES-256-GCM with a random 96-bit nonce: nonce ‖ ciphertext ‖ tag, `aad` bound as associated data.
std::vector<unsigned char> aes_gcm_seal(std::vector<unsigned char> const& key, std::vector<unsigned char> const& aad,
                                        std::vector<unsigned char> const& plain);
// nullopt when the bytes were tampered with or sealed with another key or other associated data.
std::optional<std::vector<unsigned char>> aes_gcm_open(std::vector<unsigned char> const& key,
                                                       std::vector<unsigned char> const& aad,
                                                       unsigned char const* sealed, std::size_t size);

class Secrets {
public:
    // Reads the key file, or creates it (0600, 32 random bytes as hex) when it does not exist; `created` tells which.
    // Throws std::runtime_error (Japanese / English) when it is readable or writable by others, not a regular file
    // (a symlink is refused), or not a key.
    static std::shared_ptr<Secrets const> from_key_file(std::string const& path, bool& created);
    // Reads an existing key file for `kyotaku serve --check-config`: the same checks but the owner (the check may
    // run as root for a file of the service's user). Throws std::runtime_error as from_key_file.
    static std::shared_ptr<Secrets const> from_key_file_for_check(std::string const& path);
    // A key that lives as long as the process: tests, and databases that do not outlive it (":memory:").
    static std::shared_ptr<Secrets const> ephemeral();

    // A URL key sealed for the url_keys row of `version` (text: "v1:" + hex), and opened again.
    std::string seal_url_key(std::uint32_t version, std::vector<unsigned char> const& key) const;
    std::optional<std::vector<unsigned char>> open_url_key(std::uint32_t version, std::string const& sealed) const;
    // A URL key stored in plain text by a database from before issue 10 (64 hex digits), sealed; nullopt when the
    // text is not such a key. The plain key is wiped from memory once sealed.
    std::optional<std::string> seal_plain_url_key(std::uint32_t version, std::string const& key_hex) const;
    // HMAC-SHA-256 of a facility's passcode, hex.
    std::string passcode_hash(std::string const& facility_code, std::string const& passcode) const;
    // The key's fingerprint: 16 hex digits derived from it (HKDF, its own label), never the key nor anything that
    // opens or makes what it protects. Stored in the database at first start (one key file per deployment:
    // ops/preflight.hpp), and printed when another key meets that database.
    std::string const& fingerprint() const { return fingerprint_; }

private:
    explicit Secrets(std::array<unsigned char, 32> const& master);
    static std::shared_ptr<Secrets const> load_key_file(std::string const& path, bool& created, bool for_check);
    std::vector<unsigned char> url_key_wrap_, passcode_key_;
    std::string fingerprint_;
};


}  // namespace kyotaku::server
