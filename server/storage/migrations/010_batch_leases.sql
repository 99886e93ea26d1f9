-- Several servers over one database (issue 12): a batch row is leased by the worker that answers it. A worker
-- claims pending rows whose lease is free or expired (on PostgreSQL skipping rows another worker's transaction
-- holds), answers them outside any transaction, and writes the answers only where its lease still stands, so a
-- row is answered exactly once even when a server dies mid-chunk (its leases expire). Jobs are served in turn,
-- by the facility served least recently (served_at); a job whose chunks keep failing is finished with an error
-- for its rows (failures) instead of blocking the others.
ALTER TABLE batch_rows ADD COLUMN lease_owner TEXT;
ALTER TABLE batch_rows ADD COLUMN lease_until TEXT;
ALTER TABLE batch_jobs ADD COLUMN served_at TEXT;
ALTER TABLE batch_jobs ADD COLUMN failures INTEGER NOT NULL DEFAULT 0;
CREATE INDEX batch_jobs_by_facility ON batch_jobs (facility_code, served_at);
-- A finished job's results are kept until the end of the next day (JST), then its rows are deleted (purged_at).
ALTER TABLE batch_jobs ADD COLUMN purged_at TEXT;
