// 台帳 (the mobile devices used for 居宅同意取得型, their permitted staff, the checklist of 別添2) — kept by the
// facility's 管理者 — and fallback verifications when the card cannot be used.
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

json LedgerDesk::add_device(Caller const& c, json const& body) {
    require_manager(c);
    Fields f(body, {"name", "kind", "ownership", "permitted_staff"});
    std::string name = f.text("name");
    if (name.empty()) throw invalid("name", "名称がありません", "name is empty");
    check_text(name, "name", 100);
    std::string kind = f.text("kind");
    if (kind != "スマートフォン" && kind != "タブレット" && kind != "ノートPC")
        throw invalid("kind", "種類は スマートフォン, タブレット, ノートPC のいずれかです", "kind is スマートフォン, タブレット or ノートPC");
    std::string ownership = f.text("ownership");
    if (ownership != "施設所有" && ownership != "個人所有")
        throw invalid("ownership", "所有は 施設所有 か 個人所有 (BYOD) です", "ownership is 施設所有 or 個人所有");
    json const& staff = f.raw("permitted_staff");
    if (!staff.is_array() || staff.empty() || staff.size() > 100)
        throw invalid("permitted_staff", "利用を許可する職員の一覧 (1〜100人) が必要です", "permitted_staff must be an array of 1..100 names");
    for (auto const& s : staff) {
        if (!s.is_string() || s.get<std::string>().empty()) throw invalid("permitted_staff", "職員名は文字列です", "staff names are strings");
        check_text(s.get<std::string>(), "permitted_staff", 100);
    }
    std::string id = new_id();
    x_.db.query("INSERT INTO devices (id, facility_code, name, kind, ownership, permitted_staff, registered_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                {id, c.facility_code, name, kind, ownership, staff.dump(), x_.now()});
    return json{{"id", id}};
}

json LedgerDesk::list_devices(Caller const& c) {
    require_facility(c);
    json out = json::array();
    for (auto const& r : x_.db.query("SELECT id, name, kind, ownership, permitted_staff, registered_at FROM devices WHERE facility_code = $1 AND retired_at IS NULL "
                                     "ORDER BY registered_at, id",
                                     {c.facility_code})) {
        json d{{"id", as_text(r[0])}, {"name", as_text(r[1])}, {"kind", as_text(r[2])}, {"ownership", as_text(r[3])},
               {"permitted_staff", json::parse(as_text(r[4]))}, {"registered_at", as_text(r[5])}, {"last_check", nullptr}};
        auto last = x_.db.query("SELECT checked_on, checker, os_updated, antivirus, screen_lock, ledger_reviewed, staff_trained FROM device_checks "
                                "WHERE device_id = $1 ORDER BY checked_on DESC, recorded_at DESC LIMIT 1",
                                {as_text(r[0])});
        if (!last.empty()) {
            json failed = json::array();
            for (std::size_t i = 0; i < device_check_items.size(); ++i)
                if (!as_int(last[0][2 + i])) failed.push_back(device_check_items[i].label);
            d["last_check"] = json{{"checked_on", as_text(last[0][0])}, {"checker", as_text(last[0][1])}, {"all_passed", failed.empty()}, {"failed", failed}};
        }
        out.push_back(d);
    }
    return out;
}

json LedgerDesk::add_check(Caller const& c, std::string const& device_id, json const& body) {
    require_manager(c);
    require_device(x_, c, device_id);
    Fields f(body, {"checked_on", "checker", "checks"});
    std::string checked_on = not_after_today(x_, f, "checked_on", "点検日");
    std::string checker = f.text("checker");
    if (checker.empty()) throw invalid("checker", "点検者が必要です", "checker is required");
    check_text(checker, "checker", 100);
    json const& checks = f.raw("checks");
    if (!checks.is_object()) throw invalid("checks", "checks (5項目) が必要です", "checks is required");
    for (auto const& [k, v] : checks.items()) {
        bool known = false;
        for (auto const& item : device_check_items) known = known || k == item.field;
        if (!known) throw invalid("checks." + k, "不明な点検項目 " + k, "unknown check " + k);
    }
    std::vector<Value> values{new_id(), device_id, checked_on, checker};
    for (auto const& item : device_check_items) {
        auto it = checks.find(item.field);
        if (it == checks.end() || !it->is_boolean())
            throw invalid(std::string("checks.") + item.field, std::string(item.label) + " (true / false) が必要です",
                          std::string("checks.") + item.field + " is required");
        values.emplace_back(std::int64_t(it->get<bool>()));
    }
    values.emplace_back(x_.now());
    x_.db.query("INSERT INTO device_checks (id, device_id, checked_on, checker, os_updated, antivirus, screen_lock, ledger_reviewed, staff_trained, recorded_at) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                values);
    return json{{"id", as_text(values[0])}};
}

json LedgerDesk::checks(Caller const& c, std::string const& device_id) {
    require_facility(c);
    require_device(x_, c, device_id);
    json out = json::array();
    for (auto const& r : x_.db.query("SELECT checked_on, checker, os_updated, antivirus, screen_lock, ledger_reviewed, staff_trained FROM device_checks "
                                     "WHERE device_id = $1 ORDER BY checked_on, recorded_at",
                                     {device_id})) {
        json checks = json::object();
        for (std::size_t i = 0; i < device_check_items.size(); ++i) checks[device_check_items[i].field] = as_int(r[2 + i]) != 0;
        out.push_back(json{{"checked_on", as_text(r[0])}, {"checker", as_text(r[1])}, {"checks", checks}});
    }
    return out;
}

json LedgerDesk::record_fallback(Caller const& c, json const& body) {
    require_facility(c);
    Fields f(body, {"method", "reason", "verified_on", "burden_ratio", "insurer_number", "symbol", "number", "branch", "birthdate"});
    std::string method = f.text("method");
    if (method != "マイナポータル" && method != "資格情報のお知らせ")
        throw invalid("method", "方法は マイナポータル か 資格情報のお知らせ です", "method is マイナポータル or 資格情報のお知らせ");
    std::string reason = f.text("reason");
    if (reason.empty()) throw invalid("reason", "カードを使えなかった理由が必要です", "reason is required");
    check_text(reason, "reason", 200);
    std::string verified_on = not_after_today(x_, f, "verified_on", "確認日");
    std::string ratio = f.text("burden_ratio");
    if (ratio != "010" && ratio != "020" && ratio != "030")
        throw invalid("burden_ratio", "負担割合は 010, 020, 030 のいずれかです", "burden_ratio is 010, 020 or 030");
    Card card = card_from(f);
    // Recorded as shown by the patient; not a consent, so it opens no re-inquiry or viewing.
    std::string person = DbRecords(x_.db).person_by_card(card);
    std::string id = new_id();
    transaction(x_.db, [&] {
        x_.db.query("INSERT INTO fallback_verifications (id, facility_code, person_key, method, reason, verified_on, insurer_number, symbol, number, branch, "
                    "birthdate, burden_ratio, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                    {id, c.facility_code, person.empty() ? Value(nullptr) : Value(person), method, reason, verified_on, card.insurer, card.symbol,
                     card.number, card.branch, card.birthdate, ratio, x_.now()});
        log_inquiry(x_, InquiryEntry{c.facility_code, c.subject, method == "マイナポータル" ? "資格確認（マイナポータル）" : "資格確認（資格情報のお知らせ）",
                                     person, true, json{{"verification_id", id}, {"verified_on", verified_on}}});
    });
    return json{{"id", id}, {"method", method}};
}

}  // namespace kyotaku::server
