// storage/records: what the decision path reads, by purpose — DbRecords table by table, ChunkRecords a batch chunk's
// at once (PersonRecords, one statement, is compared with DbRecords in storage_backends_test.cpp).
#include "../database_fixture.hpp"
#include "storage/consent_registry.hpp"
#include "storage/facility_registry.hpp"
#include "storage/insurer_data.hpp"
#include "storage/records.hpp"
#include "storage/reference_numbers.hpp"

#include <gtest/gtest.h>

using namespace kyotaku;
using namespace kyotaku::server;

namespace {
char const* const a = "0110113719";
char const* const b = "2714206386";

EligibilityRecord period(std::string number, std::string from, std::optional<std::string> to = std::nullopt) {
    return insurance_period(std::move(number), "1940-05-01", std::move(from), std::move(to));
}
Card card(std::string number) { return {"06139995", "123", std::move(number), "01", "1940-05-01"}; }

ConsentRow consent(std::string id, std::string facility, std::string person, std::string first_visit) {
    return {std::move(id), std::move(facility), std::move(person), "訪問診療",
            first_visit,   "暗証番号",          "薬剤情報,診療情報", std::nullopt,
            first_visit + "T09:00:00Z"};
}

// The two facilities of database_fixture.hpp, A's home visits on; person i holds card 1000+i, with a consent at A for
// the even ones (one of them withdrawn) and a claim at A for every third.
std::unique_ptr<Database> seeded(int persons) {
    auto db = database_with_facilities();
    FacilityRegistry facilities(*db);
    Settings s;
    s.terms_agreed = s.home_visit_enabled = true;
    s.viewing[0] = true;
    s.updated_at = "2024-04-02T00:00:00Z";
    facilities.change_settings(a, s, "audit-1", {"CN=管理者", "2024-04-02T00:00:00Z", "{}", "{}"});
    InsurerData insurer(*db);
    ConsentRegistry consents(*db);
    std::vector<ClaimReview> claims;
    for (int i = 0; i < persons; ++i) {
        std::string const p = "P" + std::to_string(i), number = std::to_string(1000 + i);
        insurer.add_period("e" + std::to_string(i), p, period(number, "2024-04-01"));
        if (i % 2 == 0) consents.add(consent("c" + std::to_string(i), a, p, "2024-05-01"));
        if (i % 3 == 0) claims.push_back({a, p, "2024-06", "2024-07-01"});
    }
    consents.withdraw(a, "P4", "2024-06-01T00:00:00Z", "CN=端末");
    insurer.add_claim_reviews(claims);
    return db;
}
}  // namespace

TEST(DbRecords, AFacilityWithItsSettings) {
    auto db = seeded(1);
    DbRecords records(*db);
    auto f = records.facility(a);
    ASSERT_TRUE(f);
    EXPECT_EQ(f->name, "A");
    EXPECT_EQ(f->kind, "医科");
    EXPECT_TRUE(f->settings.terms_agreed);
    EXPECT_TRUE(f->settings.home_visit_enabled);
    EXPECT_FALSE(f->settings.online_enabled);
    EXPECT_EQ(f->settings.viewing, (std::array<bool, 5>{true, false, false, false, false}));
    EXPECT_FALSE(records.facility(b)->settings.home_visit_enabled) << "registered with everything off";
    EXPECT_FALSE(records.facility("9999999999"));
}

