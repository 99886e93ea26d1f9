#include "kyotaku/card/virtual_card.hpp"

#include "kyotaku/card/jpki.hpp"

#include <algorithm>

namespace kyotaku::card {

namespace {
Response sw(std::uint16_t status) { return {{}, status}; }

bool all_digits(std::string const& s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}
}  // namespace

VirtualCard::VirtualCard(JpkiKeySide authentication, JpkiKeySide signature, VirtualCardOptions options)
    : authentication_(std::move(authentication)), signature_(std::move(signature)), options_(std::move(options)) {
    if (options_.pin.size() != 4 || !all_digits(options_.pin))
        throw CardError(ErrorKind::malformed,
                        Message{"仮想カードの暗証番号は数字4桁です", "the virtual card's PIN must be 4 digits"});
    if (!jpki::is_valid_sign_password(options_.sign_password))
        throw CardError(ErrorKind::malformed,
                        Message{"仮想カードの署名用パスワードは英大文字と数字の6〜16文字です",
                                "the virtual card's signature password must be 6-16 upper-case letters and digits"});
    for (int tries : {options_.pin_tries, options_.sign_password_tries})
        if (tries < 1 || tries > 15)
            throw CardError(ErrorKind::malformed,
                            Message{"試行回数は1〜15回です",
                                    "tries must be 1 to 15 (the count is one hex digit of 63Cx)"});
    if (!authentication_.key)
        throw CardError(ErrorKind::malformed, Message{"利用者証明用の鍵がありません", "no user-authentication key"});
    if (options_.max_response == 0 || options_.max_response > 256) options_.max_response = 256;
    auth_pin_ = {options_.pin, options_.pin_tries, options_.pin_tries};
    sign_password_ = {options_.sign_password, options_.sign_password_tries, options_.sign_password_tries};
    // EF 0006: the token name, space-padded to 32 bytes.
    token_.assign(jpki::my_number_card_token.begin(), jpki::my_number_card_token.end());
    token_.resize(32, ' ');
    // TS, T0 (TD1 follows, 10 historical bytes), TD1 (TD2 follows, T=0), TD2 (T=1), historical bytes, TCK.
    atr_ = {0x3B, 0x8A, 0x80, 0x01, 'K', 'Y', 'O', 'T', 'A', 'K', 'U', '-', 'V', 'C'};
    std::uint8_t tck = 0;
    for (std::size_t i = 1; i < atr_.size(); ++i) tck ^= atr_[i];
    atr_.push_back(tck);
}

VirtualCard::VirtualCard(Bytes certificate_der, Bytes ca_certificate_der, std::unique_ptr<CardKey> key,
                         VirtualCardOptions options)
    : VirtualCard(JpkiKeySide{std::move(certificate_der), std::move(ca_certificate_der), std::move(key)}, JpkiKeySide{},
                  std::move(options)) {}

void VirtualCard::reset() {
    app_ = App::none;
    ef_ = 0;
    auth_pin_.verified = false;
    sign_password_.verified = false;
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

bool VirtualCard::has_ef(std::uint16_t fid) const {
    switch (fid) {
        case jpki::ef_token:
        case jpki::ef_auth_certificate:
        case jpki::ef_auth_ca:
        case jpki::ef_auth_key:
        case jpki::ef_auth_pin: return true;
        case jpki::ef_sign_certificate:
        case jpki::ef_sign_ca:
        case jpki::ef_sign_key:
        case jpki::ef_sign_password: return has_signature_side();
        default: return false;
    }
}

Response VirtualCard::select(Command const& c) {
    if (c.p1 == 0x04) {  // by DF name (AID)
        if (c.p2 != 0x0C && c.p2 != 0x00) return sw(0x6A86);
        Bytes const jpki(jpki::jpki_aid.begin(), jpki::jpki_aid.end());
        Bytes const kenmen(jpki::kenmen_aid.begin(), jpki::kenmen_aid.end());
        App next = c.data == jpki ? App::jpki : c.data == kenmen ? App::kenmen : App::none;
        if (next == App::none) return sw(0x6A82);
        if (next != app_) auth_pin_.verified = sign_password_.verified = false;  // the security state belongs to the DF
        app_ = next;
        ef_ = 0;
        return sw(0x9000);
    }
    if (c.p1 == 0x02) {  // EF under the current DF
        if (c.p2 != 0x0C && c.p2 != 0x00) return sw(0x6A86);
        if (c.data.size() != 2) return sw(0x6700);
        std::uint16_t const fid = std::uint16_t(c.data[0] << 8 | c.data[1]);
        files_selected_.insert(fid);
        if (app_ != App::jpki || !has_ef(fid)) return sw(0x6A82);
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
    switch (ef_) {
        case jpki::ef_token: file = &token_; break;
        case jpki::ef_auth_certificate: file = &authentication_.certificate; break;
        case jpki::ef_auth_ca: file = &authentication_.ca_certificate; break;
        case jpki::ef_sign_ca: file = &signature_.ca_certificate; break;
        case jpki::ef_sign_certificate:
            // The 署名用電子証明書 carries the 4 basic facts: a real card shows it only after the password.
            if (!sign_password_.verified) return sw(0x6982);
            file = &signature_.certificate;
            break;
        case jpki::ef_auth_key:
        case jpki::ef_auth_pin:
        case jpki::ef_sign_key:
        case jpki::ef_sign_password: return sw(0x6981);
        default: return sw(0x6986);
    }
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

VirtualCard::Secret* VirtualCard::secret_of_current_ef() {
    if (app_ != App::jpki) return nullptr;
    if (ef_ == jpki::ef_auth_pin || ef_ == jpki::ef_auth_key) return &auth_pin_;
    if (ef_ == jpki::ef_sign_password || ef_ == jpki::ef_sign_key) return &sign_password_;
    return nullptr;
}

Response VirtualCard::verify(Command const& c) {
    if (c.p1 != 0x00 || c.p2 != 0x80) return sw(0x6A86);
    if (ef_ != jpki::ef_auth_pin && ef_ != jpki::ef_sign_password) return sw(0x6986);
    Secret& s = *secret_of_current_ef();
    if (c.data.empty()) {
        if (c.ne) return sw(0x6700);
        // A real card answers the count even when the secret is verified (or locked: 63C0); ISO 7816-4 would
        // allow 9000 there, OpenSC's JPKI driver refuses anything but 63xx (docs/card.md).
        return sw(std::uint16_t(0x63C0 | s.tries_left));
    }
    if (s.tries_left <= 0) return sw(0x6984);
    bool const is_pin = ef_ == jpki::ef_auth_pin;
    if (is_pin ? c.data.size() != 4 : (c.data.size() < 6 || c.data.size() > 16)) return sw(0x6700);
    bool const match = std::equal(c.data.begin(), c.data.end(), s.value.begin(), s.value.end(),
                                  [](std::uint8_t a, char b) { return a == std::uint8_t(b); });
    if (match) {
        s.tries_left = s.max_tries;
        s.verified = true;
        return sw(0x9000);
    }
    s.verified = false;
    --s.tries_left;
    return sw(std::uint16_t(0x63C0 | s.tries_left));
}

Response VirtualCard::sign(Command const& c) {
    if (c.cla != 0x80 || c.p1 != 0x00 || c.p2 != 0x80) return sw(0x6A86);
    if (ef_ != jpki::ef_auth_key && ef_ != jpki::ef_sign_key) return sw(0x6986);
    Secret const& s = *secret_of_current_ef();
    CardKey& key = ef_ == jpki::ef_auth_key ? *authentication_.key : *signature_.key;
    if (s.tries_left <= 0) return sw(0x6984);
    if (!s.verified) return sw(0x6982);
    if (c.data.empty() || c.data.size() + 11 > key.modulus_bytes()) return sw(0x6700);
    Bytes signature;
    try {
        signature = key.sign_pkcs1(c.data);
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
    if (!card_.present()) throw CardError(ErrorKind::no_card, Message{"カードがありません", "no card in the reader"});
    Bytes r = card_.process(apdu);
    if (card_.take_removal_event() || r.empty())
        throw CardError(ErrorKind::card_removed, Message{"カードが取り外されました", "the card was removed"});
    return r;
}

}  // namespace kyotaku::card
