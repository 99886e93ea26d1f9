#include "kyotaku/card/vpcd.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace kyotaku::card {

VpcdFrame parse_vpcd_frame(ByteView payload) {
    if (payload.empty()) throw CardError(ErrorKind::malformed, Message{"vpcd: 空のフレーム", "vpcd: empty frame"});
    if (payload.size() == 1) {
        switch (payload[0]) {
            case 0x00: return {VpcdFrame::Kind::power_off, {}};
            case 0x01: return {VpcdFrame::Kind::power_on, {}};
            case 0x02: return {VpcdFrame::Kind::reset, {}};
            case 0x04: return {VpcdFrame::Kind::atr, {}};
            default:
                throw CardError(ErrorKind::malformed,
                                Message{"vpcd: 不明な制御コード", "vpcd: unknown control byte " + to_hex(payload)});
        }
    }
    return {VpcdFrame::Kind::apdu, Bytes(payload.begin(), payload.end())};
}

namespace {
// Waits until fd is readable or `stopping` is set; false when stopping.
bool wait_readable(int fd, std::atomic<bool> const& stopping) {
    while (!stopping) {
        pollfd p{fd, POLLIN, 0};
        int const r = ::poll(&p, 1, 100);
        if (r > 0) return true;
        if (r < 0 && errno != EINTR) return false;
    }
    return false;
}

bool read_exact(int fd, std::uint8_t* out, std::size_t n, std::atomic<bool> const& stopping) {
    while (n > 0) {
        if (!wait_readable(fd, stopping)) return false;
        ssize_t const r = ::recv(fd, out, n, 0);
        if (r <= 0) return false;
        out += r;
        n -= std::size_t(r);
    }
    return true;
}

bool write_frame(int fd, ByteView data) {
    Bytes frame{std::uint8_t(data.size() >> 8), std::uint8_t(data.size())};
    frame.insert(frame.end(), data.begin(), data.end());
    std::size_t off = 0;
    while (off < frame.size()) {
        ssize_t const w = ::send(fd, frame.data() + off, frame.size() - off, MSG_NOSIGNAL);
        if (w <= 0) return false;
        off += std::size_t(w);
    }
    return true;
}
}  // namespace

VpcdCard::VpcdCard(VirtualCard& card, std::uint16_t port) : card_(card), port_(port) {}

VpcdCard::~VpcdCard() { stop(); }

void VpcdCard::stop() { stopping_ = true; }

void VpcdCard::remove_card() {
    std::lock_guard lock(mutex_);
    card_.remove();
    if (int fd = client_fd_.load(); fd >= 0) ::shutdown(fd, SHUT_RDWR);
}

void VpcdCard::insert_card() {
    std::lock_guard lock(mutex_);
    card_.insert();
}

namespace {
int connect_loopback(std::uint16_t port) {
    int const fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        ::close(fd);
        return -1;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}
}  // namespace

void VpcdCard::run() {
    while (!stopping_) {
        bool present;
        {
            std::lock_guard lock(mutex_);
            present = card_.present();
        }
        int const fd = present ? connect_loopback(port_) : -1;
        if (fd < 0) {
            ::usleep(100'000);
            continue;
        }
        client_fd_ = fd;
        std::uint8_t header[2];
        Bytes payload;
        while (!stopping_) {
            if (!read_exact(fd, header, 2, stopping_)) break;
            std::size_t const n = std::size_t(header[0]) << 8 | header[1];
            payload.assign(n, 0);
            if (n > 0 && !read_exact(fd, payload.data(), n, stopping_)) break;
            std::unique_lock lock(mutex_);
            if (!card_.present()) break;
            VpcdFrame frame;
            try {
                frame = parse_vpcd_frame(payload);
            } catch (CardError const&) {
                break;  // a peer that does not speak vpcd: drop it
            }
            secure_wipe(payload.data(), payload.size());  // it may have carried a PIN
            if (frame.kind == VpcdFrame::Kind::power_off || frame.kind == VpcdFrame::Kind::reset) {
                card_.reset();
                continue;
            }
            if (frame.kind == VpcdFrame::Kind::power_on) continue;
            Bytes answer = frame.kind == VpcdFrame::Kind::atr ? card_.atr() : card_.process(frame.apdu);
            secure_wipe(frame.apdu.data(), frame.apdu.size());
            if (card_.take_removal_event() || answer.empty()) break;  // removed mid-command: no answer
            lock.unlock();
            if (!write_frame(fd, answer)) break;
        }
        std::lock_guard lock(mutex_);  // remove_card() must not shut down a reused descriptor
        client_fd_ = -1;
        ::close(fd);
    }
}

}  // namespace kyotaku::card
