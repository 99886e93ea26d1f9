-- Issue 21: one key file per deployment. The fingerprint of the key file (derived from it, never the key:
-- Secrets::fingerprint) of the first server that started on this database; a server with another key refuses to
-- start, naming both (ops/preflight.hpp). One row.
CREATE TABLE key_fingerprint (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  fingerprint TEXT NOT NULL,
  created_at TEXT NOT NULL
);
