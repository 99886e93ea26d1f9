// The virtual card answers a JPKI client no one here wrote (issue 14): Debian's OpenSC (opensc-tool, pkcs15-tool,
// pkcs15-crypt, pkcs11-tool with opensc-pkcs11.so) binds it with its JPKI driver, lists and reads its certificates
// and signs with it, through the real pcscd + vpcd that this process starts (pcscd_environment.hpp). OpenSC gets a
// configuration and a home of its own in the scratch directory (OPENSC_CONF, HOME); nothing of the user's is read.
// kyotaku-bridge's command line runs against the same card to show that both count the same tries and read the
// same bytes. Label `bridge`, RESOURCE_LOCK pcscd.
#include "kyotaku/card/jpki.hpp"
#include "kyotaku/card/native.hpp"
#include "pcscd_environment.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <poll.h>

#include <fstream>
#include <regex>
#include <sstream>

using namespace kyotaku;
using card::Bytes;
using kyotaku::test::PcscEnvironment;
using kyotaku::test::pki;
using kyotaku::test::reader0;
namespace fs = std::filesystem;

namespace {
[[maybe_unused]] auto* const environment = ::testing::AddGlobalTestEnvironment(new PcscEnvironment);

std::string const bridge_bin = KYOTAKU_BRIDGE_BIN;

struct Output {
    int status = -1;  ///< exit status (124 when `timeout` stopped the program)
    std::string out, err;
    std::string all() const { return "exit " + std::to_string(status) + "\n--- stdout\n" + out + "--- stderr\n" + err; }
};

std::string slurp(fs::path const& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

// Runs a program (bounded by coreutils' timeout, 120 s) with OpenSC's scratch configuration, `input` on its stdin.
Output run(std::vector<std::string> const& argv, std::string const& input = "",
           std::vector<std::pair<char const*, char const*>> const& env = {}) {
    fs::path const scratch = PcscEnvironment::dir();
    fs::path const err_file = scratch / "stderr.txt";
    int in_pipe[2], out_pipe[2];
    if (::pipe2(in_pipe, O_CLOEXEC) != 0 || ::pipe2(out_pipe, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    pid_t const pid = ::fork();
    if (pid == 0) {
        ::dup2(in_pipe[0], 0);
        ::dup2(out_pipe[1], 1);
        int const err = ::open(err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        ::dup2(err, 2);
        ::setenv("OPENSC_CONF", (scratch / "opensc.conf").c_str(), 1);
        ::setenv("HOME", (scratch / "home").c_str(), 1);
        for (auto const& [name, value] : env) ::setenv(name, value, 1);
        std::vector<char*> args{const_cast<char*>("timeout"), const_cast<char*>("120")};
        for (auto const& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        ::execvp("timeout", args.data());
        std::_Exit(127);
    }
    ::close(in_pipe[0]);
    ::close(out_pipe[1]);
    if (!input.empty() && ::write(in_pipe[1], input.data(), input.size()) != ssize_t(input.size()))
        throw std::runtime_error("could not write the program's input");
    ::close(in_pipe[1]);
    Output o;
    char buf[4096];
    for (ssize_t n; (n = ::read(out_pipe[0], buf, sizeof buf)) > 0;) o.out.append(buf, std::size_t(n));
    ::close(out_pipe[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    o.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    o.err = slurp(err_file);
    return o;
}

Bytes pem_to_der(std::string const& pem) {
    fs::path const f = PcscEnvironment::dir() / "cert.pem";
    std::ofstream(f) << pem;
    return card::load_certificate_der(f);
}

// "Tries left" of the PIN object with this label, from `pkcs15-tool --list-pins`.
int tries_left(std::string const& list_pins, std::string const& label) {
    auto const at = list_pins.find("PIN [" + label + "]");
    if (at == std::string::npos) return -100;
    std::smatch m;
    std::string const rest = list_pins.substr(at);
    if (!std::regex_search(rest, m, std::regex(R"(Tries left\s*:\s*(-?\d+))"))) return -101;
    return std::stoi(m[1]);
}

bool touched_any_signature_file(card::VirtualCard const& c) {
    for (std::uint16_t fid : {card::jpki::ef_sign_certificate, card::jpki::ef_sign_ca, card::jpki::ef_sign_key,
                              card::jpki::ef_sign_password})
        if (c.files_selected().count(fid)) return true;
    return false;
}

class OpenSc : public ::testing::Test {
protected:
    void SetUp() override {
        PcscEnvironment::reset_card();
        fs::path const d = PcscEnvironment::dir();
        fs::create_directories(d / "home");
        // Debian's defaults, said out loud: no file cache (it would outlive the card), PC/SC readers.
        std::ofstream(d / "opensc.conf")
            << "app default {\n  reader_driver pcsc { }\n  framework pkcs15 {\n    use_file_caching = no;\n  }\n}\n";
    }
    card::VirtualCard& virtual_card() { return *PcscEnvironment::card; }
    int card_pin_tries() {
        std::lock_guard lock(PcscEnvironment::vpcd->card_mutex());
        return virtual_card().pin_tries_left();
    }
    int card_password_tries() {
        std::lock_guard lock(PcscEnvironment::vpcd->card_mutex());
        return virtual_card().sign_password_tries_left();
    }
    bool card_touched_signature_files() {
        std::lock_guard lock(PcscEnvironment::vpcd->card_mutex());
        return touched_any_signature_file(virtual_card());
    }
    fs::path file(std::string const& name) { return PcscEnvironment::dir() / name; }
    // kyotaku-bridge's own PC/SC flow: `read-certificate` (base64 DER) and `sign` (PIN on stdin; JSON).
    Output bridge(std::vector<std::string> args, std::string const& input = "") {
        args.insert(args.begin(), bridge_bin);
        args.insert(args.end(), {"--reader", reader0, "--wait-ms", "5000"});
        return run(args, input);
    }
};
}  // namespace

TEST_F(OpenSc, RecognisesTheCardAsJpki) {
    Output o = run({"opensc-tool", "--reader", "0", "--name"});
    EXPECT_EQ(o.status, 0) << o.all();
    EXPECT_EQ(o.out, "jpki\n") << o.all();
}

TEST_F(OpenSc, ListsBothCertificatesAndTheirCas) {
    Output o = run({"pkcs15-tool", "--reader", "0", "--list-certificates"});
    ASSERT_EQ(o.status, 0) << o.all();
    for (std::string label : {"User Authentication Certificate", "Digital Signature Certificate",
                              "User Authentication Certificate CA", "Digital Signature Certificate CA"})
        EXPECT_NE(o.out.find("X.509 Certificate [" + label + "]"), std::string::npos) << label << "\n" << o.all();
    for (std::string path : {"000a", "0001", "000b", "0002"})
        EXPECT_NE(o.out.find("Path           : " + path), std::string::npos) << path << "\n" << o.all();
    // OpenSC read the public ones (it prints their serials); the 署名用電子証明書 needs the password first.
    std::size_t const sign = o.out.find("[Digital Signature Certificate]"),
                      next = o.out.find("X.509 Certificate", sign + 1);
    EXPECT_EQ(o.out.substr(sign, next - sign).find("Encoded serial"), std::string::npos) << o.all();
    std::size_t const auth = o.out.find("[User Authentication Certificate]"),
                      after = o.out.find("X.509 Certificate", auth + 1);
    EXPECT_NE(o.out.substr(auth, after - auth).find("Encoded serial"), std::string::npos) << o.all();
    // The PINs: 4 digits with 3 tries, 6 to 16 characters with 5 tries.
    Output pins = run({"pkcs15-tool", "--reader", "0", "--list-pins"});
    ASSERT_EQ(pins.status, 0) << pins.all();
    EXPECT_EQ(tries_left(pins.out, "User Authentication PIN"), 3) << pins.all();
    EXPECT_EQ(tries_left(pins.out, "Digital Signature PIN"), 5) << pins.all();
    EXPECT_TRUE(card_touched_signature_files()) << "OpenSC's binding selects the 署名用 files (the instrument works)";
}

TEST_F(OpenSc, ReadsTheCertificatesAsMakeTestPkiIssuedThem) {
    Output o = run({"pkcs15-tool", "--reader", "0", "--read-certificate", "01"});
    ASSERT_EQ(o.status, 0) << o.all();
    EXPECT_EQ(pem_to_der(o.out), card::load_certificate_der(pki / "card-1.pem"));
    o = run({"pkcs15-tool", "--reader", "0", "--read-certificate", "03"});
    ASSERT_EQ(o.status, 0) << o.all();
    EXPECT_EQ(pem_to_der(o.out), card::load_certificate_der(pki / "card-ca.pem"));
    o = run({"pkcs15-tool", "--reader", "0", "--read-certificate", "04"});
    ASSERT_EQ(o.status, 0) << o.all();
    EXPECT_EQ(pem_to_der(o.out), card::load_certificate_der(pki / "card-sign-ca.pem"));
    // The 署名用電子証明書: refused (6982) until the 署名用パスワード is verified, as on a real card. OpenSC 0.23
    // reports it as "EF offset too large"; its debug log (no PIN in this run) shows the status word it got.
    o = run({"pkcs15-tool", "--reader", "0", "--read-certificate", "02"}, "", {{"OPENSC_DEBUG", "3"}});
    EXPECT_NE(o.status, 0) << o.all();
    EXPECT_NE(o.err.find("Certificate read failed"), std::string::npos) << o.all();
    EXPECT_NE(o.err.find("iso7816_read_binary: Check SW error: -1211 (Security status not satisfied)"),
              std::string::npos)
        << o.all();
    o = run({"pkcs15-tool", "--reader", "0", "--read-certificate", "02", "--verify-pin", "--auth-id", "02", "--pin",
             "KYOTAKU1"});
    ASSERT_EQ(o.status, 0) << o.all();
    EXPECT_EQ(pem_to_der(o.out.substr(o.out.find("-----BEGIN"))), card::load_certificate_der(pki / "card-1-sign.pem"));
}

TEST_F(OpenSc, SignsWithTheAuthenticationKeyAndOpenSslVerifies) {
    std::string const message = "kyotaku: OpenSC signs with the virtual card's 利用者証明用 key";
    std::ofstream(file("message.txt"), std::ios::binary) << message;
    Output o = run({"pkcs11-tool", "--module", "opensc-pkcs11.so", "--slot-index", "0", "--login", "--pin", "1234",
                    "--sign", "--id", "01", "--mechanism", "SHA256-RSA-PKCS", "--input-file", file("message.txt"),
                    "--output-file", file("signature.bin")});
    ASSERT_EQ(o.status, 0) << o.all();
    std::string const signature = slurp(file("signature.bin"));
    EXPECT_EQ(signature.size(), 256u);
    // OpenSSL, with nothing but the card's certificate.
    Output pub = run({"openssl", "x509", "-in", (pki / "card-1.pem").string(), "-pubkey", "-noout"});
    ASSERT_EQ(pub.status, 0) << pub.all();
    std::ofstream(file("card-1.pub.pem")) << pub.out;
    Output v = run({"openssl", "dgst", "-sha256", "-verify", file("card-1.pub.pem"), "-signature",
                    file("signature.bin"), file("message.txt")});
    EXPECT_EQ(v.status, 0) << v.all();
    EXPECT_EQ(v.out, "Verified OK\n") << v.all();
    EXPECT_TRUE(card::verify_signature(card::load_certificate_der(pki / "card-1.pem"),
                                       card::Bytes(message.begin(), message.end()),
                                       card::Bytes(signature.begin(), signature.end())));
    EXPECT_FALSE(card::verify_signature(card::load_certificate_der(pki / "card-1-sign.pem"),
                                        card::Bytes(message.begin(), message.end()),
                                        card::Bytes(signature.begin(), signature.end())))
        << "the 署名用 key did not make it";
    EXPECT_EQ(card_pin_tries(), 3);
}

TEST_F(OpenSc, SignsWithTheSignatureKeyAfterThePassword) {
    card::Bytes const message = {'k', 'y', 'o', 't', 'a', 'k', 'u'};
    card::Bytes const digest = card::sha256(message);
    std::ofstream(file("digest.bin"), std::ios::binary)
        .write(reinterpret_cast<char const*>(digest.data()), long(digest.size()));
    Output o = run({"pkcs15-crypt", "--reader", "0", "--sign", "--key", "02", "--pin", "KYOTAKU1", "--sha-256",
                    "--pkcs1", "--input", file("digest.bin"), "--output", file("signature.bin")});
    ASSERT_EQ(o.status, 0) << o.all();
    std::string const signature = slurp(file("signature.bin"));
    EXPECT_TRUE(card::verify_signature(card::load_certificate_der(pki / "card-1-sign.pem"), message,
                                       card::Bytes(signature.begin(), signature.end())));
    EXPECT_EQ(card_password_tries(), 5);
    EXPECT_EQ(card_pin_tries(), 3) << "the 利用者証明用 PIN is another counter";
}

TEST_F(OpenSc, AWrongPinCountsDownTheSameTriesThroughOpenScAndKyotakuBridge) {
    Output o = run({"pkcs11-tool", "--module", "opensc-pkcs11.so", "--slot-index", "0", "--login", "--pin", "0000",
                    "--list-objects"});
    EXPECT_NE(o.status, 0) << o.all();
    EXPECT_NE((o.out + o.err).find("CKR_PIN_INCORRECT"), std::string::npos) << o.all();
    EXPECT_EQ(card_pin_tries(), 2);
    Output b = bridge({"sign", "--challenge", "AAAA"}, "0000\n");
    EXPECT_EQ(b.status, 2) << b.all();
    nlohmann::json const err = nlohmann::json::parse(b.out);
    EXPECT_EQ(err["error"], "wrong_pin") << b.all();
    EXPECT_EQ(err["tries_left"], 1) << "kyotaku-bridge counts on from OpenSC's wrong try\n" << b.all();
    Output pins = run({"pkcs15-tool", "--reader", "0", "--list-pins"});
    ASSERT_EQ(pins.status, 0) << pins.all();
    EXPECT_EQ(tries_left(pins.out, "User Authentication PIN"), 1) << "OpenSC sees kyotaku-bridge's wrong try\n"
                                                                  << pins.all();
    EXPECT_EQ(tries_left(pins.out, "Digital Signature PIN"), 5) << pins.all();
    // A wrong 署名用パスワード counts on its own counter only.
    o = run({"pkcs15-tool", "--reader", "0", "--verify-pin", "--auth-id", "02", "--pin", "WRONG123"});
    EXPECT_NE(o.status, 0) << o.all();
    EXPECT_EQ(card_password_tries(), 4);
    EXPECT_EQ(card_pin_tries(), 1);
    // The right PIN through kyotaku-bridge resets the counter, and OpenSC says so.
    b = bridge({"sign", "--challenge", "AAAA"}, "1234\n");
    ASSERT_EQ(b.status, 0) << b.all();
    pins = run({"pkcs15-tool", "--reader", "0", "--list-pins"});
    EXPECT_EQ(tries_left(pins.out, "User Authentication PIN"), 3) << pins.all();
    EXPECT_EQ(tries_left(pins.out, "Digital Signature PIN"), 4) << pins.all();
}

TEST_F(OpenSc, KyotakuBridgeAndOpenScReadTheSameBytes) {
    Output b = bridge({"read-certificate"});
    ASSERT_EQ(b.status, 0) << b.all();
    card::Bytes const from_bridge = card::base64_decode(b.out.substr(0, b.out.find('\n')));
    Output o = run({"pkcs15-tool", "--reader", "0", "--read-certificate", "01"});
    ASSERT_EQ(o.status, 0) << o.all();
    EXPECT_EQ(from_bridge, pem_to_der(o.out));
    EXPECT_EQ(from_bridge, card::load_certificate_der(pki / "card-1.pem"));
}

TEST_F(OpenSc, KyotakuBridgeNeverTouchesTheSignatureFiles) {
    ASSERT_EQ(bridge({"read-certificate"}).status, 0);
    Output b = bridge({"sign", "--challenge", card::base64(card::random_bytes(32))}, "1234\n");
    ASSERT_EQ(b.status, 0) << b.all();
    b = bridge({"sign", "--challenge", "AAAA"}, "9999\n");
    EXPECT_EQ(b.status, 2) << b.all();
    std::lock_guard lock(PcscEnvironment::vpcd->card_mutex());
    EXPECT_FALSE(touched_any_signature_file(virtual_card()));
    EXPECT_TRUE(virtual_card().files_selected().count(card::jpki::ef_auth_certificate));
    EXPECT_TRUE(virtual_card().files_selected().count(card::jpki::ef_auth_key));
}
