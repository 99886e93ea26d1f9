// One release command (`kyotaku release`): rules become a signed release only after every check passes.
//
//   kyotaku release --previous rules-4.bundle --rules rules --sign 政策.key -o rules-5.bundle
//
// In order: the rules compile with no warning (`check --strict`), are in canonical format (`fmt --check`), pass
// their own tests, every invariant is proven (`prove`), and `diff` against the previous release runs over a corpus; the
// diff report is written beside the bundle (rules-5.diff.md) and its SHA-256 goes into the signed part of the bundle,
// with the release number (the previous one's plus one) and the signing key's id. When any step fails nothing is signed
// and nothing is written. Library: kyotaku::release (with signing, and Z3 for the proofs).
#pragma once

#include "kyotaku/diff.hpp"
#include "kyotaku/engine.hpp"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace kyotaku {

struct ReleaseOptions {
    std::string previous;  // the previous release: a signed bundle (its release number + 1 is the new one), or rule
                           // sources or an unnumbered bundle for a first release (then `release` must be given)
    std::string rules;     // the new rules: a directory of .rules files
    std::string sign_key;  // Ed25519 private key (PEM)
    std::string output;    // the bundle to write; the report goes beside it (report_path)
    // raw public keys the previous bundle must be signed by (default: the signing key)
    std::vector<std::string> trusted_keys;
    std::uint64_t release = 0;  // 0: the previous release's number + 1
    // realistic or generated (kyotaku diff --corpus …), or a JSON Lines file of cases
    std::string corpus = "realistic";
    std::size_t cases = 100000;
    std::uint64_t seed = 1;
};

// Where the diff report of a release is written: rules-5.bundle → rules-5.diff.md (else OUTPUT.diff.md).
std::string release_report_path(std::string const& output);

struct ReleaseStep {
    std::string name;     // "check --strict", "fmt --check", "test", "prove", "diff", "sign"
    bool ok = false;
    std::string summary;  // one line: what it found
    std::string detail;   // what failed, in full (diagnostics, failing tests, counterexamples)
};

struct ReleaseOutcome {
    bool ok = false;
    std::vector<ReleaseStep> steps;
    std::uint64_t release = 0, previous_release = 0;
    std::string key_id, report_path, report_sha256;
};

// Runs every step (reporting each to `progress` as it ends) and signs only when all passed.
ReleaseOutcome make_release(ReleaseOptions const& options,
                            std::function<void(ReleaseStep const&)> const& progress = {});

}  // namespace kyotaku
