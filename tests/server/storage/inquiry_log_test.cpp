// storage/inquiry_log: 資格確認履歴 and 医療情報閲覧履歴, written one at a time or a batch's at once, read in pages.
#include "../database_fixture.hpp"
#include "storage/inquiry_log.hpp"

#include <gtest/gtest.h>

#include <algorithm>

using namespace kyotaku::server;

namespace {
LogPage whole_day(int limit, std::string after_at = "", std::string after_id = "") {
    return {"2024-07-01T00:00:00Z", "2024-07-02T00:00:00Z", std::move(after_at), std::move(after_id), limit};
}
std::string at_of(std::string const& cursor) { return cursor.substr(0, cursor.find('_')); }
std::string id_of(std::string const& cursor) { return cursor.substr(cursor.find('_') + 1); }
}  // namespace

TEST(InquiryLog, AnEntryIsReadBackAsWrittenAndOnlyByItsFacility) {
    auto db = migrated_database();
    InquiryLog log(*db);
    log.append({"0110113719", "CN=端末1", "re-inquiry", "p1", true, R"({"reason":"ok"})"}, "2024-07-01T09:00:00Z");
    log.append({"0110113719", "", "eligibility", "", false, R"({"reason":"no"})"}, "2024-07-01T10:00:00Z");
    log.append({"2714206386", "CN=other", "re-inquiry", "p1", true, "{}"}, "2024-07-01T09:30:00Z");
    auto page = log.inquiries("0110113719", whole_day(10), std::nullopt);
    ASSERT_EQ(page.entries.size(), 2u);
    EXPECT_FALSE(page.next) << "the last page";
    EXPECT_EQ(page.entries[0].at, "2024-07-01T09:00:00Z");
    EXPECT_EQ(page.entries[0].kind, "re-inquiry");
    EXPECT_TRUE(page.entries[0].allowed);
    EXPECT_EQ(page.entries[0].actor, "CN=端末1");
    EXPECT_FALSE(page.entries[0].reception_number);
    EXPECT_EQ(page.entries[0].detail_json, R"({"reason":"ok"})");
    EXPECT_FALSE(page.entries[1].allowed);
    EXPECT_FALSE(page.entries[1].actor) << "an empty actor is stored as none";
    EXPECT_TRUE(db->query("SELECT 1 FROM inquiry_log WHERE person_key IS NULL").size() == 1u)
        << "an unknown person is stored as NULL, not ''";
    // One person's entries only.
    auto one = log.inquiries("0110113719", whole_day(10), std::string("p1"));
    ASSERT_EQ(one.entries.size(), 1u);
    EXPECT_EQ(one.entries[0].at, "2024-07-01T09:00:00Z");
    EXPECT_TRUE(log.inquiries("0110113719", whole_day(10), std::string("p9")).entries.empty());
}

TEST(InquiryLog, ABatchsEntriesAreWrittenAtOnceWithTheirReceptionNumber) {
    auto db = migrated_database();
    InquiryLog log(*db);
    std::vector<InquiryEntry> rows;
    for (int i = 0; i < 5; ++i)
        rows.push_back({"0110113719", "CN=端末1", "batch", "p" + std::to_string(i), i % 2 == 0,
                        R"({"row":)" + std::to_string(i + 1) + "}", "20240701090000123456"});
    log.append_all(rows, "2024-07-01T09:00:00Z");
    log.append_all({}, "2024-07-01T09:00:00Z");  // nothing to write: nothing written
    auto page = log.inquiries("0110113719", whole_day(10), std::nullopt);
    ASSERT_EQ(page.entries.size(), 5u);
    // Entries of one instant are in the order of their ids (time-ordered to the millisecond, random within it).
    std::sort(page.entries.begin(), page.entries.end(),
              [](auto const& x, auto const& y) { return x.detail_json < y.detail_json; });
    for (int i = 0; i < 5; ++i) {
        EXPECT_EQ(page.entries[std::size_t(i)].reception_number, "20240701090000123456");
        EXPECT_EQ(page.entries[std::size_t(i)].detail_json, R"({"row":)" + std::to_string(i + 1) + "}");
        EXPECT_EQ(page.entries[std::size_t(i)].allowed, i % 2 == 0) << "each entry keeps its own answer";
    }
}

TEST(InquiryLog, PagesFollowTheirCursorWithinTheirBounds) {
    auto db = migrated_database();
    InquiryLog log(*db);
    log.append({"0110113719", "a", "k", "p", true, "{}"}, "2024-06-30T23:59:59Z");  // before the page's day
    for (int i = 0; i < 5; ++i)
        log.append({"0110113719", "a", "k", "p", true, R"({"i":)" + std::to_string(i) + "}"},
                   "2024-07-01T0" + std::to_string(i) + ":00:00Z");
    log.append({"0110113719", "a", "k", "p", true, "{}"}, "2024-07-02T00:00:00Z");  // the first instant after
    std::vector<std::string> seen;
    LogPage page = whole_day(2);
    for (int pages = 0; pages < 10; ++pages) {
        auto got = log.inquiries("0110113719", page, std::nullopt);
        EXPECT_LE(got.entries.size(), 2u);
        for (auto const& e : got.entries) seen.push_back(e.detail_json);
        if (!got.next) break;
        page = whole_day(2, at_of(*got.next), id_of(*got.next));
    }
    EXPECT_EQ(seen, (std::vector<std::string>{R"({"i":0})", R"({"i":1})", R"({"i":2})", R"({"i":3})", R"({"i":4})"}));
}

TEST(InquiryLog, ViewingsAreTheirOwnLog) {
    auto db = migrated_database();
    InquiryLog log(*db);
    log.append_viewing({"0110113719", "p1", "薬剤情報", "端末A", true, "ok"}, "2024-07-01T09:00:00Z");
    log.append_viewing({"0110113719", "", "特定健診情報", "端末B", false, "同意がありません"}, "2024-07-01T10:00:00Z");
    log.append_viewing({"2714206386", "p1", "薬剤情報", "端末C", true, "ok"}, "2024-07-01T09:00:00Z");
    auto page = log.viewings("0110113719", whole_day(10));
    ASSERT_EQ(page.entries.size(), 2u);
    EXPECT_EQ(page.entries[0].item, "薬剤情報");
    EXPECT_EQ(page.entries[0].terminal, "端末A");
    EXPECT_TRUE(page.entries[0].allowed);
    EXPECT_EQ(page.entries[1].reason, "同意がありません");
    EXPECT_FALSE(page.entries[1].allowed);
    EXPECT_TRUE(log.inquiries("0110113719", whole_day(10), std::nullopt).entries.empty())
        << "a viewing is not an inquiry";
}
