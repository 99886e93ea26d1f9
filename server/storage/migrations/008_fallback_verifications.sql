-- Fallback verifications when the card cannot be used (停電, 通信障害, カードの破損 …): eligibility shown by the
-- マイナポータル 資格情報 screen, or by the 資格情報のお知らせ together with the card. Recorded with their method.

CREATE TABLE fallback_verifications (
  id TEXT PRIMARY KEY,
  facility_code TEXT NOT NULL REFERENCES facilities(code),
  person_key TEXT,                  -- when the eligibility is known to this system
  method TEXT NOT NULL,             -- マイナポータル / 資格情報のお知らせ
  reason TEXT NOT NULL,             -- why the card could not be used
  verified_on TEXT NOT NULL,
  insurer_number TEXT NOT NULL,
  symbol TEXT NOT NULL,
  number TEXT NOT NULL,
  branch TEXT NOT NULL,
  birthdate TEXT NOT NULL,
  burden_ratio TEXT NOT NULL,
  recorded_at TEXT NOT NULL
);
CREATE INDEX fallback_verifications_by_facility ON fallback_verifications (facility_code, verified_on);
