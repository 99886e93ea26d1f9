// For browser tests only: the simulated RC-S380 with the virtual card in its field, compiled to WebAssembly, so
// that a fake navigator.usb in the page talks to the same device-side protocol the native tests use. The card's
// RSA private-key operation is done in JS (node-forge in the test page) through Module.kyotakuRsaSign. This card has
// the 利用者証明用 side only (the page holds one key); the native virtual card has both sides.
#include "kyotaku/card/jpki.hpp"
#include "kyotaku/card/port100.hpp"
#include "kyotaku/card/virtual_card.hpp"

#include <emscripten.h>

#include <cstring>

using namespace kyotaku::card;

EM_JS(int, vc_js_sign, (std::uint8_t const* input, int size, std::uint8_t* out, int max), {
    const sig = Module.kyotakuRsaSign(HEAPU8.slice(input, input + size));
    if (!sig || sig.length > max) return -1;
    HEAPU8.set(sig, out);
    return sig.length;
});

namespace {
class JsKey : public CardKey {
public:
    Bytes sign_pkcs1(ByteView digest_info) override {
        Bytes out(512);
        int const n = vc_js_sign(digest_info.data(), int(digest_info.size()), out.data(), int(out.size()));
        if (n <= 0) throw CardError(ErrorKind::card_error, "signing failed");
        out.resize(std::size_t(n));
        return out;
    }
    std::size_t modulus_bytes() const override { return 256; }
};

std::unique_ptr<VirtualCard> card;
std::unique_ptr<Rcs380Simulator> reader;
}  // namespace

extern "C" {

EMSCRIPTEN_KEEPALIVE int vc_create(std::uint8_t const* cert, int cert_len, std::uint8_t const* ca, int ca_len,
                                   char const* pin) {
    try {
        VirtualCardOptions o;
        o.pin = pin;
        card = std::make_unique<VirtualCard>(Bytes(cert, cert + cert_len), Bytes(ca, ca + ca_len),
                                             std::make_unique<JsKey>(), o);
        reader = std::make_unique<Rcs380Simulator>(card.get());
        return 0;
    } catch (CardError const&) {
        return -1;
    }
}

EMSCRIPTEN_KEEPALIVE int vc_write(std::uint8_t const* data, int size) {
    try {
        reader->write(ByteView(data, std::size_t(size)));
        return 0;
    } catch (CardError const&) {
        return -2;
    }
}

EMSCRIPTEN_KEEPALIVE int vc_read(std::uint8_t* out, int max) {
    try {
        Bytes b = reader->read(std::size_t(max), 0);
        std::memcpy(out, b.data(), b.size());
        return int(b.size());
    } catch (CardError const& e) {
        return e.kind() == ErrorKind::timeout ? -1 : -2;
    }
}

EMSCRIPTEN_KEEPALIVE void vc_take_away() { reader->place_card(nullptr); }
EMSCRIPTEN_KEEPALIVE void vc_put_back() {
    card->insert();
    reader->place_card(card.get());
}
EMSCRIPTEN_KEEPALIVE void vc_remove_at_command(int n) { card->remove_at_command(n); }
EMSCRIPTEN_KEEPALIVE void vc_unplug() { reader->unplug(); }
EMSCRIPTEN_KEEPALIVE void vc_request_wtx(int n) { reader->request_wtx(n); }
EMSCRIPTEN_KEEPALIVE int vc_pin_tries() { return card->pin_tries_left(); }
/// How many of the 署名用 EFs (0001, 0002, 001A, 001B) a SELECT asked for: the consent flow must never.
EMSCRIPTEN_KEEPALIVE int vc_signature_files_selected() {
    int n = 0;
    for (std::uint16_t fid : {jpki::ef_sign_certificate, jpki::ef_sign_ca, jpki::ef_sign_key, jpki::ef_sign_password})
        n += int(card->files_selected().count(fid));
    return n;
}
}
