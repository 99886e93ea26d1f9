#include "kyotaku/card/native.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <cstdio>

namespace kyotaku::card {

namespace {
template <typename T, void (*F)(T*)>
struct Free {
    void operator()(T* p) const { F(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, Free<EVP_PKEY, EVP_PKEY_free>>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, Free<EVP_PKEY_CTX, EVP_PKEY_CTX_free>>;
using X509Ptr = std::unique_ptr<X509, Free<X509, X509_free>>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, Free<EVP_MD_CTX, EVP_MD_CTX_free>>;

struct FileCloser {
    void operator()(std::FILE* f) const { std::fclose(f); }
};

std::unique_ptr<std::FILE, FileCloser> open(std::filesystem::path const& path) {
    std::unique_ptr<std::FILE, FileCloser> f(std::fopen(path.c_str(), "rb"));
    if (!f) throw CardError(ErrorKind::transport, Message{"ファイルを開けません", "cannot open " + path.string()});
    return f;
}

X509Ptr parse_der(ByteView der) {
    unsigned char const* p = der.data();
    X509Ptr cert(d2i_X509(nullptr, &p, long(der.size())));
    if (!cert || p != der.data() + der.size())
        throw CardError(ErrorKind::malformed,
                        Message{"証明書を解析できません", "the certificate is not valid DER X.509"});
    return cert;
}

class OpensslKey : public CardKey {
public:
    explicit OpensslKey(PkeyPtr key) : key_(std::move(key)) {}
    Bytes sign_pkcs1(ByteView digest_info) override {
        PkeyCtxPtr ctx(EVP_PKEY_CTX_new(key_.get(), nullptr));
        std::size_t n = 0;
        // No signature digest is set: the input (the DigestInfo) is padded (block type 1) and signed as it is,
        // which is what the card's COMPUTE DIGITAL SIGNATURE does.
        if (!ctx || EVP_PKEY_sign_init(ctx.get()) <= 0 ||
            EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) <= 0 ||
            EVP_PKEY_sign(ctx.get(), nullptr, &n, digest_info.data(), digest_info.size()) <= 0)
            throw CardError(ErrorKind::card_error, Message{"署名に失敗しました", "signing failed"});
        Bytes out(n);
        if (EVP_PKEY_sign(ctx.get(), out.data(), &n, digest_info.data(), digest_info.size()) <= 0)
            throw CardError(ErrorKind::card_error, Message{"署名に失敗しました", "signing failed"});
        out.resize(n);
        return out;
    }
    std::size_t modulus_bytes() const override { return std::size_t(EVP_PKEY_get_size(key_.get())); }

private:
    PkeyPtr key_;
};
}  // namespace

std::unique_ptr<CardKey> load_card_key(std::filesystem::path const& pem) {
    auto f = open(pem);
    PkeyPtr key(PEM_read_PrivateKey(f.get(), nullptr, nullptr, nullptr));
    if (!key || EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_RSA)
        throw CardError(ErrorKind::malformed,
                        Message{"RSA秘密鍵ではありません", "not an RSA private key: " + pem.string()});
    return std::make_unique<OpensslKey>(std::move(key));
}

Bytes load_certificate_der(std::filesystem::path const& pem) {
    auto f = open(pem);
    X509Ptr cert(PEM_read_X509(f.get(), nullptr, nullptr, nullptr));
    if (!cert)
        throw CardError(ErrorKind::malformed,
                        Message{"証明書ではありません", "not a PEM certificate: " + pem.string()});
    int const n = i2d_X509(cert.get(), nullptr);
    Bytes out(std::size_t(n > 0 ? n : 0));
    unsigned char* p = out.data();
    i2d_X509(cert.get(), &p);
    return out;
}

VirtualCardFiles VirtualCardFiles::test_card(std::filesystem::path const& dir, int n) {
    std::string const card = "card-" + std::to_string(n);
    return {dir / (card + ".pem"),      dir / (card + ".key"),      dir / "card-ca.pem",
            dir / (card + "-sign.pem"), dir / (card + "-sign.key"), dir / "card-sign-ca.pem"};
}

namespace {
// A key that does not belong to its certificate makes a card whose signatures never verify: refuse it at once.
void check_key_pair(std::filesystem::path const& certificate_pem, std::filesystem::path const& key_pem) {
    X509Ptr cert;
    {
        auto f = open(certificate_pem);
        cert.reset(PEM_read_X509(f.get(), nullptr, nullptr, nullptr));
    }
    auto f = open(key_pem);
    PkeyPtr key(PEM_read_PrivateKey(f.get(), nullptr, nullptr, nullptr));
    if (!cert || !key || X509_check_private_key(cert.get(), key.get()) != 1)
        throw CardError(ErrorKind::malformed,
                        Message{"鍵が証明書と合いません",
                                "the key " + key_pem.string() + " does not belong to " + certificate_pem.string()});
}
}  // namespace

std::unique_ptr<VirtualCard> make_virtual_card(VirtualCardFiles const& f, VirtualCardOptions options) {
    // One file after the other, so that the first missing one is the one named.
    JpkiKeySide authentication;
    authentication.certificate = load_certificate_der(f.certificate);
    authentication.key = load_card_key(f.key);
    authentication.ca_certificate = load_certificate_der(f.ca);
    check_key_pair(f.certificate, f.key);
    JpkiKeySide signature;
    signature.certificate = load_certificate_der(f.sign_certificate);
    signature.key = load_card_key(f.sign_key);
    signature.ca_certificate = load_certificate_der(f.sign_ca);
    check_key_pair(f.sign_certificate, f.sign_key);
    return std::make_unique<VirtualCard>(std::move(authentication), std::move(signature), std::move(options));
}

Bytes sha256(ByteView message) {
    Bytes out(32);
    unsigned int n = 0;
    EVP_Digest(message.data(), message.size(), out.data(), &n, EVP_sha256(), nullptr);
    return out;
}

bool verify_signature(ByteView certificate_der, ByteView message, ByteView signature) {
    X509Ptr cert = parse_der(certificate_der);
    PkeyPtr key(X509_get_pubkey(cert.get()));
    MdCtxPtr ctx(EVP_MD_CTX_new());
    if (!key || !ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key.get()) <= 0) return false;
    return EVP_DigestVerify(ctx.get(), signature.data(), signature.size(), message.data(), message.size()) == 1;
}

bool verify_chain(ByteView certificate_der, ByteView ca_der) {
    X509Ptr cert = parse_der(certificate_der), ca = parse_der(ca_der);
    std::unique_ptr<X509_STORE, Free<X509_STORE, X509_STORE_free>> store(X509_STORE_new());
    std::unique_ptr<X509_STORE_CTX, Free<X509_STORE_CTX, X509_STORE_CTX_free>> ctx(X509_STORE_CTX_new());
    if (!store || !ctx || X509_STORE_add_cert(store.get(), ca.get()) != 1) return false;
    if (X509_STORE_CTX_init(ctx.get(), store.get(), cert.get(), nullptr) != 1) return false;
    return X509_verify_cert(ctx.get()) == 1;
}

Bytes random_bytes(std::size_t n) {
    Bytes out(n);
    if (RAND_bytes(out.data(), int(n)) != 1)
        throw CardError(ErrorKind::card_error, Message{"乱数を生成できません", "RAND_bytes failed"});
    return out;
}

std::string base64(ByteView bytes) {
    std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
    int const n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), bytes.data(), int(bytes.size()));
    out.resize(std::size_t(n));
    return out;
}

Bytes base64_decode(std::string_view text) {
    auto bad = [] { return CardError(ErrorKind::malformed, Message{"Base64 ではありません", "not valid base64"}); };
    if (text.size() % 4 != 0 || text.size() > 1 << 20) throw bad();
    for (char c : text)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/' || c == '=')) throw bad();
    if (auto eq = text.find('='); eq != std::string_view::npos &&
        (eq + 2 < text.size() || text.find_first_not_of('=', eq) != std::string_view::npos))
        throw bad();
    Bytes out(text.size() / 4 * 3);
    int n = EVP_DecodeBlock(out.data(), reinterpret_cast<unsigned char const*>(text.data()), int(text.size()));
    if (n < 0) throw bad();
    std::size_t pad = 0;
    if (!text.empty() && text.back() == '=') ++pad;
    if (text.size() > 1 && text[text.size() - 2] == '=') ++pad;
    out.resize(std::size_t(n) - pad);
    return out;
}

}  // namespace kyotaku::card
