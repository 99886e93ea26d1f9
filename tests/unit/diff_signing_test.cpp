// kyotaku diff (what a rule change does) and signed bundles.
#include "kyotaku/diff.hpp"
#include "kyotaku/engine.hpp"
#include "kyotaku/jsonl.hpp"
#include "kyotaku/signing.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

using namespace kyotaku;

namespace {
std::vector<SourceFile> official_sources() {
    std::vector<Diagnostic> io;
    auto s = read_rule_sources(KYOTAKU_SOURCE_DIR "/rules", io);
    EXPECT_TRUE(io.empty());
    return s;
}
std::shared_ptr<Program const> compile_sources(std::vector<SourceFile> sources) {
    auto r = compile(std::move(sources));
    EXPECT_TRUE(r.ok()) << format_diagnostics(r.diagnostics);
    return r.program;
}
// The official rules with 窓の月数 = 4 (the worked example of docs/rules-language.md).
std::vector<SourceFile> four_months() {
    auto sources = official_sources();
    bool changed = false;
    for (auto& s : sources) {
        auto at = s.text.find("param 窓の月数 = 3");
        if (at == std::string::npos) continue;
        s.text.replace(at, std::string("param 窓の月数 = 3").size(), "param 窓の月数 = 4");
        changed = true;
    }
    EXPECT_TRUE(changed);
    return sources;
}
DiffReport generated_diff(std::shared_ptr<Program const> a, std::shared_ptr<Program const> b, std::size_t cases) {
    RuleDiff diff(a, b);
    std::uint64_t n = 0;
    generate_corpus(*a, *b, cases, 1, [&](std::string_view line) { diff.add(line, ++n); });
    return diff.report();
}
DecisionDiff const* decision(DiffReport const& r, std::string const& name) {
    for (auto const& d : r.decisions)
        if (d.name == name) return &d;
    return nullptr;
}
}  // namespace

TEST(Diff, IdenticalRulesChangeNothing) {
    auto p = compile_sources(official_sources());
    auto r = generated_diff(p, p, 5000);
    EXPECT_EQ(r.cases, 5000u);
    EXPECT_EQ(r.changed_cases, 0u);
    EXPECT_FALSE(r.changed());
    EXPECT_NE(diff_markdown(r).find("変わった答えはありません"), std::string::npos);
}

TEST(Diff, FourMonthWindowChangesWindowEndAndReinquiryGroupedByClause) {
    auto old_rules = compile_sources(official_sources()), new_rules = compile_sources(four_months());
    auto r = generated_diff(old_rules, new_rules, 20000);
    ASSERT_TRUE(r.changed());
    auto const* window = decision(r, "window_end");
    auto const* reinquiry = decision(r, "reinquiry_allowed");
    ASSERT_TRUE(window && reinquiry);
    EXPECT_GT(window->changed, 1000u);
    EXPECT_GT(reinquiry->changed, 10u);
    // Only to true: a longer window never takes a re-inquiry away (null: the old rules needed the claims, which
    // the case lacks, where the new window answers without them).
    for (auto const& g : reinquiry->groups)
        for (auto const& t : g.transitions) {
            EXPECT_TRUE(t.from == "false" || t.from == "null") << t.from;
            EXPECT_EQ(t.to, "true");
        }
    // The new answers are decided by the window clause (query_date <= window_end) of 30_reinquiry.rules.
    bool window_clause = false;
    for (auto const& g : reinquiry->groups)
        window_clause = window_clause || g.new_source.find("query_date <= window_end") != std::string::npos;
    EXPECT_TRUE(window_clause);
    EXPECT_EQ(decision(r, "service_available")->changed, 0u);
    EXPECT_EQ(decision(r, "identity_methods")->changed, 0u);
    // Examples carry the case, so that it can be explained.
    ASSERT_FALSE(reinquiry->groups.empty());
    ASSERT_FALSE(reinquiry->groups[0].examples.empty());
    EXPECT_EQ(reinquiry->groups[0].examples[0].facts.front(), '{');
    // The JSON report is JSON and says the same.
    auto json = nlohmann::json::parse(diff_json(r));
    EXPECT_EQ(json["changed_cases"], r.changed_cases);
    EXPECT_TRUE(json["changed"].get<bool>());
    std::string const md = diff_markdown(r);
    EXPECT_NE(md.find("## 再照会できるか (reinquiry_allowed)"), std::string::npos) << md.substr(0, 3000);
    EXPECT_NE(md.find("false → true"), std::string::npos);
    // The param is reported as a value, and dates in 和暦 with ISO in brackets.
    EXPECT_NE(md.find("方針の値 (param) `窓の月数`: 3 → 4"), std::string::npos);
    EXPECT_NE(md.find("令和6年7月31日 (2024-07-31)"), std::string::npos);
    // A summary first; examples as short tables of the facts the decision reads, the JSON folded away.
    EXPECT_LT(md.find("## まとめ"), md.find("## 再照会できるか"));
    EXPECT_NE(md.find("| 事実 | 値 |\n|---|---|\n| 施設区分 (facility_kind) |"), std::string::npos);
    EXPECT_NE(md.find("<details><summary>この事例を説明する (kyotaku explain)</summary>"), std::string::npos);
}

