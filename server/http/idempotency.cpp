#include "http/idempotency.hpp"

#include "core/card_signature.hpp"
#include "ops/observability.hpp"

#include <algorithm>


namespace kyotaku::server {

bool idempotent_route(std::string const& method, std::string const& target) {
    std::string const path = target.substr(0, target.find('?'));
    std::string const prefix = "/api/v1/oqs/";
    return method == "POST" && path.rfind(prefix, 0) == 0 && path.size() > 5 && path.compare(path.size() - 5, 5, "01req") == 0;
}

namespace {
HttpResult error(int status, std::string const& message) {
    return HttpResult{status, "application/json; charset=utf-8", json{{"error", message}, {"field", "Idempotency-Key"}}.dump()};
}

}  // namespace

HttpResult answer_once(Database& db, Caller const& caller, std::string const& key, std::string const& body,
                       std::function<HttpResult()> const& run) {
    bool const plain = key.size() >= 16 && key.size() <= 128 &&
                       std::all_of(key.begin(), key.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'; });
    if (!plain) return error(400, "Idempotency-Key は 16〜128 文字の英数字と - _ です / the key must be 16 to 128 letters, digits, - or _");
    if (caller.kind != Caller::Kind::facility) return run();  // the route refuses anyone else anyway
    std::string const hash = sha256_hex(body);
    return transaction(db, [&] {
        auto stored = db.query(
            "SELECT request_hash, route, status, content_type, body_base64 FROM idempotent_responses WHERE facility_code = $1 AND idempotency_key = $2",
            {caller.facility_code, key});
        if (!stored.empty()) {
            if (as_text(stored[0][0]) != hash)
                return error(422, "この Idempotency-Key は別の要求に使われています / this Idempotency-Key was used for another request");
            auto bytes = base64_decode(as_text(stored[0][4]));
            HttpResult replay{int(as_int(stored[0][2])), as_text(stored[0][3]), bytes ? std::string(bytes->begin(), bytes->end()) : std::string()};
            replay.headers.emplace_back("Idempotent-Replayed", "true");
            replay.route = as_text(stored[0][1]);
            return replay;
        }
        HttpResult r = run();
        if (r.status >= 200 && r.status < 300 && !r.stream) {
            db.query("DELETE FROM idempotent_responses WHERE created_at < $1", {iso_time_ago(std::chrono::hours(24 * 7))});
            db.query("INSERT INTO idempotent_responses (facility_code, idempotency_key, request_hash, route, status, content_type, body_base64, created_at) "
                     "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                     {caller.facility_code, key, hash, r.route, std::int64_t(r.status), r.content_type,
                      base64_encode(std::vector<unsigned char>(r.body.begin(), r.body.end())), iso_timestamp(std::chrono::system_clock::now())});
        }
        return r;
    });
}

}  // namespace kyotaku::server
