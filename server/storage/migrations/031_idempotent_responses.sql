-- Answers kept for requests that carry an Idempotency-Key (the folder relay sends one per request file and
-- keeps it across its restarts): the same key from the same facility gets the stored answer instead of a
-- second batch job. Kept for 7 days.

CREATE TABLE idempotent_responses (
  facility_code TEXT NOT NULL REFERENCES facilities(code),
  idempotency_key TEXT NOT NULL,
  request_hash TEXT NOT NULL,       -- SHA-256 of the request body: the key is refused for another body
  route TEXT NOT NULL,
  status INTEGER NOT NULL,
  content_type TEXT NOT NULL,
  body_base64 TEXT NOT NULL,        -- the answer's bytes (XML files may be Shift_JIS)
  created_at TEXT NOT NULL,
  PRIMARY KEY (facility_code, idempotency_key)
);
CREATE INDEX idempotent_responses_created ON idempotent_responses (created_at);
