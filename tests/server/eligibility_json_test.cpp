// The re-inquiry's answer written field by field (formats/eligibility_json.hpp: eligibility_answer_text) is the very
// text the JSON tree gives when dumped as the route dumped it (json_result: UTF-8 kept, bad bytes replaced), for every
// combination of the optional fields, and texts with escapes, bad UTF-8 and edge cases of UTF-8.
#include "formats/eligibility_json.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <vector>

using namespace kyotaku::server;
using json = nlohmann::json;

namespace {

std::string as_tree(EligibilityAnswer const& a) {
    return eligibility_answer_json(a).dump(-1, ' ', false, json::error_handler_t::replace);
}

EligibilityRecord period(std::string const& name) {
    EligibilityRecord e;
    e.insurer = "06132013";
    e.symbol = "１２３";
    e.number = "4567";
    e.branch = "01";
    e.birthdate = "1940-05-01";
    e.name = name;
    e.name_kana = "ヤマダ　タロウ";
    e.burden_ratio = "0.1";
    e.valid_from = "2024-04-01";
    return e;
}

// Texts a record or a rule's reason may hold: plain, Japanese, escapes, control characters, bad and edge UTF-8.
std::vector<std::string> const texts{
    "",
    "山田 太郎",
    "quote \" and backslash \\ and slash /",
    std::string("nul \0 inside", 12),
    "tab\there, line\nbreak, cr\r, bell\a, bs\b, ff\f, esc\x1b, unit\x1f, del\x7f",
    "bad \xff byte",
    "cut \xe5\xb1",
    "overlong \xc0\xaf",
    "surrogate \xed\xa0\x80",
    "above U+10FFFF \xf4\x90\x80\x80",
    "largest \xf4\x8f\xbf\xbf and four bytes \xf0\x9f\x98\x80",
    "noncharacter \xef\xbf\xbf",
    "\xef\xbb\xbf" "BOM first",
};

}  // namespace

TEST(EligibilityAnswerText, EveryCombinationOfFieldsIsTheTreesDump) {
    int compared = 0;
    for (int mask = 0; mask < (1 << 9); ++mask) {
        EligibilityAnswer a;
        a.allowed = mask & 1;
        a.reason = kyotaku::Message{"同意があります", (mask & 2) ? "there is a consent" : ""};
        if (mask & 4) {
            a.basis = ConsentRecord{};
            a.basis->visit_kind = "訪問診療";
            a.basis->first_visit = "2024-05-01";
        }
        if (mask & 8) a.window_end = "2025-05-31";
        if (mask & 16) a.qualification_validity = 1 + (mask % 4);
        if (mask & 32) {
            a.eligibility = period("山田 太郎");
            if (mask & 64) a.eligibility->valid_to = "2024-12-31";  // ended: its 資格喪失日 is written too
            if (mask & 128) a.eligibility->loss_reason = "03";      // written only with valid_to
        }
        if (mask & 256) a.reference_numbers = std::vector<std::string>(mask % 3, "Q-" + std::to_string(mask));
        if (mask & 128 && !(mask & 32)) a.query_date = "2024-06-01";
        ASSERT_EQ(eligibility_answer_text(a), as_tree(a)) << "fields " << mask;
        ++compared;
    }
    EXPECT_EQ(compared, 512);
}

TEST(EligibilityAnswerText, EveryTextIsEscapedAsTheDumpEscapesIt) {
    for (std::string const& t : texts) {
        EligibilityAnswer a;
        a.allowed = true;
        a.reason = kyotaku::Message{t, t};
        a.basis = ConsentRecord{};
        a.basis->visit_kind = t;
        a.basis->first_visit = t;
        a.window_end = t;
        a.qualification_validity = 3;
        a.eligibility = period(t);
        a.eligibility->name_kana = t;
        a.eligibility->valid_to = t;  // not a date: no 資格喪失日
        a.eligibility->loss_reason = t;
        a.reference_numbers = std::vector<std::string>{t, "plain", t};
        a.query_date = t;
        EXPECT_EQ(eligibility_answer_text(a), as_tree(a))
            << json(t).dump(-1, ' ', true, json::error_handler_t::replace);
    }
    // And the text is JSON that reads back as the same answer (a bad byte read back as U+FFFD).
    EligibilityAnswer a;
    a.allowed = true;
    a.reason = kyotaku::Message{"理由 \"引用\"", ""};
    a.eligibility = period("名前\n改行");
    a.eligibility->valid_to = "2024-12-31";
    auto const back = eligibility_answer_of(json::parse(eligibility_answer_text(a)));
    EXPECT_EQ(back.reason.ja, a.reason.ja);
    ASSERT_TRUE(back.eligibility);
    EXPECT_EQ(back.eligibility->name, "名前\n改行");
    EXPECT_EQ(back.eligibility->valid_to, "2024-12-31");
}
