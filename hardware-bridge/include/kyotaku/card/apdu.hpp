// ISO/IEC 7816-4 command and response APDUs: encoding (short and extended length), strict parsing of bytes that
// arrive from a card, a reader or a browser (every one of them hostile), status words mapped to clear errors, and
// GET RESPONSE (61xx) / wrong-Le (6Cxx) handling over any transport.
#pragma once

#include "kyotaku/message.hpp"

#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace kyotaku::card {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<std::uint8_t const>;

/// What went wrong, so that a page or an integrator can pick the screen to show without parsing text.
enum class ErrorKind {
    malformed,           ///< bytes that are not a valid APDU / frame / message
    transport,           ///< the reader or the link to it failed (unplugged, socket closed, timeout)
    no_reader,           ///< no reader is connected
    no_card,             ///< no card in the reader
    card_removed,        ///< the card was taken away during a session
    timeout,             ///< nothing came back in time
    security_status,     ///< 6982: the PIN was not verified first
    wrong_pin,           ///< 63Cx: the PIN was wrong, `tries_left` says how many tries remain
    locked,              ///< 6983 / 6984: the PIN is locked (too many wrong tries)
    not_found,           ///< 6A82: application or file not on the card
    wrong_length,        ///< 6700 / 6Cxx without a retry
    wrong_parameters,    ///< 6A86 / 6B00 / 6A80
    not_supported,       ///< 6D00 / 6E00: instruction or class not supported
    card_error,          ///< any other status word
    busy,                ///< (bridge) another session holds the card
    unauthorized,        ///< (bridge) pairing token or origin refused
};

char const* to_string(ErrorKind kind);

/// The engine's message type: Japanese and English apart (kyotaku/message.hpp), here too.
using Message = kyotaku::Message;

/// An error with its kind, a message in Japanese and English kept apart, and (for wrong_pin) the tries left.
/// what() is the message's one-line text ("日本語 / English", for logs and consoles); message() is the two apart, for
/// the bridge's answers (message_ja, message_en) and a page that shows the Japanese.
class CardError : public std::runtime_error {
public:
    CardError(ErrorKind kind, Message message, int tries_left = -1, std::uint16_t sw = 0)
        : std::runtime_error(message.text()), message_(std::move(message)), kind_(kind), tries_left_(tries_left),
          sw_(sw) {}
    /// A developer's detail with no Japanese of its own (a test's channel, a reader's frame): English only; a page
    /// shows the Japanese of its kind.
    CardError(ErrorKind kind, std::string const& english, int tries_left = -1, std::uint16_t sw = 0)
        : CardError(kind, Message{"", english}, tries_left, sw) {}
    CardError(ErrorKind kind, char const* english, int tries_left = -1, std::uint16_t sw = 0)
        : CardError(kind, std::string(english), tries_left, sw) {}
    ErrorKind kind() const { return kind_; }
    Message const& message() const { return message_; }
    int tries_left() const { return tries_left_; }
    std::uint16_t status_word() const { return sw_; }

private:
    Message message_;
    ErrorKind kind_;
    int tries_left_;
    std::uint16_t sw_;
};

/// A command APDU. `ne` is the number of response bytes expected (Ne), absent when no data is expected;
/// 256 (short) or 65536 (extended) mean "as many as there are".
struct Command {
    std::uint8_t cla = 0, ins = 0, p1 = 0, p2 = 0;
    Bytes data;
    std::optional<std::uint32_t> ne;

    bool operator==(Command const&) const = default;
};

/// Encodes a command: short form when Nc ≤ 255 and Ne ≤ 256, extended form otherwise (ISO 7816-3 12.1.3).
/// Throws CardError(malformed) when Nc > 65535 or Ne > 65536.
Bytes encode(Command const& command);

/// Parses a command APDU (cases 1, 2S, 3S, 4S, 2E, 3E, 4E). Throws CardError(malformed) naming the byte that
/// breaks the encoding.
Command parse_command(ByteView bytes);

/// A response APDU: data and the status word SW1-SW2.
struct Response {
    Bytes data;
    std::uint16_t sw = 0;

    std::uint8_t sw1() const { return std::uint8_t(sw >> 8); }
    std::uint8_t sw2() const { return std::uint8_t(sw & 0xFF); }
    bool ok() const { return sw == 0x9000; }
};

/// Parses a response APDU (at least the two status bytes). Throws CardError(malformed).
Response parse_response(ByteView bytes);
Bytes encode(Response const& response);

/// The meaning of a status word, in Japanese and English, each after the code ({"6982: 暗証番号が確認されていません",
/// "6982: security status not satisfied"}).
Message describe_status(std::uint16_t sw);

/// Throws the CardError a status word stands for, unless it is 9000 (or 6282 "end of file", which READ BINARY
/// callers treat as success). `what` names the command for the message ("SELECT 000A").
void check_status(Response const& response, std::string_view what);

/// Anything that carries APDUs to a card: the in-process virtual card, PC/SC, the bridge, a reader over WebUSB.
/// `transmit` sends one command APDU and returns the raw response APDU, or throws CardError (transport,
/// card_removed, timeout …).
class Channel {
public:
    virtual ~Channel() = default;
    virtual Bytes transmit(ByteView command_apdu) = 0;
};

/// Sends a command and follows the card's lead: 61xx → GET RESPONSE until all data is in (bounded), 6Cxx → the
/// same command once more with Le = xx. The returned response carries the final status word.
Response transmit(Channel& channel, Command const& command);

/// Upper-case hex with no separators ("00A4040C"), and its inverse (spaces allowed; throws CardError(malformed)).
std::string to_hex(ByteView bytes);
Bytes from_hex(std::string_view text);

/// Overwrites a buffer in a way the optimiser may not remove (for PIN buffers).
void secure_wipe(void* data, std::size_t size);

}  // namespace kyotaku::card
