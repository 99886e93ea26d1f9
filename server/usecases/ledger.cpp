// 台帳 (the mobile devices used for 居宅同意取得型, their permitted staff, the checklist of 別添2) — kept by the
// facility's 管理者 — and fallback verifications when the card cannot be used.
#include "usecases/ledger.hpp"

#include "usecases/desk_util.hpp"

#include <array>

namespace kyotaku::server {

namespace {
struct CheckItem {
    char const* field;
    char const* label;
};
constexpr std::array<CheckItem, 5> device_check_items{{{"os_updated", "OS・ソフトウェアの更新"},
                                                        {"antivirus", "ウイルス対策"},
                                                        {"screen_lock", "画面ロック・パスワード"},
                                                        {"ledger_reviewed", "台帳と利用者の定期確認"},
                                                        {"staff_trained", "職員の教育"}}};

void require_device(Context& x, Caller const& c, std::string const& device_id) {
    if (x.db.query("SELECT 1 FROM devices WHERE id = $1 AND facility_code = $2", {device_id, c.facility_code}).empty())
        throw not_found("device_id", "端末が見つかりません", "no such device");
}
}  // namespace

Recorded LedgerDesk::add_device(Caller const& c, NewDevice const& d) {
    require_manager(c);
    if (d.name.empty()) throw invalid("name", "名称がありません", "name is empty");
    check_text(d.name, "name", 100);
    if (d.kind != "スマートフォン" && d.kind != "タブレット" && d.kind != "ノートPC")
        throw invalid("kind", "種類は スマートフォン, タブレット, ノートPC のいずれかです", "kind is スマートフォン, タブレット or ノートPC");
    if (d.ownership != "施設所有" && d.ownership != "個人所有")
        throw invalid("ownership", "所有は 施設所有 か 個人所有 (BYOD) です", "ownership is 施設所有 or 個人所有");
    if (d.permitted_staff.empty() || d.permitted_staff.size() > 100)
        throw invalid("permitted_staff", "利用を許可する職員の一覧 (1〜100人) が必要です", "permitted_staff must be an array of 1..100 names");
    for (auto const& s : d.permitted_staff) {
        if (s.empty()) throw invalid("permitted_staff", "職員名は文字列です", "staff names are strings");
        check_text(s, "permitted_staff", 100);
    }
    std::string id = new_id();
    x_.db.query("INSERT INTO devices (id, facility_code, name, kind, ownership, permitted_staff, registered_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                {id, c.facility_code, d.name, d.kind, d.ownership, json(d.permitted_staff).dump(), x_.now()});
    return {id, ""};
}

std::vector<Device> LedgerDesk::list_devices(Caller const& c) {
    require_facility(c);
    std::vector<Device> out;
    for (auto const& r : x_.db.query("SELECT id, name, kind, ownership, permitted_staff, registered_at FROM devices WHERE facility_code = $1 AND retired_at IS NULL "
                                     "ORDER BY registered_at, id",
                                     {c.facility_code})) {
        Device d{as_text(r[0]), as_text(r[1]), as_text(r[2]), as_text(r[3]), json::parse(as_text(r[4])).get<std::vector<std::string>>(),
                 as_text(r[5]), std::nullopt};
        auto last = x_.db.query("SELECT checked_on, checker, os_updated, antivirus, screen_lock, ledger_reviewed, staff_trained FROM device_checks "
                                "WHERE device_id = $1 ORDER BY checked_on DESC, recorded_at DESC LIMIT 1",
                                {d.id});
        if (!last.empty()) {
            Device::LastCheck check{as_text(last[0][0]), as_text(last[0][1]), {}};
            for (std::size_t i = 0; i < device_check_items.size(); ++i)
                if (!as_int(last[0][2 + i])) check.failed.push_back(device_check_items[i].label);
            d.last_check = std::move(check);
        }
        out.push_back(std::move(d));
    }
    return out;
}

Recorded LedgerDesk::add_check(Caller const& c, std::string const& device_id, NewDeviceCheck const& check) {
    require_manager(c);
    require_device(x_, c, device_id);
    std::string checked_on = not_after_today(x_, "checked_on", check.checked_on, "点検日");
    if (check.checker.empty()) throw invalid("checker", "点検者が必要です", "checker is required");
    check_text(check.checker, "checker", 100);
    for (auto const& [k, v] : check.checks) {
        bool known = false;
        for (auto const& item : device_check_items) known = known || k == item.field;
        if (!known) throw invalid("checks." + k, "不明な点検項目 " + k, "unknown check " + k);
    }
    std::vector<Value> values{new_id(), device_id, checked_on, check.checker};
    for (auto const& item : device_check_items) {
        auto it = std::find_if(check.checks.begin(), check.checks.end(), [&](CheckEntry const& e) { return e.first == item.field; });
        if (it == check.checks.end() || !it->second)
            throw invalid(std::string("checks.") + item.field, std::string(item.label) + " (true / false) が必要です",
                          std::string("checks.") + item.field + " is required");
        values.emplace_back(std::int64_t(*it->second));
    }
    values.emplace_back(x_.now());
    x_.db.query("INSERT INTO device_checks (id, device_id, checked_on, checker, os_updated, antivirus, screen_lock, ledger_reviewed, staff_trained, recorded_at) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                values);
    return {as_text(values[0]), ""};
}

std::vector<DeviceCheck> LedgerDesk::checks(Caller const& c, std::string const& device_id) {
    require_facility(c);
    require_device(x_, c, device_id);
    std::vector<DeviceCheck> out;
    for (auto const& r : x_.db.query("SELECT checked_on, checker, os_updated, antivirus, screen_lock, ledger_reviewed, staff_trained FROM device_checks "
                                     "WHERE device_id = $1 ORDER BY checked_on, recorded_at",
                                     {device_id})) {
        DeviceCheck check{as_text(r[0]), as_text(r[1]), {}};
        for (std::size_t i = 0; i < device_check_items.size(); ++i) check.checks.emplace_back(device_check_items[i].field, as_int(r[2 + i]) != 0);
        out.push_back(std::move(check));
    }
    return out;
}

Recorded LedgerDesk::record_fallback(Caller const& c, FallbackVerification const& v) {
    require_facility(c);
    if (v.method != "マイナポータル" && v.method != "資格情報のお知らせ")
        throw invalid("method", "方法は マイナポータル か 資格情報のお知らせ です", "method is マイナポータル or 資格情報のお知らせ");
    if (v.reason.empty()) throw invalid("reason", "カードを使えなかった理由が必要です", "reason is required");
    check_text(v.reason, "reason", 200);
    std::string verified_on = not_after_today(x_, "verified_on", v.verified_on, "確認日");
    if (v.burden_ratio != "010" && v.burden_ratio != "020" && v.burden_ratio != "030")
        throw invalid("burden_ratio", "負担割合は 010, 020, 030 のいずれかです", "burden_ratio is 010, 020 or 030");
    Card card = card_from(v.card);
    // Recorded as shown by the patient; not a consent, so it opens no re-inquiry or viewing.
    std::string person = DbRecords(x_.db).person_by_card(card);
    std::string id = new_id();
    transaction(x_.db, [&] {
        x_.db.query("INSERT INTO fallback_verifications (id, facility_code, person_key, method, reason, verified_on, insurer_number, symbol, number, branch, "
                    "birthdate, burden_ratio, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                    {id, c.facility_code, person.empty() ? Value(nullptr) : Value(person), v.method, v.reason, verified_on, card.insurer, card.symbol,
                     card.number, card.branch, card.birthdate, v.burden_ratio, x_.now()});
        log_inquiry(x_, InquiryEntry{c.facility_code, c.subject, v.method == "マイナポータル" ? "資格確認（マイナポータル）" : "資格確認（資格情報のお知らせ）",
                                     person, true, json{{"verification_id", id}, {"verified_on", verified_on}}.dump()});
    });
    return {id, v.method};
}

}  // namespace kyotaku::server