namespace {
std::vector<SourceFile> edited(std::string const& from, std::string const& to) {
    auto sources = official_sources();
    bool changed = false;
    for (auto& s : sources) {
        auto at = s.text.find(from);
        if (at == std::string::npos) continue;
        s.text.replace(at, from.size(), to);
        changed = true;
    }
    EXPECT_TRUE(changed) << from;
    return sources;
}
}  // namespace

// Issue 23, "What fails today" 3: 診療予約日の受付日数 90 → 30 made rule tests fail, yet diff said nothing changed.
TEST(Diff, AChangedParamAndTheExportedLetsItFeedAreReportedEvenWhenNoDecisionChanges) {
    auto old_rules = compile_sources(official_sources());
    auto new_rules = compile_sources(edited("param 診療予約日の受付日数 = 90", "param 診療予約日の受付日数 = 30"));
    auto r = generated_diff(old_rules, new_rules, 5000);
    EXPECT_TRUE(r.changed());
    ASSERT_EQ(r.values.size(), 1u);
    EXPECT_EQ(r.values[0].name, "診療予約日の受付日数");
    EXPECT_EQ(r.values[0].from, "90");
    EXPECT_EQ(r.values[0].to, "30");
    auto const* last_day = decision(r, "診療予約日の最終日");
    auto const* acceptable = decision(r, "診療予約日を受け付ける");
    ASSERT_TRUE(last_day && acceptable);
    EXPECT_TRUE(last_day->exported);
    EXPECT_GT(last_day->changed, 0u);
    EXPECT_GT(acceptable->changed, 0u);
    // Even with no case at all, the param is reported (and the comparison of cases is an error: nothing compared).
    RuleDiff none(old_rules, new_rules);
    auto empty = none.report();
    EXPECT_TRUE(empty.changed());
    EXPECT_TRUE(empty.corpus_error());
}

TEST(Diff, AnExportedLetOfEnumFactsIsComparedOnEveryCombination) {
    // 訪問看護 taken out of what a 医科 offers: seen on the combination 医科 alone, whatever the corpus.
    auto old_rules = compile_sources(official_sources());
    auto new_rules = compile_sources(
        edited("    訪問診療,\n    訪問看護,\n    訪問薬剤管理指導,", "    訪問診療,\n    訪問薬剤管理指導,"));
    RuleDiff diff(old_rules, new_rules);
    diff.add(R"({"id":"a","facility_kind":"歯科","visit_kind":"歯科訪問診療"})", 1);
    auto r = diff.report();
    auto const* offered = decision(r, "施設の診療区分");
    ASSERT_TRUE(offered);
    EXPECT_EQ(offered->changed, 0u);  // the one case is a 歯科
    EXPECT_EQ(offered->combinations, 4u);
    EXPECT_EQ(offered->combinations_changed, 1u);
    ASSERT_EQ(offered->combination_examples.size(), 1u);
    EXPECT_NE(offered->combination_examples[0].facts.find("医科"), std::string::npos);
    EXPECT_TRUE(r.changed());
    EXPECT_NE(diff_markdown(r).find("4 通りのうち 1 通りで答えが変わります"), std::string::npos);
}

