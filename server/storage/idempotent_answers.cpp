#include "storage/idempotent_answers.hpp"

#include "core/card_signature.hpp"

namespace kyotaku::server {

std::optional<StoredAnswer> IdempotentAnswers::claim(std::string const& facility, std::string const& route,
                                                     std::string const& key, std::string const& request_hash,
                                                     std::string const& at) {
    if (!db_.query("INSERT INTO idempotent_answers (facility_code, route, idempotency_key, request_hash, status, "
                   "content_type, body_base64, created_at) "
                   "VALUES ($1, $2, $3, $4, 0, '', '', $5) ON CONFLICT (facility_code, route, idempotency_key) DO "
                   "NOTHING RETURNING status",
                   {facility, route, key, request_hash, at})
             .empty())
        return std::nullopt;
    auto rows = db_.query("SELECT request_hash, route, status, content_type, body_base64 FROM idempotent_answers "
                          "WHERE facility_code = $1 AND route = $2 AND idempotency_key = $3",
                          {facility, route, key});
    if (rows.empty())
        throw TransientDatabaseError(
            "the Idempotency-Key's answer went while it was read: the request may be sent again");
    auto bytes = base64_decode(as_text(rows[0][4]));
    return StoredAnswer{as_text(rows[0][0]), as_text(rows[0][1]), int(as_int(rows[0][2])), as_text(rows[0][3]),
                        bytes ? std::string(bytes->begin(), bytes->end()) : std::string()};
}

void IdempotentAnswers::keep(std::string const& facility, std::string const& route, std::string const& key,
                             StoredAnswer const& a, std::string const& expired_before) {
    db_.query("DELETE FROM idempotent_answers WHERE created_at < $1", {expired_before});
    db_.query("UPDATE idempotent_answers SET status = $4, content_type = $5, body_base64 = $6 WHERE facility_code = $1 "
              "AND route = $2 AND idempotency_key = $3",
              {facility, route, key, std::int64_t(a.status), a.content_type,
               base64_encode(std::vector<unsigned char>(a.body.begin(), a.body.end()))});
}

void IdempotentAnswers::release(std::string const& facility, std::string const& route, std::string const& key) {
    db_.query("DELETE FROM idempotent_answers WHERE facility_code = $1 AND route = $2 AND idempotency_key = $3",
              {facility, route, key});
}

}  // namespace kyotaku::server
