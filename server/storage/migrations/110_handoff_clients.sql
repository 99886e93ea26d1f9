-- Issue 25 (the hand-off's budgets, server/usecases/handoff.hpp): each hand-off remembers the client that started it
-- (its network address, an IPv6 /64; "(office terminal)" for the facility's own certificate) and where it goes, so
-- that a client's open hand-offs are counted and a claim gives the card step its own time; wrong codes are counted
-- per claimant (facility and client), not per facility.
ALTER TABLE consent_handoffs ADD COLUMN client TEXT NOT NULL DEFAULT '';
ALTER TABLE consent_handoffs ADD COLUMN to_computer INTEGER NOT NULL DEFAULT 0;
ALTER TABLE consent_handoff_failures ADD COLUMN claimant TEXT NOT NULL DEFAULT '';
CREATE INDEX consent_handoffs_open_by_facility ON consent_handoffs (facility_code, expires_at);
CREATE INDEX consent_handoff_failures_by_claimant ON consent_handoff_failures (facility_code, claimant, at);