TEST(Diff, AMisspeltKeyIsAnErrorWithTheNearestFactNotASilentNull) {
    auto p = compile_sources(official_sources());
    RuleDiff diff(p, p);
    diff.add(R"({"id":"typo","facility_kind":"医科","reviewed_claims_months":["2024-04"]})", 1);
    diff.add(R"({"id":"ok","facility_kind":"医科"})", 2);
    auto r = diff.report();
    EXPECT_EQ(r.unreadable_both, 1u);
    EXPECT_TRUE(r.corpus_error());
    ASSERT_EQ(r.unreadable_examples.size(), 1u);
    EXPECT_EQ(r.unreadable_examples[0].line, 1u);
    EXPECT_NE(r.unreadable_examples[0].error.find("「reviewed_claim_months」のことですか"), std::string::npos)
        << r.unreadable_examples[0].error;
    // A fact only one rule set has is no error on the other side.
    auto with_new_fact = compile({{"a.rules", "fact a : bool\nfact b : bool\ndecision d : bool = a\n"}}).program;
    auto without = compile({{"a.rules", "fact a : bool\ndecision d : bool = a\n"}}).program;
    RuleDiff across(without, with_new_fact);
    across.add(R"({"a":true,"b":false})", 1);
    EXPECT_EQ(across.report().unreadable_both, 0u);
    EXPECT_EQ(across.report().changed_cases, 0u);
}

TEST(Diff, AnswersThatBecameNullAreReportedApartWithTheMissingFacts) {
    // A version from 2027-04-01 that needs a fact the cases lack: the answers become null, not "changed".
    auto old_rules =
        compile({{"a.rules", "asof q\nfact q : date\nfact a : bool\nfact b : bool\ndecision d : bool = a\n"}}).program;
    auto new_rules =
        compile(
            {{"a.rules",
              "asof q\nfact q : date\nfact a : bool\nfact b : bool\ndecision d : bool\n"
              "  version until 2027-03-31 { otherwise => a }\n  version from 2027-04-01 { otherwise => a and b }\n"}})
            .program;
    ASSERT_TRUE(old_rules && new_rules);
    RuleDiff diff(old_rules, new_rules);
    diff.add(R"({"id":1,"q":"2027-04-01","a":true})", 1);
    diff.add(R"({"id":2,"q":"2027-04-01","a":true,"b":false})", 2);
    auto r = diff.report();
    auto const* d = decision(r, "d");
    ASSERT_TRUE(d);
    EXPECT_EQ(d->became_unknown, 1u);
    EXPECT_EQ(d->changed, 1u);
    bool named = false;
    for (auto const& g : d->groups)
        if (g.kind == DiffGroup::Kind::became_unknown) named = g.missing == "b";
    EXPECT_TRUE(named);
    EXPECT_NE(diff_markdown(r).find("足りない事実: b"), std::string::npos);
}

TEST(Diff, TheRealisticCorpusKeepsTheRulesAssumptionsHasItsFactsAndLabelsItsCases) {
    auto p = compile_sources(official_sources());
    ASSERT_FALSE(p->assumptions.empty());
    JsonlEvaluator reader(p);
    Evaluator ev(p);
    Activation facts(*p);
    int const offered = p->find_slot("施設の診療区分");
    std::map<std::string, int> classes;
    std::size_t n = 0, null_answers = 0;
    generate_realistic_corpus(*p, *p, 3000, 1, [&](std::string_view line, std::string const& cls) {
        ++n;
        ++classes[cls];
        std::string id;
        ASSERT_EQ(reader.read_facts(line, facts, id), "") << line;
        // What the facility kind offers includes the visit kind (施設の診療区分, by the rules' assume).
        Outcome const o = ev.evaluate_slot(facts, std::uint32_t(offered));
        ASSERT_EQ(o.status, Status::ok);
        int const visit = p->find_fact("visit_kind");
        EXPECT_TRUE((std::uint64_t(o.value) >> facts.raw(visit)) & 1u) << line;
        ev.evaluate(facts);
        for (auto const& out : ev.outcomes()) null_answers += out.status != Status::ok;
    });
    EXPECT_EQ(n, 3000u);
    EXPECT_EQ(null_answers, 0u) << "a realistic case has the facts its decisions need";
    EXPECT_GE(classes.size(), 8u);
    EXPECT_TRUE(classes.count("初回から3〜6か月 / 審査済みレセプト: 一月抜け"));
    for (auto const& [cls, count] : classes) EXPECT_EQ(cls.find("作れません"), std::string::npos) << cls;
}

