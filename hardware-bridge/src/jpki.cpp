#include "kyotaku/card/jpki.hpp"

#include <algorithm>

namespace kyotaku::card::jpki {

Pin Pin::parse(std::string_view digits) {
    if (digits.size() != 4 || !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
        throw CardError(ErrorKind::malformed, Message{"暗証番号は数字4桁です", "the PIN must be exactly 4 digits"});
    Pin pin;
    std::copy(digits.begin(), digits.end(), pin.digits_.begin());
    return pin;
}

bool is_valid_sign_password(std::string_view password) {
    return password.size() >= 6 && password.size() <= 16 && std::all_of(password.begin(), password.end(), [](char c) {
               return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
           });
}

Pin::Pin(Pin&& other) noexcept : digits_(other.digits_) { secure_wipe(other.digits_.data(), other.digits_.size()); }

Pin::~Pin() { secure_wipe(digits_.data(), digits_.size()); }

Bytes digest_info_sha256(ByteView digest) {
    if (digest.size() != 32)
        throw CardError(ErrorKind::malformed,
                        Message{"SHA-256 のハッシュ値は32バイトです",
                                "a SHA-256 digest is 32 bytes, got " + std::to_string(digest.size())});
    static constexpr std::uint8_t prefix[] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                              0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
    Bytes out;
    out.reserve(sizeof prefix + 32);
    out.insert(out.end(), std::begin(prefix), std::end(prefix));
    out.insert(out.end(), digest.begin(), digest.end());
    return out;
}

std::size_t der_total_length(ByteView b, std::size_t limit) {
    auto bad = [](std::string const& what) -> std::size_t {
        throw CardError(ErrorKind::malformed,
                        Message{"証明書のDERヘッダが不正です", "bad certificate DER header: " + what});
    };
    if (b.size() < 2) return bad("fewer than 2 bytes");
    if (b[0] != 0x30) return bad("tag " + to_hex(b.first(1)) + " is not a SEQUENCE (30)");
    std::size_t header = 2, content = 0;
    if (b[1] < 0x80) content = b[1];
    else {
        std::size_t const n = b[1] & 0x7F;
        if (n == 0) return bad("indefinite length");
        if (n > 3) return bad("length of " + std::to_string(n) + " bytes");
        if (b.size() < 2 + n) return bad("length bytes cut short");
        for (std::size_t i = 0; i < n; ++i) content = content << 8 | b[2 + i];
        header += n;
    }
    std::size_t const total = header + content;
    if (total > limit) return bad(std::to_string(total) + " bytes, more than " + std::to_string(limit));
    return total;
}

Command select_jpki() { return {0x00, 0xA4, 0x04, 0x0C, Bytes(jpki_aid.begin(), jpki_aid.end()), std::nullopt}; }
Command select_ef(std::uint16_t fid) {
    return {0x00, 0xA4, 0x02, 0x0C, Bytes{std::uint8_t(fid >> 8), std::uint8_t(fid)}, std::nullopt};
}
Command read_binary(std::size_t offset, std::uint32_t ne) {
    return {0x00, 0xB0, std::uint8_t(offset >> 8 & 0x7F), std::uint8_t(offset), {}, ne};
}
Command verify_pin_status() { return {0x00, 0x20, 0x00, 0x80, {}, std::nullopt}; }
Command compute_signature(ByteView digest_info) {
    return {0x80, 0x2A, 0x00, 0x80, Bytes(digest_info.begin(), digest_info.end()), 256u};
}

Response Client::run(Command const& command, std::string_view what) {
    Response r = transmit(*channel_, command);
    check_status(r, what);
    return r;
}

void Client::select_application() {
    run(select_jpki(), "SELECT JPKI");
    selected_ = true;
}

Bytes Client::read_certificate(std::uint16_t fid) {
    if (!selected_) select_application();
    run(select_ef(fid), "SELECT EF " + to_hex(Bytes{std::uint8_t(fid >> 8), std::uint8_t(fid)}));
    Response head = run(read_binary(0, 4), "READ BINARY");
    std::size_t const total = der_total_length(head.data);
    Bytes out = std::move(head.data);
    if (out.size() > total) out.resize(total);
    while (out.size() < total) {
        // Offsets above 7FFF do not fit P1-P2 (bit 8 of P1 selects a short EF); the limit keeps us far below.
        std::uint32_t const want = std::uint32_t(std::min<std::size_t>(256, total - out.size()));
        Response part = run(read_binary(out.size(), want), "READ BINARY");
        if (part.data.empty())
            throw CardError(ErrorKind::card_error,
                            Message{"証明書が途中で終わっています", "the certificate file ends after " +
                                                                        std::to_string(out.size()) + " of " +
                                                                        std::to_string(total) + " bytes"});
        out.insert(out.end(), part.data.begin(),
                   part.data.begin() + long(std::min(part.data.size(), total - out.size())));
    }
    return out;
}

int Client::pin_tries_left() {
    if (!selected_) select_application();
    run(select_ef(ef_auth_pin), "SELECT EF 0018");
    Response r = transmit(*channel_, verify_pin_status());
    if ((r.sw & 0xFFF0) == 0x63C0) return r.sw & 0x0F;
    if (r.sw == 0x6983 || r.sw == 0x6984) return 0;
    check_status(r, "VERIFY (tries)");
    return -1;  // 9000: already verified in this session; the card does not say how many remain
}

void Client::verify_pin(Pin const& pin) {
    if (!selected_) select_application();
    run(select_ef(ef_auth_pin), "SELECT EF 0018");
    Command cmd{0x00, 0x20, 0x00, 0x80, Bytes(pin.bytes().begin(), pin.bytes().end()), std::nullopt};
    Bytes apdu = encode(cmd);
    secure_wipe(cmd.data.data(), cmd.data.size());
    Bytes raw;
    try {
        raw = channel_->transmit(apdu);
    } catch (...) {
        secure_wipe(apdu.data(), apdu.size());
        throw;
    }
    secure_wipe(apdu.data(), apdu.size());
    check_status(parse_response(raw), "VERIFY");
}

Bytes Client::sign_digest_info(ByteView digest_info) {
    if (!selected_) select_application();
    run(select_ef(ef_auth_key), "SELECT EF 0017");
    Response r = run(compute_signature(digest_info), "COMPUTE DIGITAL SIGNATURE");
    if (r.data.empty())
        throw CardError(ErrorKind::card_error, Message{"署名が返ってきません", "the card returned no signature"});
    return std::move(r.data);
}

Signed sign_challenge(Channel& channel, Pin const& pin, ByteView challenge_sha256) {
    Bytes const digest_info = digest_info_sha256(challenge_sha256);
    Client client(channel);
    client.select_application();
    Signed out;
    out.certificate = client.read_certificate();
    client.verify_pin(pin);
    out.signature = client.sign_digest_info(digest_info);
    return out;
}

Bytes read_certificate_only(Channel& channel) {
    Client client(channel);
    client.select_application();
    return client.read_certificate();
}

}  // namespace kyotaku::card::jpki
