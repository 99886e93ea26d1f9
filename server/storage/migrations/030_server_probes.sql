-- Readiness probes (/readyz): each server instance commits a write here to show the database takes writes.
-- Rows of instances not seen for a day are removed by the probe itself.

CREATE TABLE server_probes (
  instance TEXT PRIMARY KEY,  -- host/pid/random of a running kyotaku serve
  at TEXT NOT NULL
);
