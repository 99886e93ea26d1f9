-- 照会番号: a patient reference number a facility registers after the first visit, for the next re-inquiry.

CREATE TABLE reference_numbers (
  facility_code TEXT NOT NULL REFERENCES facilities(code),
  reference_number TEXT NOT NULL,   -- ReferenceNumber (1..50 characters), unique within the facility
  person_key TEXT NOT NULL,
  registered_at TEXT NOT NULL,
  PRIMARY KEY (facility_code, reference_number)
);
CREATE INDEX reference_numbers_by_person ON reference_numbers (facility_code, person_key);
