-- The reference verification system's schema. Portable SQL (SQLite and PostgreSQL): TEXT ids made by the
-- application, dates as ISO text, booleans as 0/1 integers.

-- 保険医療機関等
CREATE TABLE facilities (
  code TEXT PRIMARY KEY,            -- 医療機関等コード (10 digits, check digit validated)
  name TEXT NOT NULL,
  kind TEXT NOT NULL,               -- 医科 / 歯科 / 薬局 / 訪問看護ステーション
  created_at TEXT NOT NULL
);

-- 環境設定
CREATE TABLE facility_settings (
  facility_code TEXT PRIMARY KEY REFERENCES facilities(code),
  terms_agreed INTEGER NOT NULL DEFAULT 0,          -- 利用規約への同意
  home_visit_enabled INTEGER NOT NULL DEFAULT 0,    -- 訪問診療等機能
  online_enabled INTEGER NOT NULL DEFAULT 0,        -- オンライン診療等機能
  view_operation INTEGER NOT NULL DEFAULT 1,        -- 閲覧同意の利用有無: 手術情報
  view_diagnosis INTEGER NOT NULL DEFAULT 1,        -- 診療情報
  view_pharmacy INTEGER NOT NULL DEFAULT 1,         -- 薬剤情報
  view_checkup INTEGER NOT NULL DEFAULT 1,          -- 特定健診情報
  view_limit INTEGER NOT NULL DEFAULT 1,            -- 限度額情報 (訪問看護ステーション)
  updated_at TEXT NOT NULL
);

-- Every change of settings: who, when, before, after.
CREATE TABLE settings_audit (
  id TEXT PRIMARY KEY,
  facility_code TEXT NOT NULL REFERENCES facilities(code),
  seq INTEGER NOT NULL,             -- 1, 2, … per facility, in the order of the changes
  actor TEXT NOT NULL,
  at TEXT NOT NULL,
  before_json TEXT NOT NULL,
  after_json TEXT NOT NULL
);
CREATE UNIQUE INDEX settings_audit_by_facility ON settings_audit (facility_code, seq);

-- 資格情報 (test data): one row per period of one insurance; person_key follows a person across insurers.
CREATE TABLE insured_persons (
  id TEXT PRIMARY KEY,
  person_key TEXT NOT NULL,
  insurer_number TEXT NOT NULL,     -- 保険者番号 (8 digits, or 6 for 国保)
  symbol TEXT NOT NULL,             -- 記号 (normalised to ASCII)
  number TEXT NOT NULL,             -- 番号
  branch TEXT NOT NULL,             -- 枝番 ('' for 後期高齢者)
  birthdate TEXT NOT NULL,
  name TEXT NOT NULL,
  name_kana TEXT NOT NULL,
  burden_ratio TEXT NOT NULL,       -- InsuredPartialContributionRatio: 010 = 1割, 020, 030
  valid_from TEXT NOT NULL,
  valid_to TEXT                     -- NULL: still valid
);
CREATE INDEX insured_persons_by_card ON insured_persons (insurer_number, symbol, number, branch, birthdate);
CREATE INDEX insured_persons_by_person ON insured_persons (person_key, valid_from);

-- 居宅同意取得型の同意 (consent registry)
CREATE TABLE consents (
  id TEXT PRIMARY KEY,
  facility_code TEXT NOT NULL REFERENCES facilities(code),
  person_key TEXT NOT NULL,
  visit_kind TEXT NOT NULL,         -- 診療区分 of the rule set
  first_visit TEXT NOT NULL,        -- 初回訪問 (the 居宅同意取得型 verification)
  continuing_home_care INTEGER NOT NULL DEFAULT 0,
  identity_method TEXT NOT NULL,    -- 暗証番号 / 目視確認 / マイナポータル / 資格情報のお知らせ
  items TEXT NOT NULL,              -- consented viewing items, comma-separated
  appointment_date TEXT,            -- 診療予約日 (online care)
  registered_at TEXT NOT NULL,
  withdrawn_at TEXT
);
CREATE INDEX consents_by_facility_person ON consents (facility_code, person_key, first_visit);

-- レセプト請求の審査結果 (claims review results): continuity evidence
CREATE TABLE claim_reviews (
  facility_code TEXT NOT NULL REFERENCES facilities(code),
  person_key TEXT NOT NULL,
  month TEXT NOT NULL,              -- YYYY-MM
  reviewed_on TEXT NOT NULL,
  PRIMARY KEY (facility_code, person_key, month)
);

-- 資格確認履歴 (every eligibility check and re-inquiry)
CREATE TABLE inquiry_log (
  id TEXT PRIMARY KEY,
  facility_code TEXT NOT NULL,
  at TEXT NOT NULL,
  kind TEXT NOT NULL,
  person_key TEXT,
  allowed INTEGER NOT NULL,
  detail_json TEXT NOT NULL
);
CREATE INDEX inquiry_log_by_facility ON inquiry_log (facility_code, at);
