// storage/idempotent_answers: the claim of an Idempotency-Key, the answer kept under it, and a claim given up.
#include "../database_fixture.hpp"
#include "storage/facility_registry.hpp"
#include "storage/idempotent_answers.hpp"

#include <gtest/gtest.h>

using namespace kyotaku::server;

namespace {
char const* const route = "/api/v1/oqs/siquc01req";
}  // namespace

TEST(IdempotentAnswers, TheFirstClaimIsTheRequestsAndTheKeptAnswerComesBackByteForByte) {
    auto db = database_with_facilities();
    IdempotentAnswers answers(*db);
    EXPECT_FALSE(
        answers.atomically([&] { return answers.claim("0110113719", route, "k1", "h1", "2024-07-01T00:00Z"); }));
    // Shift_JIS bytes and a NUL: stored as bytes, not as text.
    std::string const body = std::string("<?xml?>\x83\x65\x83\x58\x83\x67", 13) + std::string(1, '\0') + "end";
    answers.atomically([&] {
        answers.keep("0110113719", route, "k1", {"", "", 201, "application/xml; charset=Shift_JIS", body},
                     "2024-06-01T00:00:00Z");
    });
    auto again =
        answers.atomically([&] { return answers.claim("0110113719", route, "k1", "h2", "2024-07-01T01:00Z"); });
    ASSERT_TRUE(again) << "the key is taken: its answer is returned";
    EXPECT_EQ(again->request_hash, "h1") << "the first request's hash: the caller sees another body was sent";
    EXPECT_EQ(again->route, route);
    EXPECT_EQ(again->status, 201);
    EXPECT_EQ(again->content_type, "application/xml; charset=Shift_JIS");
    EXPECT_EQ(again->body, body);
}

TEST(IdempotentAnswers, AKeyIsPerFacilityAndPerRoute) {
    auto db = database_with_facilities();
    IdempotentAnswers answers(*db);
    auto claim = [&](char const* facility, char const* r) {
        return answers.atomically([&] { return answers.claim(facility, r, "k", "h", "2024-07-01T00:00:00Z"); });
    };
    EXPECT_FALSE(claim("0110113719", route));
    EXPECT_FALSE(claim("2714206386", route)) << "another facility's key of the same name is its own";
    EXPECT_FALSE(claim("0110113719", "/api/v1/oqs/siquc02req")) << "so is another route's";
    EXPECT_TRUE(claim("0110113719", route));
}

TEST(IdempotentAnswers, AClaimGivenUpMayBeMadeAgainAndOldAnswersExpire) {
    auto db = database_with_facilities();
    IdempotentAnswers answers(*db);
    auto claim = [&](char const* key, char const* at) {
        return answers.atomically([&] { return answers.claim("0110113719", route, key, "h", at); });
    };
    EXPECT_FALSE(claim("k1", "2024-07-01T00:00:00Z"));
    answers.release("0110113719", route, "k1");
    EXPECT_FALSE(claim("k1", "2024-07-01T00:01:00Z")) << "answered anew";
    answers.keep("0110113719", route, "k1", {"", "", 200, "text/csv", "a,b\n"}, "2024-06-01T00:00:00Z");
    EXPECT_FALSE(claim("k2", "2024-07-02T00:00:00Z"));
    // Keeping k2's answer a day later drops the answers stamped before the cutoff: k1's.
    answers.keep("0110113719", route, "k2", {"", "", 200, "text/csv", "c\n"}, "2024-07-01T12:00:00Z");
    EXPECT_FALSE(claim("k1", "2024-07-02T00:01:00Z")) << "k1's answer expired: the key is free again";
    auto k2 = claim("k2", "2024-07-02T00:02:00Z");
    ASSERT_TRUE(k2);
    EXPECT_EQ(k2->body, "c\n");
}
