// 台帳 (the mobile devices used for 居宅同意取得型, their permitted staff, the checklist of 別添2) — kept by the
// facility's 管理者 — and fallback verifications when the card cannot be used.
#include "usecases/ledger.hpp"

#include "storage/device_ledger.hpp"
#include "usecases/desk_util.hpp"

#include <nlohmann/json.hpp>
#include <array>

namespace kyotaku::server {

// Stored details (資格確認履歴, hand-off choices, device staff lists) are JSON text.
using json = nlohmann::json;

namespace {
struct CheckItem {
    char const* field;
    char const* label;
};
// In the order of the stored check's items (storage/device_ledger.hpp).
constexpr std::array<CheckItem, 5> device_check_items{{{"os_updated", "OS・ソフトウェアの更新"},
                                                        {"antivirus", "ウイルス対策"},
                                                        {"screen_lock", "画面ロック・パスワード"},
                                                        {"ledger_reviewed", "台帳と利用者の定期確認"},
                                                        {"staff_trained", "職員の教育"}}};

void require_device(Context& x, Caller const& c, std::string const& device_id) {
    if (!DeviceLedger(x.db).has_device(c.facility_code, device_id))
        throw not_found("device_id", "端末が見つかりません", "no such device");
}
}  // namespace

Recorded LedgerDesk::add_device(Caller const& c, NewDevice const& d) {
    require_manager(c);
    if (d.name.empty()) throw invalid("name", "名称がありません", "name is empty");
    check_line(d.name, "name", 100);
    if (d.kind != "スマートフォン" && d.kind != "タブレット" && d.kind != "ノートPC")
        throw invalid("kind", "種類は スマートフォン, タブレット, ノートPC のいずれかです",
                      "kind is スマートフォン, タブレット or ノートPC");
    if (d.ownership != "施設所有" && d.ownership != "個人所有")
        throw invalid("ownership", "所有は 施設所有 か 個人所有 (BYOD) です", "ownership is 施設所有 or 個人所有");
    if (d.permitted_staff.empty() || d.permitted_staff.size() > 100)
        throw invalid("permitted_staff", "利用を許可する職員の一覧 (1〜100人) が必要です",
                      "permitted_staff must be an array of 1..100 names");
    for (auto const& s : d.permitted_staff) {
        if (s.empty()) throw invalid("permitted_staff", "職員名は文字列です", "staff names are strings");
        check_line(s, "permitted_staff", 100);
    }
    std::string id = new_id();
    DeviceLedger(x_.db).add_device(
        {id, c.facility_code, d.name, d.kind, d.ownership, json(d.permitted_staff).dump(), x_.now()});
    return {id, ""};
}

std::vector<Device> LedgerDesk::list_devices(Caller const& c) {
    require_facility(c);
    std::vector<Device> out;
    DeviceLedger ledger(x_.db);
    for (StoredDevice const& r : ledger.devices(c.facility_code)) {
        Device d{r.id, r.name, r.kind, r.ownership, json::parse(r.permitted_staff_json).get<std::vector<std::string>>(),
                 r.registered_at, std::nullopt};
        if (auto const last = ledger.last_check(d.id)) {
            Device::LastCheck check{last->checked_on, last->checker, {}};
            for (std::size_t i = 0; i < device_check_items.size(); ++i)
                if (!last->passed[i]) check.failed.push_back(device_check_items[i].label);
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
    check_line(check.checker, "checker", 100);
    for (auto const& [k, v] : check.checks) {
        bool known = false;
        for (auto const& item : device_check_items) known = known || k == item.field;
        if (!known) throw invalid("checks." + k, "不明な点検項目 " + k, "unknown check " + k);
    }
    StoredDeviceCheck stored{new_id(), device_id, checked_on, check.checker, {}, x_.now()};
    for (std::size_t i = 0; i < device_check_items.size(); ++i) {
        auto const& item = device_check_items[i];
        auto it = std::find_if(check.checks.begin(), check.checks.end(),
                               [&](CheckEntry const& e) { return e.first == item.field; });
        if (it == check.checks.end() || !it->second)
            throw invalid(std::string("checks.") + item.field, std::string(item.label) + " (true / false) が必要です",
                          std::string("checks.") + item.field + " is required");
        stored.passed[i] = *it->second;
    }
    DeviceLedger(x_.db).add_check(stored);
    return {stored.id, ""};
}

std::vector<DeviceCheck> LedgerDesk::checks(Caller const& c, std::string const& device_id) {
    require_facility(c);
    require_device(x_, c, device_id);
    std::vector<DeviceCheck> out;
    for (StoredDeviceCheck const& r : DeviceLedger(x_.db).checks(device_id)) {
        DeviceCheck check{r.checked_on, r.checker, {}};
        for (std::size_t i = 0; i < device_check_items.size(); ++i)
            check.checks.emplace_back(device_check_items[i].field, r.passed[i]);
        out.push_back(std::move(check));
    }
    return out;
}

Recorded LedgerDesk::record_fallback(Caller const& c, FallbackVerification const& v) {
    require_facility(c);
    if (v.method != "マイナポータル" && v.method != "資格情報のお知らせ")
        throw invalid("method", "方法は マイナポータル か 資格情報のお知らせ です",
                      "method is マイナポータル or 資格情報のお知らせ");
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
        DeviceLedger(x_.db).add_fallback({id, c.facility_code,
                                          person.empty() ? std::nullopt : std::optional<std::string>(person), v.method,
                                          v.reason, verified_on, card.insurer, card.symbol, card.number, card.branch,
                                          card.birthdate, v.burden_ratio, x_.now()});
        log_inquiry(x_, InquiryEntry{c.facility_code, c.subject,
                                     v.method == "マイナポータル" ? "資格確認（マイナポータル）"
                                                                  : "資格確認（資格情報のお知らせ）",
                                     person, true, json{{"verification_id", id}, {"verified_on", verified_on}}.dump()});
    });
    return {id, v.method};
}

}  // namespace kyotaku::server
