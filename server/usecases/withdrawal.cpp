// 同意取消照会 (通知 別添3 「継続的な訪問診療等の終了時に行うこと」): an office terminal of the facility — 職員 or
// 管理者, the quick guides name 資格確認端末等 and no role — looks the person up among the facility's open consents,
// confirms, and withdraws. Both steps are in 資格確認履歴 with the certificate that took them.
#include "usecases/withdrawal.hpp"

#include "formats/eligibility_json.hpp"
#include "storage/consent_registry.hpp"
#include "usecases/desk_util.hpp"

#include <nlohmann/json.hpp>

namespace kyotaku::server {

// Stored details (資格確認履歴, hand-off choices, device staff lists) are JSON text.
using json = nlohmann::json;

WithdrawalPerson WithdrawalDesk::lookup(Caller const& c, CardFields const& fields) {
    require_facility(c);
    DbRecords records(x_.db);
    Card const card = card_from(fields);
    std::string person = records.person_by_card(card);
    auto state = person.empty() ? ConsentState{} : records.consents(c.facility_code, person);
    // Only a person with an open consent of this facility is shown: the lookup is not a way to browse eligibility.
    if (state.open.empty())
        throw not_found("", "この施設の有効な同意がある方が見つかりません",
                        "no consenting person of this facility matches");
    auto periods = records.eligibility(person);
    WithdrawalPerson out{periods.front().name, periods.front().name_kana, periods.front().birthdate, {}};
    for (auto it = state.open.rbegin(); it != state.open.rend(); ++it)
        out.consents.push_back({it->visit_kind, it->first_visit});
    // The lookup shows the person's name: a disclosure, logged with who asked.
    log_inquiry(x_, InquiryEntry{c.facility_code, c.subject, "同意取消照会", person, true,
                                 json{{"patient", card_json(card)}, {"consents", out.consents.size()}}.dump()});
    return out;
}

Withdrawn WithdrawalDesk::withdraw(Caller const& c, WithdrawalRequest const& request) {
    require_facility(c);
    if (!request.confirmed)
        throw invalid("confirmed", "本人であることを確認したら confirmed: true を送ってください",
                      "send confirmed: true after confirming the person");
    Card const card = card_from(request.card);
    std::string person = DbRecords(x_.db).person_by_card(card);
    return transaction(x_.db, [&] {
        std::string const now = x_.now();
        std::size_t const withdrawn =
            person.empty() ? 0 : ConsentRegistry(x_.db).withdraw(c.facility_code, person, now, c.subject);
        if (withdrawn == 0)
            throw not_found("", "この施設の有効な同意がある方が見つかりません",
                            "no consenting person of this facility matches");
        log_inquiry(x_, InquiryEntry{c.facility_code, c.subject, "同意取消", person, true,
                                     json{{"patient", card_json(card)}, {"consents", withdrawn}}.dump()});
        return Withdrawn{withdrawn, now, c.subject};
    });
}

}  // namespace kyotaku::server
