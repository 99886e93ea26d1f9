#include "kyotaku/card/pcsc.hpp"

#include <PCSC/winscard.h>
#include <PCSC/wintypes.h>

#include <thread>

namespace kyotaku::card {

void throw_pcsc(long rv, std::string_view what) {
    std::string const detail = std::string(what) + ": " + pcsc_stringify_error(LONG(rv));
    switch (rv) {
        case SCARD_W_REMOVED_CARD:
        case SCARD_W_RESET_CARD:
            throw CardError(ErrorKind::card_removed,
                            Message{"カードが取り外されました", "the card was removed (" + detail + ")"});
        case SCARD_E_NO_SMARTCARD:
            throw CardError(ErrorKind::no_card,
                            Message{"カードがありません", "no card in the reader (" + detail + ")"});
        case SCARD_E_NO_READERS_AVAILABLE:
        case SCARD_E_UNKNOWN_READER:
        case SCARD_E_READER_UNAVAILABLE:
            throw CardError(ErrorKind::no_reader,
                            Message{"カードリーダーが見つかりません", "no card reader (" + detail + ")"});
        case SCARD_E_TIMEOUT:
            throw CardError(ErrorKind::timeout, Message{"時間切れです", "timed out (" + detail + ")"});
        case SCARD_E_NO_SERVICE:
        case SCARD_E_SERVICE_STOPPED:
            throw CardError(ErrorKind::transport, Message{"PC/SC サービス (pcscd) に接続できません",
                                                          "pcscd is not running (" + detail + ")"});
        default:
            throw CardError(ErrorKind::transport, Message{"カードリーダーとの通信に失敗しました",
                                                          "reader communication failed (" + detail + ")"});
    }
}

PcscContext::PcscContext() {
    SCARDCONTEXT ctx = 0;
    LONG const rv = SCardEstablishContext(SCARD_SCOPE_SYSTEM, nullptr, nullptr, &ctx);
    if (rv != SCARD_S_SUCCESS) throw_pcsc(rv, "SCardEstablishContext");
    context_ = std::intptr_t(ctx);
}

PcscContext::~PcscContext() { SCardReleaseContext(SCARDCONTEXT(context_)); }

void PcscContext::cancel() { SCardCancel(SCARDCONTEXT(context_)); }

std::vector<std::string> PcscContext::readers() {
    DWORD size = 0;
    LONG rv = SCardListReaders(SCARDCONTEXT(context_), nullptr, nullptr, &size);
    if (rv == SCARD_E_NO_READERS_AVAILABLE) return {};
    if (rv != SCARD_S_SUCCESS) throw_pcsc(rv, "SCardListReaders");
    std::string buffer(size, '\0');
    rv = SCardListReaders(SCARDCONTEXT(context_), nullptr, buffer.data(), &size);
    if (rv == SCARD_E_NO_READERS_AVAILABLE) return {};
    if (rv != SCARD_S_SUCCESS) throw_pcsc(rv, "SCardListReaders");
    std::vector<std::string> out;
    for (std::size_t i = 0; i < buffer.size() && buffer[i] != '\0';) {
        std::string name(buffer.c_str() + i);
        i += name.size() + 1;
        out.push_back(std::move(name));
    }
    return out;
}

std::string PcscContext::wait_for_card(std::string const& reader, std::chrono::milliseconds timeout,
                                       std::function<bool()> const& cancelled) {
    auto check_cancel = [&] {
        if (cancelled && cancelled()) throw CardError(ErrorKind::timeout, Message{"キャンセルされました", "cancelled"});
    };
    auto const deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
        std::vector<std::string> names = readers();
        if (!reader.empty()) {
            bool found = false;
            for (auto const& n : names) found = found || n == reader;
            if (!found)
                throw CardError(ErrorKind::no_reader,
                                Message{"カードリーダーが見つかりません", "no reader named \"" + reader + "\""});
            names = {reader};
        }
        check_cancel();
        if (names.empty()) {
            if (std::chrono::steady_clock::now() >= deadline)
                throw CardError(ErrorKind::no_reader,
                                Message{"カードリーダーが接続されていません", "no card reader is connected"});
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
            continue;
        }
        std::vector<SCARD_READERSTATE> states(names.size());
        for (std::size_t i = 0; i < names.size(); ++i) {
            states[i].szReader = names[i].c_str();
            states[i].dwCurrentState = SCARD_STATE_UNAWARE;
        }
        LONG rv = SCardGetStatusChange(SCARDCONTEXT(context_), 0, states.data(), DWORD(states.size()));
        while (rv == SCARD_S_SUCCESS || rv == SCARD_E_TIMEOUT) {
            for (std::size_t i = 0; i < states.size(); ++i)
                if ((states[i].dwEventState & SCARD_STATE_PRESENT) && !(states[i].dwEventState & SCARD_STATE_MUTE))
                    return names[i];
            auto const now = std::chrono::steady_clock::now();
            if (now >= deadline)
                throw CardError(ErrorKind::timeout,
                                Message{"カードが置かれませんでした", "no card was presented in time"});
            check_cancel();
            for (auto& s : states) s.dwCurrentState = s.dwEventState & ~SCARD_STATE_CHANGED;
            auto const left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count();
            rv = SCardGetStatusChange(SCARDCONTEXT(context_), DWORD(std::min<long long>(left, 1000)), states.data(),
                                      DWORD(states.size()));
        }
        if (rv == SCARD_E_CANCELLED) throw CardError(ErrorKind::timeout, Message{"キャンセルされました", "cancelled"});
        if (rv != SCARD_E_UNKNOWN_READER && rv != SCARD_E_READER_UNAVAILABLE) throw_pcsc(rv, "SCardGetStatusChange");
        // The reader went away while we waited: look again.
    }
}

