// 環境設定 (with its audit trail) and 医療機関別URL (its token, QR code and keys).
#include "usecases/settings.hpp"

#include "core/url_token.hpp"
#include "formats/settings_json.hpp"
#include "storage/facility_registry.hpp"
#include "storage/facility_urls.hpp"
#include "usecases/desk_util.hpp"

#include <nlohmann/json.hpp>
#include <algorithm>

namespace kyotaku::server {

// Stored details (資格確認履歴, hand-off choices, device staff lists) are JSON text.
using json = nlohmann::json;

namespace {
// The two switches of 環境設定 and the 機能 of the rules each one is (the contract requires both names).
struct Switch {
    char const* field;
    char const* feature;
    bool Settings::*value;
};
constexpr Switch switches[] = {{"home_visit_enabled", "訪問診療等機能", &Settings::home_visit_enabled},
                               {"online_enabled", "オンライン診療等機能", &Settings::online_enabled}};

// The 機能 a facility's kind can use: those of the 診療区分 the rules say it offers (施設の診療区分, 利用する機能).
std::vector<std::string> available_features(Context& x, std::string const& facility_kind) {
    auto rules = x.rules();
    auto const* kind = rules->facility_kind(facility_kind);
    return kind ? kind->features : std::vector<std::string>{};
}
}  // namespace

WhoAmI SettingsDesk::whoami(Caller const& c) {
    require_facility(c);
    auto const name = FacilityRegistry(x_.db).name(c.facility_code);
    if (!name) throw not_found("", "施設が登録されていません", "facility not registered");
    return {c.facility_code, *name, c.role == Caller::Role::manager ? "管理者" : "職員", c.terminal, x_.today().iso()};
}

SettingsView SettingsDesk::get(Caller const& c) {
    require_facility(c);
    FacilityInfo const f = x_.facility(c);
    return {f.settings, available_features(x_, f.kind)};
}

SettingsView SettingsDesk::put(Caller const& c, SettingsChange const& change) {
    require_manager(c);
    FacilityRegistry registry(x_.db);
    return transaction(x_.db, [&] {
        auto const stored = registry.settings(c.facility_code);
        if (!stored) throw not_found("", "施設が登録されていません", "facility not registered");
        Settings const before = *stored;
        Settings after = before;
        after.terms_agreed = change.terms_agreed.value_or(before.terms_agreed);
        after.home_visit_enabled = change.home_visit_enabled.value_or(before.home_visit_enabled);
        after.online_enabled = change.online_enabled.value_or(before.online_enabled);
        for (auto const& [k, value] : change.viewing_items) {
            std::size_t i = 0;
            while (i < viewing_items.size() && k != viewing_items[i].name) ++i;
            if (i == viewing_items.size())
                throw invalid("viewing_items." + k, "不明な閲覧項目 " + k, "unknown viewing item " + k);
            if (!value) throw invalid("viewing_items." + k, "true か false です", "must be true or false");
            after.viewing[i] = *value;
        }
        // A 機能 can be switched on only when the facility's kind offers a 診療区分 that uses it (a
        // 訪問看護ステーション has no オンライン診療等機能); one switched on before may still be switched off.
        auto const kind = registry.kind(c.facility_code);
        auto const available = available_features(x_, kind.value_or(""));
        for (auto const& s : switches)
            if (after.*s.value && !(before.*s.value) &&
                std::find(available.begin(), available.end(), s.feature) == available.end())
                throw conflict(s.field, kind.value_or("この施設") + " が行う診療区分は " + s.feature + " を使いません",
                               std::string("the facility's kind offers no 診療区分 that uses ") + s.feature);
        // 利用規約 must be agreed before a function is switched on (domain.md §3).
        if ((after.home_visit_enabled || after.online_enabled) && !after.terms_agreed)
            throw conflict("terms_agreed", "利用規約に同意してから機能を「利用する」にしてください",
                           "agree to the terms of use before enabling a function");
        after.updated_at = x_.now();
        registry.change_settings(c.facility_code, after, new_id(),
                                 {c.subject, after.updated_at, settings_json(before).dump(),
                                  settings_json(after).dump()});
        return SettingsView{after, available};  // as GET answers it
    });
}

std::vector<SettingsAuditEntry> SettingsDesk::audit(Caller const& c) {
    require_manager(c);
    std::vector<SettingsAuditEntry> out;
    for (auto& r : FacilityRegistry(x_.db).settings_changes(c.facility_code))
        out.push_back({std::move(r.actor), std::move(r.at), std::move(r.before_json), std::move(r.after_json)});
    return out;
}

std::pair<std::uint32_t, std::vector<unsigned char>> SettingsDesk::current_key() {
    FacilityUrls urls(x_.db);
    return transaction(x_.db, [&] {
        // Stored sealed with the key file's key (secrets.hpp), never in plain text.
        if (auto const current = urls.current_key()) {
            auto key = x_.secrets->open_url_key(current->version, current->sealed);
            if (!key)
                throw std::runtime_error("URL key " + std::to_string(current->version) +
                                         " does not open with the key file");
            return std::make_pair(current->version, *key);
        }
        std::uint32_t const version = urls.last_version() + 1;
        auto key = from_hex(new_id() + new_id());  // 256 random bits
        urls.add_key(version, x_.secrets->seal_url_key(version, key), x_.now());
        return std::make_pair(version, key);
    });
}

std::string SettingsDesk::url_text(Caller const& c) {
    require_facility(c);
    FacilityUrls urls(x_.db);
    auto const gen = urls.generation(c.facility_code);
    std::uint32_t const generation = gen ? std::uint32_t(gen->generation) : 1;
    if (!gen) urls.start(c.facility_code, x_.now());
    auto [version, key] = current_key();
    return x_.public_url + "/c/" + seal_url_token(key, version, UrlClaims{c.facility_code, generation});
}

FacilityUrl SettingsDesk::url(Caller const& c) {
    std::string text = url_text(c);
    auto const gen = FacilityUrls(x_.db).generation(c.facility_code).value();  // url_text made it
    return {text, gen.generation, gen.changed_at};
}

FacilityUrl SettingsDesk::change_url(Caller const& c) {
    require_manager(c);
    url_text(c);  // makes sure a row exists
    FacilityUrls(x_.db).change(c.facility_code, x_.now());
    return url(c);
}

SettingsDesk::TokenCheck SettingsDesk::check_token(std::string const& token) {
    TokenCheck out;
    auto version = token.size() > 512 ? std::nullopt : url_token_key_version(token);
    if (!version) {
        out.reason = {"URL が正しくありません", "the facility URL is not valid"};
        return out;
    }
    FacilityUrls urls(x_.db);
    auto const key = urls.key(*version);
    auto opened = key ? x_.secrets->open_url_key(*version, key->sealed) : std::nullopt;
    auto claims = opened ? open_url_token(*opened, token) : std::nullopt;
    if (!claims) {
        out.reason = {"URL が正しくありません", "the facility URL is not valid"};
        return out;
    }
    if (key->retired) {
        out.reason = {"この URL は、安全のために使えなくなりました",
                      "the facility URL is not valid: its key was retired"};
        return out;
    }
    auto const gen = urls.named_generation(claims->facility_code);
    if (!gen) {
        out.reason = {"URL が正しくありません", "the facility URL is not valid"};
        return out;
    }
    if (std::uint32_t(gen->generation) != claims->generation) {
        // What happened only: the page that shows it says once what to do next.
        out.reason = {"この URL は変更されました",
                      "the facility URL is not valid: the facility changed it"};
        return out;
    }
    out.facility_code = claims->facility_code;
    out.facility_name = gen->name;
    return out;
}

}  // namespace kyotaku::server
