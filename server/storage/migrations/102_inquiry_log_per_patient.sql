-- Issue 24 item 12: 資格確認履歴 answers "who saw this patient's eligibility, when, by which route": one entry per patient
-- answered (a batch's rows and a consented-patient download included), with the certificate that asked (actor) and,
-- for a batch, its reception number. Entries from before this migration have neither (NULL).
ALTER TABLE inquiry_log ADD COLUMN actor TEXT;
ALTER TABLE inquiry_log ADD COLUMN reception_number TEXT;
CREATE INDEX inquiry_log_by_person ON inquiry_log (facility_code, person_key, at);
