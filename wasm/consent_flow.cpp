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
Problem out_of_order(char const* step_ja, char const* step_en) {
    return {std::string("今は") + step_ja + "の画面ではありません。", std::string("not at the ") + step_en + " step"};
}

// The rules bound to the contract, or the exception that names what they lack.
RuleContract bound(std::shared_ptr<Program const> rules) {
    auto b = RuleContract::bind(std::move(rules));
    if (auto const* error = std::get_if<Message>(&b)) throw std::runtime_error(error->text());
    return std::move(std::get<RuleContract>(b));
}
}  // namespace

Flow::Flow(std::shared_ptr<Program const> rules, Facility facility, Date today)
    : Flow(bound(std::move(rules)), std::move(facility), today) {}

Flow::Flow(RuleContract contract, Facility facility, Date today)
    : rules_(contract.program), contract_(std::move(contract)), ev_(rules_), facility_(std::move(facility)),
      today_(today) {}

// One let or decision of the rules for these facts.
Outcome Flow::decide(Activation const& facts, std::uint32_t slot) const {
    ev_.begin(facts);
    return ev_.evaluate_slot(facts, slot);
}

// The switch of 環境設定 a visit kind uses is the rules' let 利用する機能 (rules/10_service.rules); 環境設定 has one
// switch per 機能, named as the rules name them (as the server's Settings::feature).
bool Flow::feature_enabled(Activation const& facts) const {
    Outcome f = decide(facts, contract_.slot.feature);
    if (f.status != Status::ok) return false;
    std::string const& name = contract_.values_of_slot(contract_.slot.feature)[std::size_t(f.value)];
    return name == "訪問診療等機能"         ? facility_.home_care_feature
           : name == "オンライン診療等機能" ? facility_.online_feature
                                            : false;
}

Activation Flow::facts_for(std::string const& visit_kind) const {
    Activation facts(*rules_);
    auto const& fact = contract_.fact;
    if (int v = contract_.value_index_of_fact(fact.facility_kind, facility_.kind); v >= 0)
        facts.set_raw(fact.facility_kind, v);
    facts.set_raw(fact.query_date, today_.days());
    if (!visit_kind.empty()) {
        if (int v = contract_.value_index_of_fact(fact.visit_kind, visit_kind); v >= 0)
            facts.set_raw(fact.visit_kind, v);
        facts.set_raw(fact.feature_enabled, feature_enabled(facts));
    }
    return facts;
}

std::vector<std::string> Flow::set_values(std::uint32_t slot, Activation const& facts) const {
    Outcome o = decide(facts, slot);
    std::vector<std::string> out;
    if (o.status != Status::ok) return out;
    auto const& values = contract_.values_of_slot(slot);
    for (std::size_t i = 0; i < values.size(); ++i)
        if ((std::uint64_t(o.value) >> i) & 1u) out.push_back(values[i]);
    return out;
}

std::vector<std::string> Flow::visit_kinds() const {
    std::vector<std::string> out;
    auto const offered = set_values(contract_.slot.offered_visit_kinds, facts_for(""));
    for (auto const& kind : offered) {
        Outcome o = decide(facts_for(kind), contract_.slot.service_available);
        if (o.status == Status::ok && o.value) out.push_back(kind);
    }
    return out;
}

std::string Flow::visit_kind_note(std::string const& visit_kind) const {
    Activation facts = facts_for(visit_kind);
    std::uint32_t const slot = contract_.slot.visit_kind_note;
    Outcome o = decide(facts, slot);
    return o.status == Status::ok ? ev_.format_value(rules_->slots[slot].type, o.value, facts) : std::string();
}

std::string Flow::unavailable_reason() const {
    auto const offered = set_values(contract_.slot.offered_visit_kinds, facts_for(""));
    if (offered.empty()) return "";
    Activation facts = facts_for(offered.front());
    Outcome o = decide(facts, contract_.slot.service_available);
    if (o.status != Status::ok || rules_->clauses[o.clause].because.empty()) return "";
    return ev_.render_text(std::int64_t(o.clause), facts, false);  // the deciding clause's reason
}

Problem Flow::choose_visit_kind(std::string const& visit_kind) {
    if (step_ != Step::visit_kind) return out_of_order("診療の種類を選ぶ", "visit-kind");
    auto const kinds = visit_kinds();
    if (std::find(kinds.begin(), kinds.end(), visit_kind) == kinds.end())
        return {"この診療の種類は、今日はこの施設で選べません。",
                "this visit kind cannot be used today: " + visit_kind};
    visit_kind_ = visit_kind;
    Outcome const needs_appointment = decide(facts_for(visit_kind), contract_.slot.appointment_required);
    online_ = needs_appointment.status == Status::ok && needs_appointment.value;
    step_ = online_ ? Step::appointment : Step::items;
    return {};
}

bool Flow::staff_present() const {
    if (visit_kind_.empty()) return false;
    Outcome o = decide(facts_for(visit_kind_), contract_.slot.staff_present);
    return o.status == Status::ok && o.value;
}

std::optional<Date> Flow::last_appointment() const {
    if (!contract_.slot.last_appointment) return std::nullopt;
    Outcome o = decide(facts_for(visit_kind_), *contract_.slot.last_appointment);
    if (o.status != Status::ok) return std::nullopt;
    return Date::from_days(o.value);
}

Problem Flow::set_appointment(std::string const& text) {
    if (step_ != Step::appointment) return out_of_order("診療予約日を入れる", "appointment");
    auto parsed = parse_date(text);
    if (!parsed.date)
        return {"日付として読めません。カレンダーから日を選んでください。", "appointment_date: " + parsed.message.en};
    Activation facts = facts_for(visit_kind_);
    facts.set_raw(contract_.fact.appointment_date, parsed.date->days());
    Outcome o = decide(facts, contract_.slot.appointment_acceptable);
    if (o.status != Status::ok || !o.value) {
        auto const last = last_appointment();
        std::string range =
            "今日 (" + wareki(today_) + ") " + (last ? "から " + wareki(*last) + " まで" : std::string("より後"));
        return {"診療予約日は、" + range + "の日を選んでください。",
                "the appointment must be from " + today_.iso() + (last ? " to " + last->iso() : std::string(" on"))};
    }
    appointment_ = parsed.date->iso();
    step_ = Step::items;
    return {};
}

std::vector<std::string> Flow::choices() const {
    return set_values(contract_.slot.consent_choices, facts_for(visit_kind_));
}

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
    std::uint32_t const slot = contract_.slot.choice_items;
    for (auto const& c : chosen_) {
        Activation facts = facts_for(visit_kind_);
        if (int v = contract_.value_index_of_fact(contract_.fact.consent_choice, c); v >= 0)
            facts.set_raw(contract_.fact.consent_choice, v);
        for (auto const& item : set_values(slot, facts))
            if (std::find(out.begin(), out.end(), item) == out.end()) out.push_back(item);
    }
    // In the order of the item enum.
    auto const& order = contract_.values_of_slot(slot);
    std::sort(out.begin(), out.end(), [&](std::string const& a, std::string const& b) {
        return std::find(order.begin(), order.end(), a) < std::find(order.begin(), order.end(), b);
    });
    return out;
}

std::vector<std::string> Flow::identity_methods() const {
    return set_values(contract_.slot.identity_methods, facts_for(visit_kind_));
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
