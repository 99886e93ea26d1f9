-- Issue 24 item 7: whether the consent was taken at a preparatory visit (契約や計画策定などのための事前の訪問, 通知
-- 第2), asked of the staff at registration. The rules forgive a first month without a reviewed claim only then; a
-- consent from before this column was not asked, and counts as not preparatory (0): a late claim is not forgiven.
ALTER TABLE consents ADD COLUMN preparatory_visit INTEGER NOT NULL DEFAULT 0;
