#include "decision/decision.hpp"

#include <algorithm>

namespace kyotaku::server {

Evaluator& evaluator_for(std::shared_ptr<Program const> const& program) {
    thread_local std::shared_ptr<Program const> current;
    thread_local std::unique_ptr<Evaluator> ev;
    if (!ev || current != program) {
        current = program;
        ev = std::make_unique<Evaluator>(program);
    }
    ev->reset_params();
    return *ev;
}

namespace {

std::int64_t mask_of(RuleContract const& r, int fact, std::vector<std::string> const& values) {
    std::uint64_t mask = 0;
    for (auto const& v : values)
        if (int i = r.value_index_of_fact(fact, v); i >= 0) mask |= std::uint64_t(1) << i;
    return std::int64_t(mask);
}

void set_enum(RuleContract const& r, Activation& a, int fact, std::string const& value) {
    if (int i = r.value_index_of_fact(fact, value); i >= 0) a.set_raw(fact, i);
}

void set_date(Activation& a, int fact, std::string const& iso) {
    if (auto d = parse_iso_date_fast(iso)) a.set_raw(fact, d->days());
}

// The facts of one consent record of a facility, on today's date, from the server's records.
void fill(RuleContract const& r, Activation& a, FacilityInfo const& f, ConsentRecord const& c,
          std::vector<Month> const& months, bool continuing, Date today) {
    a.clear();
    auto const* kind = r.kind(c.visit_kind);
    set_enum(r, a, r.fact.facility_kind, f.kind);
    set_enum(r, a, r.fact.visit_kind, c.visit_kind);
    set_date(a, r.fact.first_visit, c.first_visit);
    a.set_raw(r.fact.query_date, today.days());
    a.set_raw(r.fact.continuing_home_care, continuing);
    auto& bits = a.month_set(r.fact.reviewed_claim_months);
    for (auto m : months) bits.set(m.index());
    a.set_raw(r.fact.feature_enabled, kind != nullptr && f.settings.feature(kind->feature));
    a.set_raw(r.fact.consented_items, mask_of(r, r.fact.consented_items, c.items));
    std::vector<std::string> enabled;
    for (std::size_t i = 0; i < viewing_items.size(); ++i)
        if (f.settings.viewing[i]) enabled.emplace_back(viewing_items[i].name);
    a.set_raw(r.fact.enabled_items, mask_of(r, r.fact.enabled_items, enabled));
    if (c.appointment_date) set_date(a, r.fact.appointment_date, *c.appointment_date);
    a.set_raw(r.fact.preparatory_visit, c.preparatory_visit);
}

std::string missing_text(Program const& p, Outcome const& o) {
    std::string names;
    for (std::size_t f = 0; f < p.facts.size(); ++f)
        if ((o.missing >> f) & 1u) names += (names.empty() ? "" : ", ") + p.facts[f].name;
    if (o.status == Status::no_version) return "施行中の版がありません";
    return "不足している事実: " + names;
}

}  // namespace

Verdict DecisionPath::decide(FacilityInfo const& f, std::string const& person, std::string const& category,
                             std::uint32_t slot, std::string const* item, std::string const* terminal, Date on) {
    RuleContract const& r = *rules_;
    ConsentState state = records_.consents(f.code, person);
    std::vector<ConsentRecord const*> in_category;
    for (auto const& c : state.open)
        if (auto const* k = r.kind(c.visit_kind); k && k->category == category) in_category.push_back(&c);
    Verdict refused;
    if (in_category.empty()) {
        if (!state.any_withdrawn || !state.open.empty()) return no_consent();
        refused.reason = {"同意は取り消されています", "the consent was withdrawn"};
        return refused;
    }
    // The relationship (the newest consent of a kind that starts one) and the single visits; an older consent
    // that started a relationship has been restarted by the newer one and is not asked.
    ConsentRecord const* relationship = nullptr;
    std::vector<ConsentRecord const*> order;
    for (auto const* c : in_category) {
        if (r.kind(c->visit_kind)->starts_relationship) {
            if (!relationship) relationship = c;
        } else {
            order.push_back(c);
        }
    }
    if (relationship) order.insert(order.begin(), relationship);

    std::vector<Month> const months = records_.claim_months(f.code, person);
    Evaluator& ev = evaluator_for(r.program);
    Activation facts(*r.program);
    bool continuing = false;
    std::optional<std::string> window_end;
    if (relationship) {
        fill(r, facts, f, *relationship, months, false, on);
        ev.begin(facts);
        Outcome o = ev.evaluate_slot(facts, r.slot.relationship_continuing);
        continuing = o.status == Status::ok && o.value != 0;
        Outcome w = ev.evaluate_slot(facts, r.slot.window_end);
        if (w.status == Status::ok) window_end = Date::from_days(w.value).iso();
    }
    for (auto const* c : order) {
        fill(r, facts, f, *c, months, c == relationship ? false : continuing, on);
        if (terminal) set_enum(r, facts, r.fact.terminal, *terminal);
        if (item) set_enum(r, facts, r.fact.requested_item, *item);
        ev.begin(facts);
        Outcome o = ev.evaluate_slot(facts, slot);
        Verdict v;
        v.decided = o.status == Status::ok;
        v.allowed = v.decided && o.value != 0;
        v.reason = v.decided ? Message{ev.render_text(std::int64_t(o.clause), facts), ""}
                             : Message{"ルールで判定できませんでした (" + missing_text(*r.program, o) + ")",
                                       "the rules could not decide"};
        v.basis = *c;
        // The relationship's window belongs to an answer that rests on it: the relationship's own, or a single
        // visit (a 往診) inside a relationship that continues. A 往診 after the relationship lapsed has no window.
        if (c == relationship || continuing) v.window_end = window_end;
        if (v.allowed) return v;
        if (c == in_category.front()) refused = v;
    }
    return refused;
}

Verdict DecisionPath::no_consent() {
    Verdict v;
    v.reason = {"この施設の居宅同意取得型の同意がありません", "no consent registered by this facility"};
    return v;
}

DecisionPath::Day DecisionPath::decision_day(std::string const& confirmation_date) {
    Day out{today_, std::nullopt};
    if (confirmation_date.empty()) return out;
    RuleContract const& r = *rules_;
    Activation facts(*r.program);
    facts.set_raw(r.fact.query_date, today_.days());
    set_date(facts, r.fact.confirmation_date, confirmation_date);
    Evaluator& ev = evaluator_for(r.program);
    ev.begin(facts);
    Outcome taken = ev.evaluate_slot(facts, r.slot.confirmation_acceptable);
    Outcome day = ev.evaluate_slot(facts, r.slot.decision_date);
    if (taken.status == Status::ok && taken.value && day.status == Status::ok) {
        out.on = Date::from_days(day.value);
        return out;
    }
    Verdict v;
    v.decided = taken.status == Status::ok && day.status == Status::ok;
    Outcome const& failed = taken.status != Status::ok ? taken : day;
    v.reason = {v.decided ? ev.render_text(std::int64_t(taken.clause), facts)
                          : "ルールで判定できませんでした (" + missing_text(*r.program, failed) + ")",
                "the rules do not take this 資格確認日"};
    out.refused = std::move(v);
    return out;
}

std::optional<Verdict> DecisionPath::confirmation_refused(std::string const& confirmation_date) {
    return decision_day(confirmation_date).refused;
}

Verdict DecisionPath::eligibility(FacilityInfo const& f, std::string const& person, std::string const& category,
                                  std::string const& confirmation_date) {
    Day day = decision_day(confirmation_date);
    if (day.refused) return *day.refused;
    return decide(f, person, category, rules_->slot.eligibility_available, nullptr, nullptr, day.on);
}

Verdict DecisionPath::viewing(FacilityInfo const& f, std::string const& person, std::string const& category,
                              std::string const& item, std::string const& terminal) {
    return decide(f, person, category, rules_->slot.medical_info_viewable, &item, &terminal, today_);
}

std::optional<Verdict> DecisionPath::viewing_refused_for_terminal(std::string const& terminal,
                                                                  std::string const& item) {
    RuleContract const& r = *rules_;
    Activation facts(*r.program);
    set_enum(r, facts, r.fact.terminal, terminal);
    set_enum(r, facts, r.fact.requested_item, item);
    facts.set_raw(r.fact.query_date, today_.days());
    Evaluator& ev = evaluator_for(r.program);
    ev.begin(facts);
    Outcome o = ev.evaluate_slot(facts, r.slot.medical_info_viewable);
    if (o.status != Status::ok || o.value != 0) return std::nullopt;  // the rules need to know more
    Verdict v;
    v.reason = {ev.render_text(std::int64_t(o.clause), facts), ""};
    return v;
}

DecisionPath::Registration DecisionPath::offered(FacilityInfo const& f, std::string const& visit_kind,
                                                 bool preparatory) {
    RuleContract const& r = *rules_;
    Registration out;
    auto const* kind = r.kind(visit_kind);
    if (!kind) {
        out.field = "visit_kind";
        out.reason = {"診療区分 " + visit_kind + " はルールにありません", "refused by the rules"};
        return out;
    }
    Activation facts(*r.program);
    set_enum(r, facts, r.fact.facility_kind, f.kind);
    set_enum(r, facts, r.fact.visit_kind, visit_kind);
    Evaluator& ev = evaluator_for(r.program);
    ev.begin(facts);
    Outcome offers = ev.evaluate_slot(facts, r.slot.offers);
    if (offers.status != Status::ok || !offers.value) {
        out.field = "visit_kind";
        out.reason = {offers.status == Status::ok
                          ? ev.render_text(std::int64_t(offers.clause), facts)
                          : "ルールで判定できませんでした (" + missing_text(*r.program, offers) + ")",
                      "the facility's kind does not offer this visit kind (the rules' reason in message_ja)"};
        return out;
    }
    if (preparatory && !kind->asks_preparatory) {
        out.field = "preparatory_visit";
        out.reason =
            {visit_kind +
                 " の同意は事前の訪問として記録しません (事前の訪問を尋ねるのは継続的な関係を始める区分だけです)",
             "a consent of this visit kind is not recorded as taken at a preparatory visit"};
        return out;
    }
    out.ok = true;
    return out;
}

DecisionPath::Registration DecisionPath::appointment_taken(std::string const& visit_kind,
                                                           std::optional<std::string> const& appointment,
                                                           Date consent_day) {
    RuleContract const& r = *rules_;
    Registration out;
    out.field = "appointment_date";
    auto const* kind = r.kind(visit_kind);
    if (!kind) return out;  // offered() names it
    if (kind->needs_appointment != appointment.has_value()) {
        out.reason = {kind->needs_appointment ? visit_kind + " では診療予約日が必要です"
                                              : visit_kind + " では診療予約日を使いません",
                      kind->needs_appointment ? "this visit kind needs an appointment_date"
                                              : "this visit kind takes no appointment_date"};
        return out;
    }
    if (appointment) {
        Activation facts(*r.program);
        set_enum(r, facts, r.fact.visit_kind, visit_kind);
        facts.set_raw(r.fact.query_date, consent_day.days());
        set_date(facts, r.fact.appointment_date, *appointment);
        Evaluator& ev = evaluator_for(r.program);
        ev.begin(facts);
        Outcome ok = ev.evaluate_slot(facts, r.slot.appointment_acceptable);
        if (ok.status != Status::ok || !ok.value) {
            out.reason = {ok.status == Status::ok
                              ? ev.render_text(std::int64_t(ok.clause), facts)
                              : "ルールで判定できませんでした (" + missing_text(*r.program, ok) + ")",
                          "refused by the rules"};
            return out;
        }
    }
    out.field.clear();
    out.ok = true;
    return out;
}

DecisionPath::Registration DecisionPath::registration(FacilityInfo const& f, std::string const& visit_kind,
                                                      std::string const& method,
                                                      std::optional<std::string> const& appointment, bool preparatory) {
    RuleContract const& r = *rules_;
    Registration out = offered(f, visit_kind, preparatory);
    if (!out.ok) return out;
    out.ok = false;
    auto const* kind = r.kind(visit_kind);
    Activation facts(*r.program);
    set_enum(r, facts, r.fact.facility_kind, f.kind);
    set_enum(r, facts, r.fact.visit_kind, visit_kind);
    facts.set_raw(r.fact.query_date, today_.days());
    facts.set_raw(r.fact.feature_enabled, f.settings.feature(kind->feature));
    if (appointment) set_date(facts, r.fact.appointment_date, *appointment);
    Evaluator& ev = evaluator_for(r.program);
    ev.begin(facts);
    auto reason = [&](Outcome const& o) {
        return o.status == Status::ok ? ev.render_text(std::int64_t(o.clause), facts)
                                      : "ルールで判定できませんでした (" + missing_text(*r.program, o) + ")";
    };
    auto refused = [](std::string ja) { return Message{std::move(ja), "refused by the rules"}; };
    Outcome service = ev.evaluate_slot(facts, r.slot.service_available);
    if (service.status != Status::ok || !service.value) {
        out.field = "visit_kind";
        out.reason = refused(reason(service));
        return out;
    }
    Outcome methods = ev.evaluate_slot(facts, r.slot.identity_methods);
    int bit = r.value_index_of_slot(r.slot.identity_methods, method);
    if (methods.status != Status::ok || bit < 0 || !((std::uint64_t(methods.value) >> bit) & 1u)) {
        out.field = "identity_method";
        out.reason = refused(method + " はこの日には使えません: " + reason(methods));
        return out;
    }
    if (Registration const on_day = appointment_taken(visit_kind, appointment, today_); !on_day.ok) return on_day;
    Outcome staff = ev.evaluate_slot(facts, r.slot.staff_present);
    out.staff_present = staff.status == Status::ok && staff.value;
    out.ok = true;
    return out;
}

}  // namespace kyotaku::server
