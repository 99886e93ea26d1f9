-- Issue 24 item 12: the certificate that uploaded a batch, so that each of its rows' 資格確認履歴 entries names who asked.
-- Jobs from before this column have none (NULL).
ALTER TABLE batch_jobs ADD COLUMN requested_by TEXT;
