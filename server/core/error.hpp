// One error convention for the whole server: a use case (or the storage below it) throws `Error`, with a kind,
// the field it is about and the Japanese and English texts as separate fields; only the HTTP layer turns the
// kind into a status. Nobody splits a string to find the language.
#pragma once

#include <stdexcept>
#include <string>

namespace kyotaku::server {

struct Error : std::exception {
    enum class Kind {
        invalid,       // 400: the request names a bad value or field
        forbidden,     // 403: the caller may not do this
        not_found,     // 404
        conflict,      // 409: the state does not allow it (already used, still running …)
        gone,          // 410: it existed and is no longer kept
        too_large,     // 413
        too_many,      // 429: too many attempts or requests of this kind for now (a hand-off's wrong codes, a rate bound)
        unsupported,   // 415: wrong content type
        unavailable,   // 503: the server is not configured for it
    };
    Kind kind;
    std::string field;  // the request field (or file element) the error is about; empty for the whole request
    std::string ja, en;

    Error(Kind kind, std::string field, std::string ja, std::string en)
        : kind(kind), field(std::move(field)), ja(std::move(ja)), en(std::move(en)), text_(this->ja + " / " + this->en) {}
    // "ja / en", for logs and for the files whose layouts carry one message.
    char const* what() const noexcept override { return text_.c_str(); }
    // The message with the field it names, for a file's per-row result: "ja / en (field)".
    std::string with_field() const { return text_ + (field.empty() ? "" : " (" + field + ")"); }

private:
    std::string text_;
};

inline Error invalid(std::string field, std::string ja, std::string en) { return {Error::Kind::invalid, std::move(field), std::move(ja), std::move(en)}; }
inline Error forbidden(std::string ja, std::string en) { return {Error::Kind::forbidden, "", std::move(ja), std::move(en)}; }
inline Error not_found(std::string field, std::string ja, std::string en) { return {Error::Kind::not_found, std::move(field), std::move(ja), std::move(en)}; }
inline Error conflict(std::string field, std::string ja, std::string en) { return {Error::Kind::conflict, std::move(field), std::move(ja), std::move(en)}; }

}  // namespace kyotaku::server
