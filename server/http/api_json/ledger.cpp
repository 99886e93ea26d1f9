// The JSON of the device ledger and the fallback verifications (docs/api.md "台帳").
#include "http/api_json.hpp"

#include "formats/fields.hpp"

namespace kyotaku::server::api_json {

NewDevice new_device(json const& body) {
    Fields f(body, {"name", "kind", "ownership", "permitted_staff"});
    NewDevice d{f.text("name"), f.text("kind"), f.text("ownership"), {}};
    json const& staff = f.raw("permitted_staff");
    if (!staff.is_array())
        throw invalid("permitted_staff", "利用を許可する職員の一覧 (1〜100人) が必要です",
                      "permitted_staff must be an array of 1..100 names");
    for (auto const& s : staff) {
        if (!s.is_string()) throw invalid("permitted_staff", "職員名は文字列です", "staff names are strings");
        d.permitted_staff.push_back(s.get<std::string>());
    }
    return d;
}

NewDeviceCheck new_device_check(json const& body) {
    Fields f(body, {"checked_on", "checker", "checks"});
    NewDeviceCheck check{f.text("checked_on"), f.text("checker"), {}};
    json const& checks = f.raw("checks");
    if (!checks.is_object()) throw invalid("checks", "checks (5項目) が必要です", "checks is required");
    for (auto const& [k, v] : checks.items())
        check.checks.emplace_back(k, v.is_boolean() ? std::optional<bool>(v.get<bool>()) : std::nullopt);
    return check;
}

FallbackVerification fallback_verification(json const& body) {
    Fields f(body, {"method", "reason", "verified_on", "burden_ratio", "insurer_number", "symbol", "number", "branch",
                    "birthdate"});
    return {f.text("method"), f.text("reason"), f.text("verified_on"), f.text("burden_ratio"), card_fields(f)};
}

json to_json(Recorded const& r) {
    json out{{"id", r.id}};
    if (!r.method.empty()) out["method"] = r.method;
    return out;
}

json to_json(std::vector<Device> const& devices) {
    json out = json::array();
    for (auto const& d : devices) {
        json last = nullptr;
        if (d.last_check)
            last = json{{"checked_on", d.last_check->checked_on}, {"checker", d.last_check->checker},
                        {"all_passed", d.last_check->failed.empty()}, {"failed", d.last_check->failed}};
        out.push_back(json{{"id", d.id},
                           {"name", d.name},
                           {"kind", d.kind},
                           {"ownership", d.ownership},
                           {"permitted_staff", d.permitted_staff},
                           {"registered_at", d.registered_at},
                           {"last_check", last}});
    }
    return out;
}

json to_json(std::vector<DeviceCheck> const& checks) {
    json out = json::array();
    for (auto const& c : checks) {
        json points = json::object();
        for (auto const& [name, passed] : c.checks) points[name] = passed;
        out.push_back(json{{"checked_on", c.checked_on}, {"checker", c.checker}, {"checks", points}});
    }
    return out;
}

}  // namespace kyotaku::server::api_json