TEST(DbRecords, APersonByCardByReferenceWithConsentsClaimsAndPeriods) {
    auto db = seeded(1);
    InsurerData(*db).add_period("e-old", "P0", period("1000", "2020-04-01", std::string("2024-03-31")));
    ConsentRegistry(*db).add(consent("c-new", a, "P0", "2024-06-01"));
    ConsentRegistry(*db).add(consent("c-b", b, "P0", "2024-07-01"));
    ReferenceNumbers(*db).add(a, "R-2", "P0", "2024-04-20T00:00:00Z");
    ReferenceNumbers(*db).add(a, "R-1", "P0", "2024-04-20T00:00:00Z");
    DbRecords records(*db);
    EXPECT_EQ(records.person_by_card(card("1000")), "P0");
    EXPECT_EQ(records.person_by_card(card("9999")), "");
    Card other_birthdate = card("1000");
    other_birthdate.birthdate = "1940-05-02";
    EXPECT_EQ(records.person_by_card(other_birthdate), "") << "the birthdate is part of the card";
    EXPECT_EQ(records.person_by_reference(a, "R-1"), "P0");
    EXPECT_EQ(records.person_by_reference(b, "R-1"), "") << "another facility's number";
    ConsentState s = records.consents(a, "P0");
    ASSERT_EQ(s.open.size(), 2u);
    EXPECT_EQ(s.open[0].id, "c-new") << "newest first";
    EXPECT_EQ(s.open[1].items, (std::vector<std::string>{"薬剤情報", "診療情報"}));
    EXPECT_FALSE(s.any_withdrawn);
    EXPECT_EQ(records.consents(b, "P0").open.size(), 1u) << "each facility's consents are its own";
    auto months = records.claim_months(a, "P0");
    ASSERT_EQ(months.size(), 1u);
    EXPECT_EQ(months[0].year(), 2024);
    EXPECT_EQ(months[0].month(), 6u);
    EXPECT_TRUE(records.claim_months(b, "P0").empty());
    auto periods = records.eligibility("P0");
    ASSERT_EQ(periods.size(), 2u);
    EXPECT_EQ(periods[0].valid_from, "2024-04-01") << "the latest start first";
    EXPECT_EQ(periods[1].valid_to, "2024-03-31");
    EXPECT_EQ(records.reference_numbers(a, "P0"), (std::vector<std::string>{"R-1", "R-2"}));
    EXPECT_TRUE(records.reference_numbers(b, "P0").empty());
}

TEST(ChunkRecords, AnswersForItsCardsWhatDbRecordsAnswersAcrossItsQueryGroups) {
    int const persons = 230;  // more than two groups of 100 cards
    auto db = seeded(persons);
    std::vector<Card> cards;
    for (int i = 0; i < persons; ++i) cards.push_back(card(std::to_string(1000 + i)));
    cards.push_back(card("0001"));  // a card of no one
    DbRecords tables(*db);
    ChunkRecords chunk(*db, a, cards);
    EXPECT_EQ(chunk.facility(a)->name, "A");
    EXPECT_EQ(chunk.facility(b)->name, "B") << "another facility is asked of the database";
    EXPECT_EQ(chunk.person_by_card(card("0001")), "");
    int open = 0, withdrawn = 0, claimed = 0;
    for (int i = 0; i < persons; ++i) {
        SCOPED_TRACE(i);
        std::string const p = chunk.person_by_card(cards[std::size_t(i)]);
        ASSERT_EQ(p, "P" + std::to_string(i));
        ConsentState const mine = chunk.consents(a, p), theirs = tables.consents(a, p);
        ASSERT_EQ(mine.open.size(), theirs.open.size());
        for (std::size_t k = 0; k < mine.open.size(); ++k) EXPECT_EQ(mine.open[k].id, theirs.open[k].id);
        EXPECT_EQ(mine.any_withdrawn, theirs.any_withdrawn);
        EXPECT_EQ(chunk.claim_months(a, p).size(), tables.claim_months(a, p).size());
        ASSERT_EQ(chunk.eligibility(p).size(), 1u);
        EXPECT_EQ(chunk.eligibility(p)[0].number, std::to_string(1000 + i));
        open += int(mine.open.size());
        withdrawn += mine.any_withdrawn;
        claimed += int(chunk.claim_months(a, p).size());
    }
    EXPECT_EQ(open, persons / 2 - 1);  // every even person, P4's withdrawn
    EXPECT_EQ(withdrawn, 1);
    EXPECT_EQ(claimed, (persons + 2) / 3);
    EXPECT_TRUE(chunk.consents(b, "P0").open.empty()) << "another facility's, asked of the database";
}
