// 環境設定 as one JSON document: the API's answer (GET/PUT /api/v1/settings) and the snapshot the audit stores of the
// settings before and after a change are the same document.
#pragma once

#include "storage/records.hpp"

#include <nlohmann/json.hpp>

namespace kyotaku::server {

nlohmann::json settings_json(Settings const& s);

}  // namespace kyotaku::server
