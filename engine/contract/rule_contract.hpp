// The rule contract: every fact the server and the consent page's flow set and every decision or let they ask, bound
// once when a rule set loads, by name and type — one contract for both, so that the page cannot be given rules the
// server would refuse, nor the other way round. A rule set that lacks one, or declares it with another type, is
// refused at start (or at reload, or when the page opens) with a message naming it, instead of failing on the first
// request; afterwards everyone asks by index, never by name.
//
// It also answers, once per rule set, what the rules say about each 診療区分 on its own: its 分類, the 機能 of
// 環境設定 it uses, and whether a card-verified consent of that kind starts a continuing relationship; and about each
// 施設区分: the 診療区分 it offers and the 機能 those use. Neither the
// server nor the page keeps such a table of its own. Library kyotaku::contract (the server links it natively, the
// page's WebAssembly module compiles it with the flow).
#pragma once

#include "kyotaku/engine.hpp"
#include "kyotaku/message.hpp"

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace kyotaku {

struct RuleContract {
    std::shared_ptr<Program const> program;
    // The server's: the bundle exactly as it was loaded and its signature checked (kyotaku serve --trust), what the
    // consent page gets, so that it can check the same signature. Null: the page gets the program serialised.
    std::shared_ptr<std::string const> exact_bundle;

    // Fact ids (indexes into Program::facts).
    struct Facts {
        int facility_kind, visit_kind, first_visit, query_date, continuing_home_care, reviewed_claim_months, terminal,
            consented_items, requested_item, feature_enabled, enabled_items, appointment_date, preparatory_visit,
            confirmation_date;
        int consent_choice;  // the consent page's: one choice whose items 選択肢の閲覧項目 names
    } fact{};
    // Slot ids (lets and decisions).
    struct Slots {
        std::uint32_t category;                 // let 分類 : 診療区分の分類
        std::uint32_t feature;                  // let 利用する機能 : 機能
        std::uint32_t starts_relationship;      // let 再照会できる区分 : bool
        std::uint32_t relationship_continuing;  // let 継続的な関係 : bool
        std::uint32_t appointment_acceptable;   // let 診療予約日を受け付ける : bool
        std::uint32_t appointment_required;     // let 診療予約日が必要 : bool
        // let 施設が行う区分 : bool (with the reason every registration path gives)
        std::uint32_t offers;
        std::uint32_t asks_preparatory;         // let 事前の訪問を尋ねる : bool
        std::uint32_t confirmation_acceptable;  // let 資格確認日を受け付ける : bool
        std::uint32_t decision_date;            // let 照会を判定する日 : date
        std::uint32_t service_available, identity_methods, reinquiry_allowed, eligibility_available,
            medical_info_viewable, window_end;
        // let 施設の診療区分 : set<診療区分> (the page's choices; 施設が行う区分 asks it)
        std::uint32_t offered_visit_kinds;
        // The consent page's (rules/50_consent_page.rules).
        std::uint32_t visit_kind_note;                  // let 診療区分の説明 : text
        std::uint32_t staff_present;                    // let 職員がいる : bool
        std::uint32_t consent_choices;                  // let 同意の選択肢一覧 : set<同意の選択肢>
        std::uint32_t choice_items;                     // let 選択肢の閲覧項目 : set<閲覧項目>
        std::optional<std::uint32_t> last_appointment;  // let 診療予約日の最終日 : date, when the rules bound it
    } slot{};

    // What the rules say of each 診療区分 on its own.
    struct Kind {
        std::string category;  // 訪問診療等 / オンライン診療等
        std::string feature;   // 訪問診療等機能 / オンライン診療等機能
        bool starts_relationship = false;
        bool needs_appointment = false;  // the consent carries a 診療予約日 (オンライン診療等)
        bool asks_preparatory = false;   // the registration records whether it was a preparatory visit (事前の訪問)
    };
    std::map<std::string, Kind, std::less<>> kinds;
    // What the rules say of each 施設区分 on its own: the 診療区分 it offers (施設の診療区分) and the 機能 of 環境設定
    // those use (利用する機能 of each): the only switches its 環境設定 can turn on.
    struct FacilityKind {
        std::vector<std::string> visit_kinds;
        std::vector<std::string> features;
    };
    std::map<std::string, FacilityKind, std::less<>> facility_kinds;

    Kind const* kind(std::string_view visit_kind) const;
    FacilityKind const* facility_kind(std::string_view kind) const;
    // The enum value names of a fact or slot's type, and the index of one of them (-1 when it has none).
    std::vector<std::string> const& values_of_fact(int fact) const;
    std::vector<std::string> const& values_of_slot(std::uint32_t slot) const;
    int value_index_of_fact(int fact, std::string_view value) const;
    int value_index_of_slot(std::uint32_t slot, std::string_view value) const;

    // Binds a rule set; the error names the missing or mistyped fact, slot or value.
    static std::variant<RuleContract, Message> bind(std::shared_ptr<Program const> program);
};

}  // namespace kyotaku
