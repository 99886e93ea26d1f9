// The WebUSB side of the card bridge, compiled to WebAssembly: the RC-S380 protocol, ISO 14443-B, ISO-DEP and the
// JPKI flow run here; the page's JS (js/webusb-rcs380.js) only moves bytes with navigator.usb. The USB transfers
// are asynchronous in the browser, so this module is built with ASYNCIFY and its entry points return Promises
// (ccall … {async: true}). Results are JSON strings in the bridge protocol's shape.
#include "kyotaku/card/jpki.hpp"
#include "kyotaku/card/port100.hpp"

#include <emscripten.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <string>

using namespace kyotaku::card;
using nlohmann::json;

// Module.kyotakuUsb = {write(Uint8Array) → Promise, read(max, timeoutMs) → Promise<Uint8Array|null>} is set by JS.
EM_ASYNC_JS(int, kc_js_usb_write, (std::uint8_t const* data, int size), {
    try {
        await Module.kyotakuUsb.write(HEAPU8.slice(data, data + size));
        return 0;
    } catch (e) {
        Module.kyotakuUsbError = String((e && e.message) || e);
        return -2;
    }
});

EM_ASYNC_JS(int, kc_js_usb_read, (std::uint8_t* out, int max, int timeout_ms), {
    try {
        const d = await Module.kyotakuUsb.read(max, timeout_ms);
        if (d === null) return -1;
        const n = Math.min(d.length, max);
        HEAPU8.set(d.subarray(0, n), out);
        return n;
    } catch (e) {
        Module.kyotakuUsbError = String((e && e.message) || e);
        return -2;
    }
});

EM_JS(char*, kc_js_usb_error, (), {
    const s = Module.kyotakuUsbError || "";
    const n = lengthBytesUTF8(s) + 1;
    const p = _malloc(n);
    stringToUTF8(s, p, n);
    return p;
});

namespace {
class JsUsbPipe : public UsbPipe {
public:
    void write(ByteView bytes) override {
        if (kc_js_usb_write(bytes.data(), int(bytes.size())) < 0) fail();
    }
    Bytes read(std::size_t max, int timeout_ms) override {
        Bytes out(max);
        int const n = kc_js_usb_read(out.data(), int(max), timeout_ms);
        if (n == -1)
            throw CardError(ErrorKind::timeout, Message{"カードリーダーが応答しません", "the reader did not answer"});
        if (n < 0) fail();
        out.resize(std::size_t(n));
        return out;
    }

private:
    [[noreturn]] static void fail() {
        char* e = kc_js_usb_error();
        std::string const detail = e;
        std::free(e);
        throw CardError(ErrorKind::transport,
                        Message{"カードリーダーとの通信に失敗しました（外された可能性があります）",
                                "reader communication failed, it may have been unplugged (" + detail + ")"});
    }
};

std::string result;

char const* answer(json j) {
    result = j.dump();
    return result.c_str();
}

char const* failure(CardError const& e) {
    // As the bridge answers (docs/bridge.md): the one-line message, and its Japanese and English apart.
    json err{{"kind", to_string(e.kind())},
             {"message", e.what()},
             {"message_ja", e.message().ja},
             {"message_en", e.message().en}};
    if (e.tries_left() >= 0) err["tries_left"] = e.tries_left();
    return answer(json{{"ok", false}, {"error", err}});
}

template <typename F>
char const* with_card(int wait_ms, F&& f) {
    JsUsbPipe pipe;
    Rcs380Channel channel(pipe);
    try {
        channel.connect(wait_ms);
        json out = f(channel);
        channel.disconnect();
        out["ok"] = true;
        out["firmware"] = channel.firmware_version();
        return answer(out);
    } catch (CardError const& e) {
        try {
            if (e.kind() != ErrorKind::transport) channel.disconnect();
        } catch (CardError const&) {
        }
        return failure(e);
    }
}
}  // namespace

extern "C" {

EMSCRIPTEN_KEEPALIVE char const* kc_read_certificate(int wait_ms) {
    return with_card(wait_ms, [](Channel& ch) {
        return json{{"certificate_hex", to_hex(jpki::read_certificate_only(ch))}};
    });
}

EMSCRIPTEN_KEEPALIVE char const* kc_pin_tries(int wait_ms) {
    return with_card(wait_ms, [](Channel& ch) { return json{{"tries_left", jpki::Client(ch).pin_tries_left()}}; });
}

/// `pin` (4 ASCII digits, not NUL-terminated) is wiped here, whatever happens; `digest` is SHA-256 of the challenge.
EMSCRIPTEN_KEEPALIVE char const* kc_sign(char* pin, int pin_len, std::uint8_t const* digest, int digest_len,
                                         int wait_ms) {
    std::optional<jpki::Pin> p;
    try {
        p.emplace(jpki::Pin::parse(std::string_view(pin, std::size_t(pin_len))));
    } catch (CardError const& e) {
        secure_wipe(pin, std::size_t(pin_len));
        return failure(e);
    }
    secure_wipe(pin, std::size_t(pin_len));
    ByteView const d(digest, std::size_t(digest_len));
    return with_card(wait_ms, [&](Channel& ch) {
        jpki::Signed s = jpki::sign_challenge(ch, *p, d);
        return json{{"certificate_hex", to_hex(s.certificate)}, {"signature_hex", to_hex(s.signature)}};
    });
}
}
