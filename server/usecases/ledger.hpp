// 台帳 (the mobile devices used for 居宅同意取得型, their permitted staff, the checklist of 別添2) — kept by the
// facility's 管理者 — and fallback verifications when the card cannot be used. Requests and answers are domain
// types; the JSON codec at the edge (http/api_json.hpp) reads and writes them.
#pragma once

#include "usecases/context.hpp"

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace kyotaku::server {

// A device as the 管理者 enters it.
struct NewDevice {
    std::string name;
    std::string kind;       // スマートフォン, タブレット or ノートPC
    std::string ownership;  // 施設所有 or 個人所有 (BYOD)
    std::vector<std::string> permitted_staff;  // 1..100 names
};

// One point of the checklist as sent: its name and its value (nullopt when it is not true or false).
using CheckEntry = std::pair<std::string, std::optional<bool>>;

// A 別添2 check of a device: the day, who checked, and each of the five points.
struct NewDeviceCheck {
    std::string checked_on;  // a date as sent (ISO or 和暦)
    std::string checker;
    std::vector<CheckEntry> checks;  // in the order sent; exactly the five points, each true or false
};

// The points of a stored check, by their names (os_updated, antivirus, screen_lock, ledger_reviewed, staff_trained).
struct DeviceCheck {
    std::string checked_on, checker;
    std::vector<std::pair<std::string, bool>> checks;
};

struct Device {
    std::string id, name, kind, ownership;
    std::vector<std::string> permitted_staff;
    std::string registered_at;
    struct LastCheck {
        std::string checked_on, checker;
        std::vector<std::string> failed;  // the labels of the points that did not pass (all passed when empty)
    };
    std::optional<LastCheck> last_check;
};

// A 資格確認 made without the card (マイナポータル or 資格情報のお知らせ), recorded as the patient showed it.
struct FallbackVerification {
    std::string method, reason;
    std::string verified_on;   // a date as sent
    std::string burden_ratio;  // 010, 020 or 030
    CardFields card;
};

struct Recorded {
    std::string id;
    std::string method;  // a fallback verification's method; empty otherwise
};

class LedgerDesk {
public:
    explicit LedgerDesk(Context& x) : x_(x) {}
    Recorded add_device(Caller const& c, NewDevice const& device);
    std::vector<Device> list_devices(Caller const& c);
    Recorded add_check(Caller const& c, std::string const& device_id, NewDeviceCheck const& check);
    std::vector<DeviceCheck> checks(Caller const& c, std::string const& device_id);
    Recorded record_fallback(Caller const& c, FallbackVerification const& v);

private:
    Context& x_;
};

}  // namespace kyotaku::server
