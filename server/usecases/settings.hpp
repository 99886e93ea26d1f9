// 環境設定 (with its audit trail), 医療機関別URL (its token, QR code and keys) and who a terminal is. Requests and
// answers are domain types; http/api_json.hpp reads and writes them.
#pragma once

#include "usecases/context.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace kyotaku::server {

// Who the certificate says the caller is, and the server's date.
struct WhoAmI {
    std::string facility_code, facility_name;
    std::string role;  // 管理者 or 職員
    std::string terminal, today;
};

// A change of 環境設定: what is absent stays as it is.
struct SettingsChange {
    std::optional<bool> terms_agreed, home_visit_enabled, online_enabled;
    // viewing_items as sent, in order: each item's name and its value (nullopt when it is not true or false)
    std::vector<std::pair<std::string, std::optional<bool>>> viewing_items;
};

// 環境設定 as a terminal reads it: the settings and the 機能 the facility's kind can use (those of the 診療区分 the
// rules say it offers; a 機能 outside them cannot be switched on).
struct SettingsView {
    Settings settings;
    std::vector<std::string> available_features;
};

// One change of 環境設定 as the audit keeps it: the settings before and after, as stored (JSON snapshots).
struct SettingsAuditEntry {
    std::string actor, at;
    std::string before_snapshot, after_snapshot;
};

struct FacilityUrl {
    std::string url;
    std::int64_t generation = 0;
    std::string changed_at;
};

class SettingsDesk {
public:
    explicit SettingsDesk(Context& x) : x_(x) {}
    // Who the certificate says the caller is (facility, role, terminal) and the server's date: for a terminal's
    // set-up, and the benchmarks' ceiling (TLS + HTTP + one trivial query).
    WhoAmI whoami(Caller const& c);
    SettingsView get(Caller const& c);
    SettingsView put(Caller const& c, SettingsChange const& change);  // answered as get() answers
    std::vector<SettingsAuditEntry> audit(Caller const& c);
    FacilityUrl url(Caller const& c);
    FacilityUrl change_url(Caller const& c);
    std::string url_text(Caller const& c);
    // The facility a consent-page token names; nullopt (with the reason) for an unknown, tampered or revoked one.
    struct TokenCheck {
        std::optional<std::string> facility_code;
        std::string facility_name;
        Message reason;
    };
    TokenCheck check_token(std::string const& token);
    // The current URL key (made on first use). Public for the operator's rotation.
    std::pair<std::uint32_t, std::vector<unsigned char>> current_key();

private:
    Context& x_;
};

}  // namespace kyotaku::server
