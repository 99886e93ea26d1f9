#include "core/secrets.hpp"

#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace kyotaku::server {

namespace {
constexpr std::size_t nonce_size = 12, tag_size = 16;

struct CipherCtx {
    EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
    ~CipherCtx() { EVP_CIPHER_CTX_free(ctx); }
};

std::string to_hex(unsigned char const* bytes, std::size_t n) {
    std::string out(2 * n + 1, '\0');
    std::size_t written = 0;
    if (n == 0 || OPENSSL_buf2hexstr_ex(out.data(), out.size(), &written, bytes, n, '\0') != 1) return {};
    out.resize(written - 1);
    return out;
}

std::optional<std::vector<unsigned char>> from_hex_strict(std::string const& hex) {
    std::vector<unsigned char> out(hex.size() / 2 + 1);
    std::size_t n = 0;
    if (hex.empty() || OPENSSL_hexstr2buf_ex(out.data(), out.size(), &n, hex.c_str(), '\0') != 1) return std::nullopt;
    out.resize(n);
    return out;
}

std::vector<unsigned char> hkdf(std::array<unsigned char, 32> const& master, char const* label) {
    std::vector<unsigned char> out(32);
    EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
    EVP_KDF_CTX* ctx = kdf ? EVP_KDF_CTX_new(kdf) : nullptr;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, const_cast<char*>("SHA256"), 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<unsigned char*>(master.data()), master.size()),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<char*>(label), std::strlen(label)),
        OSSL_PARAM_construct_end()};
    bool ok = ctx && EVP_KDF_derive(ctx, out.data(), out.size(), params) == 1;
    EVP_KDF_CTX_free(ctx);
    EVP_KDF_free(kdf);
    if (!ok) throw std::runtime_error("HKDF failed");
    return out;
}

std::vector<unsigned char> url_key_aad(std::uint32_t version) {
    std::string aad = "kyotaku url_keys v" + std::to_string(version);
    return {aad.begin(), aad.end()};
}
}  // namespace

