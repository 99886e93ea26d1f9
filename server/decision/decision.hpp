// The decision path: the only place in the server that asks the rules. For a facility, a person and a 分類 it
// builds the facts from the server's own records and its own date (never from the caller), evaluates through the
// rule contract, and returns the decision with its reason and the consent it rests on.
//
// How the records become facts (domain.md §6, 通知 第2): a facility's open consents for the person in the 分類 are
// its continuing relationship — the newest consent of a kind that starts one (the rules' 再照会できる区分), which a
// later one of such a kind restarts — and the single visits (往診, オンライン診療等) that do not. A single visit
// neither ends nor restarts the relationship: it is asked on its own, with `continuing_home_care` set to whether
// the rules find the relationship continuing today (let 継続的な関係). The answer is the first of these that the
// rules allow (the relationship first, then single visits, newest first); a refusal gives the newest one's reason.
#pragma once

#include "contract/rule_contract.hpp"
#include "kyotaku/message.hpp"
#include "storage/records.hpp"

#include <optional>
#include <string>

namespace kyotaku::server {

struct Verdict {
    bool allowed = false;
    bool decided = true;     // false: the rules could not decide (a missing fact, no version in force)
    // The deciding clause's reason with its file:line (Japanese only: en is empty for a rule's reason), or why no
    // rule was asked (in both languages: no consent …).
    Message reason;
    std::optional<ConsentRecord> basis;  // the consent the decision rests on
    std::optional<std::string> window_end;  // of the relationship, when the answer rests on it (a 往診 within it too)
};

// The rule program in force, with its contract. Shared and immutable; a reload swaps the whole of it.
using Rules = std::shared_ptr<RuleContract const>;

class DecisionPath {
public:
    DecisionPath(Rules rules, Records& records, Date today)
        : rules_(std::move(rules)), records_(records), today_(today) {}

    Date today() const { return today_; }
    RuleContract const& rules() const { return *rules_; }

    // 資格情報 (re-inquiry, or the eligibility query of a card-verified visit's own verification):
    // eligibility_available. `confirmation_date` is the request's 資格確認日 (ISO; empty: today). The rules first say,
    // on today's date, whether they take that day (let 資格確認日を受け付ける: tomorrow's round prepared the evening
    // before; a refusal gives their reason) and on which day the relationship must hold (let 照会を判定する日: a
    // 資格確認日 ahead of today, else today); eligibility_available is asked on that day, from today's records.
    Verdict eligibility(FacilityInfo const& facility, std::string const& person, std::string const& category,
                        std::string const& confirmation_date = {});
    // The rules' refusal of a 資格確認日 on today's date, if they refuse it. It depends on the date alone, so a route
    // asks it before it looks the person up: the refusal is the same for everyone.
    std::optional<Verdict> confirmation_refused(std::string const& confirmation_date);
    // 薬剤情報等の閲覧: medical_info_viewable for `item` from `terminal`.
    Verdict viewing(FacilityInfo const& facility, std::string const& person, std::string const& category,
                    std::string const& item, std::string const& terminal);
    // The refusal of a person without this facility's consent (the same words for one who does not exist).
    static Verdict no_consent();
    // Asks medical_info_viewable with only the terminal and the item: when the rules refuse that terminal whatever
    // the rest (モバイル端末), the refusal is given without looking up whether the person or a consent exists.
    std::optional<Verdict> viewing_refused_for_terminal(std::string const& terminal, std::string const& item);

    // Consent registration on today's date: the service, the identity method and the 診療予約日, by the rules.
    // Whether the consent was taken at a preparatory visit is recorded only for the kinds the rules ask it for
    // (事前の訪問を尋ねる).
    struct Registration {
        bool ok = false;
        std::string field;       // the request field a refusal is about
        Message reason;          // the rules' reason (en: "refused by the rules")
        bool staff_present = false;  // let 職員がいる: staff are there to read the card (the hand-off to their device)
    };
    Registration registration(FacilityInfo const& facility, std::string const& visit_kind,
                              std::string const& identity_method, std::optional<std::string> const& appointment_date,
                              bool preparatory_visit = false);
    // What every registration path asks, the operator's test data included (whose 環境設定 and date may predate the
    // consent it records): whether the facility's kind offers the visit kind (let 施設が行う区分, with its reason), and
    // whether a preparatory visit can be recorded for it.
    Registration offered(FacilityInfo const& facility, std::string const& visit_kind, bool preparatory_visit = false);
    // The 診療予約日 of a consent taken on `consent_day`: needed exactly for the kinds the rules say
    // (診療予約日が必要), and then one they take on that day (診療予約日を受け付ける). Every registration path asks it;
    // the operator's test data on the consent's own first visit.
    Registration appointment_taken(std::string const& visit_kind, std::optional<std::string> const& appointment_date,
                                   Date consent_day);

private:
    // The day eligibility is decided on for a 資格確認日 the rules take (照会を判定する日), or their refusal.
    struct Day {
        Date on;
        std::optional<Verdict> refused;
    };
    Day decision_day(std::string const& confirmation_date);
    Verdict decide(FacilityInfo const& facility, std::string const& person, std::string const& category,
                   std::uint32_t slot, std::string const* item, std::string const* terminal, Date on);
    Rules rules_;
    Records& records_;
    Date today_;
};

// One evaluator per thread for the program in force (an Evaluator is not thread-safe; the Program is shared).
Evaluator& evaluator_for(std::shared_ptr<Program const> const& program);

}  // namespace kyotaku::server
