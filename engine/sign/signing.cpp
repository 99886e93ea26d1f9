// Ed25519 signatures over rule bundles with OpenSSL 3's EVP interface (no hand-rolled cryptography).
#include "kyotaku/signing.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

namespace kyotaku {

namespace {
struct PkeyFree {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct MdFree {
    void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
struct BioFree {
    void operator()(BIO* b) const { BIO_free(b); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

std::optional<std::string> read_text(std::string const& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return std::nullopt;
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

Pkey read_pem(std::string const& text, bool private_key) {
    std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(text.data(), int(text.size())));
    if (!bio) return nullptr;
    EVP_PKEY* k = private_key ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr)
                              : PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr);
    return Pkey(k);
}

bool is_ed25519(EVP_PKEY* k) { return k && EVP_PKEY_get_id(k) == EVP_PKEY_ED25519; }

std::string raw_public(EVP_PKEY* k) {
    std::size_t n = 32;
    std::string raw(32, '\0');
    if (EVP_PKEY_get_raw_public_key(k, reinterpret_cast<unsigned char*>(raw.data()), &n) != 1 || n != 32) return {};
    return raw;
}

bool verify(std::string_view raw_key, std::string_view message, std::string_view signature) {
    Pkey key(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr,
                                         reinterpret_cast<unsigned char const*>(raw_key.data()), raw_key.size()));
    std::unique_ptr<EVP_MD_CTX, MdFree> ctx(EVP_MD_CTX_new());
    if (!key || !ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) != 1) return false;
    return EVP_DigestVerify(ctx.get(), reinterpret_cast<unsigned char const*>(signature.data()), signature.size(),
                            reinterpret_cast<unsigned char const*>(message.data()), message.size()) == 1;
}

std::string pem_of(EVP_PKEY* k, bool private_key) {
    std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
    if (!bio) return {};
    int ok = private_key ? PEM_write_bio_PrivateKey(bio.get(), k, nullptr, nullptr, 0, nullptr, nullptr)
                         : PEM_write_bio_PUBKEY(bio.get(), k);
    if (ok != 1) return {};
    char* data = nullptr;
    long n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, std::size_t(n));
}
}  // namespace

std::string key_fingerprint(std::string_view raw) {
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<unsigned char const*>(raw.data()), raw.size(), digest);
    std::string hex;
    char buf[3];
    for (int i = 0; i < 8; ++i) {
        std::snprintf(buf, sizeof buf, "%02x", digest[i]);
        hex += buf;
    }
    return hex;
}

std::string sha256_hex(std::string_view bytes) {
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<unsigned char const*>(bytes.data()), bytes.size(), digest);
    std::string hex;
    char buf[3];
    for (unsigned char c : digest) {
        std::snprintf(buf, sizeof buf, "%02x", c);
        hex += buf;
    }
    return hex;
}

PublicKey read_public_key(std::string const& path) {
    PublicKey r;
    auto text = read_text(path);
    if (!text) {
        r.error = Message{"公開鍵のファイルを読めません: " + path, "cannot read the public key file " + path};
        return r;
    }
    Pkey key = read_pem(*text, false);
    if (!is_ed25519(key.get())) {
        r.error = Message{"Ed25519 の公開鍵 (PEM の PUBLIC KEY) ではありません: " + path,
                          "not an Ed25519 public key (PEM \"PUBLIC KEY\"): " + path};
        return r;
    }
    r.raw = raw_public(key.get());
    if (r.raw.empty()) r.error = Message{"公開鍵を取り出せません: " + path, "cannot extract the public key: " + path};
    return r;
}

PublicKey public_key_of_private(std::string const& path) {
    PublicKey r;
    auto text = read_text(path);
    Pkey key = text ? read_pem(*text, true) : nullptr;
    if (!is_ed25519(key.get())) {
        r.error = Message{"Ed25519 の秘密鍵 (PEM の PRIVATE KEY) を読めません: " + path,
                          "cannot read an Ed25519 private key (PEM \"PRIVATE KEY\"): " + path};
        return r;
    }
    r.raw = raw_public(key.get());
    if (r.raw.empty()) r.error = Message{"公開鍵を取り出せません: " + path, "cannot extract the public key: " + path};
    return r;
}

