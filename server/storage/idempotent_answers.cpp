#include "storage/idempotent_answers.hpp"

#include "core/card_signature.hpp"

namespace kyotaku::server {

std::optional<StoredAnswer> IdempotentAnswers::find(std::string const& facility, std::string const& key) {
    auto rows = db_.query("SELECT request_hash, route, status, content_type, body_base64 FROM idempotent_responses "
                          "WHERE facility_code = $1 AND idempotency_key = $2",
                          {facility, key});
    if (rows.empty()) return std::nullopt;
    auto bytes = base64_decode(as_text(rows[0][4]));
    return StoredAnswer{as_text(rows[0][0]), as_text(rows[0][1]), int(as_int(rows[0][2])), as_text(rows[0][3]),
                        bytes ? std::string(bytes->begin(), bytes->end()) : std::string()};
}

void IdempotentAnswers::keep(std::string const& facility, std::string const& key, StoredAnswer const& a,
                             std::string const& at, std::string const& expired_before) {
    db_.query("DELETE FROM idempotent_responses WHERE created_at < $1", {expired_before});
    db_.query("INSERT INTO idempotent_responses (facility_code, idempotency_key, request_hash, route, status, "
              "content_type, body_base64, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
              {facility, key, a.request_hash, a.route, std::int64_t(a.status), a.content_type,
               base64_encode(std::vector<unsigned char>(a.body.begin(), a.body.end())), at});
}

}  // namespace kyotaku::server
