// kyotaku-bridge: the card bridge's command line. `serve` runs the loopback WebSocket daemon for the consent page;
// `virtual-card` puts the test card in a vpcd reader for pcscd; `readers`, `read-certificate` and `sign` are the
// native flow for integrators and for checking a reader by hand.
#include "bridge_server.hpp"
#include "kyotaku/card/jpki.hpp"
#include "kyotaku/card/native.hpp"
#include "kyotaku/card/pcsc.hpp"
#include "kyotaku/card/vpcd.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <termios.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

namespace card = kyotaku::card;
namespace bridge = kyotaku::bridge;
namespace fs = std::filesystem;

namespace {
std::atomic<bool> interrupted{false};
void on_signal(int) { interrupted = true; }

std::string load_or_create_token(fs::path const& file) {
    if (fs::exists(file)) {
        std::ifstream in(file);
        std::string token;
        std::getline(in, token);
        if (token.size() < 16)
            throw std::runtime_error("ペアリングトークンが短すぎます / token in " + file.string() +
                                     " is shorter than 16 characters");
        return token;
    }
    std::string const token = card::to_hex(card::random_bytes(16));
    std::ofstream out(file);
    fs::permissions(file, fs::perms::owner_read | fs::perms::owner_write, fs::perm_options::replace);
    out << token << '\n';
    if (!out) throw std::runtime_error("トークンを書き込めません / cannot write " + file.string());
    return token;
}

// Reads the PIN from stdin: without echo on a terminal, as the first line of a pipe otherwise.
std::string read_pin() {
    bool const tty = ::isatty(STDIN_FILENO);
    termios old{};
    if (tty) {
        std::cerr << "暗証番号 (4桁) / PIN: " << std::flush;
        ::tcgetattr(STDIN_FILENO, &old);
        termios quiet = old;
        quiet.c_lflag &= ~tcflag_t(ECHO);
        ::tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
    }
    std::string pin;
    std::getline(std::cin, pin);
    if (tty) {
        ::tcsetattr(STDIN_FILENO, TCSANOW, &old);
        std::cerr << '\n';
    }
    return pin;
}

int fail(card::CardError const& e) {
    nlohmann::json err{{"error", card::to_string(e.kind())}, {"message", e.what()}};
    if (e.tries_left() >= 0) err["tries_left"] = e.tries_left();
    std::cout << err.dump() << '\n';
    return 2;
}
}  // namespace

