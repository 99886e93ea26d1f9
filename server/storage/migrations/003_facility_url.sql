-- 医療機関別URL: the URL carries an AEAD token over the facility code and its URL generation, sealed with a
-- server key of a given version. 変更 (re-issue) bumps the generation; retiring a key revokes its tokens.

CREATE TABLE url_keys (
  version INTEGER PRIMARY KEY,
  key_hex TEXT NOT NULL,            -- AES-256-GCM key (a reference server keeps it here; production: a KMS)
  created_at TEXT NOT NULL,
  retired_at TEXT
);

CREATE TABLE facility_url (
  facility_code TEXT PRIMARY KEY REFERENCES facilities(code),
  generation INTEGER NOT NULL,
  changed_at TEXT NOT NULL
);
