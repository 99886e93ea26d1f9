#include "consent_flow.hpp"

#include <algorithm>
#include <stdexcept>

namespace kyotaku::consent {

char const* to_string(Step step) {
    switch (step) {
        case Step::visit_kind: return "visit_kind";
        case Step::appointment: return "appointment";
        case Step::items: return "items";
        case Step::identity: return "identity";
        case Step::card: return "card";
        case Step::done: return "done";
    }
    return "?";
}

std::string wareki_of(std::string const& iso) {
    auto d = parse_iso_date_fast(iso);
    return d ? wareki(*d) : iso;
}

namespace {
// The page's rule contract: the lets and decisions it asks and the facts it sets, with their types, bound once when
// the rules load (as the server's RuleContract does); a rule set that lacks one or types it otherwise is refused
// with a message naming it.
struct Named {
    char const* name;
    TypeKind kind;
};
constexpr Named page_slots[] = {{"利用する機能", TypeKind::Enum},        {"診療予約日が必要", TypeKind::Bool},
                                {"service_available", TypeKind::Bool},   {"identity_methods", TypeKind::EnumSet},
                                {"同意の選択肢一覧", TypeKind::EnumSet}, {"選択肢の閲覧項目", TypeKind::EnumSet},
                                {"診療予約日を受け付ける", TypeKind::Bool}, {"施設の診療区分", TypeKind::EnumSet},
                                {"診療区分の説明", TypeKind::Text},      {"職員がいる", TypeKind::Bool}};
constexpr Named page_facts[] = {{"facility_kind", TypeKind::Enum},  {"visit_kind", TypeKind::Enum},     {"query_date", TypeKind::Date},
                                {"feature_enabled", TypeKind::Bool}, {"appointment_date", TypeKind::Date}, {"consent_choice", TypeKind::Enum}};

Problem out_of_order(char const* step_ja, char const* step_en) {
    return {std::string("今は") + step_ja + "の画面ではありません。", std::string("not at the ") + step_en + " step"};
}
}  // namespace

Flow::Flow(std::shared_ptr<Program const> rules, Facility facility, Date today)
    : rules_(std::move(rules)), facility_(std::move(facility)), today_(today) {
    auto refuse = [](char const* name, char const* what) {
        throw std::runtime_error(std::string("ルールに ") + name + " (" + what + ") がありません / the rules lack " + name + " (" + what + ")");
    };
    // Each a decision or an `export let` (what a program reads by name; kyotaku diff compares every one of them).
    for (auto const& s : page_slots)
        if (int i = rules_->find_slot(s.name); i < 0 || rules_->slots[std::size_t(i)].type.kind != s.kind ||
                                                  !(rules_->slots[std::size_t(i)].decision || rules_->slots[std::size_t(i)].exported))
            refuse(s.name, "decision / export let");
    for (auto const& f : page_facts)
        if (int i = rules_->find_fact(f.name); i < 0 || rules_->facts[std::size_t(i)].type.kind != f.kind) refuse(f.name, "fact");
}

// One let or decision of the rules for these facts.
Outcome Flow::decide(Activation const& facts, int slot) const {
    Evaluator ev(rules_);
    ev.begin(facts);
    return ev.evaluate_slot(facts, std::uint32_t(slot));
}

// The switch of 環境設定 a visit kind uses is the rules' let 利用する機能 (rules/10_service.rules); 環境設定 has one
// switch per 機能, named as the rules name them (as the server's Settings::feature).
bool Flow::feature_enabled(Activation const& facts) const {
    int const slot = rules_->find_slot("利用する機能");
    Outcome f = decide(facts, slot);
    if (f.status != Status::ok) return false;
    std::string const& name = rules_->enums[std::size_t(rules_->slots[std::size_t(slot)].type.enum_id)].values[std::size_t(f.value)];
    return name == "訪問診療等機能" ? facility_.home_care_feature : name == "オンライン診療等機能" ? facility_.online_feature : false;
}

Activation Flow::facts_for(std::string const& visit_kind) const {
    Activation facts(*rules_);
    facts.set_enum("facility_kind", facility_.kind);
    facts.set_date("query_date", today_);
    if (!visit_kind.empty()) {
        facts.set_enum("visit_kind", visit_kind);
        facts.set_bool("feature_enabled", feature_enabled(facts));
    }
    return facts;
}

std::vector<std::string> Flow::set_values(int slot, Activation const& facts) const {
    Outcome o = decide(facts, slot);
    std::vector<std::string> out;
    if (o.status != Status::ok) return out;
    auto const& type = rules_->slots[std::size_t(slot)].type;
    auto const& values = rules_->enums[std::size_t(type.enum_id)].values;
    for (std::size_t i = 0; i < values.size(); ++i)
        if ((std::uint64_t(o.value) >> i) & 1u) out.push_back(values[i]);
    return out;
}

std::vector<std::string> Flow::visit_kinds() const {
    std::vector<std::string> out;
    auto const offered = set_values(rules_->find_slot("施設の診療区分"), facts_for(""));
    int const slot = rules_->find_slot("service_available");
    for (auto const& kind : offered) {
        Outcome o = decide(facts_for(kind), slot);
        if (o.status == Status::ok && o.value) out.push_back(kind);
    }
    return out;
}

std::string Flow::visit_kind_note(std::string const& visit_kind) const {
    Activation facts = facts_for(visit_kind);
    int const slot = rules_->find_slot("診療区分の説明");
    Evaluator ev(rules_);
    ev.begin(facts);
    Outcome o = ev.evaluate_slot(facts, std::uint32_t(slot));
    return o.status == Status::ok ? ev.format_value(rules_->slots[std::size_t(slot)].type, o.value, facts) : std::string();
}

std::string Flow::unavailable_reason() const {
    auto const offered = set_values(rules_->find_slot("施設の診療区分"), facts_for(""));
    if (offered.empty()) return "";
    Activation facts = facts_for(offered.front());
    Evaluator ev(rules_);
    ev.begin(facts);
    Outcome o = ev.evaluate_slot(facts, std::uint32_t(rules_->find_slot("service_available")));
    if (o.status != Status::ok || rules_->clauses[o.clause].because.empty()) return "";
    return ev.render_text(std::int64_t(o.clause), facts, false);  // the deciding clause's reason
}

Problem Flow::choose_visit_kind(std::string const& visit_kind) {
    if (step_ != Step::visit_kind) return out_of_order("診療の種類を選ぶ", "visit-kind");
    auto const kinds = visit_kinds();
    if (std::find(kinds.begin(), kinds.end(), visit_kind) == kinds.end())
        return {"この診療の種類は、今日はこの施設で選べません。", "this visit kind cannot be used today: " + visit_kind};
    visit_kind_ = visit_kind;
    Outcome const needs_appointment = decide(facts_for(visit_kind), rules_->find_slot("診療予約日が必要"));
    online_ = needs_appointment.status == Status::ok && needs_appointment.value;
    step_ = online_ ? Step::appointment : Step::items;
    return {};
}

bool Flow::staff_present() const {
    if (visit_kind_.empty()) return false;
    Outcome o = decide(facts_for(visit_kind_), rules_->find_slot("職員がいる"));
    return o.status == Status::ok && o.value;
}

std::optional<Date> Flow::last_appointment() const {
    int const slot = rules_->find_slot("診療予約日の最終日");
    if (slot < 0) return std::nullopt;
    Outcome o = decide(facts_for(visit_kind_), slot);
    if (o.status != Status::ok) return std::nullopt;
    return Date::from_days(o.value);
}

Problem Flow::set_appointment(std::string const& text) {
    if (step_ != Step::appointment) return out_of_order("診療予約日を入れる", "appointment");
    auto parsed = parse_date(text);
    if (!parsed.date) return {"日付として読めません。カレンダーから日を選んでください。", "appointment_date: " + parsed.error};
    Activation facts = facts_for(visit_kind_);
    facts.set_date("appointment_date", *parsed.date);
    Outcome o = decide(facts, rules_->find_slot("診療予約日を受け付ける"));
    if (o.status != Status::ok || !o.value) {
        auto const last = last_appointment();
        std::string range = "今日 (" + wareki(today_) + ") " + (last ? "から " + wareki(*last) + " まで" : std::string("より後"));
        return {"診療予約日は、" + range + "の日を選んでください。",
                "the appointment must be from " + today_.iso() + (last ? " to " + last->iso() : std::string(" on"))};
    }
    appointment_ = parsed.date->iso();
    step_ = Step::items;
    return {};
}

std::vector<std::string> Flow::choices() const { return set_values(rules_->find_slot("同意の選択肢一覧"), facts_for(visit_kind_)); }

Problem Flow::choose_items(std::vector<std::string> const& chosen) {
    if (step_ != Step::items) return out_of_order("同意する項目を選ぶ", "consent-items");
    auto const offered = choices();
    for (auto const& c : chosen)
        if (std::find(offered.begin(), offered.end(), c) == offered.end())
            return {"この項目は選べません。", "not a consent choice here: " + c};
    chosen_.clear();
    for (auto const& c : offered)  // the rule set's order, each once
        if (std::find(chosen.begin(), chosen.end(), c) != chosen.end()) chosen_.push_back(c);
    step_ = Step::identity;
    return {};
}

std::vector<std::string> Flow::items() const {
    std::vector<std::string> out;
    int const slot = rules_->find_slot("選択肢の閲覧項目");
    for (auto const& c : chosen_) {
        Activation facts = facts_for(visit_kind_);
        facts.set_enum("consent_choice", c);
        for (auto const& item : set_values(slot, facts))
            if (std::find(out.begin(), out.end(), item) == out.end()) out.push_back(item);
    }
    // In the order of the item enum.
    auto const& type = rules_->slots[std::size_t(slot)].type;
    auto const& order = rules_->enums[std::size_t(type.enum_id)].values;
    std::sort(out.begin(), out.end(), [&](std::string const& a, std::string const& b) {
        return std::find(order.begin(), order.end(), a) < std::find(order.begin(), order.end(), b);
    });
    return out;
}

std::vector<std::string> Flow::identity_methods() const {
    return set_values(rules_->find_slot("identity_methods"), facts_for(visit_kind_));
}

Problem Flow::choose_identity(std::string const& method) {
    if (step_ != Step::identity) return out_of_order("本人確認の方法を選ぶ", "identity");
    auto const allowed = identity_methods();
    if (std::find(allowed.begin(), allowed.end(), method) == allowed.end())
        return {"この本人確認の方法は、今は選べません。", "identity method not offered: " + method};
    identity_ = method;
    step_ = Step::card;
    return {};
}

void Flow::finish() {
    if (step_ == Step::card) step_ = Step::done;
}

bool Flow::back() {
    switch (step_) {
        case Step::appointment: step_ = Step::visit_kind; return true;
        case Step::items: step_ = online_ ? Step::appointment : Step::visit_kind; return true;
        case Step::identity: step_ = Step::items; return true;
        case Step::card: step_ = Step::identity; return true;
        default: return false;
    }
}

}  // namespace kyotaku::consent
