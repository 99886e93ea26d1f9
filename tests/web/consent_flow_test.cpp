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
    EXPECT_EQ(f.visit_kinds(), (V{"訪問診療", "訪問看護", "訪問薬剤管理指導", "訪問リハビリテーション",
                                  "訪問栄養食事指導", "往診", "オンライン診療"}))
        << "what a 医科 offers (施設の診療区分), in the rule set's order";
    EXPECT_NE(f.visit_kind_note("往診").find("急に具合が悪くなったとき"), std::string::npos);
    EXPECT_FALSE(f.choose_visit_kind("訪問診療"));
    EXPECT_FALSE(f.online());
    EXPECT_TRUE(f.staff_present());
    EXPECT_EQ(f.step(), Step::items);
    EXPECT_EQ(f.choices(), (V{"手術情報", "診療・薬剤情報", "特定健診情報"}));
    EXPECT_TRUE(f.choose_items({"限度額情報等"})) << "not offered to 医科";
    EXPECT_FALSE(f.choose_items({"特定健診情報", "診療・薬剤情報"}));
    EXPECT_EQ(f.chosen(), (V{"診療・薬剤情報", "特定健診情報"})) << "in the rule set's order";
    EXPECT_EQ(f.items(), (V{"診療情報", "薬剤情報", "特定健診情報"}));
    EXPECT_EQ(f.identity_methods(), (V{"暗証番号", "目視確認"}));
    EXPECT_FALSE(f.choose_identity("目視確認"));
    EXPECT_EQ(f.step(), Step::card);
    EXPECT_EQ(f.identity_method(), "目視確認");
    EXPECT_EQ(f.appointment(), "") << "no 診療予約日 outside online care";
    f.finish();
    EXPECT_EQ(f.step(), Step::done);
    EXPECT_FALSE(f.back());
}

TEST(ConsentFlow, NoItemIsAValidAnswer) {
    Flow f(rules(), Facility{"医科", true, true}, day("2024-10-15"));
    ASSERT_FALSE(f.choose_visit_kind("訪問診療"));
    EXPECT_FALSE(f.choose_items({})) << "the page says items may be left unticked: the card check goes on";
    EXPECT_EQ(f.step(), Step::identity);
    EXPECT_TRUE(f.items().empty());
}

TEST(ConsentFlow, EachFacilityKindOffersItsOwnVisitKinds) {
    EXPECT_EQ(Flow(rules(), Facility{"訪問看護ステーション", true, true}, day("2024-10-15")).visit_kinds(),
              (V{"訪問看護"}))
        << "no 歯科訪問診療, 往診 or オンライン服薬指導 for a nursing station";
    EXPECT_EQ(Flow(rules(), Facility{"薬局", true, true}, day("2024-10-15")).visit_kinds(),
              (V{"訪問薬剤管理指導", "オンライン服薬指導"}));
    EXPECT_EQ(Flow(rules(), Facility{"歯科", true, false}, day("2024-10-15")).visit_kinds(),
              (V{"歯科訪問診療", "訪問歯科衛生指導"}));
}

TEST(ConsentFlow, BeforeOctober2024OnlyThePin) {
    Flow f(rules(), Facility{"薬局", true, false}, day("2024-09-30"));
    ASSERT_FALSE(f.choose_visit_kind("訪問薬剤管理指導"));
    ASSERT_FALSE(f.choose_items({"手術情報"}));
    EXPECT_EQ(f.identity_methods(), (V{"暗証番号"}));
    EXPECT_TRUE(f.choose_identity("目視確認"));
    EXPECT_FALSE(f.choose_identity("暗証番号"));
}

TEST(ConsentFlow, VisitingNurseStationsAlsoOfferTheLimitItem) {
    Flow f(rules(), Facility{"訪問看護ステーション", true, true}, day("2024-10-15"));
    ASSERT_FALSE(f.choose_visit_kind("訪問看護"));
    EXPECT_EQ(f.choices(), (V{"手術情報", "診療・薬剤情報", "特定健診情報", "限度額情報等"}));
    ASSERT_FALSE(f.choose_items({"限度額情報等"}));
    EXPECT_EQ(f.items(), (V{"限度額情報"}));
}

