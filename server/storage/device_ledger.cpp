#include "storage/device_ledger.hpp"

namespace kyotaku::server {

namespace {
constexpr char const* check_columns = "id, device_id, checked_on, checker, os_updated, antivirus, screen_lock, "
                                      "ledger_reviewed, staff_trained, recorded_at";

StoredDeviceCheck check_from(Row const& r) {
    StoredDeviceCheck c{as_text(r[0]), as_text(r[1]), as_text(r[2]), as_text(r[3]), {}, as_text(r[9])};
    for (std::size_t i = 0; i < c.passed.size(); ++i) c.passed[i] = as_int(r[4 + i]) != 0;
    return c;
}
}  // namespace

bool DeviceLedger::has_device(std::string const& facility, std::string const& device_id) {
    return !db_.query("SELECT 1 FROM devices WHERE id = $1 AND facility_code = $2", {device_id, facility}).empty();
}

void DeviceLedger::add_device(StoredDevice const& d) {
    db_.query("INSERT INTO devices (id, facility_code, name, kind, ownership, permitted_staff, registered_at) "
              "VALUES ($1, $2, $3, $4, $5, $6, $7)",
              {d.id, d.facility, d.name, d.kind, d.ownership, d.permitted_staff_json, d.registered_at});
}

std::vector<StoredDevice> DeviceLedger::devices(std::string const& facility) {
    std::vector<StoredDevice> out;
    for (Row const& r : db_.query("SELECT id, name, kind, ownership, permitted_staff, registered_at FROM devices "
                                  "WHERE facility_code = $1 AND retired_at IS NULL ORDER BY registered_at, id",
                                  {facility}))
        out.push_back(
            {as_text(r[0]), facility, as_text(r[1]), as_text(r[2]), as_text(r[3]), as_text(r[4]), as_text(r[5])});
    return out;
}

void DeviceLedger::add_check(StoredDeviceCheck const& c) {
    std::vector<Value> values{c.id, c.device_id, c.checked_on, c.checker};
    for (bool passed : c.passed) values.emplace_back(std::int64_t(passed));
    values.emplace_back(c.recorded_at);
    db_.query(std::string("INSERT INTO device_checks (") + check_columns +
                  ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
              values);
}

std::vector<StoredDeviceCheck> DeviceLedger::checks(std::string const& device_id) {
    std::vector<StoredDeviceCheck> out;
    for (Row const& r : db_.query(std::string("SELECT ") + check_columns +
                                      " FROM device_checks WHERE device_id = $1 ORDER BY checked_on, recorded_at",
                                  {device_id}))
        out.push_back(check_from(r));
    return out;
}

std::optional<StoredDeviceCheck> DeviceLedger::last_check(std::string const& device_id) {
    auto rows =
        db_.query(std::string("SELECT ") + check_columns +
                      " FROM device_checks WHERE device_id = $1 ORDER BY checked_on DESC, recorded_at DESC LIMIT 1",
                  {device_id});
    if (rows.empty()) return std::nullopt;
    return check_from(rows[0]);
}

void DeviceLedger::add_fallback(StoredFallback const& v) {
    db_.query("INSERT INTO fallback_verifications (id, facility_code, person_key, method, reason, verified_on, "
              "insurer_number, symbol, number, branch, birthdate, burden_ratio, recorded_at) "
              "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
              {v.id, v.facility, v.person ? Value(*v.person) : Value(nullptr), v.method, v.reason, v.verified_on,
               v.insurer, v.symbol, v.number, v.branch, v.birthdate, v.burden_ratio, v.recorded_at});
}

}  // namespace kyotaku::server
