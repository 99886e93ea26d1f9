-- Issue 24 item 6: staff certificates may withdraw a consent (同意取消照会, 資格確認端末等 in the notice's quick guides);
-- each withdrawal keeps the certificate that made it. Withdrawals from before this column have none (NULL).
ALTER TABLE consents ADD COLUMN withdrawn_by TEXT;