std::vector<unsigned char> aes_gcm_seal(std::vector<unsigned char> const& key, std::vector<unsigned char> const& aad,
                                        std::vector<unsigned char> const& plain) {
    if (key.size() != 32) throw std::invalid_argument("AES-256-GCM key must be 32 bytes");
    std::vector<unsigned char> out(nonce_size + plain.size() + tag_size);
    if (RAND_bytes(out.data(), int(nonce_size)) != 1) throw std::runtime_error("RAND_bytes failed");
    CipherCtx c;
    int len = 0;
    unsigned char* cipher = out.data() + nonce_size;
    bool ok = EVP_EncryptInit_ex(c.ctx, EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
              EVP_CIPHER_CTX_ctrl(c.ctx, EVP_CTRL_GCM_SET_IVLEN, int(nonce_size), nullptr) == 1 &&
              EVP_EncryptInit_ex(c.ctx, nullptr, nullptr, key.data(), out.data()) == 1 &&
              (aad.empty() || EVP_EncryptUpdate(c.ctx, nullptr, &len, aad.data(), int(aad.size())) == 1) &&
              EVP_EncryptUpdate(c.ctx, cipher, &len, plain.data(), int(plain.size())) == 1 &&
              EVP_EncryptFinal_ex(c.ctx, cipher + len, &len) == 1 &&
              EVP_CIPHER_CTX_ctrl(c.ctx, EVP_CTRL_GCM_GET_TAG, int(tag_size), cipher + plain.size()) == 1;
    if (!ok) throw std::runtime_error("AES-GCM sealing failed");
    return out;
}

std::optional<std::vector<unsigned char>> aes_gcm_open(std::vector<unsigned char> const& key,
                                                       std::vector<unsigned char> const& aad,
                                                       unsigned char const* sealed, std::size_t size) {
    if (key.size() != 32 || size < nonce_size + tag_size) return std::nullopt;
    std::size_t const cipher_len = size - nonce_size - tag_size;
    unsigned char const* cipher = sealed + nonce_size;
    std::vector<unsigned char> plain(cipher_len), tag(cipher + cipher_len, cipher + cipher_len + tag_size);
    CipherCtx c;
    int len = 0;
    bool ok = EVP_DecryptInit_ex(c.ctx, EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
              EVP_CIPHER_CTX_ctrl(c.ctx, EVP_CTRL_GCM_SET_IVLEN, int(nonce_size), nullptr) == 1 &&
              EVP_DecryptInit_ex(c.ctx, nullptr, nullptr, key.data(), sealed) == 1 &&
              (aad.empty() || EVP_DecryptUpdate(c.ctx, nullptr, &len, aad.data(), int(aad.size())) == 1) &&
              EVP_DecryptUpdate(c.ctx, plain.data(), &len, cipher, int(cipher_len)) == 1 &&
              EVP_CIPHER_CTX_ctrl(c.ctx, EVP_CTRL_GCM_SET_TAG, int(tag_size), tag.data()) == 1 &&
              EVP_DecryptFinal_ex(c.ctx, plain.data() + len, &len) == 1;  // fails on any tampering
    if (!ok) return std::nullopt;
    return plain;
}

Secrets::Secrets(std::array<unsigned char, 32> const& master)
    : url_key_wrap_(hkdf(master, "kyotaku url-key sealing v1")),
      passcode_key_(hkdf(master, "kyotaku passcode hmac v1")),
      fingerprint_(to_hex(hkdf(master, "kyotaku key fingerprint v1").data(), 8)) {}

std::shared_ptr<Secrets const> Secrets::ephemeral() {
    std::array<unsigned char, 32> master{};
    if (RAND_bytes(master.data(), int(master.size())) != 1) throw std::runtime_error("RAND_bytes failed");
    return std::shared_ptr<Secrets const>(new Secrets(master));
}

std::shared_ptr<Secrets const> Secrets::from_key_file(std::string const& path, bool& created) {
    return load_key_file(path, created, false);
}

std::shared_ptr<Secrets const> Secrets::from_key_file_for_check(std::string const& path) {
    bool created = false;
    return load_key_file(path, created, true);
}

std::shared_ptr<Secrets const> Secrets::load_key_file(std::string const& path, bool& created, bool for_check) {
    auto fail = [&](std::string const& ja, std::string const& en) {
        return std::runtime_error("--key-file " + path + ": " + ja + " / " + en);
    };
    created = false;
    std::array<unsigned char, 32> master{};
    int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && !for_check) {
        // A new key: 0600 from the start (O_EXCL: never through a file someone else put there).
        if (RAND_bytes(master.data(), int(master.size())) != 1) throw std::runtime_error("RAND_bytes failed");
        std::string text = to_hex(master.data(), master.size()) + "\n";
        int out = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (out < 0) throw fail("作れません", std::string("cannot create it: ") + std::strerror(errno));
        bool ok = ::write(out, text.data(), text.size()) == ssize_t(text.size()) && ::fsync(out) == 0;
        ::close(out);
        if (!ok) throw fail("書けません", "cannot write it");
        created = true;
        return std::shared_ptr<Secrets const>(new Secrets(master));
    }
    if (fd < 0)
        throw fail("開けません (シンボリックリンクは使えません)",
                   std::string("cannot open it (a symlink is refused): ") + std::strerror(errno));
    struct stat st {};
    std::string text(200, '\0');
    ssize_t n = ::fstat(fd, &st) == 0 ? ::read(fd, text.data(), text.size()) : -1;
    ::close(fd);
    if (!S_ISREG(st.st_mode)) throw fail("通常のファイルではありません", "not a regular file");
    if (st.st_uid != ::geteuid() && !for_check) throw fail("別のユーザのファイルです", "owned by another user");
    if (st.st_mode & 077)
        throw fail("他のユーザが読み書きできます (chmod 600 にしてください)",
                   "readable or writable by others (chmod 600)");
    if (n < 0) throw fail("読めません", "cannot read it");
    text.resize(std::size_t(n));
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
    auto bytes = text.size() == 64 ? from_hex_strict(text) : std::nullopt;
    if (!bytes || bytes->size() != master.size())
        throw fail("鍵 (16進64文字) ではありません", "not a key (64 hex digits)");
    std::copy(bytes->begin(), bytes->end(), master.begin());
    OPENSSL_cleanse(bytes->data(), bytes->size());
    return std::shared_ptr<Secrets const>(new Secrets(master));
}

std::string Secrets::seal_url_key(std::uint32_t version, std::vector<unsigned char> const& key) const {
    auto sealed = aes_gcm_seal(url_key_wrap_, url_key_aad(version), key);
    return "v1:" + to_hex(sealed.data(), sealed.size());
}

std::optional<std::vector<unsigned char>> Secrets::open_url_key(std::uint32_t version,
                                                                std::string const& sealed) const {
    if (sealed.rfind("v1:", 0) != 0) return std::nullopt;
    auto bytes = from_hex_strict(sealed.substr(3));
    if (!bytes) return std::nullopt;
    return aes_gcm_open(url_key_wrap_, url_key_aad(version), bytes->data(), bytes->size());
}

std::string Secrets::passcode_hash(std::string const& facility_code, std::string const& passcode) const {
    std::string const message = facility_code + ":" + passcode;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!HMAC(EVP_sha256(), passcode_key_.data(), int(passcode_key_.size()),
              reinterpret_cast<unsigned char const*>(message.data()), message.size(), md, &n))
        throw std::runtime_error("HMAC failed");
    return to_hex(md, n);
}

std::optional<std::string> Secrets::seal_plain_url_key(std::uint32_t version, std::string const& key_hex) const {
    auto plain = from_hex_strict(key_hex);
    if (!plain || plain->size() != 32) return std::nullopt;
    std::string sealed = seal_url_key(version, *plain);
    OPENSSL_cleanse(plain->data(), plain->size());
    return sealed;
}

}  // namespace kyotaku::server
