// 環境設定 (with its audit trail) and 医療機関別URL (its token, QR code and keys).
#include "usecases/settings.hpp"

#include "core/url_token.hpp"
#include "formats/settings_json.hpp"
#include "usecases/desk_util.hpp"

#include <algorithm>

namespace kyotaku::server {

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
    auto name = x_.db.query("SELECT name FROM facilities WHERE code = $1", {c.facility_code});
    if (name.empty()) throw not_found("", "施設が登録されていません", "facility not registered");
    return {c.facility_code, as_text(name[0][0]), c.role == Caller::Role::manager ? "管理者" : "職員", c.terminal, x_.today().iso()};
}

SettingsView SettingsDesk::get(Caller const& c) {
    require_facility(c);
    FacilityInfo const f = x_.facility(c);
    return {f.settings, available_features(x_, f.kind)};
}

SettingsView SettingsDesk::put(Caller const& c, SettingsChange const& change) {
    require_manager(c);
    return transaction(x_.db, [&] {
        auto rows = x_.db.query(std::string("SELECT ") + settings_columns + " FROM facility_settings WHERE facility_code = $1", {c.facility_code});
        if (rows.empty()) throw not_found("", "施設が登録されていません", "facility not registered");
        Settings const before = settings_from_row(rows[0]);
        Settings after = before;
        after.terms_agreed = change.terms_agreed.value_or(before.terms_agreed);
        after.home_visit_enabled = change.home_visit_enabled.value_or(before.home_visit_enabled);
        after.online_enabled = change.online_enabled.value_or(before.online_enabled);
        for (auto const& [k, value] : change.viewing_items) {
            std::size_t i = 0;
            while (i < viewing_items.size() && k != viewing_items[i].name) ++i;
            if (i == viewing_items.size()) throw invalid("viewing_items." + k, "不明な閲覧項目 " + k, "unknown viewing item " + k);
            if (!value) throw invalid("viewing_items." + k, "true か false です", "must be true or false");
            after.viewing[i] = *value;
        }
        // A 機能 can be switched on only when the facility's kind offers a 診療区分 that uses it (a 訪問看護ステーション
        // has no オンライン診療等機能); one switched on before may still be switched off.
        auto const kind = x_.db.query("SELECT kind FROM facilities WHERE code = $1", {c.facility_code});
        auto const available = available_features(x_, kind.empty() ? std::string() : as_text(kind[0][0]));
        for (auto const& s : switches)
            if (after.*s.value && !(before.*s.value) && std::find(available.begin(), available.end(), s.feature) == available.end())
                throw conflict(s.field, (kind.empty() ? std::string("この施設") : as_text(kind[0][0])) + " が行う診療区分は " + s.feature + " を使いません",
                               std::string("the facility's kind offers no 診療区分 that uses ") + s.feature);
        // 利用規約 must be agreed before a function is switched on (domain.md §3).
        if ((after.home_visit_enabled || after.online_enabled) && !after.terms_agreed)
            throw conflict("terms_agreed", "利用規約に同意してから機能を「利用する」にしてください", "agree to the terms of use before enabling a function");
        after.updated_at = x_.now();
        std::vector<Value> params{c.facility_code, std::int64_t(after.terms_agreed), std::int64_t(after.home_visit_enabled),
                                  std::int64_t(after.online_enabled)};
        for (bool v : after.viewing) params.emplace_back(std::int64_t(v));
        params.emplace_back(after.updated_at);
        x_.db.query("UPDATE facility_settings SET terms_agreed = $2, home_visit_enabled = $3, online_enabled = $4, view_operation = $5, "
                    "view_diagnosis = $6, view_pharmacy = $7, view_checkup = $8, view_limit = $9, updated_at = $10 WHERE facility_code = $1",
                    params);
        x_.db.query("INSERT INTO settings_audit (id, facility_code, seq, actor, at, before_json, after_json) "
                    "VALUES ($1, $2, (SELECT COALESCE(MAX(seq), 0) + 1 FROM settings_audit WHERE facility_code = $2), $3, $4, $5, $6)",
                    {new_id(), c.facility_code, c.subject, after.updated_at, settings_json(before).dump(), settings_json(after).dump()});
        return SettingsView{after, available};  // as GET answers it
    });
}

