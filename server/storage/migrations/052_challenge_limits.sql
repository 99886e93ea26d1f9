-- Issue 10: consent-page challenges are purged once expired, and their creation rate is bounded per facility: both
-- look challenges up by time.
CREATE INDEX challenges_by_facility ON challenges (facility_code, created_at);
CREATE INDEX challenges_by_expiry ON challenges (expires_at);
