-- Registry linkage: household changes between 基準日 and the extract, PINs awaiting print, the registry's
-- own event log, entitlement conflicts found by a later snapshot, and keyed account fingerprints.

-- A 世帯分離 / 世帯合併 after 基準日 moves a resident to another 世帯番号 in the extract. The extract names the
-- household the resident left and the date; eligibility groups people by the household they were in
-- on 基準日 (household_no, or prev_household_no when household_changed_on is after 基準日).
ALTER TABLE residents
    ADD COLUMN prev_household_no    text,
    ADD COLUMN household_changed_on date,
    ADD CONSTRAINT residents_household_change_pair
        CHECK ((prev_household_no IS NULL) = (household_changed_on IS NULL));

-- The PIN of a letter that has not been printed yet, encrypted with the municipality's key (row key:
-- the access code). `kyufu letters export` reads it and erases it in the same transaction, so a PIN
-- exists in recoverable form only until it is handed to the print vendor, and only once.
ALTER TABLE letters ADD COLUMN pin_enc bytea;
ALTER TABLE letters ADD CONSTRAINT letters_pin_until_export CHECK (exported_at IS NULL OR pin_enc IS NULL);

-- A later snapshot disagrees with an entitlement that can no longer change (it has an application,
-- a payment or a printed letter). Verification sends its application to review ('entitlement_changed')
-- until staff resolve the conflict.
CREATE TABLE entitlement_conflicts (
    municipality_code text NOT NULL,
    conflict_id       bigint GENERATED ALWAYS AS IDENTITY,
    entitlement_id    bigint NOT NULL,
    snapshot_id       bigint NOT NULL,                      -- the newer snapshot that disagrees
    kind              text NOT NULL CHECK (kind IN ('no_longer_eligible', 'amount_changed')),
    new_amount_yen    bigint CHECK (new_amount_yen > 0),
    new_members       int,
    created_at        timestamptz NOT NULL DEFAULT now(),
    resolved_at       timestamptz,
    resolved_by       bigint,
    PRIMARY KEY (municipality_code, conflict_id),
    UNIQUE (municipality_code, entitlement_id, snapshot_id),
    FOREIGN KEY (municipality_code, entitlement_id) REFERENCES entitlements (municipality_code, entitlement_id),
    FOREIGN KEY (municipality_code, snapshot_id) REFERENCES registry_snapshots (municipality_code, snapshot_id)
);

-- HMAC of (bank, branch, type, number) under a key derived from the municipality's data key, per
-- application, written by verification: finds one account used for two households without decrypting
-- every application (the GSA Piipan idea).
CREATE TABLE application_account_keys (
    municipality_code text NOT NULL,
    application_id    bigint NOT NULL,
    account_key       bytea NOT NULL,
    PRIMARY KEY (municipality_code, application_id),
    FOREIGN KEY (municipality_code, application_id) REFERENCES applications (municipality_code, application_id)
);
CREATE INDEX application_account_keys_key ON application_account_keys (municipality_code, account_key);

-- Eligibility looks up the base-date household of a resident who changed household.
CREATE INDEX residents_prev_household ON residents (municipality_code, snapshot_id, prev_household_no)
    WHERE prev_household_no IS NOT NULL;
CREATE INDEX entitlements_program_status ON entitlements (municipality_code, program_id, status);
CREATE INDEX letters_unexported ON letters (municipality_code, entitlement_id) WHERE exported_at IS NULL;

SELECT kyufu_isolate_tenant_table('entitlement_conflicts');
SELECT kyufu_isolate_tenant_table('application_account_keys');

GRANT SELECT, INSERT, UPDATE ON entitlement_conflicts TO kyufu_app;
GRANT SELECT, INSERT ON application_account_keys TO kyufu_app;
-- Push settlement allocates application ids first, because each encrypted field's associated data
-- names its row (FieldCipher row key = application_id).
GRANT USAGE ON SEQUENCE applications_application_id_seq TO kyufu_app;

-- Dates in registry extracts are YYYY-MM-DD, YYYY/MM/DD or YYYYMMDD. Validation turns a well-formed one
-- into the integer YYYYMMDD (which sorts like the date) and asks this whether it is a real calendar day
-- (2023-02-29 is not). Integer arithmetic in one expression, so the planner inlines it: a million-line
-- import asks four million times, and a function call or pg_input_is_valid (which parses its type name
-- on every call) costs seconds there.
CREATE FUNCTION kyufu_ymd_valid(n int) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT n / 10000 >= 1 AND n / 100 % 100 BETWEEN 1 AND 12 AND n % 100 BETWEEN 1 AND
         CASE n / 100 % 100
           WHEN 2 THEN 28 + (n / 10000 % 4 = 0 AND (n / 10000 % 100 <> 0 OR n / 10000 % 400 = 0))::int
           WHEN 4 THEN 30 WHEN 6 THEN 30 WHEN 9 THEN 30 WHEN 11 THEN 30 ELSE 31 END
$$;
GRANT EXECUTE ON FUNCTION kyufu_ymd_valid(int) TO kyufu_app;

-- residents -> registry_snapshots was checked by PostgreSQL's per-row RI trigger: ~12 us a row, i.e. 12 s
-- of a 1,000,000-resident import, more than the whole bare COPY of the file. Residents are inserted only
-- by an import, in bulk, in the transaction that claimed their snapshot; the same guarantee is checked
-- here once per statement against the inserted rows, and a snapshot that has residents cannot be
-- deleted (the other half of what the foreign key enforced; snapshot_id is an identity, never updated).
ALTER TABLE residents DROP CONSTRAINT residents_municipality_code_snapshot_id_fkey;
CREATE FUNCTION residents_snapshot_exists() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM (SELECT DISTINCT municipality_code, snapshot_id FROM new_rows) n
             WHERE NOT EXISTS (SELECT 1 FROM registry_snapshots s
                               WHERE s.municipality_code = n.municipality_code AND s.snapshot_id = n.snapshot_id)) THEN
    RAISE EXCEPTION 'residents reference a registry snapshot that does not exist'
      USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'residents_snapshot_exists';
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER residents_snapshot_exists AFTER INSERT ON residents
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION residents_snapshot_exists();
CREATE FUNCTION registry_snapshots_keep_residents() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM residents r WHERE r.municipality_code = OLD.municipality_code AND r.snapshot_id = OLD.snapshot_id) THEN
    RAISE EXCEPTION 'registry snapshot % still has residents', OLD.snapshot_id
      USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'residents_snapshot_exists';
  END IF;
  RETURN OLD;
END $$;
CREATE TRIGGER registry_snapshots_keep_residents BEFORE DELETE ON registry_snapshots
    FOR EACH ROW EXECUTE FUNCTION registry_snapshots_keep_residents();
