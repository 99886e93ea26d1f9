// The consent page's flow over the official rules, natively (the same code runs in WebAssembly). Label `web`.
#include "consent_flow.hpp"

#include <gtest/gtest.h>

using namespace kyotaku;
using consent::Facility;
using consent::Flow;
using consent::Step;
using V = std::vector<std::string>;

namespace {
std::shared_ptr<Program const> rules() {
    static auto compiled = compile_directory(KYOTAKU_SOURCE_DIR "/rules");
    return compiled.program;
}
Date day(char const* iso) { return *parse_date(iso).date; }
}  // namespace

TEST(ConsentFlow, HomeVisitFromChoiceToRegistration) {
    Flow f(rules(), Facility{"医科", true, true}, day("2024-10-15"));
    EXPECT_EQ(f.step(), Step::visit_kind);
    V kinds = f.visit_kinds();
    EXPECT_EQ(kinds.size(), 10u);
    EXPECT_EQ(kinds.front(), "訪問診療");
    EXPECT_EQ(f.choose_visit_kind("訪問診療"), "");
    EXPECT_FALSE(f.online());
    EXPECT_EQ(f.step(), Step::items);
    EXPECT_EQ(f.choices(), (V{"手術情報", "診療・薬剤情報", "特定健診情報"}));
    EXPECT_NE(f.choose_items({}), "");
    EXPECT_NE(f.choose_items({"限度額情報等"}), "") << "not offered to 医科";
    EXPECT_EQ(f.choose_items({"特定健診情報", "診療・薬剤情報"}), "");
    EXPECT_EQ(f.chosen(), (V{"診療・薬剤情報", "特定健診情報"})) << "in the rule set's order";
    EXPECT_EQ(f.items(), (V{"診療情報", "薬剤情報", "特定健診情報"}));
    EXPECT_EQ(f.identity_methods(), (V{"暗証番号", "目視確認"}));
    EXPECT_EQ(f.choose_identity("目視確認"), "");
    EXPECT_EQ(f.step(), Step::card);
    EXPECT_EQ(f.registration_json(),
              R"({"visit_kind":"訪問診療","identity_method":"目視確認","items":["診療情報","薬剤情報","特定健診情報"]})");
    f.finish();
    EXPECT_EQ(f.step(), Step::done);
    EXPECT_FALSE(f.back());
}

TEST(ConsentFlow, BeforeOctober2024OnlyThePin) {
    Flow f(rules(), Facility{"薬局", true, false}, day("2024-09-30"));
    ASSERT_EQ(f.choose_visit_kind("訪問薬剤管理指導"), "");
    ASSERT_EQ(f.choose_items({"手術情報"}), "");
    EXPECT_EQ(f.identity_methods(), (V{"暗証番号"}));
    EXPECT_NE(f.choose_identity("目視確認"), "");
    EXPECT_EQ(f.choose_identity("暗証番号"), "");
}

TEST(ConsentFlow, VisitingNurseStationsAlsoOfferTheLimitItem) {
    Flow f(rules(), Facility{"訪問看護ステーション", true, true}, day("2024-10-15"));
    ASSERT_EQ(f.choose_visit_kind("訪問看護"), "");
    EXPECT_EQ(f.choices(), (V{"手術情報", "診療・薬剤情報", "特定健診情報", "限度額情報等"}));
    ASSERT_EQ(f.choose_items({"限度額情報等"}), "");
    EXPECT_EQ(f.items(), (V{"限度額情報"}));
}

TEST(ConsentFlow, OnlineCareAsksForTheAppointmentFirst) {
    Flow f(rules(), Facility{"医科", false, true}, day("2024-11-05"));
    EXPECT_EQ(f.visit_kinds(), (V{"オンライン診療", "オンライン服薬指導"})) << "only the enabled feature's kinds";
    EXPECT_NE(f.choose_visit_kind("訪問診療"), "");
    ASSERT_EQ(f.choose_visit_kind("オンライン診療"), "");
    EXPECT_TRUE(f.online());
    EXPECT_EQ(f.step(), Step::appointment);
    EXPECT_NE(f.set_appointment("2024-11-04"), "") << "a past day";
    EXPECT_NE(f.set_appointment("2024-11-31"), "");
    EXPECT_EQ(f.set_appointment("令和6年11月8日"), "");
    ASSERT_EQ(f.choose_items({"手術情報"}), "");
    ASSERT_EQ(f.choose_identity("暗証番号"), "");
    EXPECT_EQ(f.registration_json(),
              R"({"visit_kind":"オンライン診療","identity_method":"暗証番号","items":["手術情報"],"appointment_date":"2024-11-08"})");
}

TEST(ConsentFlow, NothingToChooseIsExplained) {
    Flow off(rules(), Facility{"歯科", false, false}, day("2024-10-15"));
    EXPECT_TRUE(off.visit_kinds().empty());
    EXPECT_NE(off.unavailable_reason().find("利用しない"), std::string::npos) << off.unavailable_reason();
    Flow early(rules(), Facility{"医科", true, true}, day("2023-11-29"));
    EXPECT_TRUE(early.visit_kinds().empty());
    EXPECT_NE(early.unavailable_reason().find("プレ運用開始日"), std::string::npos) << early.unavailable_reason();
}

TEST(ConsentFlow, BackKeepsWhatWasChosenAndStepsAreEnforced) {
    Flow f(rules(), Facility{"医科", true, true}, day("2024-10-15"));
    EXPECT_NE(f.choose_items({"手術情報"}), "") << "not yet at the items step";
    ASSERT_EQ(f.choose_visit_kind("往診"), "");
    ASSERT_EQ(f.choose_items({"手術情報"}), "");
    ASSERT_EQ(f.choose_identity("暗証番号"), "");
    EXPECT_TRUE(f.back());
    EXPECT_EQ(f.step(), Step::identity);
    EXPECT_TRUE(f.back());
    EXPECT_EQ(f.step(), Step::items);
    EXPECT_EQ(f.chosen(), (V{"手術情報"}));
    EXPECT_EQ(f.visit_kind(), "往診");
}

TEST(ConsentFlow, RulesWithoutThePageLetsAreRefused) {
    auto small = compile({SourceFile{"x.rules", "enum 施設区分 { 医科 }\nfact facility_kind : 施設区分\ndecision d : bool { otherwise => true }\n"}});
    ASSERT_TRUE(small.program) << "the test's own rule text must compile";
    EXPECT_THROW(Flow(small.program, Facility{"医科", true, true}, day("2024-10-15")), std::runtime_error);
}