std::unique_ptr<PcscChannel> PcscContext::connect(std::string const& reader) {
    SCARDHANDLE card = 0;
    DWORD protocol = 0;
    LONG const rv = SCardConnect(SCARDCONTEXT(context_), reader.c_str(), SCARD_SHARE_SHARED,
                                 SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1, &card, &protocol);
    if (rv != SCARD_S_SUCCESS) throw_pcsc(rv, "SCardConnect");
    return std::make_unique<PcscChannel>(std::intptr_t(card), protocol);
}

PcscChannel::~PcscChannel() { SCardDisconnect(SCARDHANDLE(card_), SCARD_LEAVE_CARD); }

Bytes PcscChannel::transmit(ByteView apdu) {
    SCARD_IO_REQUEST const* pci = protocol_ == SCARD_PROTOCOL_T0 ? SCARD_PCI_T0 : SCARD_PCI_T1;
    Bytes out(MAX_BUFFER_SIZE_EXTENDED);
    DWORD len = DWORD(out.size());
    LONG const rv = SCardTransmit(SCARDHANDLE(card_), pci, apdu.data(), DWORD(apdu.size()), nullptr, out.data(), &len);
    if (rv != SCARD_S_SUCCESS) throw_pcsc(rv, "SCardTransmit");
    // A contactless card leaving the field mid-command can end a transmit with no bytes at all.
    if (len < 2)
        throw CardError(ErrorKind::card_removed,
                        Message{"カードが離れたか応答がありません", "the card was removed or stopped answering (" +
                                                                        std::to_string(len) + "-byte response)"});
    out.resize(len);
    return out;
}

Bytes PcscChannel::atr() {
    Bytes atr(MAX_ATR_SIZE);
    DWORD atr_len = DWORD(atr.size()), state = 0, protocol = 0, name_len = 0;
    LONG const rv = SCardStatus(SCARDHANDLE(card_), nullptr, &name_len, &state, &protocol, atr.data(), &atr_len);
    if (rv != SCARD_S_SUCCESS) throw_pcsc(rv, "SCardStatus");
    atr.resize(atr_len);
    return atr;
}

}  // namespace kyotaku::card
