-- 台帳: the mobile devices used for 居宅同意取得型, their permitted staff, and the safety checklist (別添2).

CREATE TABLE devices (
  id TEXT PRIMARY KEY,
  facility_code TEXT NOT NULL REFERENCES facilities(code),
  name TEXT NOT NULL,
  kind TEXT NOT NULL,               -- スマートフォン / タブレット / ノートPC
  ownership TEXT NOT NULL,          -- 施設所有 / 個人所有 (BYOD)
  permitted_staff TEXT NOT NULL,    -- JSON array of names
  registered_at TEXT NOT NULL,
  retired_at TEXT
);
CREATE INDEX devices_by_facility ON devices (facility_code, registered_at);

CREATE TABLE device_checks (
  id TEXT PRIMARY KEY,
  device_id TEXT NOT NULL REFERENCES devices(id),
  checked_on TEXT NOT NULL,
  checker TEXT NOT NULL,
  os_updated INTEGER NOT NULL,      -- OS・ソフトウェアを最新に保っている
  antivirus INTEGER NOT NULL,       -- ウイルス対策をしている
  screen_lock INTEGER NOT NULL,     -- 画面ロック・パスワードを設定している
  ledger_reviewed INTEGER NOT NULL, -- 台帳と利用者を定期的に確認している
  staff_trained INTEGER NOT NULL,   -- 職員に教育をしている
  recorded_at TEXT NOT NULL
);
CREATE INDEX device_checks_by_device ON device_checks (device_id, checked_on);
