-- 資格確認一括照会 (batch re-inquiry): a job per uploaded file, a row per patient. A row's result is written in
-- the same transaction that marks it done, so a crash never answers a row twice nor loses one.

CREATE TABLE batch_jobs (
  reception_number TEXT PRIMARY KEY,  -- ReceptionNumber: yyyyMMddHHmmss + 6 random digits
  facility_code TEXT NOT NULL REFERENCES facilities(code),
  category TEXT NOT NULL,             -- 診療区分の分類
  query_date TEXT NOT NULL,           -- QualificationConfirmationDate
  file_identifier TEXT NOT NULL,      -- ArbitraryFileIdentifier
  format TEXT NOT NULL,               -- csv
  total INTEGER NOT NULL,
  done INTEGER NOT NULL,
  created_at TEXT NOT NULL,
  finished_at TEXT
);
CREATE INDEX batch_jobs_unfinished ON batch_jobs (created_at) WHERE finished_at IS NULL;

CREATE TABLE batch_rows (
  reception_number TEXT NOT NULL REFERENCES batch_jobs(reception_number),
  row_no INTEGER NOT NULL,
  request_json TEXT NOT NULL,
  result_json TEXT,                   -- NULL until answered
  PRIMARY KEY (reception_number, row_no)
);
CREATE INDEX batch_rows_pending ON batch_rows (reception_number, row_no) WHERE result_json IS NULL;
