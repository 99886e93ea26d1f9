#include "core/card_signature.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <memory>

namespace kyotaku::server {

namespace {
template <typename T, void (*F)(T*)>
struct Deleter {
    void operator()(T* p) const { F(p); }
};
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using StorePtr = std::unique_ptr<X509_STORE, Deleter<X509_STORE, X509_STORE_free>>;
using StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, Deleter<X509_STORE_CTX, X509_STORE_CTX_free>>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, Deleter<EVP_MD_CTX, EVP_MD_CTX_free>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;

std::string hex(unsigned char const* data, std::size_t n) {
    static char const digits[] = "0123456789abcdef";
    std::string out;
    for (std::size_t i = 0; i < n; ++i) {
        out += digits[data[i] >> 4];
        out += digits[data[i] & 15];
    }
    return out;
}

std::string der_fingerprint(X509* cert) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    X509_digest(cert, EVP_sha256(), md, &n);
    return hex(md, n);
}
}  // namespace

std::string sha256_hex(std::string_view bytes) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(bytes.data(), bytes.size(), md, &n, EVP_sha256(), nullptr);
    return hex(md, n);
}

std::optional<std::vector<unsigned char>> base64_decode(std::string_view text) {
    std::string clean;
    for (char c : text)
        if (c != '\n' && c != '\r' && c != ' ') clean += c;
    if (clean.size() % 4 != 0 || clean.size() > 64 * 1024) return std::nullopt;
    for (char c : clean)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/' || c == '=')) return std::nullopt;
    std::vector<unsigned char> out(clean.size() / 4 * 3 + 3);
    int n = EVP_DecodeBlock(out.data(), reinterpret_cast<unsigned char const*>(clean.data()), int(clean.size()));
    if (n < 0) return std::nullopt;
    std::size_t pad = 0;
    if (!clean.empty() && clean.back() == '=') ++pad;
    if (clean.size() > 1 && clean[clean.size() - 2] == '=') ++pad;
    out.resize(std::size_t(n) - pad);
    return out;
}

std::string base64_encode(std::vector<unsigned char> const& bytes) {
    std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), bytes.data(), int(bytes.size()));
    out.resize(std::size_t(n));
    return out;
}

std::optional<std::string> certificate_fingerprint(std::string const& der_or_pem) {
    X509Ptr cert;
    if (der_or_pem.rfind("-----BEGIN", 0) == 0) {
        std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>> bio(
            BIO_new_mem_buf(der_or_pem.data(), int(der_or_pem.size())));
        cert.reset(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    } else {
        auto der = base64_decode(der_or_pem);
        if (!der) return std::nullopt;
        unsigned char const* p = der->data();
        cert.reset(d2i_X509(nullptr, &p, long(der->size())));
    }
    if (!cert) return std::nullopt;
    return der_fingerprint(cert.get());
}

bool loads_as_ca_file(std::string const& pem_file) {
    StorePtr store(X509_STORE_new());
    return store && X509_STORE_load_file(store.get(), pem_file.c_str()) == 1;
}

CardCheck verify_card_signature(std::string const& card_ca_pem_file, std::vector<unsigned char> const& certificate_der,
                                std::vector<unsigned char> const& challenge,
                                std::vector<unsigned char> const* signature) {
    CardCheck r;
    unsigned char const* p = certificate_der.data();
    X509Ptr cert(d2i_X509(nullptr, &p, long(certificate_der.size())));
    if (!cert || p != certificate_der.data() + certificate_der.size()) {
        r.field = "certificate";
        r.error_ja = "カードの証明書を読めません";
        r.error_en = "the card certificate does not parse";
        return r;
    }
    r.fingerprint = der_fingerprint(cert.get());
    StorePtr store(X509_STORE_new());
    if (!store || X509_STORE_load_file(store.get(), card_ca_pem_file.c_str()) != 1) {
        r.field = "";
        r.error_ja = "カードの認証局が設定されていません";
        r.error_en = "the card CA is not configured";
        return r;
    }
    StoreCtxPtr ctx(X509_STORE_CTX_new());
    if (!ctx || X509_STORE_CTX_init(ctx.get(), store.get(), cert.get(), nullptr) != 1 ||
        X509_verify_cert(ctx.get()) != 1) {
        r.field = "certificate";
        r.error_ja = "カードの証明書を検証できません";
        r.error_en = std::string("the card certificate does not verify: ") +
                     X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()));
        return r;
    }
    if (!signature) {
        r.ok = true;
        return r;
    }
    PkeyPtr key(X509_get_pubkey(cert.get()));
    MdCtxPtr md(EVP_MD_CTX_new());
    if (!key || !md || EVP_DigestVerifyInit(md.get(), nullptr, EVP_sha256(), nullptr, key.get()) != 1 ||
        EVP_DigestVerify(md.get(), signature->data(), signature->size(), challenge.data(), challenge.size()) != 1) {
        r.field = "signature";
        r.error_ja = "カードの署名を検証できません";
        r.error_en = "the card's signature over the challenge does not verify";
        return r;
    }
    r.ok = true;
    return r;
}

}  // namespace kyotaku::server
