#include "ops/tls.hpp"

#include <boost/asio/ssl.hpp>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <ctime>
#include <filesystem>

namespace kyotaku::server {

namespace fs = std::filesystem;
namespace ssl = boost::asio::ssl;

namespace {

// OpenSSL's reason for the last failure (its queue emptied), for a message that says more than "cannot load".
std::string openssl_reason() {
    unsigned long code = 0, last = 0;
    while ((code = ERR_get_error()) != 0) last = code;
    if (last == 0) return {};
    char text[256];
    ERR_error_string_n(last, text, sizeof text);
    return std::string(" (") + text + ")";
}

double unix_time(ASN1_TIME const* t) {
    std::tm tm{};
    if (ASN1_TIME_to_tm(t, &tm) != 1) return 0;
    return double(timegm(&tm));
}

std::string subject_of(X509 const* cert) {
    char name[512] = {};
    X509_NAME_oneline(X509_get_subject_name(cert), name, sizeof name);
    return name;
}

}  // namespace

ServerTls load_server_tls(std::string const& dir) {
    ServerTls out;
    std::string const ca = (fs::path(dir) / "ca.pem").string(), cert = (fs::path(dir) / "server.pem").string(),
                      key = (fs::path(dir) / "server.key").string();
    for (auto const& f : {ca, cert, key}) {
        std::error_code ec;
        bool const exists = fs::exists(f, ec);
        if (ec) return out.error = f + ": 読めません / cannot be read: " + ec.message(), out;
        if (!exists)
            return out.error = f + " がありません (scripts/make-test-pki で作れます) / missing TLS file (create it "
                                   "with scripts/make-test-pki)",
                   out;
    }
    auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
    SSL_CTX* ctx = context->native_handle();
    ERR_clear_error();
    // TLS 1.2 and 1.3 only, the profile's suites and groups; the client picks among them (the profile's choice:
    // every suite left is strong, and clients know best what their hardware does fast).
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    if (SSL_CTX_set_cipher_list(ctx, tls12_ciphers) != 1 || SSL_CTX_set1_groups_list(ctx, tls_groups) != 1)
        return out.error = "TLS: the cipher profile was refused by OpenSSL" + openssl_reason(), out;
    if (SSL_CTX_use_certificate_chain_file(ctx, cert.c_str()) != 1)
        return out.error = cert + ": 証明書を読めません / cannot load the certificate chain" + openssl_reason(), out;
    if (SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1)
        return out.error = key +
                           ": 秘密鍵を読めないか、証明書と対応していません / cannot load the private key, or it does "
                           "not match server.pem" +
                           openssl_reason(),
               out;
    if (SSL_CTX_check_private_key(ctx) != 1)
        return out.error = key + ": 証明書と鍵が対応していません / the key does not match server.pem", out;
    if (SSL_CTX_load_verify_locations(ctx, ca.c_str(), nullptr) != 1)
        return out.error = ca + ": CA 証明書を読めません / cannot load the client CA" + openssl_reason(), out;
    X509 const* leaf = SSL_CTX_get0_certificate(ctx);
    if (X509_cmp_current_time(X509_get0_notAfter(leaf)) <= 0)
        return out.error = cert + ": 証明書の期限が切れています / the server certificate has expired", out;
    std::time_t soon = std::time(nullptr) + 30 * 24 * 3600;
    if (X509_cmp_time(X509_get0_notAfter(leaf), &soon) <= 0)
        out.notes.push_back("warning: " + cert +
                            ": 30日以内に期限が切れます / the server certificate expires within 30 days");
    out.notes.push_back("tls: server certificate " + subject_of(leaf));
    out.certificates.push_back({"server.pem", subject_of(leaf), unix_time(X509_get0_notAfter(leaf))});
    if (X509_STORE* store = SSL_CTX_get_cert_store(ctx)) {
        STACK_OF(X509_OBJECT)* objects = X509_STORE_get0_objects(store);
        for (int i = 0; i < sk_X509_OBJECT_num(objects); ++i)
            if (X509* c = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objects, i)))
                out.certificates.push_back({"ca.pem", subject_of(c), unix_time(X509_get0_notAfter(c))});
    }
    // Client certificates are requested and verified when presented; routes decide whether one is required.
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    // With peer verification on, OpenSSL refuses to resume a TLS session unless the sessions have a context:
    // browsers resume on their parallel connections, and without this half of them failed the handshake.
    static unsigned char const session_context[] = "kyotaku serve";
    SSL_CTX_set_session_id_context(ctx, session_context, sizeof session_context - 1);
    // The patients' listener (patient_listen): the same certificate, key and profile, and no CertificateRequest at
    // all (SSL_VERIFY_NONE: no client certificate is asked for, so Android never shows its certificate prompt). Its
    // sessions and tickets are its own context's (other ticket keys, another session context): none resumes on the
    // other listener.
    auto patients = std::make_shared<ssl::context>(ssl::context::tls_server);
    SSL_CTX* pctx = patients->native_handle();
    SSL_CTX_set_min_proto_version(pctx, TLS1_2_VERSION);
    SSL_CTX_set_options(pctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    if (SSL_CTX_set_cipher_list(pctx, tls12_ciphers) != 1 || SSL_CTX_set1_groups_list(pctx, tls_groups) != 1 ||
        SSL_CTX_use_certificate_chain_file(pctx, cert.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(pctx, key.c_str(), SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(pctx) != 1)
        return out.error = cert + ": 患者用の TLS を作れません / cannot make the patients' TLS context" +
                           openssl_reason(),
               out;
    SSL_CTX_set_verify(pctx, SSL_VERIFY_NONE, nullptr);
    static unsigned char const patient_session_context[] = "kyotaku serve patients";
    SSL_CTX_set_session_id_context(pctx, patient_session_context, sizeof patient_session_context - 1);
    out.context = std::move(context);
    out.patient_context = std::move(patients);
    return out;
}

TlsInForce::TlsInForce(std::string tls_dir, ServerTls first)
    : dir_(std::move(tls_dir)), context_(std::move(first.context)),
      patient_context_(std::move(first.patient_context)), certificates_(std::move(first.certificates)) {}

std::shared_ptr<ssl::context> TlsInForce::context() const {
    std::lock_guard lock(mutex_);
    return context_;
}

std::shared_ptr<ssl::context> TlsInForce::patient_context() const {
    std::lock_guard lock(mutex_);
    return patient_context_;
}

std::vector<CertificateExpiry> TlsInForce::certificates() const {
    std::lock_guard lock(mutex_);
    return certificates_;
}

std::string TlsInForce::reload() {
    ServerTls fresh = load_server_tls(dir_);
    if (!fresh.ok()) {
        ++reloads_failed;
        return fresh.error;
    }
    std::lock_guard lock(mutex_);
    context_ = std::move(fresh.context);
    patient_context_ = std::move(fresh.patient_context);
    certificates_ = std::move(fresh.certificates);
    ++reloads_ok;
    return {};
}

}  // namespace kyotaku::server