std::vector<SettingsAuditEntry> SettingsDesk::audit(Caller const& c) {
    require_manager(c);
    std::vector<SettingsAuditEntry> out;
    for (auto const& r : x_.db.query("SELECT actor, at, before_json, after_json FROM settings_audit WHERE facility_code = $1 ORDER BY seq",
                                     {c.facility_code}))
        out.push_back({as_text(r[0]), as_text(r[1]), as_text(r[2]), as_text(r[3])});
    return out;
}

std::pair<std::uint32_t, std::vector<unsigned char>> SettingsDesk::current_key() {
    return transaction(x_.db, [&] {
        // Stored sealed with the key file's key (secrets.hpp), never in plain text.
        auto rows = x_.db.query("SELECT version, key_sealed FROM url_keys WHERE retired_at IS NULL ORDER BY version DESC LIMIT 1");
        if (!rows.empty()) {
            auto const version = std::uint32_t(as_int(rows[0][0]));
            auto key = x_.secrets->open_url_key(version, as_text(rows[0][1]));
            if (!key) throw std::runtime_error("URL key " + std::to_string(version) + " does not open with the key file");
            return std::make_pair(version, *key);
        }
        auto last = x_.db.query("SELECT COALESCE(MAX(version), 0) FROM url_keys");
        std::uint32_t version = std::uint32_t(as_int(last[0][0]) + 1);
        auto key = from_hex(new_id() + new_id());  // 256 random bits
        x_.db.query("INSERT INTO url_keys (version, key_hex, key_sealed, created_at) VALUES ($1, '', $2, $3)",
                    {std::int64_t(version), x_.secrets->seal_url_key(version, key), x_.now()});
        return std::make_pair(version, key);
    });
}

std::string SettingsDesk::url_text(Caller const& c) {
    require_facility(c);
    auto gen = x_.db.query("SELECT generation FROM facility_url WHERE facility_code = $1", {c.facility_code});
    std::uint32_t generation = gen.empty() ? 1 : std::uint32_t(as_int(gen[0][0]));
    if (gen.empty())
        x_.db.query("INSERT INTO facility_url (facility_code, generation, changed_at) VALUES ($1, 1, $2) ON CONFLICT (facility_code) DO NOTHING",
                    {c.facility_code, x_.now()});
    auto [version, key] = current_key();
    return x_.public_url + "/c/" + seal_url_token(key, version, UrlClaims{c.facility_code, generation});
}

FacilityUrl SettingsDesk::url(Caller const& c) {
    std::string text = url_text(c);
    auto gen = x_.db.query("SELECT generation, changed_at FROM facility_url WHERE facility_code = $1", {c.facility_code});
    return {text, as_int(gen[0][0]), as_text(gen[0][1])};
}

FacilityUrl SettingsDesk::change_url(Caller const& c) {
    require_manager(c);
    url_text(c);  // makes sure a row exists
    x_.db.query("UPDATE facility_url SET generation = generation + 1, changed_at = $2 WHERE facility_code = $1", {c.facility_code, x_.now()});
    return url(c);
}

SettingsDesk::TokenCheck SettingsDesk::check_token(std::string const& token) {
    TokenCheck out;
    auto version = token.size() > 512 ? std::nullopt : url_token_key_version(token);
    if (!version) {
        out.reason = {"URL が正しくありません", "the facility URL is not valid"};
        return out;
    }
    auto key = x_.db.query("SELECT key_sealed, retired_at FROM url_keys WHERE version = $1", {std::int64_t(*version)});
    auto opened = key.empty() ? std::nullopt : x_.secrets->open_url_key(*version, as_text(key[0][0]));
    auto claims = opened ? open_url_token(*opened, token) : std::nullopt;
    if (!claims) {
        out.reason = {"URL が正しくありません", "the facility URL is not valid"};
        return out;
    }
    if (!is_null(key[0][1])) {
        out.reason = {"この URL は、安全のために使えなくなりました", "the facility URL is not valid: its key was retired"};
        return out;
    }
    auto gen = x_.db.query("SELECT f.name, u.generation FROM facilities f JOIN facility_url u ON u.facility_code = f.code WHERE f.code = $1",
                           {claims->facility_code});
    if (gen.empty()) {
        out.reason = {"URL が正しくありません", "the facility URL is not valid"};
        return out;
    }
    if (std::uint32_t(as_int(gen[0][1])) != claims->generation) {
        // What happened only: the page that shows it says once what to do next.
        out.reason = {"この URL は変更されました",
                      "the facility URL is not valid: the facility changed it"};
        return out;
    }
    out.facility_code = claims->facility_code;
    out.facility_name = as_text(gen[0][0]);
    return out;
}

}  // namespace kyotaku::server
