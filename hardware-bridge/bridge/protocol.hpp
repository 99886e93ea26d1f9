// kyotaku-bridge's JSON protocol (docs/bridge.md): one JSON object per WebSocket text message, each request with an
// "id" echoed in its answer. Requests are parsed strictly: unknown ops, wrong types and oversize fields are
// refused naming the field. The PIN is copied into a card::jpki::Pin and wiped from the parsed document.
#pragma once

#include "kyotaku/card/jpki.hpp"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>

namespace kyotaku::bridge {

inline constexpr int protocol_version = 1;
inline constexpr std::size_t max_message_size = 16 * 1024;  ///< larger messages are answered `malformed`
inline constexpr std::size_t max_frame_size = 64 * 1024;    ///< larger ones close the connection (1009)

enum class Op { hello, readers, open, read_certificate, pin_tries, sign, cancel, close };
char const* to_string(Op op);

struct Request {
    std::int64_t id = 0;
    Op op = Op::hello;
    std::string token;                     ///< hello: the pairing token …
    std::string code;                      ///< … or the 6-digit pairing code (one of the two)
    std::string reader;                    ///< open: empty = the first reader with a card
    int wait_ms = 10'000;                  ///< open: how long to wait for a card (0..60000)
    std::optional<card::jpki::Pin> pin;    ///< sign
    card::Bytes challenge;                 ///< sign: the server's challenge (1..1024 bytes)
};

/// Parses one message. Throws card::CardError(malformed) naming the field; `id` is set as soon as the message's
/// id has been read, so that even a refused request is answered with its id. `text` is wiped before returning
/// (it may hold a PIN), whether parsing succeeded or not.
Request parse_request(std::string& text, std::optional<std::int64_t>& id);

std::string ok(std::int64_t id, nlohmann::json fields = nlohmann::json::object());
std::string error(std::optional<std::int64_t> id, card::CardError const& e);

}  // namespace kyotaku::bridge
