// The consent page's flow (マイナ在宅受付Web), as a state machine over the compiled rule set:
//   訪問診療等:   診療区分 → 同意する項目 → 本人確認の方法 → カード読み取り → 完了
//   オンライン診療等: 診療区分 → 診療予約日 → 同意する項目 → 本人確認の方法 → カード読み取り → 完了
// Which 診療区分 can be chosen, which consent choices exist, what they stand for, which identity methods are
// allowed today and whether a 診療予約日 is acceptable all come from the rules (rules/10_service.rules,
// rules/50_consent_page.rules); nothing here decides policy. Portable C++: compiled natively for its tests and
// into the WebAssembly engine for the page.
#pragma once

#include "kyotaku/engine.hpp"

#include <memory>
#include <string>
#include <vector>

namespace kyotaku::consent {

/// What the server says about the facility behind the URL (GET /api/v1/consent/page).
struct Facility {
    std::string kind;            ///< 施設区分: 医科 / 歯科 / 薬局 / 訪問看護ステーション
    bool home_care_feature = false;  ///< 環境設定: 訪問診療等機能
    bool online_feature = false;     ///< 環境設定: オンライン診療等機能
};

enum class Step { visit_kind, appointment, items, identity, card, done };
char const* to_string(Step step);

class Flow {
public:
    /// `today` is the day the patient consents (the server's date, passed in: no hidden clock).
    Flow(std::shared_ptr<Program const> rules, Facility facility, Date today);

    Step step() const { return step_; }
    bool online() const { return online_; }

    /// 診療区分 that can be used today (service_available), in the rule set's order.
    std::vector<std::string> visit_kinds() const;
    /// Why none can be used, when visit_kinds() is empty (the rule's reason for the first kind).
    std::string unavailable_reason() const;

    // Each step returns "" when accepted, otherwise a message for the page (Japanese / English).
    std::string choose_visit_kind(std::string const& visit_kind);
    std::string set_appointment(std::string const& date);  ///< ISO or 和暦
    std::vector<std::string> choices() const;              ///< 同意の選択肢一覧
    std::string choose_items(std::vector<std::string> const& chosen);
    std::vector<std::string> identity_methods() const;     ///< identity_methods on today
    std::string choose_identity(std::string const& method);
    /// The card step succeeded (the registration was accepted by the server).
    void finish();
    /// One step back, keeping what was chosen. False on the first step or after finishing.
    bool back();

    std::string visit_kind() const { return visit_kind_; }
    std::string identity_method() const { return identity_; }
    std::vector<std::string> chosen() const { return chosen_; }
    /// The consented items (閲覧項目) the chosen choices stand for, in the rule set's order.
    std::vector<std::string> items() const;
    /// The fields of POST /api/v1/consent/register that the flow decided (JSON object, without token,
    /// challenge, certificate, signature and passcode).
    std::string registration_json() const;

private:
    Activation facts_for(std::string const& visit_kind) const;
    bool is_online(Activation const& facts) const;
    Outcome decide(Activation const& facts, int slot) const;
    std::vector<std::string> set_values(int slot, Activation const& facts) const;
    std::shared_ptr<Program const> rules_;
    Facility facility_;
    Date today_;
    Step step_ = Step::visit_kind;
    bool online_ = false;
    std::string visit_kind_, appointment_, identity_;
    std::vector<std::string> chosen_;
};

}  // namespace kyotaku::consent
