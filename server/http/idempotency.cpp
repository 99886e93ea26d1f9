#include "http/idempotency.hpp"

#include "core/card_signature.hpp"

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

constexpr std::chrono::hours kept_for{24 * 7};
}  // namespace

HttpResult answer_once(IdempotentAnswers& store, Clock const& clock, Caller const& caller, std::string const& key,
                       std::string const& body, std::function<HttpResult()> const& run) {
    bool const plain = key.size() >= 16 && key.size() <= 128 &&
                       std::all_of(key.begin(), key.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'; });
    if (!plain) return error(400, "Idempotency-Key は 16〜128 文字の英数字と - _ です / the key must be 16 to 128 letters, digits, - or _");
    if (caller.kind != Caller::Kind::facility) return run();  // the route refuses anyone else anyway
    std::string const hash = sha256_hex(body);
    return store.atomically([&] {
        if (auto stored = store.find(caller.facility_code, key)) {
            if (stored->request_hash != hash)
                return error(422, "この Idempotency-Key は別の要求に使われています / this Idempotency-Key was used for another request");
            HttpResult replay{stored->status, stored->content_type, std::move(stored->body)};
            replay.headers.emplace_back("Idempotent-Replayed", "true");
            replay.route = stored->route;
            return replay;
        }
        HttpResult r = run();
        if (r.status >= 200 && r.status < 300 && !r.stream)
            store.keep(caller.facility_code, key, StoredAnswer{hash, r.route, r.status, r.content_type, r.body},
                       clock.timestamp(), iso_timestamp(clock.now() - kept_for));
        return r;
    });
}

}  // namespace kyotaku::server