KeyPair generate_key_pair() {
    KeyPair r;
    Pkey key(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
    if (!key) {
        r.error = Message{"鍵を作れません (OpenSSL)", "cannot generate a key (OpenSSL)"};
        return r;
    }
    r.private_pem = pem_of(key.get(), true);
    r.public_pem = pem_of(key.get(), false);
    if (r.private_pem.empty() || r.public_pem.empty())
        r.error = Message{"鍵を書き出せません (OpenSSL)", "cannot write the key (OpenSSL)"};
    return r;
}

SignResult sign_bundle(std::string_view bundle, std::string const& private_key_path) {
    SignResult r;
    // signing again replaces the signature
    if (split_bundle(bundle).is_signed()) bundle = split_bundle(bundle).signed_bytes;
    auto text = read_text(private_key_path);
    if (!text) {
        r.error = Message{"秘密鍵のファイルを読めません: " + private_key_path,
                          "cannot read the private key file " + private_key_path};
        return r;
    }
    Pkey key = read_pem(*text, true);
    if (!is_ed25519(key.get())) {
        r.error = Message{"Ed25519 の秘密鍵 (PEM の PRIVATE KEY) ではありません: " + private_key_path,
                          "not an Ed25519 private key (PEM \"PRIVATE KEY\"): " + private_key_path};
        return r;
    }
    // The key's id goes into the header, inside what is signed: the bundle says which key signed it.
    std::string const public_raw = raw_public(key.get());
    auto stamped = stamp_bundle_key_id(bundle, key_fingerprint(public_raw));
    if (!stamped) {
        r.error =
            Message{"バンドルではないか、壊れています (署名しません)", "not a bundle, or a damaged one (not signed)"};
        return r;
    }
    bundle = *stamped;
    std::unique_ptr<EVP_MD_CTX, MdFree> ctx(EVP_MD_CTX_new());
    std::string signature(64, '\0');
    std::size_t n = signature.size();
    if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) != 1 ||
        EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &n,
                       reinterpret_cast<unsigned char const*>(bundle.data()), bundle.size()) != 1 ||
        n != 64) {
        r.error = Message{"署名できません (OpenSSL)", "cannot sign (OpenSSL)"};
        return r;
    }
    r.bundle.reserve(bundle.size() + bundle_trailer_size);
    r.bundle.append(bundle);
    r.bundle.append("KYTKSIG1", 8);
    r.bundle.append(public_raw);
    r.bundle.append(signature);
    return r;
}

Message check_bundle_signature(std::string_view bytes, std::vector<std::string> const& trusted) {
    BundleParts const parts = split_bundle(bytes);
    if (!parts.is_signed())
        return Message{
            "バンドルに署名がありません。信頼する鍵 (--trust) が設定されているので、署名のないバンドルは使えません "
            "(kyotaku compile --sign で署名してください)",
            "the bundle is not signed; with trusted keys (--trust) only signed bundles are accepted (sign it with "
            "kyotaku compile --sign)"};
    bool const known = std::find(trusted.begin(), trusted.end(), std::string(parts.public_key)) != trusted.end();
    if (!known)
        return Message{"バンドルは信頼していない鍵 (指紋 " + key_fingerprint(parts.public_key) + ") で署名されています",
                       "the bundle is signed by a key that is not trusted (fingerprint " +
                           key_fingerprint(parts.public_key) + ")"};
    if (!verify(parts.public_key, parts.signed_bytes, parts.signature))
        return Message{"バンドルの署名が合いません。署名の後で書き換えられたか、壊れています",
                       "the bundle's signature does not verify: it was altered after signing, or damaged"};
    // The header names the key that signed it (inside the signed part); a bundle that names another key, or none
    // (signed by hand over an unstamped header), is not one kyotaku signed.
    Message header_error;
    auto const header = read_bundle_header(parts.signed_bytes, &header_error);
    if (!header) return header_error;
    std::string const fingerprint = key_fingerprint(parts.public_key);
    if (header->release.key_id != fingerprint)
        return Message{"バンドルに書かれた署名の鍵 (" +
                           (header->release.key_id.empty() ? std::string("なし") : header->release.key_id) +
                           ") と署名した鍵 (" + fingerprint + ") が違います",
                       "the bundle names signing key " +
                           (header->release.key_id.empty() ? std::string("(none)") : header->release.key_id) +
                           " but key " + fingerprint + " signed it"};
    return {};
}

LoadResult load_trusted_rules(std::string const& path, std::vector<std::string> const& trusted,
                              std::vector<Diagnostic>* diagnostics) {
    if (trusted.empty()) return load_rules(path, diagnostics);
    LoadResult r;
    auto fail = [&](Message m) {
        r.message = std::move(m);
        return r;
    };
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec))
        return fail(Message{"信頼する鍵 (--trust) が設定されているので、ルールのソース (ディレクトリ) "
                            "は読み込めません。kyotaku compile --sign で署名したバンドルを指定してください",
                            "with trusted keys (--trust) rule sources (a directory) are not accepted; give a bundle "
                            "signed with kyotaku compile --sign"});
    auto bytes = read_text(path);
    if (!bytes) return fail(Message{"読み込めません: " + path, "cannot read " + path});
    if (bytes->rfind("KYTKBNDL", 0) != 0)
        return fail(Message{"信頼する鍵 (--trust) が設定されているので、署名したバンドルしか読み込めません "
                            "(これはバンドルではありません)",
                            "with trusted keys (--trust) only a signed bundle is accepted, and this is not a bundle"});
    if (Message m = check_bundle_signature(*bytes, trusted); !m.empty()) return fail(std::move(m));
    return load_bundle(*bytes);
}

}  // namespace kyotaku
