-- Consent registration by the consent page: one-time challenges signed by the card, 目視確認 passcodes
-- obtained by office terminals, and the test cards' certificates (the reference system's stand-in for J-LIS).

CREATE TABLE challenges (
  id TEXT PRIMARY KEY,
  facility_code TEXT NOT NULL REFERENCES facilities(code),
  challenge_hex TEXT NOT NULL,
  created_at TEXT NOT NULL,
  expires_at TEXT NOT NULL,
  used_at TEXT,
  request_hash TEXT,                -- the registration that used it (a retry with the same request is idempotent)
  consent_id TEXT
);

CREATE TABLE visual_passcodes (
  facility_code TEXT NOT NULL REFERENCES facilities(code),
  passcode_hash TEXT NOT NULL,      -- SHA-256 of the passcode; the passcode itself is shown once and not kept
  created_at TEXT NOT NULL,
  expires_at TEXT NOT NULL,
  used_at TEXT,
  PRIMARY KEY (facility_code, passcode_hash)
);

CREATE TABLE card_certificates (
  fingerprint TEXT PRIMARY KEY,     -- SHA-256 of the certificate (DER)
  person_key TEXT NOT NULL,
  registered_at TEXT NOT NULL
);
