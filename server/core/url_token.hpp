// Facility URL tokens (医療機関別URL): AES-256-GCM over (facility code, URL generation), with the key version in
// the clear and bound as associated data. The token neither reveals nor lets anyone forge a facility code.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kyotaku::server {

struct UrlClaims {
    std::string facility_code;
    std::uint32_t generation = 0;
};

// key: 32 bytes. Returns a base64url token without padding.
std::string seal_url_token(std::vector<unsigned char> const& key, std::uint32_t key_version, UrlClaims const& claims);
// The key version a token names (before it can be opened), or nullopt for a malformed token.
std::optional<std::uint32_t> url_token_key_version(std::string_view token);
// nullopt when the token is malformed, tampered with, or sealed with another key.
std::optional<UrlClaims> open_url_token(std::vector<unsigned char> const& key, std::string_view token);

// QR code of `text` (libqrencode, error correction M) as SVG, and as PNG bytes (libpng, one bit per pixel) with
// `scale` pixels per module: 8 for printing, 1 for a page that draws it larger itself (image-rendering: pixelated).
std::string qr_svg(std::string const& text);
std::string qr_png(std::string const& text, int scale = 8);

}  // namespace kyotaku::server
