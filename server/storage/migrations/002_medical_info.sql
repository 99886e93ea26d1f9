-- 薬剤情報・診療情報・手術情報・特定健診情報 (test data) and 医療情報閲覧履歴.

CREATE TABLE medical_records (
  id TEXT PRIMARY KEY,
  person_key TEXT NOT NULL,
  item TEXT NOT NULL,               -- 閲覧項目 of the rule set
  recorded_on TEXT NOT NULL,
  content_json TEXT NOT NULL
);
CREATE INDEX medical_records_by_person ON medical_records (person_key, item, recorded_on);

CREATE TABLE viewing_log (
  id TEXT PRIMARY KEY,
  facility_code TEXT NOT NULL,
  at TEXT NOT NULL,
  person_key TEXT,
  item TEXT NOT NULL,
  terminal TEXT NOT NULL,
  allowed INTEGER NOT NULL,
  reason TEXT NOT NULL
);
CREATE INDEX viewing_log_by_facility ON viewing_log (facility_code, at);
