-- PostgreSQL only (the name's ".postgresql.sql": SQLite skips this file). Issue 26 goal 1: a re-inquiry's reads
-- (PersonRecords, storage/records.cpp) as one index scan. Every row PersonRecords reads — the facility (part 0), its
-- settings (6), a person's consents at a facility (2), claim reviews (3), insurance periods (4) and 照会番号 (5) — has
-- one line here, in the columns PersonRecords decodes (13 values as text, then the sort keys d1, d2 descending, a1,
-- a2 ascending), kept by triggers of the table it mirrors in the same transaction. A line is its source row's alone
-- (the key: the person, the scope — the facility, '' for insurance periods; a facility's own lines have person ''
-- —, the part and the source row's own key), so a write changes only its own rows' lines, under the lock it holds
-- on those rows: concurrent writers on one person each keep their own lines, whatever the isolation, and a reader
-- sees the lines as of its snapshot, as it would the tables. The lines of existing rows are made here (an upgrade in
-- place).
CREATE TABLE person_lines (
  person_key TEXT NOT NULL,
  scope TEXT NOT NULL,
  part INTEGER NOT NULL,
  source TEXT NOT NULL,
  v1 TEXT, v2 TEXT, v3 TEXT, v4 TEXT, v5 TEXT, v6 TEXT, v7 TEXT, v8 TEXT, v9 TEXT, v10 TEXT, v11 TEXT, v12 TEXT,
  v13 TEXT, d1 TEXT, d2 TEXT, a1 TEXT, a2 TEXT,
  PRIMARY KEY (person_key, scope, part, source)
);

-- A table emptied by TRUNCATE takes its lines (part TG_ARGV[0]) with it.
CREATE FUNCTION person_lines_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM person_lines WHERE part = CAST(TG_ARGV[0] AS INTEGER);
  RETURN NULL;
END $$;

-- Per table: the trigger's function (an UPDATE moves the line: its old key's line deleted, the new one inserted),
-- the triggers, and the lines of the rows the table holds now.
CREATE FUNCTION person_lines_of_facilities() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'INSERT' THEN
    DELETE FROM person_lines WHERE person_key = '' AND scope = OLD.code AND part = 0 AND source = '';
  END IF;
  IF TG_OP <> 'DELETE' THEN
    INSERT INTO person_lines VALUES ('', NEW.code, 0, '', NEW.name, NEW.kind, NULL, NULL, NULL, NULL, NULL, NULL,
      NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER person_lines AFTER INSERT OR UPDATE OR DELETE ON facilities FOR EACH ROW EXECUTE PROCEDURE
  person_lines_of_facilities();
CREATE TRIGGER person_lines_truncated AFTER TRUNCATE ON facilities FOR EACH STATEMENT EXECUTE PROCEDURE
  person_lines_truncated(0);
INSERT INTO person_lines SELECT '', code, 0, '', name, kind, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL FROM facilities;

CREATE FUNCTION person_lines_of_facility_settings() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'INSERT' THEN
    DELETE FROM person_lines WHERE person_key = '' AND scope = OLD.facility_code AND part = 6 AND source = '';
  END IF;
  IF TG_OP <> 'DELETE' THEN
    INSERT INTO person_lines VALUES ('', NEW.facility_code, 6, '', CAST(NEW.terms_agreed AS TEXT),
      CAST(NEW.home_visit_enabled AS TEXT), CAST(NEW.online_enabled AS TEXT), CAST(NEW.view_operation AS TEXT),
      CAST(NEW.view_diagnosis AS TEXT), CAST(NEW.view_pharmacy AS TEXT), CAST(NEW.view_checkup AS TEXT),
      CAST(NEW.view_limit AS TEXT), NEW.updated_at, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER person_lines AFTER INSERT OR UPDATE OR DELETE ON facility_settings FOR EACH ROW EXECUTE PROCEDURE
  person_lines_of_facility_settings();
CREATE TRIGGER person_lines_truncated AFTER TRUNCATE ON facility_settings FOR EACH STATEMENT EXECUTE PROCEDURE
  person_lines_truncated(6);
INSERT INTO person_lines SELECT '', facility_code, 6, '', CAST(terms_agreed AS TEXT),
  CAST(home_visit_enabled AS TEXT), CAST(online_enabled AS TEXT), CAST(view_operation AS TEXT),
  CAST(view_diagnosis AS TEXT), CAST(view_pharmacy AS TEXT), CAST(view_checkup AS TEXT), CAST(view_limit AS TEXT),
  updated_at, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM facility_settings;

CREATE FUNCTION person_lines_of_consents() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'INSERT' THEN
    DELETE FROM person_lines WHERE person_key = OLD.person_key AND scope = OLD.facility_code AND part = 2 AND
      source = OLD.id;
  END IF;
  IF TG_OP <> 'DELETE' THEN
    INSERT INTO person_lines VALUES (NEW.person_key, NEW.facility_code, 2, NEW.id, NEW.id, NEW.visit_kind,
      NEW.first_visit, NEW.identity_method, NEW.registered_at, NEW.items, NEW.appointment_date, NEW.withdrawn_at,
      CAST(NEW.preparatory_visit AS TEXT), NULL, NULL, NULL, NULL, NEW.first_visit, NEW.registered_at, NEW.id, NULL);
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER person_lines AFTER INSERT OR UPDATE OR DELETE ON consents FOR EACH ROW EXECUTE PROCEDURE
  person_lines_of_consents();
CREATE TRIGGER person_lines_truncated AFTER TRUNCATE ON consents FOR EACH STATEMENT EXECUTE PROCEDURE
  person_lines_truncated(2);
INSERT INTO person_lines SELECT person_key, facility_code, 2, id, id, visit_kind, first_visit, identity_method,
  registered_at, items, appointment_date, withdrawn_at, CAST(preparatory_visit AS TEXT), NULL, NULL, NULL, NULL,
  first_visit, registered_at, id, NULL FROM consents;

CREATE FUNCTION person_lines_of_claim_reviews() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'INSERT' THEN
    DELETE FROM person_lines WHERE person_key = OLD.person_key AND scope = OLD.facility_code AND part = 3 AND
      source = OLD.month;
  END IF;
  IF TG_OP <> 'DELETE' THEN
    INSERT INTO person_lines VALUES (NEW.person_key, NEW.facility_code, 3, NEW.month, NEW.month, NULL, NULL, NULL,
      NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER person_lines AFTER INSERT OR UPDATE OR DELETE ON claim_reviews FOR EACH ROW EXECUTE PROCEDURE
  person_lines_of_claim_reviews();
CREATE TRIGGER person_lines_truncated AFTER TRUNCATE ON claim_reviews FOR EACH STATEMENT EXECUTE PROCEDURE
  person_lines_truncated(3);
INSERT INTO person_lines SELECT person_key, facility_code, 3, month, month, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM claim_reviews;

CREATE FUNCTION person_lines_of_insured_persons() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'INSERT' THEN
    DELETE FROM person_lines WHERE person_key = OLD.person_key AND scope = '' AND part = 4 AND source = OLD.id;
  END IF;
  IF TG_OP <> 'DELETE' THEN
    INSERT INTO person_lines VALUES (NEW.person_key, '', 4, NEW.id, NEW.insurer_number, NEW.symbol, NEW.number,
      NEW.branch, NEW.birthdate, NEW.name, NEW.name_kana, NEW.burden_ratio, NEW.valid_from, NEW.valid_to,
      NEW.card_classification, NEW.personal_family, NEW.loss_reason, NEW.valid_from, NULL, NEW.id, NULL);
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER person_lines AFTER INSERT OR UPDATE OR DELETE ON insured_persons FOR EACH ROW EXECUTE PROCEDURE
  person_lines_of_insured_persons();
CREATE TRIGGER person_lines_truncated AFTER TRUNCATE ON insured_persons FOR EACH STATEMENT EXECUTE PROCEDURE
  person_lines_truncated(4);
INSERT INTO person_lines SELECT person_key, '', 4, id, insurer_number, symbol, number, branch, birthdate, name,
  name_kana, burden_ratio, valid_from, valid_to, card_classification, personal_family, loss_reason, valid_from, NULL,
  id, NULL FROM insured_persons;

CREATE FUNCTION person_lines_of_reference_numbers() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'INSERT' THEN
    DELETE FROM person_lines WHERE person_key = OLD.person_key AND scope = OLD.facility_code AND part = 5 AND
      source = OLD.reference_number;
  END IF;
  IF TG_OP <> 'DELETE' THEN
    INSERT INTO person_lines VALUES (NEW.person_key, NEW.facility_code, 5, NEW.reference_number,
      NEW.reference_number, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
      NEW.registered_at, NEW.reference_number);
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER person_lines AFTER INSERT OR UPDATE OR DELETE ON reference_numbers FOR EACH ROW EXECUTE PROCEDURE
  person_lines_of_reference_numbers();
CREATE TRIGGER person_lines_truncated AFTER TRUNCATE ON reference_numbers FOR EACH STATEMENT EXECUTE PROCEDURE
  person_lines_truncated(5);
INSERT INTO person_lines SELECT person_key, facility_code, 5, reference_number, reference_number, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, registered_at, reference_number FROM
  reference_numbers;
