-- Batch work by chunk (issue 12, item 2). A worker leases a range of rows (a chunk) instead of each row, and a
-- chunk's answers are new rows of batch_results (COPY on PostgreSQL) instead of updates of batch_rows: on
-- PostgreSQL each row's two updates (lease, answer) left dead versions behind that the next claim's index scan
-- walked through again, so a 100,000-row batch took three times as long as on SQLite.
-- batch_jobs.next_row is the first row not yet in a chunk. A chunk whose lease expired (its server died) is taken
-- by another worker; its answers are written in the transaction that marks it answered, only while the writer's
-- lease stands, so every row is answered exactly once. Every writer locks the job's row before a chunk's.
CREATE TABLE batch_chunks (
  reception_number TEXT NOT NULL REFERENCES batch_jobs(reception_number),
  first_row INTEGER NOT NULL,
  last_row INTEGER NOT NULL,
  lease_owner TEXT,
  lease_until TEXT,
  answered_at TEXT,
  PRIMARY KEY (reception_number, first_row)
);
CREATE INDEX batch_chunks_open ON batch_chunks (reception_number, first_row) WHERE answered_at IS NULL;
CREATE TABLE batch_results (                 -- no foreign key, as batch_rows below; purged with them
  reception_number TEXT NOT NULL,
  row_no INTEGER NOT NULL,                 -- the batch_rows row it answers (written only for rows read from there)
  result_json TEXT NOT NULL,
  PRIMARY KEY (reception_number, row_no)
);
ALTER TABLE batch_jobs ADD COLUMN next_row INTEGER NOT NULL DEFAULT 1;
-- What 010 left: the answers already written move; the unanswered rows of unfinished jobs become chunks of at
-- most 500 rows (a chunk may hold rows answered already: a worker reads only the rows without an answer).
INSERT INTO batch_results (reception_number, row_no, result_json)
  SELECT reception_number, row_no, result_json FROM batch_rows WHERE result_json IS NOT NULL;
INSERT INTO batch_chunks (reception_number, first_row, last_row)
  SELECT r.reception_number, MIN(r.row_no), MAX(r.row_no) FROM batch_rows r JOIN batch_jobs j ON j.reception_number = r.reception_number
  WHERE j.finished_at IS NULL AND r.result_json IS NULL GROUP BY r.reception_number, (r.row_no - 1) / 500;
UPDATE batch_jobs SET next_row = total + 1 WHERE finished_at IS NULL;
-- batch_rows without what 010 kept in it (answers and leases), and without its foreign key: checked per row, it
-- cost PostgreSQL as much as the COPY itself; the rows of a job are written in the transaction that creates it.
CREATE TABLE batch_rows_011 (
  reception_number TEXT NOT NULL,
  row_no INTEGER NOT NULL,
  request_json TEXT NOT NULL,
  CONSTRAINT batch_rows_key PRIMARY KEY (reception_number, row_no)
);
INSERT INTO batch_rows_011 (reception_number, row_no, request_json) SELECT reception_number, row_no, request_json FROM batch_rows;
DROP TABLE batch_rows;
ALTER TABLE batch_rows_011 RENAME TO batch_rows;
