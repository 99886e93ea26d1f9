#include "core/url_token.hpp"

#include "core/secrets.hpp"

#include <openssl/evp.h>
#include <png.h>
#include <qrencode.h>

#include <memory>
#include <stdexcept>

namespace kyotaku::server {

namespace {
constexpr unsigned char format_byte = 1;
constexpr std::size_t nonce_size = 12, tag_size = 16, header_size = 1 + 4;

std::string base64url(std::vector<unsigned char> const& bytes) {
    std::string b64(4 * ((bytes.size() + 2) / 3) + 1, '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()), bytes.data(), int(bytes.size()));
    b64.resize(std::size_t(n));
    for (auto& c : b64) c = c == '+' ? '-' : c == '/' ? '_' : c;
    while (!b64.empty() && b64.back() == '=') b64.pop_back();
    return b64;
}

std::optional<std::vector<unsigned char>> unbase64url(std::string_view s) {
    if (s.size() > 512) return std::nullopt;
    std::string b64(s);
    for (auto& c : b64) {
        if (c == '-') c = '+';
        else if (c == '_') c = '/';
        else if (!std::isalnum(static_cast<unsigned char>(c))) return std::nullopt;
    }
    while (b64.size() % 4) b64 += '=';
    std::vector<unsigned char> out(b64.size() / 4 * 3 + 3);
    int n = EVP_DecodeBlock(out.data(), reinterpret_cast<unsigned char const*>(b64.data()), int(b64.size()));
    if (n < 0) return std::nullopt;
    std::size_t pad = b64.size() >= 2 ? std::size_t(b64.end()[-1] == '=') + std::size_t(b64.end()[-2] == '=') : 0;
    out.resize(std::size_t(n) - pad);
    return out;
}

}  // namespace

std::string seal_url_token(std::vector<unsigned char> const& key, std::uint32_t key_version, UrlClaims const& claims) {
    if (key.size() != 32) throw std::invalid_argument("URL key must be 32 bytes");
    std::vector<unsigned char> plain(claims.facility_code.begin(), claims.facility_code.end());
    for (int i = 3; i >= 0; --i) plain.push_back(static_cast<unsigned char>(claims.generation >> (8 * i)));
    std::vector<unsigned char> out{format_byte};
    for (int i = 3; i >= 0; --i) out.push_back(static_cast<unsigned char>(key_version >> (8 * i)));
    auto sealed = aes_gcm_seal(key, out, plain);  // the header as associated data
    out.insert(out.end(), sealed.begin(), sealed.end());
    return base64url(out);
}

std::optional<std::uint32_t> url_token_key_version(std::string_view token) {
    auto bytes = unbase64url(token);
    if (!bytes || bytes->size() < header_size + nonce_size + tag_size + 5 || (*bytes)[0] != format_byte)
        return std::nullopt;
    return (std::uint32_t((*bytes)[1]) << 24) | (std::uint32_t((*bytes)[2]) << 16) | (std::uint32_t((*bytes)[3]) << 8) |
           (*bytes)[4];
}

std::optional<UrlClaims> open_url_token(std::vector<unsigned char> const& key, std::string_view token) {
    auto bytes = unbase64url(token);
    if (!bytes || key.size() != 32 || bytes->size() < header_size + nonce_size + tag_size + 5 ||
        (*bytes)[0] != format_byte)
        return std::nullopt;
    std::vector<unsigned char> const header(bytes->begin(), bytes->begin() + header_size);
    // fails on any tampering
    auto plain = aes_gcm_open(key, header, bytes->data() + header_size, bytes->size() - header_size);
    if (!plain || plain->size() < 5) return std::nullopt;
    UrlClaims claims;
    claims.facility_code.assign(plain->begin(), plain->end() - 4);
    for (std::size_t i = plain->size() - 4; i < plain->size(); ++i)
        claims.generation = (claims.generation << 8) | (*plain)[i];
    return claims;
}

namespace {
std::unique_ptr<QRcode, void (*)(QRcode*)> encode(std::string const& text) {
    QRcode* q = QRcode_encodeString8bit(text.c_str(), 0, QR_ECLEVEL_M);
    if (!q) throw std::runtime_error("QR encoding failed");
    return {q, QRcode_free};
}
}  // namespace

std::string qr_svg(std::string const& text) {
    auto q = encode(text);
    int n = q->width, margin = 4, size = n + 2 * margin;
    std::string svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 " + std::to_string(size) + " " +
                      std::to_string(size) +
                      "\" shape-rendering=\"crispEdges\"><rect width=\"100%\" height=\"100%\" fill=\"#fff\"/><path "
                      "fill=\"#000\" d=\"";
    for (int y = 0; y < n; ++y)
        for (int x = 0; x < n; ++x)
            if (q->data[y * n + x] & 1)
                svg += "M" + std::to_string(x + margin) + " " + std::to_string(y + margin) + "h1v1h-1z";
    return svg + "\"/></svg>\n";
}

std::string qr_png(std::string const& text, int scale) {
    auto q = encode(text);
    int const margin = 4, n = q->width, size = (n + 2 * margin) * scale;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
    png_infop info = png ? png_create_info_struct(png) : nullptr;
    if (!png || !info) {
        png_destroy_write_struct(&png, &info);
        throw std::runtime_error("libpng initialisation failed");
    }
    std::string out;
    // before setjmp: a libpng error must not skip its destructor
    std::vector<png_byte> row(static_cast<std::size_t>(size));
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        throw std::runtime_error("PNG encoding failed");
    }
    png_set_write_fn(png, &out, [](png_structp p, png_bytep data, png_size_t len) {
        static_cast<std::string*>(png_get_io_ptr(p))->append(reinterpret_cast<char const*>(data), len);
    }, nullptr);
    // One bit per pixel (black or white): a scale-1 code is a few hundred bytes.
    png_set_IHDR(png, info, png_uint_32(size), png_uint_32(size), 1, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_compression_level(png, 9);
    png_write_info(png, info);
    png_set_packing(png);  // rows are given a byte per pixel (0 or 1); libpng packs them into bits
    for (int y = 0; y < size; ++y) {
        int my = y / scale - margin;
        for (int x = 0; x < size; ++x) {
            int mx = x / scale - margin;
            bool dark = mx >= 0 && my >= 0 && mx < n && my < n && (q->data[my * n + mx] & 1);
            row[std::size_t(x)] = dark ? 0 : 1;
        }
        png_write_row(png, row.data());
    }
    png_write_end(png, nullptr);
    png_destroy_write_struct(&png, &info);
    return out;
}

}  // namespace kyotaku::server
