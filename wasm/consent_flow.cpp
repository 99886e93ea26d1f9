#include "consent_flow.hpp"

#include "kyotaku/jsonl.hpp"

#include <algorithm>

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

namespace {
// The slots the page relies on; a rule set without them is refused with a clear message.
int need_slot(Program const& p, char const* name) {
    int s = p.find_slot(name);
    if (s < 0) throw std::runtime_error(std::string("ルールに ") + name + " がありません / the rules lack " + name);
    return s;
}
}  // namespace

Flow::Flow(std::shared_ptr<Program const> rules, Facility facility, Date today)
    : rules_(std::move(rules)), facility_(std::move(facility)), today_(today) {
    for (char const* s : {"分類", "service_available", "identity_methods", "同意の選択肢一覧", "選択肢の閲覧項目", "診療予約日を受け付ける"})
        need_slot(*rules_, s);
}

// One let or decision of the rules for these facts.
Outcome Flow::decide(Activation const& facts, int slot) const {
    Evaluator ev(rules_);
    ev.begin(facts);
    return ev.evaluate_slot(facts, std::uint32_t(slot));
}

// The 分類 of a visit kind is オンライン診療等 (rules/10_service.rules).
bool Flow::is_online(Activation const& facts) const {
    int const slot = rules_->find_slot("分類");
    Outcome c = decide(facts, slot);
    auto const& type = rules_->slots[std::size_t(slot)].type;
    return c.status == Status::ok && rules_->enums[std::size_t(type.enum_id)].values[std::size_t(c.value)] == "オンライン診療等";
}

Activation Flow::facts_for(std::string const& visit_kind) const {
    Activation facts(*rules_);
    facts.set_enum("facility_kind", facility_.kind);
    facts.set_date("query_date", today_);
    if (!visit_kind.empty()) {
        facts.set_enum("visit_kind", visit_kind);
        // 環境設定 has one switch per 分類 (訪問診療等機能 / オンライン診療等機能), as the server does.
        facts.set_bool("feature_enabled", is_online(facts) ? facility_.online_feature : facility_.home_care_feature);
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
    int const fact = rules_->find_fact("visit_kind");
    if (fact < 0) return out;
    int const slot = rules_->find_slot("service_available");
    for (auto const& kind : rules_->enums[std::size_t(rules_->facts[std::size_t(fact)].type.enum_id)].values) {
        Activation facts = facts_for(kind);
        Outcome o = decide(facts, slot);
        if (o.status == Status::ok && o.value) out.push_back(kind);
    }
    return out;
}

std::string Flow::unavailable_reason() const {
    int const fact = rules_->find_fact("visit_kind");
    auto const& kinds = rules_->enums[std::size_t(rules_->facts[std::size_t(fact)].type.enum_id)].values;
    Activation facts = facts_for(kinds.front());
    Evaluator ev(rules_);
    ev.begin(facts);
    Outcome o = ev.evaluate_slot(facts, std::uint32_t(rules_->find_slot("service_available")));
    if (o.status != Status::ok || rules_->clauses[o.clause].because.empty()) return "";
    return ev.render_text(std::int64_t(o.clause), facts, false);  // the deciding clause's reason
}

std::string Flow::choose_visit_kind(std::string const& visit_kind) {
    if (step_ != Step::visit_kind) return "今は診療区分を選ぶ段階ではありません / not at the visit-kind step";
    auto const kinds = visit_kinds();
    if (std::find(kinds.begin(), kinds.end(), visit_kind) == kinds.end())
        return "この診療区分は今日は使えません: " + visit_kind + " / this visit kind cannot be used today";
    visit_kind_ = visit_kind;
    online_ = is_online(facts_for(visit_kind));
    step_ = online_ ? Step::appointment : Step::items;
    return "";
}

std::string Flow::set_appointment(std::string const& text) {
    if (step_ != Step::appointment) return "今は診療予約日を入れる段階ではありません / not at the appointment step";
    auto parsed = parse_date(text);
    if (!parsed.date) return "診療予約日: " + parsed.error;
    Activation facts = facts_for(visit_kind_);
    facts.set_date("appointment_date", *parsed.date);
    Outcome o = decide(facts, rules_->find_slot("診療予約日を受け付ける"));
    if (o.status != Status::ok || !o.value)
        return "診療予約日は今日 (" + today_.iso() + ") 以降の日にしてください / the appointment must be today or later";
    appointment_ = parsed.date->iso();
    step_ = Step::items;
    return "";
}

std::vector<std::string> Flow::choices() const { return set_values(rules_->find_slot("同意の選択肢一覧"), facts_for(visit_kind_)); }

std::string Flow::choose_items(std::vector<std::string> const& chosen) {
    if (step_ != Step::items) return "今は同意する項目を選ぶ段階ではありません / not at the consent-items step";
    if (chosen.empty()) return "同意する項目を一つ以上選んでください / choose at least one item";
    auto const offered = choices();
    for (auto const& c : chosen)
        if (std::find(offered.begin(), offered.end(), c) == offered.end())
            return "選べない項目です: " + c + " / not a choice here";
    chosen_.clear();
    for (auto const& c : offered)  // the rule set's order, each once
        if (std::find(chosen.begin(), chosen.end(), c) != chosen.end()) chosen_.push_back(c);
    step_ = Step::identity;
    return "";
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

std::vector<std::string> Flow::identity_methods() const { return set_values(rules_->find_slot("identity_methods"), facts_for(visit_kind_)); }

std::string Flow::choose_identity(std::string const& method) {
    if (step_ != Step::identity) return "今は本人確認の方法を選ぶ段階ではありません / not at the identity step";
    auto const allowed = identity_methods();
    if (std::find(allowed.begin(), allowed.end(), method) == allowed.end())
        return "今日は使えない本人確認の方法です: " + method + " / identity method not allowed today";
    identity_ = method;
    step_ = Step::card;
    return "";
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

std::string Flow::registration_json() const {
    std::string out = "{\"visit_kind\":";
    append_json_string(out, visit_kind_);
    out += ",\"identity_method\":";
    append_json_string(out, identity_);
    out += ",\"items\":[";
    bool first = true;
    for (auto const& i : items()) {
        if (!first) out += ',';
        first = false;
        append_json_string(out, i);
    }
    out += ']';
    if (online_) {
        out += ",\"appointment_date\":";
        append_json_string(out, appointment_);
    }
    out += '}';
    return out;
}

}  // namespace kyotaku::consent
