#include "kyotaku/card/virtual_card.hpp"

#include "kyotaku/card/jpki.hpp"

#include <algorithm>

namespace kyotaku::card {

namespace {
Response sw(std::uint16_t status) { return {{}, status}; }
}  // namespace

VirtualCard::VirtualCard(Bytes certificate_der, Bytes ca_certificate_der, std::unique_ptr<CardKey> key,
                         VirtualCardOptions options)
    : certificate_(std::move(certificate_der)), ca_certificate_(std::move(ca_certificate_der)), key_(std::move(key)),
      options_(std::move(options)), tries_left_(options_.pin_tries) {
    if (options_.pin.size() != 4 || !std::all_of(options_.pin.begin(), options_.pin.end(), [](char c) { return c >= '0' && c <= '9'; }))
        throw CardError(ErrorKind::malformed, "仮想カードの暗証番号は数字4桁です / the virtual card's PIN must be 4 digits");
    if (options_.max_response == 0 || options_.max_response > 256) options_.max_response = 256;
    // TS, T0 (TD1 follows, 10 historical bytes), TD1 (TD2 follows, T=0), TD2 (T=1), historical bytes, TCK.
    atr_ = {0x3B, 0x8A, 0x80, 0x01, 'K', 'Y', 'O', 'T', 'A', 'K', 'U', '-', 'V', 'C'};
    std::uint8_t tck = 0;
    for (std::size_t i = 1; i < atr_.size(); ++i) tck ^= atr_[i];
    atr_.push_back(tck);
}

void VirtualCard::reset() {
    app_ = App::none;
    ef_ = 0;
    pin_verified_ = false;
    pending_.clear();
}

bool VirtualCard::take_removal_event() {
    bool const e = removal_event_;
    removal_event_ = false;
    return e;
}

Bytes VirtualCard::process(ByteView apdu) {
    ++commands_;
    if (remove_countdown_ > 0 && --remove_countdown_ == 0) {
        remove();
        removal_event_ = true;
        return {};
    }
    if (!present_) return {};
    Command c;
    try {
        c = parse_command(apdu);
    } catch (CardError const&) {
        return encode(sw(0x6700));
    }
    Response r = handle(c);
    if (c.ins != 0xC0 && (r.sw >> 8) != 0x61) pending_.clear();
    return encode(r);
}

Response VirtualCard::handle(Command const& c) {
    if (c.cla != 0x00 && !(c.cla == 0x80 && c.ins == 0x2A)) return sw(0x6E00);
    switch (c.ins) {
        case 0xA4: return select(c);
        case 0xB0: return read_binary(c);
        case 0x20: return verify(c);
        case 0x2A: return sign(c);
        case 0xC0: return get_response(c);
        default: return sw(0x6D00);
    }
}

Response VirtualCard::select(Command const& c) {
    if (c.p1 == 0x04) {  // by DF name (AID)
        if (c.p2 != 0x0C && c.p2 != 0x00) return sw(0x6A86);
        Bytes const jpki(jpki::jpki_aid.begin(), jpki::jpki_aid.end());
        Bytes const kenmen(jpki::kenmen_aid.begin(), jpki::kenmen_aid.end());
        App next = c.data == jpki ? App::jpki : c.data == kenmen ? App::kenmen : App::none;
        if (next == App::none) return sw(0x6A82);
        if (next != app_) pin_verified_ = false;  // the security state belongs to the DF
        app_ = next;
        ef_ = 0;
        return sw(0x9000);
    }
    if (c.p1 == 0x02) {  // EF under the current DF
        if (c.p2 != 0x0C && c.p2 != 0x00) return sw(0x6A86);
        if (c.data.size() != 2) return sw(0x6700);
        if (app_ != App::jpki) return sw(0x6A82);
        std::uint16_t const fid = std::uint16_t(c.data[0] << 8 | c.data[1]);
        if (fid != jpki::ef_auth_certificate && fid != jpki::ef_auth_ca && fid != jpki::ef_auth_key && fid != jpki::ef_auth_pin)
            return sw(0x6A82);
        ef_ = fid;
        return sw(0x9000);
    }
    return sw(0x6A86);
}

Response VirtualCard::answer(Bytes data, std::uint32_t ne) {
    std::size_t const limit = std::min<std::size_t>(ne, options_.max_response);
    if (data.size() <= limit) return {std::move(data), 0x9000};
    // Chain: the first part now, the rest on GET RESPONSE.
    pending_.assign(data.begin() + long(limit), data.end());
    data.resize(limit);
    std::size_t const rest = pending_.size();
    return {std::move(data), std::uint16_t(0x6100 | (rest >= 256 ? 0 : rest))};
}

Response VirtualCard::read_binary(Command const& c) {
    if (!c.data.empty()) return sw(0x6700);
    if (c.p1 & 0x80) return sw(0x6A86);  // short-EF addressing is not offered
    Bytes const* file = nullptr;
    if (ef_ == jpki::ef_auth_certificate) file = &certificate_;
    else if (ef_ == jpki::ef_auth_ca) file = &ca_certificate_;
    else if (ef_ == jpki::ef_auth_key || ef_ == jpki::ef_auth_pin) return sw(0x6981);
    else return sw(0x6986);
    std::size_t const offset = std::size_t(c.p1) << 8 | c.p2;
    if (offset > file->size()) return sw(0x6B00);
    std::size_t const ne = c.ne.value_or(256);
    std::size_t const n = std::min(ne, file->size() - offset);
    Bytes data(file->begin() + long(offset), file->begin() + long(offset + n));
    if (n < ne && c.ne) {
        Response r = answer(std::move(data), std::uint32_t(ne));
        if (r.sw == 0x9000) r.sw = 0x6282;  // end of file reached before Ne bytes
        return r;
    }
    return answer(std::move(data), std::uint32_t(ne));
}

Response VirtualCard::verify(Command const& c) {
    if (c.p1 != 0x00 || c.p2 != 0x80) return sw(0x6A86);
    if (app_ != App::jpki || ef_ != jpki::ef_auth_pin) return sw(0x6986);
    if (tries_left_ <= 0) return sw(0x6984);
    if (c.data.empty()) {
        if (c.ne) return sw(0x6700);
        return sw(pin_verified_ ? 0x9000 : std::uint16_t(0x63C0 | tries_left_));
    }
    if (c.data.size() != 4) return sw(0x6700);
    bool const match = std::equal(c.data.begin(), c.data.end(), options_.pin.begin(), options_.pin.end(),
                                  [](std::uint8_t a, char b) { return a == std::uint8_t(b); });
    if (match) {
        tries_left_ = options_.pin_tries;
        pin_verified_ = true;
        return sw(0x9000);
    }
    pin_verified_ = false;
    --tries_left_;
    return sw(std::uint16_t(0x63C0 | tries_left_));
}

Response VirtualCard::sign(Command const& c) {
    if (c.cla != 0x80 || c.p1 != 0x00 || c.p2 != 0x80) return sw(0x6A86);
    if (app_ != App::jpki || ef_ != jpki::ef_auth_key) return sw(0x6986);
    if (tries_left_ <= 0) return sw(0x6984);
    if (!pin_verified_) return sw(0x6982);
    if (c.data.empty() || c.data.size() + 11 > key_->modulus_bytes()) return sw(0x6700);
    Bytes signature;
    try {
        signature = key_->sign_pkcs1(c.data);
    } catch (...) {
        return sw(0x6F00);
    }
    return answer(std::move(signature), c.ne.value_or(256));
}

Response VirtualCard::get_response(Command const& c) {
    if (c.p1 != 0 || c.p2 != 0 || !c.data.empty()) return sw(0x6A86);
    if (pending_.empty()) return sw(0x6985);
    Bytes data = std::move(pending_);
    pending_.clear();
    return answer(std::move(data), c.ne.value_or(256));
}

Bytes InProcessChannel::transmit(ByteView apdu) {
    if (!card_.present()) throw CardError(ErrorKind::no_card, "カードがありません / no card in the reader");
    Bytes r = card_.process(apdu);
    if (card_.take_removal_event() || r.empty())
        throw CardError(ErrorKind::card_removed, "カードが取り外されました / the card was removed");
    return r;
}

}  // namespace kyotaku::card
