#include "kyotaku/card/apdu.hpp"

#include <cstdio>

namespace kyotaku::card {

char const* to_string(ErrorKind kind) {
    switch (kind) {
        case ErrorKind::malformed: return "malformed";
        case ErrorKind::transport: return "transport";
        case ErrorKind::no_reader: return "no_reader";
        case ErrorKind::no_card: return "no_card";
        case ErrorKind::card_removed: return "card_removed";
        case ErrorKind::timeout: return "timeout";
        case ErrorKind::security_status: return "security_status";
        case ErrorKind::wrong_pin: return "wrong_pin";
        case ErrorKind::locked: return "locked";
        case ErrorKind::not_found: return "not_found";
        case ErrorKind::wrong_length: return "wrong_length";
        case ErrorKind::wrong_parameters: return "wrong_parameters";
        case ErrorKind::not_supported: return "not_supported";
        case ErrorKind::card_error: return "card_error";
        case ErrorKind::busy: return "busy";
        case ErrorKind::unauthorized: return "unauthorized";
    }
    return "card_error";
}

namespace {
[[noreturn]] void malformed(std::string const& what) {
    throw CardError(ErrorKind::malformed, Message{"不正なAPDU", "malformed APDU: " + what});
}
std::string hex4(std::uint16_t v) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "%04X", unsigned(v));
    return buf;
}
}  // namespace

Bytes encode(Command const& c) {
    std::size_t const nc = c.data.size();
    if (nc > 65535) malformed("command data longer than 65535 bytes");
    if (c.ne && (*c.ne == 0 || *c.ne > 65536)) malformed("Ne must be 1..65536");
    bool const extended = nc > 255 || (c.ne && *c.ne > 256);
    Bytes out{c.cla, c.ins, c.p1, c.p2};
    if (!extended) {
        if (nc > 0) {
            out.push_back(std::uint8_t(nc));
            out.insert(out.end(), c.data.begin(), c.data.end());
        }
        if (c.ne) out.push_back(std::uint8_t(*c.ne == 256 ? 0 : *c.ne));
        return out;
    }
    out.push_back(0);  // extended length marker
    if (nc > 0) {
        out.push_back(std::uint8_t(nc >> 8));
        out.push_back(std::uint8_t(nc));
        out.insert(out.end(), c.data.begin(), c.data.end());
    }
    if (c.ne) {
        std::uint32_t const le = *c.ne == 65536 ? 0 : *c.ne;
        out.push_back(std::uint8_t(le >> 8));
        out.push_back(std::uint8_t(le));
    }
    return out;
}

Command parse_command(ByteView b) {
    if (b.size() < 4) malformed("shorter than the 4-byte header (" + std::to_string(b.size()) + " bytes)");
    Command c{b[0], b[1], b[2], b[3], {}, std::nullopt};
    if (c.cla == 0xFF) malformed("CLA FF is reserved");
    std::size_t const body = b.size() - 4;
    if (body == 0) return c;  // case 1
    std::uint8_t const b5 = b[4];
    if (body == 1) {  // case 2S
        c.ne = b5 == 0 ? 256u : b5;
        return c;
    }
    if (b5 != 0) {  // short cases 3S / 4S
        std::size_t const nc = b5;
        if (body == 1 + nc) {
            c.data.assign(b.begin() + 5, b.end());
            return c;
        }
        if (body == 2 + nc) {
            c.data.assign(b.begin() + 5, b.begin() + 5 + long(nc));
            c.ne = b.back() == 0 ? 256u : b.back();
            return c;
        }
        malformed("Lc=" + std::to_string(nc) + " but " + std::to_string(body - 1) + " bytes follow it");
    }
    // Extended length (B1 = 00).
    if (body == 3) {  // case 2E
        std::uint32_t const le = (std::uint32_t(b[5]) << 8) | b[6];
        c.ne = le == 0 ? 65536u : le;
        return c;
    }
    if (body < 3) malformed("extended length marker with " + std::to_string(body - 1) + " length bytes");
    std::size_t const nc = (std::size_t(b[5]) << 8) | b[6];
    if (nc == 0) malformed("extended Lc of 0");
    if (body == 3 + nc) {  // case 3E
        c.data.assign(b.begin() + 7, b.end());
        return c;
    }
    if (body == 5 + nc) {  // case 4E
        c.data.assign(b.begin() + 7, b.begin() + 7 + long(nc));
        std::uint32_t const le = (std::uint32_t(b[b.size() - 2]) << 8) | b[b.size() - 1];
        c.ne = le == 0 ? 65536u : le;
        return c;
    }
    malformed("extended Lc=" + std::to_string(nc) + " but " + std::to_string(body - 3) + " bytes follow it");
}

Response parse_response(ByteView b) {
    if (b.size() < 2) malformed("response shorter than the two status bytes (" + std::to_string(b.size()) + " bytes)");
    if (b.size() > 65536 + 2) malformed("response longer than 65538 bytes");
    Response r;
    r.data.assign(b.begin(), b.end() - 2);
    r.sw = std::uint16_t((b[b.size() - 2] << 8) | b[b.size() - 1]);
    return r;
}

Bytes encode(Response const& r) {
    Bytes out = r.data;
    out.push_back(r.sw1());
    out.push_back(r.sw2());
    return out;
}

