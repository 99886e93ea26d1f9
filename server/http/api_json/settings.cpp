// The JSON of 環境設定, its audit, 医療機関別URL and whoami (docs/api.md "環境設定").
#include "http/api_json.hpp"

#include "formats/fields.hpp"
#include "formats/settings_json.hpp"

namespace kyotaku::server::api_json {

SettingsChange settings_change(json const& body) {
    Fields f(body, {"terms_agreed", "home_visit_enabled", "online_enabled", "viewing_items"});
    auto flag = [&](char const* field) {
        return f.has(field) ? std::optional<bool>(f.boolean(field, false)) : std::nullopt;
    };
    SettingsChange change{flag("terms_agreed"), flag("home_visit_enabled"), flag("online_enabled"), {}};
    if (f.has("viewing_items")) {
        json const& v = f.raw("viewing_items");
        if (!v.is_object())
            throw invalid("viewing_items", "viewing_items はオブジェクトです", "viewing_items must be an object");
        for (auto const& [k, value] : v.items())
            change.viewing_items.emplace_back(k, value.is_boolean() ? std::optional<bool>(value.get<bool>())
                                                                    : std::nullopt);
    }
    return change;
}

json to_json(WhoAmI const& w) {
    return json{{"facility_code", w.facility_code},
                {"facility_name", w.facility_name},
                {"role", w.role},
                {"terminal", w.terminal},
                {"today", w.today}};
}

json to_json(Settings const& s) { return settings_json(s); }

json to_json(SettingsView const& v) {
    json out = settings_json(v.settings);
    out["available_features"] = v.available_features;
    return out;
}

json to_json(std::vector<SettingsAuditEntry> const& entries) {
    json out = json::array();
    for (auto const& e : entries)
        out.push_back(json{{"actor", e.actor},
                           {"at", e.at},
                           {"before", json::parse(e.before_snapshot)},
                           {"after", json::parse(e.after_snapshot)}});
    return out;
}

json to_json(FacilityUrl const& u) {
    return json{{"url", u.url}, {"generation", u.generation}, {"changed_at", u.changed_at}};
}

}  // namespace kyotaku::server::api_json
