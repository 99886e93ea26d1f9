// The server's TLS context, made in one place for `kyotaku serve`, `--check-config` and SIGHUP's reload (issue 22
// items 3, 7 and 9): Mozilla's "intermediate" profile (TLS 1.2 with ECDHE and AEAD suites only, and TLS 1.3), the
// certificate chain and key of TLS_DIR/server.pem and server.key, and the client CA of TLS_DIR/ca.pem. A file that
// cannot be read, a key that does not match, an expired server certificate are refusals naming the file, never
// an exception; a context is only ever replaced by one that loaded whole.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace boost::asio::ssl {
class context;
}

namespace kyotaku::server {

// Mozilla's intermediate profile (https://wiki.mozilla.org/Security/Server_Side_TLS), TLS 1.2 part: forward secrecy
// (ECDHE) and authenticated encryption (GCM, ChaCha20-Poly1305) only. TLS 1.3's suites are OpenSSL's defaults,
// which are the profile's.
inline constexpr char const* tls12_ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-"
                                             "AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                             "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
inline constexpr char const* tls_groups = "X25519:prime256v1:secp384r1";

// One certificate the server relies on, for the expiry metric and --check-config.
struct CertificateExpiry {
    std::string file;     // server.pem, ca.pem
    std::string subject;  // its subject, one line
    double not_after = 0; // Unix time
};

struct ServerTls {
    std::shared_ptr<boost::asio::ssl::context> context;  // null when refused
    // The patients' listener's (patient_listen): the same certificate and key, and no client certificate asked for
    // (its handshake carries no CertificateRequest).
    std::shared_ptr<boost::asio::ssl::context> patient_context;
    std::string error;                                    // the refusal, naming the file
    std::vector<CertificateExpiry> certificates;          // the server's certificate, then each CA certificate
    std::vector<std::string> notes;                       // what --check-config prints (subject, expiring soon)
    bool ok() const { return context != nullptr; }
};

// Loads the TLS folder as the server serves it; expiry is decided on the machine's time.
ServerTls load_server_tls(std::string const& tls_dir);

// The TLS context new connections get (SIGHUP renews certificates without a restart): replaced whole when the
// folder loads again, kept when it does not (a bad file is refused and logged); a connection keeps the context it
// started with. Thread-safe.
class TlsInForce {
public:
    TlsInForce(std::string tls_dir, ServerTls first);
    std::shared_ptr<boost::asio::ssl::context> context() const;
    std::shared_ptr<boost::asio::ssl::context> patient_context() const;  // ServerTls::patient_context
    std::vector<CertificateExpiry> certificates() const;
    // Loads the folder again; on success the new files serve every later connection. Returns the error ("" on success).
    std::string reload();
    std::atomic<std::uint64_t> reloads_ok{0}, reloads_failed{0};

private:
    std::string dir_;
    mutable std::mutex mutex_;
    std::shared_ptr<boost::asio::ssl::context> context_, patient_context_;
    std::vector<CertificateExpiry> certificates_;
};

}  // namespace kyotaku::server
