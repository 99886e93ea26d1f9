#include "protocol.hpp"

#include "kyotaku/card/native.hpp"

namespace kyotaku::bridge {

using card::CardError;
using card::ErrorKind;
using nlohmann::json;

char const* to_string(Op op) {
    switch (op) {
        case Op::hello: return "hello";
        case Op::readers: return "readers";
        case Op::open: return "open";
        case Op::read_certificate: return "read_certificate";
        case Op::pin_tries: return "pin_tries";
        case Op::sign: return "sign";
        case Op::cancel: return "cancel";
        case Op::close: return "close";
    }
    return "?";
}

namespace {
[[noreturn]] void bad(std::string const& field, std::string const& what) {
    throw CardError(ErrorKind::malformed, Message{"不正なメッセージ", "bad message: \"" + field + "\" " + what});
}

std::string const& string_field(json const& j, char const* name, std::size_t max) {
    auto it = j.find(name);
    if (it == j.end()) bad(name, "is missing");
    if (!it->is_string()) bad(name, "must be a string");
    auto const& s = it->get_ref<std::string const&>();
    if (s.size() > max) bad(name, "is longer than " + std::to_string(max) + " bytes");
    return s;
}

Request parse(json& j, std::optional<std::int64_t>& id_out) {
    if (!j.is_object()) bad("(message)", "must be a JSON object");
    Request r;
    auto id = j.find("id");
    if (id == j.end()) bad("id", "is missing");
    if (!id->is_number_integer()) bad("id", "must be an integer");
    r.id = id->get<std::int64_t>();
    id_out = r.id;
    std::string const& op = string_field(j, "op", 32);
    static constexpr Op ops[] = {Op::hello,     Op::readers, Op::open,   Op::read_certificate,
                                 Op::pin_tries, Op::sign,    Op::cancel, Op::close};
    bool found = false;
    for (Op o : ops)
        if (op == to_string(o)) r.op = o, found = true;
    if (!found) bad("op", "is not one of hello, readers, open, read_certificate, pin_tries, sign, cancel, close");
    for (auto const& [key, value] : j.items()) {
        static constexpr char const* known[] = {"id",     "op",      "token", "code",     "version",
                                                "reader", "wait_ms", "pin",   "challenge"};
        bool ok = false;
        for (char const* k : known) ok = ok || key == k;
        if (!ok) bad(key.size() > 40 ? key.substr(0, 40) : key, "is not a field of the protocol");
        (void)value;
    }
    switch (r.op) {
        case Op::hello: {
            if (j.contains("token") == j.contains("code")) bad("token", "or \"code\" is required (one of the two)");
            if (j.contains("token")) r.token = string_field(j, "token", 256);
            else {
                r.code = string_field(j, "code", 6);
                if (r.code.size() != 6 || r.code.find_first_not_of("0123456789") != std::string::npos)
                    bad("code", "must be 6 digits");
            }
            auto v = j.find("version");
            if (v != j.end() && (!v->is_number_integer() || v->get<std::int64_t>() != protocol_version))
                bad("version", "must be " + std::to_string(protocol_version));
            break;
        }
        case Op::open: {
            if (j.contains("reader")) r.reader = string_field(j, "reader", 512);
            auto w = j.find("wait_ms");
            if (w != j.end()) {
                if (!w->is_number_integer() || w->get<std::int64_t>() < 0 || w->get<std::int64_t>() > 60'000)
                    bad("wait_ms", "must be an integer from 0 to 60000");
                r.wait_ms = int(w->get<std::int64_t>());
            }
            break;
        }
        case Op::sign: {
            auto p = j.find("pin");
            if (p == j.end()) bad("pin", "is missing");
            if (!p->is_string()) bad("pin", "must be a string of 4 digits");
            auto& pin_text = p->get_ref<std::string&>();
            try {
                r.pin.emplace(card::jpki::Pin::parse(pin_text));
            } catch (CardError const&) {
                card::secure_wipe(pin_text.data(), pin_text.size());
                bad("pin", "must be exactly 4 digits");
            }
            card::secure_wipe(pin_text.data(), pin_text.size());
            std::string const& ch = string_field(j, "challenge", 2048);
            r.challenge = card::base64_decode(ch);
            if (r.challenge.empty() || r.challenge.size() > 1024) bad("challenge", "must be 1 to 1024 bytes of base64");
            break;
        }
        default: break;
    }
    return r;
}
}  // namespace

Request parse_request(std::string& text, std::optional<std::int64_t>& id) {
    struct Wipe {
        std::string& s;
        ~Wipe() { card::secure_wipe(s.data(), s.size()); }
    } wipe{text};
    if (text.size() > max_message_size)
        bad("(message)", "is longer than " + std::to_string(max_message_size) + " bytes");
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded()) bad("(message)", "is not valid JSON");
    try {
        return parse(j, id);
    } catch (CardError const& e) {
        if (j.is_object() && j.contains("pin") && j["pin"].is_string()) {
            auto& s = j["pin"].get_ref<std::string&>();
            card::secure_wipe(s.data(), s.size());
        }
        throw;
    }
}

std::string ok(std::int64_t id, json fields) {
    fields["id"] = id;
    fields["ok"] = true;
    return fields.dump();
}

std::string error(std::optional<std::int64_t> id, CardError const& e) {
    // message: both in one line, as before (the page and integrators read it); message_ja and message_en apart.
    json err{{"kind", card::to_string(e.kind())},
             {"message", e.what()},
             {"message_ja", e.message().ja},
             {"message_en", e.message().en}};
    if (e.tries_left() >= 0) err["tries_left"] = e.tries_left();
    if (e.status_word() != 0)
        err["sw"] = card::to_hex(card::Bytes{std::uint8_t(e.status_word() >> 8), std::uint8_t(e.status_word())});
    json out{{"ok", false}, {"error", err}};
    out["id"] = id ? json(*id) : json(nullptr);
    return out.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace kyotaku::bridge
