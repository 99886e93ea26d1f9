// The real PC/SC stack for the tests that need it (label `bridge`, RESOURCE_LOCK pcscd): this process starts pcscd
// in the foreground with a reader.conf of its own for vpcd on loopback port 35963, in a scratch directory, and
// stops it by its pid; the virtual card (both sides of the JPKI application, make-test-pki's card 1) connects to
// vpcd from a thread. Only one pcscd can run on a machine (/run/pcscd), so these tests refuse to start next to
// another one.
#pragma once

#include "kyotaku/card/native.hpp"
#include "kyotaku/card/pcsc.hpp"
#include "kyotaku/card/vpcd.hpp"

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

namespace kyotaku::test {

inline std::filesystem::path const pki = KYOTAKU_BRIDGE_PKI;
inline constexpr std::uint16_t vpcd_port = 35963;
inline std::string const reader0 = "Virtual PCD 00 00";

class PcscEnvironment : public ::testing::Environment {
public:
    static inline std::unique_ptr<card::VirtualCard> card;
    static inline std::unique_ptr<card::VpcdCard> vpcd;

    void SetUp() override {
        namespace fs = std::filesystem;
        fs::path const pidfile = "/run/pcscd/pcscd.pid";
        if (fs::exists(pidfile)) {
            std::ifstream in(pidfile);
            pid_t other = 0;
            in >> other;
            if (other > 0 && ::kill(other, 0) == 0)
                throw std::runtime_error("another pcscd (pid " + std::to_string(other) +
                                         ") is running: stop it for these tests");
        }
        std::string tmpl = (fs::temp_directory_path() / "kyotaku-pcscd-XXXXXX").string();
        if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
        dir_ = tmpl;
        fs::create_directories(dir_ / "conf");
        std::ofstream(dir_ / "conf" / "vpcd")
            << "FRIENDLYNAME \"Virtual PCD\"\nDEVICENAME   /dev/null:" << vpcd_port
            << "\nLIBPATH      /usr/lib/pcsc/drivers/serial/libifdvpcd.so\nCHANNELID    " << vpcd_port << "\n";
        start_pcscd();
        ASSERT_GT(pid_, 0);
        reset_card();
    }

    // pcscd itself, started and stopped by its pid (the tests also stop it mid-session: the reader goes away).
    static void start_pcscd() {
        std::string const conf = (dir_ / "conf").string(), log = (dir_ / "pcscd.log").string();
        pid_ = ::fork();
        if (pid_ == 0) {
            std::freopen(log.c_str(), "w", stdout);
            std::freopen(log.c_str(), "a", stderr);
            ::execlp("pcscd", "pcscd", "--foreground", "--config", conf.c_str(), static_cast<char*>(nullptr));
            std::_Exit(127);  // exec failed: the test sees no reader and says so
        }
    }
    static void stop_pcscd() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGTERM);
        int status = 0;
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
    }

    void TearDown() override {
        stop_card();
        stop_pcscd();
        std::filesystem::remove_all(dir_);
    }

    /// The scratch directory of this test process (pcscd's configuration and log; the tests may add their own).
    static std::filesystem::path const& dir() { return dir_; }

    // A fresh card (3 PIN tries, 5 password tries) for each test; waits until pcscd reports it present.
    static void reset_card() {
        if (card) {
            stop_card();
            wait_present(false);  // let pcscd see the old card go before the new one comes
        }
        card = card::make_virtual_card(card::VirtualCardFiles::test_card(pki, 1));
        vpcd = std::make_unique<card::VpcdCard>(*card, vpcd_port);
        thread_ = std::thread([] { vpcd->run(); });
        wait_present(true);
    }
    static void stop_card() {
        if (vpcd) vpcd->stop();
        if (thread_.joinable()) thread_.join();
        vpcd.reset();
        card.reset();
    }
    static void wait_present(bool present) {
        for (int i = 0; i < 200; ++i) {
            try {
                card::PcscContext ctx;
                auto readers = ctx.readers();
                if (!readers.empty()) {
                    try {
                        ctx.wait_for_card(reader0, std::chrono::milliseconds(50));
                        if (present) return;
                    } catch (card::CardError const&) {
                        if (!present) return;
                    }
                }
            } catch (card::CardError const&) {
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        throw std::runtime_error(std::string("pcscd did not report the card ") + (present ? "present" : "absent"));
    }

private:
    static inline std::filesystem::path dir_;
    static inline pid_t pid_ = -1;
    static inline std::thread thread_;
};

}  // namespace kyotaku::test
