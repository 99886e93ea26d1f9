#include "rule_contract.hpp"

#include <algorithm>

namespace kyotaku {

namespace {

char const* kind_name(TypeKind k) {
    switch (k) {
        case TypeKind::Bool: return "bool";
        case TypeKind::Int: return "int";
        case TypeKind::Date: return "date";
        case TypeKind::Month: return "month";
        case TypeKind::Text: return "text";
        case TypeKind::Enum: return "enum";
        case TypeKind::EnumSet: return "set<enum>";
        case TypeKind::MonthSet: return "set<month>";
        case TypeKind::MonthRange: return "month range";
    }
    return "?";
}

// Looks names up once and keeps the first failure (the one a message names).
struct Binder {
    Program const& p;
    Message error;

    int fact(char const* name, TypeKind kind) {
        int f = p.find_fact(name);
        if (f < 0) fail({std::string("fact ") + name + " がありません", std::string("the rules lack fact ") + name});
        else if (p.facts[std::size_t(f)].type.kind != kind)
            fail({std::string("fact ") + name + " の型が " + kind_name(kind) + " ではありません",
                  std::string("fact ") + name + " must be " + kind_name(kind)});
        return f;
    }
    std::uint32_t slot(char const* name, TypeKind kind) {
        int s = p.find_slot(name);
        if (s < 0) {
            fail({std::string("判定または let ") + name + " がありません",
                  std::string("the rules lack decision or let ") + name});
            return 0;
        }
        if (p.slots[std::size_t(s)].type.kind != kind)
            fail({std::string(name) + " の型が " + kind_name(kind) + " ではありません",
                  std::string(name) + " must be " + kind_name(kind)});
        // What a program reads by name is declared so: kyotaku diff compares every decision and export let.
        if (!p.slots[std::size_t(s)].decision && !p.slots[std::size_t(s)].exported)
            fail({std::string("let ") + name + " はサーバと同意ページが名前で読むので export let と書いてください",
                  std::string("let ") + name +
                      " is read by name by the server and the consent page: declare it `export let`"});
        return std::uint32_t(s);
    }
    // A let the rules may leave out; when present, it has this type.
    std::optional<std::uint32_t> optional_slot(char const* name, TypeKind kind) {
        if (p.find_slot(name) < 0) return std::nullopt;
        return slot(name, kind);
    }
    void values(int enum_id, char const* what, std::initializer_list<char const*> names) {
        if (enum_id < 0) return;
        for (char const* v : names)
            if (p.find_enum_value(enum_id, v) < 0)
                fail({std::string(what) + " に値 " + v + " がありません", std::string(what) + " lacks the value " + v});
    }
    void fail(Message message) {
        if (error.empty()) error = std::move(message);
    }
};

}  // namespace

std::variant<RuleContract, Message> RuleContract::bind(std::shared_ptr<Program const> program) {
    if (!program) return Message{"ルールがありません", "no rules"};
    RuleContract c;
    c.program = program;
    Binder b{*program, {}};
    c.fact = {b.fact("facility_kind", TypeKind::Enum),
              b.fact("visit_kind", TypeKind::Enum),
              b.fact("first_visit", TypeKind::Date),
              b.fact("query_date", TypeKind::Date),
              b.fact("continuing_home_care", TypeKind::Bool),
              b.fact("reviewed_claim_months", TypeKind::MonthSet),
              b.fact("terminal", TypeKind::Enum),
              b.fact("consented_items", TypeKind::EnumSet),
              b.fact("requested_item", TypeKind::Enum),
              b.fact("feature_enabled", TypeKind::Bool),
              b.fact("enabled_items", TypeKind::EnumSet),
              b.fact("appointment_date", TypeKind::Date),
              b.fact("preparatory_visit", TypeKind::Bool),
              b.fact("confirmation_date", TypeKind::Date),
              b.fact("consent_choice", TypeKind::Enum)};
    c.slot = {b.slot("分類", TypeKind::Enum),
              b.slot("利用する機能", TypeKind::Enum),
              b.slot("再照会できる区分", TypeKind::Bool),
              b.slot("継続的な関係", TypeKind::Bool),
              b.slot("診療予約日を受け付ける", TypeKind::Bool),
              b.slot("診療予約日が必要", TypeKind::Bool),
              b.slot("施設が行う区分", TypeKind::Bool),
              b.slot("事前の訪問を尋ねる", TypeKind::Bool),
              b.slot("資格確認日を受け付ける", TypeKind::Bool),
              b.slot("照会を判定する日", TypeKind::Date),
              b.slot("service_available", TypeKind::Bool),
              b.slot("identity_methods", TypeKind::EnumSet),
              b.slot("reinquiry_allowed", TypeKind::Bool),
              b.slot("eligibility_available", TypeKind::Bool),
              b.slot("medical_info_viewable", TypeKind::Bool),
              b.slot("window_end", TypeKind::Date),
              b.slot("施設の診療区分", TypeKind::EnumSet),
              b.slot("診療区分の説明", TypeKind::Text),
              b.slot("職員がいる", TypeKind::Bool),
              b.slot("同意の選択肢一覧", TypeKind::EnumSet),
              b.slot("選択肢の閲覧項目", TypeKind::EnumSet),
              b.optional_slot("診療予約日の最終日", TypeKind::Date)};
    if (!b.error.empty()) return b.error;
    // The values the server names itself: the terminal kinds (from certificates), the identity methods (the
    // registration mechanisms), the viewing items and the two 機能 (columns of 環境設定).
    b.values(program->facts[std::size_t(c.fact.terminal)].type.enum_id, "enum 端末",
             {"モバイル端末", "資格確認端末", "電子カルテ端末"});
    b.values(program->slots[c.slot.identity_methods].type.enum_id, "enum 本人確認方法", {"暗証番号", "目視確認"});
    b.values(program->facts[std::size_t(c.fact.requested_item)].type.enum_id, "enum 閲覧項目",
             {"手術情報", "診療情報", "薬剤情報", "特定健診情報", "限度額情報"});
    b.values(program->slots[c.slot.feature].type.enum_id, "enum 機能", {"訪問診療等機能", "オンライン診療等機能"});
    // The two 分類 the file layouts name (MedicalTreatmentFlag 2 and 3) and the query screens offer.
    b.values(program->slots[c.slot.category].type.enum_id, "enum 診療区分の分類", {"訪問診療等", "オンライン診療等"});
    if (!b.error.empty()) return b.error;

    // Each 診療区分 on its own: only visit_kind is set, so a let that needs more is a contract error.
    Evaluator ev(program);
    Activation facts(*program);
    for (auto const& kind : c.values_of_fact(c.fact.visit_kind)) {
        facts.clear();
        facts.set_enum("visit_kind", kind);
        ev.begin(facts);
        Kind k;
        Outcome cat = ev.evaluate_slot(facts, c.slot.category);
        Outcome feature = ev.evaluate_slot(facts, c.slot.feature);
        Outcome starts = ev.evaluate_slot(facts, c.slot.starts_relationship);
        Outcome needs = ev.evaluate_slot(facts, c.slot.appointment_required);
        Outcome asks = ev.evaluate_slot(facts, c.slot.asks_preparatory);
        if (cat.status != Status::ok || feature.status != Status::ok || starts.status != Status::ok ||
            needs.status != Status::ok || asks.status != Status::ok)
            return Message{"分類・利用する機能・再照会できる区分・診療予約日が必要・事前の訪問を尋ねる は visit_kind "
                           "だけで決まる必要があります (" +
                               kind + ")",
                           "分類, 利用する機能, 再照会できる区分, 診療予約日が必要 and 事前の訪問を尋ねる must depend "
                           "on visit_kind only (" +
                               kind + ")"};
        k.category = c.values_of_slot(c.slot.category)[std::size_t(cat.value)];
        k.feature = c.values_of_slot(c.slot.feature)[std::size_t(feature.value)];
        k.starts_relationship = starts.value != 0;
        k.needs_appointment = needs.value != 0;
        k.asks_preparatory = asks.value != 0;
        c.kinds.emplace(kind, std::move(k));
    }
    // Each 施設区分 on its own: only facility_kind is set.
    auto const& visit_kinds = c.values_of_fact(c.fact.visit_kind);
    for (auto const& kind : c.values_of_fact(c.fact.facility_kind)) {
        facts.clear();
        facts.set_enum("facility_kind", kind);
        ev.begin(facts);
        Outcome offered = ev.evaluate_slot(facts, c.slot.offered_visit_kinds);
        if (offered.status != Status::ok)
            return Message{"施設の診療区分 は facility_kind だけで決まる必要があります (" + kind + ")",
                           "施設の診療区分 must depend on facility_kind only (" + kind + ")"};
        FacilityKind f;
        for (std::size_t i = 0; i < visit_kinds.size(); ++i) {
            if (!((std::uint64_t(offered.value) >> i) & 1u)) continue;
            f.visit_kinds.push_back(visit_kinds[i]);
            std::string const& feature = c.kinds.at(visit_kinds[i]).feature;
            if (std::find(f.features.begin(), f.features.end(), feature) == f.features.end())
                f.features.push_back(feature);
        }
        c.facility_kinds.emplace(kind, std::move(f));
    }
    return c;
}

RuleContract::Kind const* RuleContract::kind(std::string_view visit_kind) const {
    auto it = kinds.find(visit_kind);
    return it == kinds.end() ? nullptr : &it->second;
}

RuleContract::FacilityKind const* RuleContract::facility_kind(std::string_view kind) const {
    auto it = facility_kinds.find(kind);
    return it == facility_kinds.end() ? nullptr : &it->second;
}

std::vector<std::string> const& RuleContract::values_of_fact(int fact) const {
    static std::vector<std::string> const none;
    auto id = program->facts[std::size_t(fact)].type.enum_id;
    return id < 0 ? none : program->enums[std::size_t(id)].values;
}

std::vector<std::string> const& RuleContract::values_of_slot(std::uint32_t slot) const {
    static std::vector<std::string> const none;
    auto id = program->slots[slot].type.enum_id;
    return id < 0 ? none : program->enums[std::size_t(id)].values;
}

int RuleContract::value_index_of_fact(int fact, std::string_view value) const {
    return program->find_enum_value(program->facts[std::size_t(fact)].type.enum_id, value);
}

int RuleContract::value_index_of_slot(std::uint32_t slot, std::string_view value) const {
    return program->find_enum_value(program->slots[slot].type.enum_id, value);
}

}  // namespace kyotaku
