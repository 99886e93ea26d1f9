// The JSON of 同意取消照会 (docs/api.md "同意の取消").
#include "http/api_json.hpp"

#include "formats/fields.hpp"

namespace kyotaku::server::api_json {

CardFields withdrawal_lookup(json const& body) {
    return card_fields(Fields(body, {"insurer_number", "symbol", "number", "branch", "birthdate"}));
}

WithdrawalRequest withdrawal(json const& body) {
    Fields f(body, {"insurer_number", "symbol", "number", "branch", "birthdate", "confirmed"});
    return {card_fields(f), f.boolean("confirmed", false)};
}

json to_json(WithdrawalPerson const& p) {
    json consents = json::array();
    for (auto const& c : p.consents)
        consents.push_back(json{{"visit_kind", c.visit_kind}, {"first_visit", c.first_visit}});
    return json{{"name", p.name}, {"name_kana", p.name_kana}, {"birthdate", p.birthdate}, {"consents", consents}};
}

json to_json(Withdrawn const& w) {
    return json{{"withdrawn", w.count}, {"withdrawn_at", w.at}, {"withdrawn_by", w.by}};
}

}  // namespace kyotaku::server::api_json
