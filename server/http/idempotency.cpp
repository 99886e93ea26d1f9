#include "http/idempotency.hpp"

#include "core/card_signature.hpp"
#include "http/json_codec.hpp"

#include <algorithm>

namespace kyotaku::server {

bool idempotent_route(std::string const& method, std::string const& target) {
    std::string const path = target.substr(0, target.find('?'));
    std::string const prefix = "/api/v1/oqs/";
    return method == "POST" && path.rfind(prefix, 0) == 0 && path.size() > 5 && path.compare(path.size() - 5, 5, "01req") == 0;
}

namespace {
HttpResult error(Error::Kind kind, std::string ja, std::string en) {
    return error_result(Error(kind, "Idempotency-Key", std::move(ja), std::move(en)));
}

constexpr std::chrono::hours kept_for{24 * 7};
}  // namespace

HttpResult answer_once(IdempotentAnswers& store, Clock const& clock, Caller const& caller, std::string const& route, std::string const& key,
                       std::string const& body, std::function<HttpResult()> const& run) {
    bool const plain = key.size() >= 16 && key.size() <= 128 &&
                       std::all_of(key.begin(), key.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'; });
    if (!plain)
        return error(Error::Kind::invalid, "Idempotency-Key は 16〜128 文字の英数字と - _ です",
                     "the key must be 16 to 128 letters, digits, - or _");
    if (caller.kind != Caller::Kind::facility) return run();  // the route refuses anyone else anyway
    std::string const hash = sha256_hex(body);
    return store.atomically([&] {
        // The key is claimed first: of requests with one key at once, one runs; the others wait for its transaction
        // and get its answer.
        if (auto stored = store.claim(caller.facility_code, route, key, hash, clock.timestamp())) {
            if (stored->request_hash != hash)
                return error(Error::Kind::unprocessable, "この Idempotency-Key は別の要求に使われています",
                             "this Idempotency-Key was used for another request");
            HttpResult replay{stored->status, stored->content_type, std::move(stored->body)};
            replay.headers.emplace_back("Idempotent-Replayed", "true");
            replay.route = stored->route;
            return replay;
        }
        HttpResult r = run();
        if (r.status >= 200 && r.status < 300 && !r.stream)
            store.keep(caller.facility_code, route, key, StoredAnswer{hash, route, r.status, r.content_type, r.body}, iso_timestamp(clock.now() - kept_for));
        else
            store.release(caller.facility_code, route, key);
        return r;
    });
}

}  // namespace kyotaku::server
