-- 引き継ぎ (hand-off) of the consent page (server/handoff.hpp): the patient's phone leaves its choices here with a
-- 6-digit code; the staff's device with a reader claims it and does the card step; the registration finishes it.

CREATE TABLE consent_handoffs (
  id TEXT PRIMARY KEY,              -- 128 random bits: the phone's handle on its hand-off
  facility_code TEXT NOT NULL REFERENCES facilities(code),
  code TEXT NOT NULL,               -- 6 digits shown on the phone, unique among the facility's open hand-offs
  choices_json TEXT NOT NULL,       -- visit_kind, items, identity_method, appointment_date: never a PIN
  created_at TEXT NOT NULL,
  expires_at TEXT NOT NULL,
  claim_hash TEXT,                  -- SHA-256 of the secret the claiming device holds
  claimed_at TEXT,
  challenge_id TEXT,                -- the card's challenge issued for this hand-off
  consent_id TEXT,                  -- set in the registration's transaction
  first_visit TEXT,
  done_at TEXT,
  cancelled_at TEXT
);
CREATE INDEX consent_handoffs_by_code ON consent_handoffs (facility_code, code);
CREATE INDEX consent_handoffs_by_claim ON consent_handoffs (claim_hash);

-- Wrong codes, per facility, for slowing claims down (kept for the counting window only).
CREATE TABLE consent_handoff_failures (
  facility_code TEXT NOT NULL,
  at TEXT NOT NULL
);
CREATE INDEX consent_handoff_failures_by_facility ON consent_handoff_failures (facility_code, at);