TEST(Diff, TheShareOfRealisticCasesAChangeTouchesIsReported) {
    // 訪問看護 out of re-inquiry: far more of the realistic cases than of the boundary-seeking generated ones.
    auto old_rules = compile_sources(official_sources());
    auto new_rules = compile_sources(edited("再照会できる区分 = visit_kind in {\n  訪問診療,\n  訪問看護,\n",
                                            "再照会できる区分 = visit_kind in {\n  訪問診療,\n"));
    auto share = [&](bool realistic) {
        RuleDiff diff(old_rules, new_rules);
        std::uint64_t n = 0;
        if (realistic)
            generate_realistic_corpus(*old_rules, *new_rules, 20000, 1,
                                      [&](std::string_view line, std::string const& cls) { diff.add(line, ++n, cls); });
        else
            generate_corpus(*old_rules, *new_rules, 20000, 1, [&](std::string_view line) { diff.add(line, ++n); });
        auto r = diff.report();
        return double(decision(r, "reinquiry_allowed")->total()) / double(r.cases);
    };
    double const real = share(true), generated = share(false);
    std::printf("訪問看護 out of re-inquiry: %.1f%% of realistic cases, %.1f%% of generated ones\n", 100 * real,
                100 * generated);
    EXPECT_GT(real, 0.02);
    EXPECT_GT(real, 2 * generated);
}

TEST(Diff, TheGeneratedCorpusCoversEveryEnumValueAndBothTruthValues) {
    auto p = compile_sources(official_sources());
    std::map<std::string, std::set<std::string>> seen;
    generate_corpus(*p, *p, 2000, 7, [&](std::string_view line) {
        auto j = nlohmann::json::parse(line);
        for (auto const& [k, v] : j.items())
            if (v.is_string() || v.is_boolean()) seen[k].insert(v.dump());
    });
    for (auto const& f : p->facts) {
        if (f.type.kind == TypeKind::Enum)
            for (auto const& v : p->enums[std::size_t(f.type.enum_id)].values)
                EXPECT_TRUE(seen[f.name].count("\"" + v + "\"")) << f.name << " never " << v;
        if (f.type.kind == TypeKind::Bool) EXPECT_EQ(seen[f.name].size(), 2u) << f.name;
    }
    // Dates fall on both sides of every version boundary (identity_methods changes on 2024-10-01).
    EXPECT_TRUE(seen["query_date"].count("\"2024-09-30\"") || seen["query_date"].count("\"2024-10-01\""));
    // Deterministic for a seed.
    std::string a, b;
    generate_corpus(*p, *p, 50, 3, [&](std::string_view l) { a += l; });
    generate_corpus(*p, *p, 50, 3, [&](std::string_view l) { b += l; });
    EXPECT_EQ(a, b);
}

TEST(Diff, ANewEnumValueIsUnreadableForTheOldRules) {
    auto old_rules = compile({{"a.rules", "enum E { x, y }\nfact e : E\ndecision d : bool = e == x\n"}}).program;
    auto new_rules =
        compile({{"a.rules", "enum E { x, y, z }\nfact e : E\ndecision d : bool = e == x\ndecision added : int = 1\n"}})
            .program;
    ASSERT_TRUE(old_rules && new_rules);
    RuleDiff diff(old_rules, new_rules);
    diff.add(R"({"id":1,"e":"z"})", 1);
    diff.add(R"({"id":2,"e":"x"})", 2);
    diff.add(R"({"id":3,"e":"nothing"})", 3);
    auto r = diff.report();
    EXPECT_EQ(r.cases, 3u);
    EXPECT_EQ(r.changed_cases, 1u);
    EXPECT_EQ(r.unreadable_both, 1u);
    EXPECT_EQ(r.only_new, std::vector<std::string>{"added"});
    ASSERT_FALSE(r.decisions.empty());
    EXPECT_EQ(r.decisions.back().name, "(読めない行)");
}

