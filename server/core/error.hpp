// One error convention for the whole server: a use case (or the storage below it) throws `Error`, with a kind,
// the field it is about and its message (Japanese and English apart: kyotaku::Message); only the HTTP layer turns
// the kind into a status, its own 404/405/413/500 included. Nobody splits a string to find the language.
#pragma once

#include "kyotaku/message.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace kyotaku::server {

struct Error : std::exception {
    enum class Kind {
        invalid,             // 400: the request names a bad value or field
        forbidden,           // 403: the caller may not do this
        not_found,           // 404
        method_not_allowed,  // 405: the path exists, not with this method
        conflict,            // 409: the state does not allow it (already used, still running …)
        gone,                // 410: it existed and is no longer kept
        too_large,           // 413
        unsupported,         // 415: wrong content type
        unprocessable,       // 422: well-formed, but it contradicts what is stored (an Idempotency-Key reused)
        too_many,            // 429: too many attempts or requests of this kind for now (wrong codes, a rate)
        internal,            // 500: the server's own fault (logged with its cause; the caller learns no detail)
        unavailable,         // 503: the server is not configured for it
    };
    Kind kind;
    std::string field;  // the request field (or file element) the error is about; empty for the whole request
    Message message;    // Japanese (staff, patients) and English (logs, the API), apart
    int retry_after = 0;  // seconds; when set, the answer's Retry-After (429: when the budget has room again)

    Error(Kind kind, std::string field, Message message)
        : kind(kind), field(std::move(field)), message(std::move(message)), text_(this->message.text()) {}
    Error(Kind kind, std::string field, std::string ja, std::string en)
        : Error(kind, std::move(field), Message{std::move(ja), std::move(en)}) {}
    // "ja / en", for logs and for the files whose layouts carry one message.
    char const* what() const noexcept override { return text_.c_str(); }
    // The message with the field it names, for a file's per-row result: "ja / en (field)".
    std::string with_field() const { return text_ + (field.empty() ? "" : " (" + field + ")"); }

private:
    std::string text_;
};

inline Error invalid(std::string field, std::string ja, std::string en) {
    return {Error::Kind::invalid, std::move(field), std::move(ja), std::move(en)};
}
inline Error forbidden(std::string ja, std::string en) {
    return {Error::Kind::forbidden, "", std::move(ja), std::move(en)};
}
inline Error not_found(std::string field, std::string ja, std::string en) {
    return {Error::Kind::not_found, std::move(field), std::move(ja), std::move(en)};
}
// 429: a budget is spent; `seconds` until it has room again (Retry-After), at least 1.
inline Error too_many(std::string field, std::string ja, std::string en, long long seconds) {
    Error e{Error::Kind::too_many, std::move(field), std::move(ja), std::move(en)};
    e.retry_after = int(std::max(1LL, seconds));
    return e;
}
inline Error conflict(std::string field, std::string ja, std::string en) {
    return {Error::Kind::conflict, std::move(field), std::move(ja), std::move(en)};
}

}  // namespace kyotaku::server