Message describe_status(std::uint16_t sw) {
    std::string const code = hex4(sw) + ": ";
    auto said = [&](std::string const& ja, std::string const& en) { return Message{code + ja, code + en}; };
    if ((sw & 0xFFF0) == 0x63C0)
        return said("暗証番号が違います（残り" + std::to_string(sw & 0x0F) + "回）",
                    "wrong PIN, " + std::to_string(sw & 0x0F) + " tries left");
    if ((sw & 0xFF00) == 0x6100) return said("続きのデータがあります", "more data available");
    if ((sw & 0xFF00) == 0x6C00) return said("Le が違います", "wrong Le, " + std::to_string(sw & 0xFF) + " expected");
    switch (sw) {
        case 0x9000: return said("正常終了", "success");
        case 0x6282: return said("ファイルの終わりに達しました", "end of file reached");
        case 0x6700: return said("データ長が不正です", "wrong length");
        case 0x6981: return said("ファイル構造と合いません", "command incompatible with file structure");
        case 0x6982: return said("暗証番号が確認されていません", "security status not satisfied");
        case 0x6983: return said("暗証番号がロックされています", "authentication method blocked");
        case 0x6984: return said("暗証番号がロックされています", "reference data blocked (PIN locked)");
        case 0x6985: return said("使用条件を満たしていません", "conditions of use not satisfied");
        case 0x6986: return said("ファイルが選択されていません", "no current EF");
        case 0x6A80: return said("データが不正です", "incorrect data");
        case 0x6A82: return said("アプリケーションまたはファイルがありません", "file or application not found");
        case 0x6A86: return said("P1-P2 が不正です", "incorrect P1-P2");
        case 0x6B00: return said("オフセットが不正です", "wrong parameters (offset outside the file)");
        case 0x6D00: return said("対応していない命令です", "instruction not supported");
        case 0x6E00: return said("対応していないクラスです", "class not supported");
        case 0x6F00: return said("カード内部のエラーです", "no precise diagnosis");
        default: return said("カードがエラーを返しました", "card error");
    }
}

void check_status(Response const& r, std::string_view what) {
    std::uint16_t const sw = r.sw;
    if (sw == 0x9000 || sw == 0x6282) return;
    Message const status = describe_status(sw);
    Message const msg{std::string(what) + ": " + status.ja, std::string(what) + ": " + status.en};
    if ((sw & 0xFFF0) == 0x63C0) {
        int const tries = sw & 0x0F;
        throw CardError(tries == 0 ? ErrorKind::locked : ErrorKind::wrong_pin, msg, tries, sw);
    }
    switch (sw) {
        case 0x6982: throw CardError(ErrorKind::security_status, msg, -1, sw);
        case 0x6983:
        case 0x6984: throw CardError(ErrorKind::locked, msg, 0, sw);
        case 0x6A82: throw CardError(ErrorKind::not_found, msg, -1, sw);
        case 0x6700: throw CardError(ErrorKind::wrong_length, msg, -1, sw);
        case 0x6A80:
        case 0x6A86:
        case 0x6B00: throw CardError(ErrorKind::wrong_parameters, msg, -1, sw);
        case 0x6D00:
        case 0x6E00: throw CardError(ErrorKind::not_supported, msg, -1, sw);
        default:
            throw CardError((sw & 0xFF00) == 0x6C00 ? ErrorKind::wrong_length : ErrorKind::card_error, msg, -1, sw);
    }
}

Response transmit(Channel& channel, Command const& command) {
    Response r = parse_response(channel.transmit(encode(command)));
    if (r.sw1() == 0x6C) {  // wrong Le: the card tells the right one; resend once
        Command again = command;
        again.ne = r.sw2() == 0 ? 256u : r.sw2();
        r = parse_response(channel.transmit(encode(again)));
    }
    Bytes data = std::move(r.data);
    // GET RESPONSE chaining, bounded so that a card that never stops cannot hold us forever.
    for (int rounds = 0; r.sw1() == 0x61; ++rounds) {
        if (rounds >= 512)
            throw CardError(ErrorKind::malformed,
                            Message{"GET RESPONSE が終わりません", "GET RESPONSE chain did not end"});
        Command get{0x00, 0xC0, 0x00, 0x00, {}, r.sw2() == 0 ? 256u : r.sw2()};
        r = parse_response(channel.transmit(encode(get)));
        data.insert(data.end(), r.data.begin(), r.data.end());
        if (data.size() > 65536)
            throw CardError(ErrorKind::malformed, Message{"応答が長すぎます", "response longer than 65536 bytes"});
    }
    r.data = std::move(data);
    return r;
}

std::string to_hex(ByteView bytes) {
    static char const digits[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (auto b : bytes) {
        out += digits[b >> 4];
        out += digits[b & 15];
    }
    return out;
}

Bytes from_hex(std::string_view text) {
    Bytes out;
    int high = -1;
    for (std::size_t i = 0; i < text.size(); ++i) {
        char const ch = text[i];
        if (ch == ' ' || ch == ':') continue;
        int v;
        if (ch >= '0' && ch <= '9') v = ch - '0';
        else if (ch >= 'a' && ch <= 'f') v = ch - 'a' + 10;
        else if (ch >= 'A' && ch <= 'F') v = ch - 'A' + 10;
        else
            throw CardError(ErrorKind::malformed,
                            Message{"16進数ではありません", "not hex at position " + std::to_string(i)});
        if (high < 0) high = v;
        else {
            out.push_back(std::uint8_t(high << 4 | v));
            high = -1;
        }
    }
    if (high >= 0) throw CardError(ErrorKind::malformed, Message{"16進数の桁数が奇数です", "odd number of hex digits"});
    return out;
}

void secure_wipe(void* data, std::size_t size) {
    auto* p = static_cast<unsigned char volatile*>(data);
    for (std::size_t i = 0; i < size; ++i) p[i] = 0;
}

}  // namespace kyotaku::card
