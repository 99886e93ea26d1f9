// idempotent_answers: the stored 2xx answers of the file routes, by (facility, route, Idempotency-Key)
// (http/idempotency.hpp decides when; this only reads and writes them).
#pragma once

#include "storage/database.hpp"

#include <optional>
#include <string>

namespace kyotaku::server {

struct StoredAnswer {
    std::string request_hash;  // SHA-256 of the request body, hex
    std::string route;
    int status = 0;
    std::string content_type;
    std::string body;
};

class IdempotentAnswers {
public:
    explicit IdempotentAnswers(Database& db) : db_(db) {}
    // Runs `body` in one transaction (the claim, the work and the stored answer commit together).
    template <typename F>
    auto atomically(F&& body) {
        return transaction(db_, std::forward<F>(body));
    }
    // Inside atomically(): claims (facility, route, key) for this request, whose body hashes to `request_hash`.
    // Returns nullopt when the claim is this request's (its answer is to be made and kept); else the answer stored
    // under the key (its request_hash may be another body's). One insert decides it: a request that comes while
    // another with the same key is answered waits for that one's transaction and then finds its answer, never a
    // duplicate key.
    std::optional<StoredAnswer> claim(std::string const& facility, std::string const& route, std::string const& key,
                                      std::string const& request_hash, std::string const& at);
    // Keeps `answer` under the claimed key (the request's answer was 2xx), and drops the answers stamped before
    // `expired_before`.
    void keep(std::string const& facility, std::string const& route, std::string const& key, StoredAnswer const& answer,
              std::string const& expired_before);
    // Gives the claim up (the answer is not kept: the same key may be sent again and is answered anew).
    void release(std::string const& facility, std::string const& route, std::string const& key);

private:
    Database& db_;
};

}  // namespace kyotaku::server
