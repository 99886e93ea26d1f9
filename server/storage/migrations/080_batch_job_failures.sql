-- Issue 21: a job gives up only on a permanent error (a transient one — a lost connection, a failover — is
-- retried and never written as an answer), and then it is 異常終了 for the facility, not 正常終了: failed_at and
-- the cause (in English, for the operator; the facility sees a plain message) are set when it gives up.
ALTER TABLE batch_jobs ADD COLUMN failed_at TEXT;
ALTER TABLE batch_jobs ADD COLUMN failure TEXT;
