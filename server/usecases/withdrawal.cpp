// 同意取消照会 (通知 8.): 管理者 looks the person up among the facility's open consents, confirms, and withdraws.
#include "usecases/withdrawal.hpp"

#include "usecases/desk_util.hpp"

namespace kyotaku::server {

WithdrawalPerson WithdrawalDesk::lookup(Caller const& c, CardFields const& fields) {
    require_manager(c);
    DbRecords records(x_.db);
    std::string person = records.person_by_card(card_from(fields));
    auto state = person.empty() ? ConsentState{} : records.consents(c.facility_code, person);
    // Only a person with an open consent of this facility is shown: the lookup is not a way to browse eligibility.
    if (state.open.empty()) throw not_found("", "この施設の有効な同意がある方が見つかりません", "no consenting person of this facility matches");
    auto periods = records.eligibility(person);
    WithdrawalPerson out{periods.front().name, periods.front().name_kana, periods.front().birthdate, {}};
    for (auto it = state.open.rbegin(); it != state.open.rend(); ++it) out.consents.push_back({it->visit_kind, it->first_visit});
    return out;
}

Withdrawn WithdrawalDesk::withdraw(Caller const& c, WithdrawalRequest const& request) {
    require_manager(c);
    if (!request.confirmed)
        throw invalid("confirmed", "本人であることを確認したら confirmed: true を送ってください", "send confirmed: true after confirming the person");
    std::string person = DbRecords(x_.db).person_by_card(card_from(request.card));
    return transaction(x_.db, [&] {
        auto open = person.empty() ? std::vector<Row>{}
                                   : x_.db.query("SELECT id FROM consents WHERE facility_code = $1 AND person_key = $2 AND withdrawn_at IS NULL",
                                                 {c.facility_code, person});
        if (open.empty()) throw not_found("", "この施設の有効な同意がある方が見つかりません", "no consenting person of this facility matches");
        std::string now = x_.now();
        x_.db.query("UPDATE consents SET withdrawn_at = $3 WHERE facility_code = $1 AND person_key = $2 AND withdrawn_at IS NULL", {c.facility_code, person, now});
        return Withdrawn{open.size(), now};
    });
}

}  // namespace kyotaku::server
