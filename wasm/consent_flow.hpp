// The consent page's flow (マイナ在宅受付Web), as a state machine over the compiled rule set:
//   訪問診療等:   診療区分 → 同意する項目 → 本人確認の方法 → カード読み取り → 完了
//   オンライン診療等: 診療区分 → 診療予約日 → 同意する項目 → 本人確認の方法 → カード読み取り → 完了
// Which 診療区分 a facility offers (with a sentence each), which can be chosen today, which consent choices exist,
// what they stand for, which identity methods the page offers, whether a 診療予約日 is acceptable and whether
// staff are present (the hand-off to the staff's device) all come from the rules (rules/10_service.rules,
// rules/50_consent_page.rules); nothing here decides policy. Portable C++: compiled natively for its tests and
// into the page's WebAssembly module.
#pragma once

#include "contract/rule_contract.hpp"
#include "kyotaku/engine.hpp"
#include "kyotaku/message.hpp"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kyotaku::consent {

/// What the server says about the facility behind the URL (embedded in the page, or GET /api/v1/consent/page).
struct Facility {
    std::string kind;                ///< 施設区分: 医科 / 歯科 / 薬局 / 訪問看護ステーション
    bool home_care_feature = false;  ///< 環境設定: 訪問診療等機能
    bool online_feature = false;     ///< 環境設定: オンライン診療等機能
};

enum class Step { visit_kind, appointment, items, identity, card, done };
char const* to_string(Step step);

/// Why a step was refused: a plain Japanese sentence for the patient and English for developers and logs.
/// Empty when the step was accepted.
struct Problem : Message {
    explicit operator bool() const { return !ja.empty(); }
};

/// 和暦 of an ISO date for the page (`令和6年10月1日`); the text unchanged when it is not a date.
std::string wareki_of(std::string const& iso);

class Flow {
public:
    /// `today` is the day the patient consents (the server's date, passed in: no hidden clock). The rules are
    /// bound to the rule contract (the server's) once, here. Throws std::runtime_error naming the let or decision
    /// the rules lack (its what() is the message's text(); contract_error() has the two languages apart).
    Flow(std::shared_ptr<Program const> rules, Facility facility, Date today);
    /// The same over rules already bound to the contract (RuleContract::bind, whose error names what they lack).
    Flow(RuleContract contract, Facility facility, Date today);

    Step step() const { return step_; }
    bool online() const { return online_; }
    Date today() const { return today_; }

    /// 診療区分 the facility offers (施設の診療区分) and that can be used today (service_available), in the
    /// rule set's order.
    std::vector<std::string> visit_kinds() const;
    /// The plain sentence that explains a 診療区分 (診療区分の説明).
    std::string visit_kind_note(std::string const& visit_kind) const;
    /// Why none can be used, when visit_kinds() is empty: the deciding clause's reason (for the staff).
    std::string unavailable_reason() const;

    Problem choose_visit_kind(std::string const& visit_kind);
    /// Whether staff are present for the chosen 診療区分 (職員がいる): the card can then be read on the staff's device.
    bool staff_present() const;
    Problem set_appointment(std::string const& date);  ///< ISO or 和暦
    /// The last 診療予約日 the rules accept (診療予約日の最終日), when they bound it.
    std::optional<Date> last_appointment() const;
    std::vector<std::string> choices() const;  ///< 同意の選択肢一覧
    /// The chosen consent choices; none is a valid answer (the card check is then made without viewing consent).
    Problem choose_items(std::vector<std::string> const& chosen);
    std::vector<std::string> identity_methods() const;  ///< identity_methods on today (no 目視確認 without staff)
    Problem choose_identity(std::string const& method);
    /// The card step succeeded (the registration was accepted by the server).
    void finish();
    /// One step back, keeping what was chosen. False on the first step or after finishing.
    bool back();

    std::string visit_kind() const { return visit_kind_; }
    std::string appointment() const { return appointment_; }  ///< ISO, online care only
    std::string identity_method() const { return identity_; }
    std::vector<std::string> chosen() const { return chosen_; }
    /// The consented items (閲覧項目) the chosen choices stand for, in the rule set's order.
    std::vector<std::string> items() const;

private:
    Activation facts_for(std::string const& visit_kind) const;
    bool feature_enabled(Activation const& facts) const;
    Outcome decide(Activation const& facts, std::uint32_t slot) const;
    std::vector<std::string> set_values(std::uint32_t slot, Activation const& facts) const;
    std::shared_ptr<Program const> rules_;
    RuleContract contract_;
    // One evaluator for the flow's life (each decision's facts are a new Activation, which it notices).
    mutable Evaluator ev_;
    Facility facility_;
    Date today_;
    Step step_ = Step::visit_kind;
    bool online_ = false;
    std::string visit_kind_, appointment_, identity_;
    std::vector<std::string> chosen_;
};

}  // namespace kyotaku::consent