int main(int argc, char** argv) {
    CLI::App app{
        "kyotaku-bridge — マイナンバーカードの読み取り (PC/SC) と、同意ページのためのループバック WebSocket ブリッジ\n"
        "kyotaku-bridge — My Number card access over PC/SC, and the loopback WebSocket bridge for the consent page"};
    app.require_subcommand(1);

    auto* serve = app.add_subcommand("serve", "Run the WebSocket bridge on loopback (see docs/bridge.md)");
    std::string listen = "127.0.0.1:39211";
    std::vector<std::string> origins;
    std::string token_file = "kyotaku-bridge.token";
    std::string vcard_dir;
    int vcard_number = 1;
    serve
        ->add_option("--listen", listen,
                     "ADDRESS:PORT ([::1]:PORT for IPv6); loopback addresses only, port 0-65535 (0: any free port)")
        ->capture_default_str();
    serve->add_option("--allow-origin", origins, "Origin allowed to connect (repeatable), e.g. https://127.0.0.1:8443")
        ->required();
    serve->add_option("--token-file", token_file, "pairing token file (created with a random token if missing)")
        ->capture_default_str();
    serve->add_option("--virtual-card", vcard_dir,
                      "serve the test card from this make-test-pki directory instead of PC/SC");
    serve->add_option("--card", vcard_number, "which test card (card-N.pem) with --virtual-card")
        ->capture_default_str();

    auto* vcard =
        app.add_subcommand("virtual-card",
                           "Put a virtual card into vpcd's reader (Debian's /etc/reader.conf.d/vpcd: port 35963)");
    std::string pki_dir, pin = "1234", sign_password = "KYOTAKU1";
    card::VirtualCardFiles files;
    int port = 35963, chain = 256, card_number = 1;
    auto* pki_opt = vcard->add_option("--pki", pki_dir, "a make-test-pki directory: test card N's files (both sides)")
                        ->check(CLI::ExistingDirectory);
    vcard->add_option("--card", card_number, "which test card with --pki")->capture_default_str()->needs(pki_opt);
    std::vector<CLI::Option*> file_opts = {
        vcard->add_option("--cert", files.certificate, "利用者証明用 certificate (PEM)")->check(CLI::ExistingFile),
        vcard->add_option("--key", files.key, "its private key (PEM)")->check(CLI::ExistingFile),
        vcard->add_option("--ca", files.ca, "its CA certificate (PEM)")->check(CLI::ExistingFile),
        vcard->add_option("--sign-cert", files.sign_certificate, "署名用 certificate (PEM)")->check(CLI::ExistingFile),
        vcard->add_option("--sign-key", files.sign_key, "its private key (PEM)")->check(CLI::ExistingFile),
        vcard->add_option("--sign-ca", files.sign_ca, "its CA certificate (PEM)")->check(CLI::ExistingFile)};
    for (auto* o : file_opts) o->excludes(pki_opt);
    vcard->add_option("--pin", pin, "the 4-digit 利用者証明用 PIN (test cards only)")->capture_default_str();
    vcard->add_option("--sign-password", sign_password, "the 署名用 password: 6-16 of A-Z 0-9 (test cards only)")
        ->capture_default_str();
    vcard->add_option("--port", port, "vpcd's port (connected over loopback)")
        ->capture_default_str()
        ->check(CLI::Range(1, 65535));
    vcard->add_option("--max-response", chain, "answers longer than this are chained with 61xx")
        ->capture_default_str()
        ->check(CLI::Range(1, 256));

    auto* readers = app.add_subcommand("readers", "List PC/SC readers");
    std::string reader;
    int wait_ms = 10000;
    auto* readcert =
        app.add_subcommand("read-certificate", "Read the 利用者証明用電子証明書 (no PIN); prints base64 DER");
    auto* sign = app.add_subcommand("sign", "Verify the PIN (read from stdin) and sign a challenge; prints JSON");
    std::string challenge;
    for (auto* sub : {readcert, sign}) {
        sub->add_option("--reader", reader, "reader name (default: the first with a card)");
        sub->add_option("--wait-ms", wait_ms, "how long to wait for a card")
            ->capture_default_str()
            ->check(CLI::Range(0, 600000));
    }
    sign->add_option("--challenge", challenge, "the challenge, base64")->required();

    CLI11_PARSE(app, argc, argv);
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);

    try {
        if (*serve) {
            bridge::Options options;
            auto const where = bridge::parse_listen(listen);
            options.address = where.address;
            options.port = where.port;
            options.allowed_origins = origins;
            if (!bridge::is_loopback(options.address))
                throw std::invalid_argument(
                    "kyotaku-bridge はループバックアドレスでだけ待ち受けます / refusing to listen on " +
                    options.address + ": only 127.0.0.0/8 or ::1");
            options.token = load_or_create_token(token_file);
            options.pairing_code = bridge::new_pairing_code();  // typed into the page once; it then keeps the token
            std::unique_ptr<bridge::CardBackend> backend;
            if (!vcard_dir.empty()) {
                std::shared_ptr<card::VirtualCard> c =
                    card::make_virtual_card(card::VirtualCardFiles::test_card(vcard_dir, vcard_number));
                backend = bridge::virtual_backend(c, std::make_shared<std::mutex>());
            } else {
                backend = bridge::pcsc_backend();
            }
            bridge::Server server(options, std::move(backend), std::cerr);
            std::cout << "kyotaku-bridge: ws://"
                      << (options.address.find(':') != std::string::npos ? "[" + options.address + "]"
                                                                         : options.address)
                      << ":" << server.port() << "/ で待ち受け中 / listening" << std::endl;
            std::cout << "ペアリングコード / pairing token: " << options.token << std::endl;
            std::cout << "ペアリング番号 / pairing code:  " << options.pairing_code.substr(0, 3) << " "
                      << options.pairing_code.substr(3) << std::endl;
            if (server.port() != 39211)  // the consent page assumes 39211 unless the code names the port
                std::cout << "同意ページに入力する番号 / code for the consent page: " << server.port() << ":"
                          << options.pairing_code << std::endl;
            std::thread t([&] { server.run(); });
            while (!interrupted) std::this_thread::sleep_for(std::chrono::milliseconds(100));
            server.stop();
            t.join();
            return 0;
        }
        if (*vcard) {
            if (!pki_dir.empty()) files = card::VirtualCardFiles::test_card(pki_dir, card_number);
            else
                for (auto* o : file_opts)
                    if (o->count() == 0)
                        throw std::invalid_argument(
                            "--pki DIR か、--cert --key --ca --sign-cert --sign-key --sign-ca "
                            "のすべてを指定してください / "
                            "give --pki DIR, or all of --cert --key --ca --sign-cert --sign-key --sign-ca (" +
                            o->get_name() + " is missing)");
            card::VirtualCardOptions o;
            o.pin = pin;
            o.sign_password = sign_password;
            o.max_response = std::size_t(chain);
            auto c = card::make_virtual_card(files, o);
            card::VpcdCard server(*c, std::uint16_t(port));
            std::cout << "virtual card: connecting to vpcd at 127.0.0.1:" << port << " (stdin: 'remove' / 'insert')"
                      << std::endl;
            std::thread t([&] { server.run(); });
            std::thread input([&] {
                std::string line;
                while (std::getline(std::cin, line)) {
                    if (line == "remove") server.remove_card();
                    else if (line == "insert") server.insert_card();
                }
            });
            input.detach();
            while (!interrupted) std::this_thread::sleep_for(std::chrono::milliseconds(100));
            server.stop();
            t.join();
            return 0;
        }
        if (*readers) {
            card::PcscContext ctx;
            for (auto const& r : ctx.readers()) std::cout << r << '\n';
            return 0;
        }
        card::PcscContext ctx;
        std::string const name =
            ctx.wait_for_card(reader, std::chrono::milliseconds(wait_ms), [] { return interrupted.load(); });
        auto channel = ctx.connect(name);
        if (*readcert) {
            std::cout << card::base64(card::jpki::read_certificate_only(*channel)) << '\n';
            return 0;
        }
        card::Bytes const message = card::base64_decode(challenge);
        std::string pin_text = read_pin();
        auto p = card::jpki::Pin::parse(pin_text);
        card::secure_wipe(pin_text.data(), pin_text.size());
        auto s = card::jpki::sign_challenge(*channel, p, card::sha256(message));
        std::cout << nlohmann::json{{"certificate", card::base64(s.certificate)},
                                    {"signature", card::base64(s.signature)}}
                         .dump()
                  << '\n';
        return 0;
    } catch (card::CardError const& e) {
        return fail(e);
    } catch (std::exception const& e) {
        std::cerr << "kyotaku-bridge: " << e.what() << '\n';
        return 1;
    }
}
