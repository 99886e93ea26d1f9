// kyotaku diff (what a rule change does) and signed bundles.
#include "kyotaku/diff.hpp"
#include "kyotaku/engine.hpp"
#include "kyotaku/signing.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
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
    EXPECT_NE(md.find("## reinquiry_allowed"), std::string::npos);
    EXPECT_NE(md.find("| false | true |"), std::string::npos);
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
    auto new_rules = compile({{"a.rules", "enum E { x, y, z }\nfact e : E\ndecision d : bool = e == x\ndecision added : int = 1\n"}}).program;
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
    ASSERT_EQ(s.bundle.size(), plain.size() + bundle_trailer_size);
    PublicKey trusted = read_public_key(keys.pub), other = read_public_key(keys.other_pub);
    ASSERT_TRUE(trusted.ok() && other.ok());

    EXPECT_TRUE(check_bundle_signature(s.bundle, {trusted.raw}).empty());
    EXPECT_TRUE(check_bundle_signature(s.bundle, {other.raw, trusted.raw}).empty());  // several trusted keys
    // Without trusted keys a signed bundle loads as an unsigned one (the WebAssembly engine does that).
    EXPECT_TRUE(load_bundle(s.bundle).program);

    Message unsigned_message = check_bundle_signature(plain, {trusted.raw});
    EXPECT_NE(unsigned_message.ja.find("署名がありません"), std::string::npos);
    Message other_key = check_bundle_signature(s.bundle, {other.raw});
    EXPECT_NE(other_key.en.find("not trusted (fingerprint " + key_fingerprint(trusted.raw)), std::string::npos) << other_key.en;
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
