-- Issue 21: an Idempotency-Key is scoped by facility and route: the same key sent to another route is another
-- request (it had the first route's answer replayed). The stored answers move to a table keyed by all three; the
-- route column held the path of the route that answered already.
CREATE TABLE idempotent_answers (
  facility_code TEXT NOT NULL REFERENCES facilities(code),
  route TEXT NOT NULL,              -- the path of the route (/api/v1/oqs/…01req)
  idempotency_key TEXT NOT NULL,
  request_hash TEXT NOT NULL,       -- SHA-256 of the request body: the key is refused for another body
  status INTEGER NOT NULL,          -- 0 while the first request with the key is being answered
  content_type TEXT NOT NULL,
  body_base64 TEXT NOT NULL,        -- the answer's bytes (XML files may be Shift_JIS)
  created_at TEXT NOT NULL,
  PRIMARY KEY (facility_code, route, idempotency_key)
);
INSERT INTO idempotent_answers (facility_code, route, idempotency_key, request_hash, status, content_type, body_base64, created_at)
  SELECT facility_code, route, idempotency_key, request_hash, status, content_type, body_base64, created_at FROM idempotent_responses;
DROP TABLE idempotent_responses;
CREATE INDEX idempotent_answers_created ON idempotent_answers (created_at);
