-- Issue 10: 目視確認 passcodes are stored as a keyed hash (HMAC-SHA-256 with a key derived from the server's key file,
-- not a plain SHA-256 that an 8-digit code falls to offline), and a few wrong attempts at a facility invalidate its
-- live passcodes. Unused passcodes hashed the old way can never match again: removed (they lived 15 minutes).
ALTER TABLE visual_passcodes ADD COLUMN failed_attempts INTEGER NOT NULL DEFAULT 0;
DELETE FROM visual_passcodes WHERE used_at IS NULL;
