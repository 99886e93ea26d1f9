// device_ledger: the facility's 台帳 as stored — the mobile devices used for 居宅同意取得型 with their permitted
// staff, each device's checks (the checklist of 別添2) — and the fallback verifications recorded when the card
// could not be used (the ledger desk keeps it).
#pragma once

#include "storage/database.hpp"

#include <array>
#include <optional>
#include <string>
#include <vector>

namespace kyotaku::server {

struct StoredDevice {
    std::string id, facility, name, kind, ownership;
    std::string permitted_staff_json;  // a JSON array of names, as stored
    std::string registered_at;
};

// One check of a device: the five items of 別添2 in the order of device_checks' columns — os_updated, antivirus,
// screen_lock, ledger_reviewed, staff_trained.
struct StoredDeviceCheck {
    std::string id, device_id, checked_on, checker;
    std::array<bool, 5> passed{};
    std::string recorded_at;
};

// A verification of eligibility without the card (マイナポータル, 資格情報のお知らせ), as the patient showed it.
struct StoredFallback {
    std::string id, facility;
    std::optional<std::string> person;  // the matching person, when the server knows one
    std::string method, reason, verified_on, insurer, symbol, number, branch, birthdate, burden_ratio, recorded_at;
};

class DeviceLedger {
public:
    explicit DeviceLedger(Database& db) : db_(db) {}

    // Whether the device is one of the facility's.
    bool has_device(std::string const& facility, std::string const& device_id);
    void add_device(StoredDevice const& d);
    // The facility's devices in use, in the order registered.
    std::vector<StoredDevice> devices(std::string const& facility);
    void add_check(StoredDeviceCheck const& c);
    // The device's checks, oldest first; its latest (the newest check day, then the newest recorded).
    std::vector<StoredDeviceCheck> checks(std::string const& device_id);
    std::optional<StoredDeviceCheck> last_check(std::string const& device_id);
    void add_fallback(StoredFallback const& v);

private:
    Database& db_;
};

}  // namespace kyotaku::server