// ---- signed bundles ---------------------------------------------------------------------------------------------

namespace {
struct Keys {
    std::filesystem::path dir;
    std::string key, pub, other_key, other_pub;
    Keys() {
        char tmpl[] = "/tmp/kyotaku-keys-XXXXXX";
        dir = ::mkdtemp(tmpl);
        auto write = [&](std::string const& name, std::string const& text) {
            std::ofstream(dir / name) << text;
            return (dir / name).string();
        };
        KeyPair a = generate_key_pair(), b = generate_key_pair();
        EXPECT_TRUE(a.error.empty() && b.error.empty());
        key = write("a.key", a.private_pem);
        pub = write("a.pub", a.public_pem);
        other_key = write("b.key", b.private_pem);
        other_pub = write("b.pub", b.public_pem);
    }
    ~Keys() { std::filesystem::remove_all(dir); }
};
}  // namespace

TEST(Signing, ASignedBundleLoadsOnlyWithItsKey) {
    Keys keys;
    auto p = compile_sources(official_sources());
    std::string const plain = save_bundle(*p);
    SignResult s = sign_bundle(plain, keys.key);
    ASSERT_TRUE(s.ok()) << s.error.text();
    // sign_bundle stamps the signing key's id (16 hex digits) into the header, then appends the trailer.
    ASSERT_EQ(s.bundle.size(), plain.size() + 16 + bundle_trailer_size);
    PublicKey trusted = read_public_key(keys.pub), other = read_public_key(keys.other_pub);
    ASSERT_TRUE(trusted.ok() && other.ok());

    EXPECT_TRUE(check_bundle_signature(s.bundle, {trusted.raw}).empty());
    EXPECT_TRUE(check_bundle_signature(s.bundle, {other.raw, trusted.raw}).empty());  // several trusted keys
    // Without trusted keys a signed bundle loads as an unsigned one (the WebAssembly engine does that).
    EXPECT_TRUE(load_bundle(s.bundle).program);

    Message unsigned_message = check_bundle_signature(plain, {trusted.raw});
    EXPECT_NE(unsigned_message.ja.find("署名がありません"), std::string::npos);
    Message other_key = check_bundle_signature(s.bundle, {other.raw});
    EXPECT_NE(other_key.en.find("not trusted (fingerprint " + key_fingerprint(trusted.raw)), std::string::npos)
        << other_key.en;
    std::string tampered = s.bundle;
    tampered[tampered.size() / 2] ^= 0x01;
    Message bad = check_bundle_signature(tampered, {trusted.raw});
    EXPECT_NE(bad.ja.find("署名が合いません"), std::string::npos) << bad.ja;
    std::string forged = s.bundle;
    forged[forged.size() - 1] ^= 0x01;  // the signature itself
    EXPECT_FALSE(check_bundle_signature(forged, {trusted.raw}).empty());
}

