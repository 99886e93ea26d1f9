-- Issue 22 item 6 (server/usecases/consent_limits.hpp): a stranger holding the facility URL must not stop a patient's
-- registration. Challenges remember the client that asked for them (its network address, an IPv6 /64; "(office
-- terminal)" for the facility's own certificate), so that the budget of 30 a minute is per client; wrong 目視確認
-- passcodes are counted per client too (a client waits after 5), and the facility's live passcodes stop working only
-- after many (visual_passcodes.failed_attempts).
ALTER TABLE challenges ADD COLUMN client TEXT NOT NULL DEFAULT '';
CREATE INDEX challenges_by_client ON challenges (facility_code, client, created_at);
CREATE TABLE visual_passcode_failures (
  facility_code TEXT NOT NULL REFERENCES facilities(code),
  client TEXT NOT NULL,
  at TEXT NOT NULL
);
CREATE INDEX visual_passcode_failures_by_client ON visual_passcode_failures (facility_code, client, at);
CREATE INDEX visual_passcode_failures_by_time ON visual_passcode_failures (at);
