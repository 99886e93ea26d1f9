#include "http/idempotency.hpp"

#include "core/card_signature.hpp"
#include "http/json_codec.hpp"

#include <algorithm>
#include <array>
#include <string_view>

namespace kyotaku::server {

bool idempotent_route(std::string const& method, std::string const& target) {
    // The routes that make something: a batch job (一括照会, 同意済資格情報一括取得) or 照会番号. Not OQSsiquc01req:
    // its answer is a patient's eligibility, decided by the rules on today's date and logged in 資格確認履歴 with
    // the certificate that asked. A read is idempotent by nature, so it is answered again, never replayed — a
    // stored answer would hand out what the rules may no longer allow (a withdrawn consent), to no history.
    static constexpr std::array<std::string_view, 5> making{"/api/v1/oqs/OQSmuquc01req", "/api/v1/oqs/OQSmuhvq01req",
                                                            "/api/v1/oqs/OQSmuonq01req", "/api/v1/oqs/OQSsiimm01req",
                                                            "/api/v1/oqs/OQSmuimm01req"};
    std::string_view const path = std::string_view(target).substr(0, target.find('?'));
    return method == "POST" && std::find(making.begin(), making.end(), path) != making.end();
}

namespace {
HttpResult error(Error::Kind kind, std::string ja, std::string en) {
    return error_result(Error(kind, "Idempotency-Key", std::move(ja), std::move(en)));
}

constexpr std::chrono::hours kept_for{24 * 7};

// What a stored answer is bound to: the request's body and the certificate that sent it (its subject and
// fingerprint). Another certificate of the facility sending the same key is refused, never given the answer.
std::string request_hash(Caller const& caller, std::string const& body) {
    return sha256_hex(caller.subject + '\n' + caller.certificate + '\n' + sha256_hex(body));
}
}  // namespace

HttpResult answer_once(IdempotentAnswers& store, Clock const& clock, Caller const& caller, std::string const& route,
                       std::string const& key, std::string const& body, std::function<HttpResult()> const& run) {
    bool const plain = key.size() >= 16 && key.size() <= 128 && std::all_of(key.begin(), key.end(), [](char c) {
                           return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
                       });
    if (!plain)
        return error(Error::Kind::invalid, "Idempotency-Key は 16〜128 文字の英数字と - _ です",
                     "the key must be 16 to 128 letters, digits, - or _");
    if (caller.kind != Caller::Kind::facility) return run();  // the route refuses anyone else anyway
    std::string const hash = request_hash(caller, body);
    return store.atomically([&] {
        // The key is claimed first: of requests with one key at once, one runs; the others wait for its transaction
        // and get its answer.
        if (auto stored = store.claim(caller.facility_code, route, key, hash, clock.timestamp())) {
            if (stored->request_hash != hash)
                return error(Error::Kind::unprocessable, "この Idempotency-Key は別の要求か別の証明書に使われています",
                             "this Idempotency-Key was used for another request or by another certificate");
            HttpResult replay{stored->status, stored->content_type, std::move(stored->body)};
            replay.headers.emplace_back("Idempotent-Replayed", "true");
            replay.route = stored->route;
            return replay;
        }
        HttpResult r = run();
        if (r.status >= 200 && r.status < 300 && !r.stream)
            store.keep(caller.facility_code, route, key, StoredAnswer{hash, route, r.status, r.content_type, r.body},
                       iso_timestamp(clock.now() - kept_for));
        else
            store.release(caller.facility_code, route, key);
        return r;
    });
}

}  // namespace kyotaku::server