TEST(Signing, TrustedLoadersRefuseSourcesUnsignedAndTamperedBundles) {
    Keys keys;
    auto p = compile_sources(official_sources());
    std::string const plain = save_bundle(*p);
    SignResult s = sign_bundle(plain, keys.key);
    auto write = [&](std::string const& name, std::string const& bytes) {
        std::ofstream(keys.dir / name, std::ios::binary) << bytes;
        return (keys.dir / name).string();
    };
    std::vector<std::string> const trusted{read_public_key(keys.pub).raw};
    auto ok = load_trusted_rules(write("signed.bundle", s.bundle), trusted);
    ASSERT_TRUE(ok.program) << ok.describe();
    EXPECT_EQ(ok.program->source_hash, p->source_hash);
    auto sources = load_trusted_rules(KYOTAKU_SOURCE_DIR "/rules", trusted);
    EXPECT_FALSE(sources.program);
    EXPECT_NE(sources.message.ja.find("ルールのソース"), std::string::npos) << sources.describe();
    auto unsigned_bundle = load_trusted_rules(write("plain.bundle", plain), trusted);
    EXPECT_FALSE(unsigned_bundle.program);
    std::string tampered = s.bundle;
    tampered[40] ^= 0x10;
    auto t = load_trusted_rules(write("tampered.bundle", tampered), trusted);
    EXPECT_FALSE(t.program);
    EXPECT_NE(t.message.text().find("does not verify"), std::string::npos) << t.describe();
    // No keys: the ordinary loader.
    EXPECT_TRUE(load_trusted_rules(KYOTAKU_SOURCE_DIR "/rules", {}).program);
    // Keys that are not Ed25519 public keys are refused with a message.
    EXPECT_FALSE(read_public_key(keys.key).ok());
    EXPECT_FALSE(read_public_key((keys.dir / "missing.pub").string()).ok());
    EXPECT_FALSE(sign_bundle(plain, keys.pub).ok());
}

// ---- releases (issue 23): the release number and the signing key inside the signed part --------------------------

TEST(Releases, TheReleaseAndTheSigningKeyAreInsideTheSignedPart) {
    Keys keys;
    auto p = compile_sources(official_sources());
    std::string const plain = save_bundle(*p, ReleaseInfo{7, {}, std::string(64, 'a')});
    auto header = read_bundle_header(plain);
    ASSERT_TRUE(header);
    EXPECT_EQ(header->release.release, 7u);
    EXPECT_EQ(header->release.key_id, "");
    EXPECT_EQ(header->source_hash, p->source_hash);
    SignResult s = sign_bundle(plain, keys.key);
    ASSERT_TRUE(s.ok()) << s.error.text();
    std::string const fingerprint = key_fingerprint(read_public_key(keys.pub).raw);
    auto loaded = load_bundle(s.bundle);
    ASSERT_TRUE(loaded.program) << loaded.describe();
    EXPECT_EQ(loaded.release.release, 7u);
    EXPECT_EQ(loaded.release.key_id, fingerprint);  // stamped by sign_bundle, before signing
    EXPECT_EQ(loaded.release.report_sha256, std::string(64, 'a'));
    std::vector<std::string> const trusted{read_public_key(keys.pub).raw};
    EXPECT_TRUE(check_bundle_signature(s.bundle, trusted).empty());

    // Renumbering a signed bundle breaks its signature: the number is in what was signed.
    auto renumbered = save_bundle(*p, ReleaseInfo{8, fingerprint, std::string(64, 'a')});
    std::string forged = renumbered + s.bundle.substr(s.bundle.size() - bundle_trailer_size);
    ASSERT_EQ(forged.size(), s.bundle.size());
    EXPECT_NE(check_bundle_signature(forged, trusted).ja.find("署名が合いません"), std::string::npos);
    // A bundle signed by hand over a header naming no key (or another key) is refused, naming both.
    auto stamped_other = stamp_bundle_key_id(plain, "0123456789abcdef");
    ASSERT_TRUE(stamped_other);
    auto other = load_bundle(*stamped_other);
    EXPECT_EQ(other.release.key_id, "0123456789abcdef");
    // (sign_bundle always restamps its own key, so the mismatch is made by replacing the header after signing.)
    SignResult resigned = sign_bundle(*stamped_other, keys.key);
    ASSERT_TRUE(resigned.ok());
    EXPECT_EQ(load_bundle(resigned.bundle).release.key_id, fingerprint);
    // The hex of a source hash is zero-padded to 16 digits.
    EXPECT_EQ(source_hash_hex(0x1234), "0000000000001234");
    EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Releases, ABundleOfTheFormerFormatIsRefusedWithAClearMessage) {
    auto p = compile_sources(official_sources());
    std::string bytes = save_bundle(*p);
    // The format version is the first field of the header (a little-endian u32 after "KYTKBNDL" and the size).
    bytes[12] = 2;
    auto r = load_bundle(bytes);
    EXPECT_FALSE(r.program);
    EXPECT_NE(r.message.ja.find("形式の版が違います (バンドル 2"), std::string::npos) << r.describe();
}
