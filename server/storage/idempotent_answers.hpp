// idempotent_responses: the stored 2xx answers of the file routes, by (facility, Idempotency-Key)
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
    // Runs `body` in one transaction (the lookup, the work and the stored answer commit together).
    template <typename F>
    auto atomically(F&& body) {
        return transaction(db_, std::forward<F>(body));
    }
    std::optional<StoredAnswer> find(std::string const& facility, std::string const& key);
    // Keeps `answer` under (facility, key), stamped `at`, and drops the answers stamped before `expired_before`.
    void keep(std::string const& facility, std::string const& key, StoredAnswer const& answer, std::string const& at,
              std::string const& expired_before);

private:
    Database& db_;
};

}  // namespace kyotaku::server
