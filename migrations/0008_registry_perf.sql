-- Registry performance: statement-level reference checks for entitlements.
--
-- entitlements -> programs and entitlements -> registry_snapshots were per-row foreign keys (0002). An
-- eligibility run inserts one entitlement per household in one statement, and PostgreSQL's RI trigger
-- runs one lookup per row and per key: 2 x 448,000 lookups, about 6.9 s of a 450,000-household run
-- (more than computing the result). Entitlements are written only set-wise by eligibility (insert,
-- and updates that move them to a newer snapshot) and by status changes; the same guarantee is checked
-- here once per statement against the written rows, in both directions:
--
-- * AFTER INSERT / AFTER UPDATE (statement, transition table): every (municipality, program) and
--   (municipality, snapshot) written exists. The referenced rows are locked FOR KEY SHARE, as the RI
--   trigger does, so a concurrent DELETE of the program or snapshot waits for this transaction and then
--   sees its entitlements (the guards below refuse it).
-- * BEFORE DELETE on programs / registry_snapshots: refused while an entitlement refers to the row.
-- * BEFORE UPDATE of the key columns of programs / registry_snapshots: refused while referenced (the
--   foreign keys' NO ACTION); an unreferenced row goes on to the row-level security check as before.
--
-- Constraint names in the errors (SQLSTATE 23503, foreign_key_violation) are entitlements_program_exists
-- and entitlements_snapshot_exists. tests/registry/test_eligibility.py proves each direction.

ALTER TABLE entitlements
    DROP CONSTRAINT entitlements_municipality_code_program_id_fkey,
    DROP CONSTRAINT entitlements_municipality_code_snapshot_id_fkey;

CREATE FUNCTION entitlements_references_exist() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  ref record;
BEGIN
  -- One pass over the written rows (one hash aggregate); an eligibility run yields one key pair.
  FOR ref IN SELECT DISTINCT municipality_code, program_id, snapshot_id FROM new_rows LOOP
    PERFORM 1 FROM programs p WHERE p.municipality_code = ref.municipality_code AND p.program_id = ref.program_id
      FOR KEY SHARE;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'entitlements reference a program that does not exist'
        USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'entitlements_program_exists';
    END IF;
    PERFORM 1 FROM registry_snapshots s WHERE s.municipality_code = ref.municipality_code AND s.snapshot_id = ref.snapshot_id
      FOR KEY SHARE;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'entitlements reference a registry snapshot that does not exist'
        USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'entitlements_snapshot_exists';
    END IF;
  END LOOP;
  RETURN NULL;
END $$;
-- A trigger with transition tables may have one event only: one trigger per event.
CREATE TRIGGER entitlements_references_exist_insert AFTER INSERT ON entitlements
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION entitlements_references_exist();
CREATE TRIGGER entitlements_references_exist_update AFTER UPDATE ON entitlements
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION entitlements_references_exist();

CREATE FUNCTION programs_keep_entitlements() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND (NEW.municipality_code, NEW.program_id) IS NOT DISTINCT FROM (OLD.municipality_code, OLD.program_id) THEN
    RETURN NEW;
  END IF;
  IF EXISTS (SELECT 1 FROM entitlements e WHERE e.municipality_code = OLD.municipality_code AND e.program_id = OLD.program_id) THEN
    RAISE EXCEPTION 'program % still has entitlements', OLD.program_id
      USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'entitlements_program_exists';
  END IF;
  RETURN CASE TG_OP WHEN 'DELETE' THEN OLD ELSE NEW END;
END $$;
CREATE TRIGGER programs_keep_entitlements BEFORE DELETE OR UPDATE OF municipality_code, program_id ON programs
    FOR EACH ROW EXECUTE FUNCTION programs_keep_entitlements();

CREATE FUNCTION registry_snapshots_keep_entitlements() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND (NEW.municipality_code, NEW.snapshot_id) IS NOT DISTINCT FROM (OLD.municipality_code, OLD.snapshot_id) THEN
    RETURN NEW;
  END IF;
  IF EXISTS (SELECT 1 FROM entitlements e WHERE e.municipality_code = OLD.municipality_code AND e.snapshot_id = OLD.snapshot_id) THEN
    RAISE EXCEPTION 'registry snapshot % still has entitlements', OLD.snapshot_id
      USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'entitlements_snapshot_exists';
  END IF;
  RETURN CASE TG_OP WHEN 'DELETE' THEN OLD ELSE NEW END;
END $$;
CREATE TRIGGER registry_snapshots_keep_entitlements BEFORE DELETE OR UPDATE OF municipality_code, snapshot_id
    ON registry_snapshots FOR EACH ROW EXECUTE FUNCTION registry_snapshots_keep_entitlements();

-- The 0003 check of residents -> registry_snapshots, with the same FOR KEY SHARE lock: without it, a
-- snapshot deleted by a concurrent transaction could commit alongside an import that still saw it.
-- (No index is added for the delete guards: like the foreign keys they replace, they run only when a
-- program or snapshot is deleted, which the app role cannot do.)
CREATE OR REPLACE FUNCTION residents_snapshot_exists() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  ref record;
BEGIN
  FOR ref IN SELECT DISTINCT municipality_code, snapshot_id FROM new_rows LOOP
    PERFORM 1 FROM registry_snapshots s WHERE s.municipality_code = ref.municipality_code AND s.snapshot_id = ref.snapshot_id
      FOR KEY SHARE;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'residents reference a registry snapshot that does not exist'
        USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'residents_snapshot_exists';
    END IF;
  END LOOP;
  RETURN NULL;
END $$;

-- The 住民票コード checks of 0002, as the same predicate in a cheaper form. PostgreSQL runs the anchored
-- counted pattern '^[0-9]{11}$' in about 1.7 us; the length test plus a search for one non-digit takes
-- a quarter of that, which is ~1.2 s of a 1,000,000-resident import and ~0.5 s of a 450,000-household
-- eligibility run. Same truth table: exactly 11 characters, all of them 0-9 (a non-ASCII character
-- fails the search; NULL passes both, as before).
ALTER TABLE residents
    DROP CONSTRAINT residents_resident_code_check,
    ADD CONSTRAINT residents_resident_code_check
        CHECK (octet_length(resident_code) = 11 AND resident_code !~ '[^0-9]');
ALTER TABLE entitlements
    DROP CONSTRAINT entitlements_head_resident_code_check,
    ADD CONSTRAINT entitlements_head_resident_code_check
        CHECK (octet_length(head_resident_code) = 11 AND head_resident_code !~ '[^0-9]');
