// 資格確認履歴's detail of an eligibility answer (formats/inquiry_detail.hpp): written field by field, it is the very
// text the JSON tree of earlier versions stored (the same keys, in the same order, the same values), for every way a
// patient is named and every outcome; texts are escaped.
#include "formats/inquiry_detail.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using namespace kyotaku::server;
using json = nlohmann::json;

namespace {

// What answer_eligibility built before the typed detail: a JSON tree, dumped.
std::string as_tree(EligibilityDetail const& d) {
    json out{{"category", d.category},
             {"by", d.by == EligibilityDetail::By::consent ? "consent"
                    : d.by == EligibilityDetail::By::card  ? "card"
                                                           : "reference_number"}};
    if (d.card)
        out["patient"] = json{{"insurer_number", d.card->insurer}, {"symbol", d.card->symbol},
                              {"number", d.card->number},          {"branch", d.card->branch},
                              {"birthdate", d.card->birthdate}};
    else if (d.by == EligibilityDetail::By::reference_number)
        out["patient"] = json{{"reference_number", d.reference_number}};
    if (!d.query_date.empty()) out["query_date"] = d.query_date;
    if (d.reason) out["reason"] = *d.reason;
    out["allowed"] = d.allowed;
    out["qualification_validity"] = d.qualification_validity ? json(*d.qualification_validity) : json(nullptr);
    if (d.consent_id) out["consent_id"] = *d.consent_id;
    if (d.row) out["row"] = d.row;
    if (!d.consent_date.empty()) out["patient"] = json{{"consent_date", d.consent_date}, {"visit_kind", d.visit_kind}};
    return out.dump();
}

}  // namespace

TEST(EligibilityDetail, IsTheTextTheJsonTreeWrote) {
    EligibilityDetail by_card;
    by_card.category = "訪問診療等";
    by_card.card = Card{"06132013", "１２３", "4567", "01", "1940-05-01"};
    by_card.allowed = true;
    by_card.qualification_validity = 1;
    by_card.consent_id = "0123456789abcdef0123456789abcdef";
    by_card.reason = "初回訪問 2024-04-15 から 2024-07-31 までの継続的な関係の期間内です (30_reinquiry.rules:52)";
    by_card.row = 12345;
    by_card.query_date = "2024-07-31";

    EligibilityDetail refused = by_card;  // refused before the person was looked at: no validity, no consent, no row
    refused.allowed = false;
    refused.qualification_validity.reset();
    refused.consent_id.reset();
    refused.row = 0;
    refused.query_date = "2099-01-01";
    refused.reason = "資格確認日が先すぎます";

    EligibilityDetail by_number;  // a 照会番号 that names no one: validity 4, no reason
    by_number.category = "オンライン診療等";
    by_number.by = EligibilityDetail::By::reference_number;
    by_number.reference_number = "R\"1\\\t\x01\u3000番";  // every kind of byte a JSON string escapes
    by_number.qualification_validity = 4;

    EligibilityDetail by_consent;  // a consented-patient download's row, and the same consent from another route
    by_consent.category = "訪問診療等";
    by_consent.by = EligibilityDetail::By::consent;
    by_consent.consent_date = "2024-06-10";
    by_consent.visit_kind = "往診";
    by_consent.allowed = true;
    by_consent.qualification_validity = 2;
    by_consent.reason = "有効";
    by_consent.row = 3;
    EligibilityDetail consent_elsewhere = by_consent;
    consent_elsewhere.consent_date.clear();

    for (auto const& d : {by_card, refused, by_number, by_consent, consent_elsewhere}) {
        EXPECT_EQ(eligibility_detail_json(d), as_tree(d));
        EXPECT_TRUE(json::accept(eligibility_detail_json(d)));
    }
    EXPECT_EQ(json::parse(eligibility_detail_json(by_number))["patient"]["reference_number"],
              by_number.reference_number);
    EXPECT_FALSE(json::parse(eligibility_detail_json(consent_elsewhere)).contains("patient"));
}
