-- Issue 23: rule releases move forward only (TUF's rollback protection). The floor is the highest release the servers
-- of this database have served since the last rollback an operator asked for: a rule bundle with an older release
-- number is refused at start and on SIGHUP, and a different rule set under the same number too. The history keeps
-- every release that raised the floor and every rollback, for the operator.
CREATE TABLE rule_release_floor (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  release_number BIGINT NOT NULL,
  source_hash TEXT NOT NULL,  -- 16 hex digits
  key_id TEXT NOT NULL,       -- the signing key's fingerprint ('' when unsigned)
  set_at TEXT NOT NULL
);
CREATE TABLE rule_release_history (
  at TEXT NOT NULL,
  instance TEXT NOT NULL,
  event TEXT NOT NULL,  -- 'served': a newer release raised the floor; 'rollback': an operator went back (rollback_to)
  release_number BIGINT NOT NULL,
  from_release BIGINT NOT NULL,
  source_hash TEXT NOT NULL,
  key_id TEXT NOT NULL
);
