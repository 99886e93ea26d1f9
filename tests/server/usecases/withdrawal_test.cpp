// The withdrawal desk: 同意取消照会 and the withdrawal.
#include "../server_fixture.hpp"

TEST_F(ServerFixture, WithdrawnConsentEndsReinquiry) {
    enable(a);
    std::string key = person();
    consent("0110113719", key);
    db->query("UPDATE consents SET withdrawn_at = '2024-05-01T00:00:00Z' WHERE person_key = $1", {key});
    auto r = body(call(a, "POST", "/api/v1/reinquiry", on("2024-05-15")));
    EXPECT_FALSE(r["allowed"].get<bool>());
    EXPECT_NE(r["reason"].get<std::string>().find("取り消"), std::string::npos);
}

TEST_F(ServerFixture, WithdrawalShowsThePersonThenEndsReinquiryAndViewing) {
    enable(a);
    enable(b);
    std::string key = person();
    consent("0110113719", key);
    std::string who = json{{"insurer_number", "06132013"},
                           {"symbol", "123"},
                           {"number", "4567"},
                           {"branch", "01"},
                           {"birthdate", "1940-05-01"}}
                          .dump();
    // B has no consent of this person: B cannot look them up, nor withdraw A's consent.
    EXPECT_EQ(call(b, "POST", "/api/v1/withdrawal/lookup", who).status, 404);
    auto who_confirmed = json::parse(who);
    who_confirmed["confirmed"] = true;
    EXPECT_EQ(call(b, "POST", "/api/v1/withdrawal", who_confirmed.dump()).status, 404);
    auto shown = body(call(a, "POST", "/api/v1/withdrawal/lookup", who));
    EXPECT_EQ(shown["name"], "在宅 花子");
    EXPECT_EQ(call(a, "POST", "/api/v1/withdrawal", who).status, 400);  // not confirmed
    auto done = call(a, "POST", "/api/v1/withdrawal", who_confirmed.dump());
    ASSERT_EQ(done.status, 200) << done.body;
    EXPECT_FALSE(body(call(a, "POST", "/api/v1/reinquiry", on("2024-05-15")))["allowed"].get<bool>());
    EXPECT_FALSE(body(call(a, "POST", "/api/v1/medical-info", viewing_on("2024-05-15")))["allowed"].get<bool>());
    EXPECT_EQ(call(a, "POST", "/api/v1/withdrawal", who_confirmed.dump()).status, 404);  // nothing left to withdraw
}

// Withdrawal by staff (item 6): the quick guides put 同意取消照会 on 資格確認端末等 without a role; a 職員 certificate
// withdraws, and both steps are audited with its certificate (資格確認履歴, and the consent's withdrawn_by).
TEST_F(ServerFixture, StaffWithdrawAndTheCertificateIsAudited) {
    enable(a);
    std::string const key = person();
    consent("0110113719", key);
    Caller staff = facility("0110113719", Caller::Role::staff);
    staff.subject = "0110113719 職員 資格確認端末";
    json who{{"insurer_number", "06132013"},
             {"symbol", "１２３"},
             {"number", "4567"},
             {"branch", "01"},
             {"birthdate", "1940-05-01"}};
    auto shown = call(staff, "POST", "/api/v1/withdrawal/lookup", who.dump());
    ASSERT_EQ(shown.status, 200) << shown.body;
    who["confirmed"] = true;
    auto done = call(staff, "POST", "/api/v1/withdrawal", who.dump());
    ASSERT_EQ(done.status, 200) << done.body;
    EXPECT_EQ(body(done)["withdrawn_by"], "0110113719 職員 資格確認端末");
    auto consents = body(call(admin, "GET", "/api/v1/admin/consents?facility_code=0110113719"));
    ASSERT_EQ(consents.size(), 1u);
    EXPECT_EQ(consents[0]["withdrawn_by"], "0110113719 職員 資格確認端末");
    json lookup, withdrawal;  // entries of the same instant come in no set order: found by their kind
    json const entries = body(call(a, "GET", "/api/v1/history/inquiries"))["entries"];
    for (auto const& e : entries) {
        if (e["kind"] == "同意取消照会") lookup = e;
        if (e["kind"] == "同意取消") withdrawal = e;
    }
    ASSERT_TRUE(lookup.is_object() && withdrawal.is_object()) << entries.dump();
    EXPECT_EQ(lookup["actor"], "0110113719 職員 資格確認端末");
    EXPECT_EQ(withdrawal["actor"], "0110113719 職員 資格確認端末");
    EXPECT_EQ(withdrawal["patient"]["symbol"], "123");  // as the server compares it (full-width folded)
}