TEST(ConsentFlow, OnlineCareAsksForTheAppointmentAndOffersNoVisualCheck) {
    Flow f(rules(), Facility{"医科", false, true}, day("2024-11-05"));
    EXPECT_EQ(f.visit_kinds(), (V{"オンライン診療"})) << "only the enabled feature's kinds";
    EXPECT_TRUE(f.choose_visit_kind("訪問診療"));
    ASSERT_FALSE(f.choose_visit_kind("オンライン診療"));
    EXPECT_TRUE(f.online());
    EXPECT_FALSE(f.staff_present()) << "the patient books alone";
    EXPECT_EQ(f.step(), Step::appointment);
    auto past = f.set_appointment("2024-11-04");
    ASSERT_TRUE(past);
    EXPECT_EQ(past.ja, "診療予約日は、今日 (令和6年11月5日) から 令和7年2月3日 までの日を選んでください。")
        << "plain Japanese, 和暦, no English";
    EXPECT_NE(past.en.find("2024-11-05"), std::string::npos);
    EXPECT_TRUE(f.set_appointment("2025-02-04")) << "beyond the rules' window (診療予約日の受付日数)";
    EXPECT_TRUE(f.set_appointment("2024-11-31"));
    ASSERT_EQ(f.last_appointment(), day("2025-02-03"));
    EXPECT_FALSE(f.set_appointment("令和6年11月8日"));
    EXPECT_EQ(f.appointment(), "2024-11-08");
    ASSERT_FALSE(f.choose_items({"手術情報"}));
    EXPECT_EQ(f.identity_methods(), (V{"暗証番号"})) << "no 目視確認 without staff";
    EXPECT_TRUE(f.choose_identity("目視確認"));
    ASSERT_FALSE(f.choose_identity("暗証番号"));
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
    auto early = f.choose_items({"手術情報"});
    EXPECT_TRUE(early) << "not yet at the items step";
    EXPECT_EQ(early.ja.find_first_of("abcdefghijklmnopqrstuvwxyz"), std::string::npos)
        << "the patient's text is Japanese only: " << early.ja;
    ASSERT_FALSE(f.choose_visit_kind("往診"));
    ASSERT_FALSE(f.choose_items({"手術情報"}));
    ASSERT_FALSE(f.choose_identity("暗証番号"));
    EXPECT_TRUE(f.back());
    EXPECT_EQ(f.step(), Step::identity);
    EXPECT_TRUE(f.back());
    EXPECT_EQ(f.step(), Step::items);
    EXPECT_EQ(f.chosen(), (V{"手術情報"}));
    EXPECT_EQ(f.visit_kind(), "往診");
}

TEST(ConsentFlow, RulesWithoutThePageLetsAreRefused) {
    auto small = compile({SourceFile{
        "x.rules",
        "enum 施設区分 { 医科 }\nfact facility_kind : 施設区分\ndecision d : bool { otherwise => true }\n"}});
    ASSERT_TRUE(small.program) << "the test's own rule text must compile";
    EXPECT_THROW(Flow(small.program, Facility{"医科", true, true}, day("2024-10-15")), std::runtime_error);
}

TEST(ConsentFlow, ALetOfAnotherTypeIsRefusedByName) {
    // The official rules with 診療予約日が必要 typed as text: refused when the flow binds them, naming it.
    std::vector<Diagnostic> io;
    auto sources = read_rule_sources(KYOTAKU_SOURCE_DIR "/rules", io);
    // they expect a bool
    std::erase_if(sources, [](SourceFile const& f) { return f.path.find("/tests/") != std::string::npos; });
    bool changed = false;
    for (auto& f : sources)
        if (auto at = f.text.find("export let 診療予約日が必要 : bool = 分類 == オンライン診療等");
            at != std::string::npos) {
            f.text.replace(at, std::string("export let 診療予約日が必要 : bool = 分類 == オンライン診療等").size(),
                           "export let 診療予約日が必要 : text = \"はい\"");
            changed = true;
        }
    ASSERT_TRUE(changed) << "the official rules no longer say it this way";
    auto altered = compile(sources);
    ASSERT_TRUE(altered.program) << format_diagnostics(altered.diagnostics);
    try {
        Flow(altered.program, Facility{"医科", true, true}, day("2024-10-15"));
        ADD_FAILURE() << "accepted";
    } catch (std::runtime_error const& e) {
        EXPECT_NE(std::string(e.what()).find("診療予約日が必要"), std::string::npos) << e.what();
    }
    // The official rules themselves are bound.
    EXPECT_NO_THROW(Flow(rules(), Facility{"医科", true, true}, day("2024-10-15")));
}

TEST(ConsentFlow, DatesForPeopleAreWareki) {
    EXPECT_EQ(consent::wareki_of("2026-11-30"), "令和8年11月30日");
    EXPECT_EQ(consent::wareki_of("2019-05-01"), "令和元年5月1日");
    EXPECT_EQ(consent::wareki_of("2019-04-30"), "平成31年4月30日");
    EXPECT_EQ(consent::wareki_of("not a date"), "not a date");
}
