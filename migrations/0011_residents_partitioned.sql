-- Residents partitioned per snapshot, so that an import writes its rows once and builds its indexes in bulk.
--
-- An import used to COPY the file into a temporary table and INSERT ... SELECT the million rows into
-- residents: one WAL record and three index insertions per row, about two thirds of the import. Now each
-- residents snapshot is its own partition (LIST on snapshot_id, which is globally unique), in the schema
-- registry_parts:
--
-- * kyufu_residents_load_begin(snapshot) creates the future partition, unindexed, with the typed columns
--   (dates, 世帯主) generated from the file's text, and lets the app COPY the file straight into it (COPY
--   refuses a table with row-level security, so the policy is added at publish; until then only the
--   importing transaction can see the table, and its CHECKs pin every row to the scoped municipality and
--   the snapshot).
-- * kyufu_residents_publish(snapshot, ...) checks the line rules of app/registry/imports.py as CHECK
--   constraints, two current heads and the primary key, drops the load-only columns and constraints (a
--   catalog change, no rewrite), builds the parent's indexes in bulk, adds the tenant policy (ENABLE +
--   FORCE) and attaches the table as the snapshot's partition, all inside the import's transaction: a
--   failure anywhere leaves nothing.
--
-- Both are SECURITY DEFINER functions of kyufu_owner (the app role owns nothing and cannot ATTACH); each
-- acts only on a 'staging' residents snapshot of the municipality in scope (registry_snapshots' policy
-- applies to the owner too), with search_path pinned. The app keeps SELECT and INSERT on the parent:
-- rows inserted there (tests, fixtures) go to registry_parts.residents_default. Partitions are owned by
-- kyufu_owner, the app has no privilege on them (access goes through the parent and its policy), and
-- each has the policy itself; tests/registry/test_partitions.py checks that. They live outside public
-- because tests/test_tenancy.py asks every public tenant table for a sample row by name, and a
-- partition's name is only known at import time.

CREATE SCHEMA registry_parts;
GRANT USAGE ON SCHEMA registry_parts TO kyufu_app;

-- The owner is subject to the policy (FORCE): moving every tenant's rows needs it lifted, for this
-- transaction only (re-forced below).
ALTER TABLE residents NO FORCE ROW LEVEL SECURITY;
ALTER TABLE residents RENAME TO residents_legacy;
ALTER TABLE residents_legacy RENAME CONSTRAINT residents_pkey TO residents_legacy_pkey;
DROP TRIGGER residents_snapshot_exists ON residents_legacy;
ALTER TABLE residents_legacy SET SCHEMA registry_parts;

CREATE TABLE residents (LIKE registry_parts.residents_legacy INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE
                        INCLUDING COMMENTS INCLUDING STATISTICS)
    PARTITION BY LIST (snapshot_id);
ALTER TABLE residents ADD PRIMARY KEY (municipality_code, snapshot_id, resident_code);

-- In a snapshot's partition municipality_code and snapshot_id are constant, and queries reach it by
-- pruning on snapshot_id or, in a custom plan, by its load_municipality CHECK (constraint exclusion), so
-- the secondary indexes leave the two columns out: a bulk build of a key that starts with constant
-- columns costs three to four times as much (no abbreviated keys, every comparison walks past them).
-- That includes 0010's residents_birth_date (municipality_code, birth_date); any other index of the old
-- table is recreated as it was.
CREATE INDEX residents_household ON residents (household_no);
CREATE INDEX residents_prev_household ON residents (prev_household_no) WHERE prev_household_no IS NOT NULL;
DO $$
DECLARE
  idx record;
BEGIN
  FOR idx IN SELECT c.relname, i.indisunique, pg_get_indexdef(i.indexrelid) AS def
             FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
             WHERE i.indrelid = 'registry_parts.residents_legacy'::regclass AND NOT i.indisprimary
               AND c.relname NOT IN ('residents_household', 'residents_prev_household') LOOP
    EXECUTE format('CREATE %sINDEX %I ON residents %s', CASE WHEN idx.indisunique THEN 'UNIQUE ' ELSE '' END,
                   idx.relname, CASE WHEN idx.relname = 'residents_birth_date' THEN 'USING btree (birth_date)'
                                     ELSE substring(idx.def FROM ' USING .*$') END);
  END LOOP;
END $$;

SELECT kyufu_isolate_tenant_table('residents');
GRANT SELECT, INSERT ON residents TO kyufu_app;
-- 0003/0008's statement-level check that inserted rows name an existing snapshot, on the new parent
-- (rows inserted through it; an import's partition is checked by kyufu_residents_publish).
CREATE TRIGGER residents_snapshot_exists AFTER INSERT ON residents
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION residents_snapshot_exists();

-- The rows imported so far become one partition listing their snapshots (attaching validates them once,
-- here); an empty old table is dropped.
DO $$
DECLARE
  ids text;
BEGIN
  SELECT string_agg(DISTINCT snapshot_id::text, ', ') INTO ids FROM registry_parts.residents_legacy;
  IF ids IS NULL THEN
    DROP TABLE registry_parts.residents_legacy;
  ELSE
    REVOKE ALL ON registry_parts.residents_legacy FROM kyufu_app;
    ALTER TABLE registry_parts.residents_legacy FORCE ROW LEVEL SECURITY;
    EXECUTE format('ALTER TABLE residents ATTACH PARTITION registry_parts.residents_legacy FOR VALUES IN (%s)', ids);
    -- Superseded by the indexes without the constant columns that ATTACH just built.
    DROP INDEX registry_parts.residents_household, registry_parts.residents_prev_household;
    DROP INDEX IF EXISTS registry_parts.residents_birth_date;
  END IF;
END $$;

-- Rows inserted through the parent for a snapshot without a partition of its own. An import's ATTACH
-- scans this table for rows of its snapshot (none: nothing inserts imported snapshots' rows here).
CREATE TABLE registry_parts.residents_default PARTITION OF residents DEFAULT;
SELECT kyufu_isolate_tenant_table('registry_parts.residents_default');


-- Strict dates of an extract (YYYY-MM-DD, YYYY/MM/DD, YYYYMMDD) as SQL text for a generated column: the
-- date, or NULL when the shape is wrong (the shape test of imports.py's _ymd: only digits where digits
-- belong) or the day does not exist. It never raises: an error during the COPY would put the row into the
-- server log (see kyufu_residents_load_begin), so the calendar is checked on the digits, as text, before
-- make_date. Spelled out inline: a generated column may not use the date cast (it reads DateStyle), and a
-- SQL function would not be inlined with its argument used this often.
CREATE FUNCTION kyufu_load_date_sql(raw text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT format('CASE WHEN ((octet_length(%1$s) = 8 AND %1$s !~ ''[^0-9]'') OR (octet_length(%1$s) = 10'
                ' AND %1$s !~ ''[^0-9/-]'' AND substr(%1$s, 5, 1) IN (''-'', ''/'') AND substr(%1$s, 8, 1) = substr(%1$s, 5, 1)'
                ' AND octet_length(translate(%1$s, ''-/'', '''')) = 8)) AND left(%1$s, 4) <> ''0000'''
                ' AND right(%1$s, 2) >= ''01'' AND right(%1$s, 2) <= CASE substr(%1$s, 5 + (octet_length(%1$s) = 10)::int, 2)'
                ' WHEN ''01'' THEN ''31'' WHEN ''02'' THEN CASE WHEN left(%1$s, 4)::int %% 4 = 0'
                ' AND (left(%1$s, 4)::int %% 100 <> 0 OR left(%1$s, 4)::int %% 400 = 0) THEN ''29'' ELSE ''28'' END'
                ' WHEN ''03'' THEN ''31'' WHEN ''04'' THEN ''30'' WHEN ''05'' THEN ''31'' WHEN ''06'' THEN ''30'''
                ' WHEN ''07'' THEN ''31'' WHEN ''08'' THEN ''31'' WHEN ''09'' THEN ''30'' WHEN ''10'' THEN ''31'''
                ' WHEN ''11'' THEN ''30'' WHEN ''12'' THEN ''31'' END'
                ' THEN make_date(left(%1$s, 4)::int, substr(%1$s, 5 + (octet_length(%1$s) = 10)::int, 2)::int,'
                ' right(%1$s, 2)::int) END', quote_ident(raw))
$$;
REVOKE EXECUTE ON FUNCTION kyufu_load_date_sql(text) FROM PUBLIC;

-- The future partition of a residents snapshot, named registry_parts.residents_<snapshot>. Columns the
-- file gives as text that residents stores typed (世帯主, dates) or as NULL when empty arrive in *_raw
-- columns and are generated from them. Nothing here can fail on a value during the COPY: PostgreSQL logs
-- a failed statement with "Failing row contains (...)", i.e. a resident's data in the server log. So the
-- table has no CHECK or NOT NULL but the two that pin municipality and snapshot (filled by defaults), and
-- the line rules are checked at publish.
CREATE FUNCTION kyufu_residents_load_begin(p_snapshot_id bigint) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
  code text := kyufu_current_municipality();
  tbl text := 'residents_' || p_snapshot_id;
BEGIN
  PERFORM 1 FROM public.registry_snapshots
  WHERE municipality_code = code AND snapshot_id = p_snapshot_id AND kind = 'residents' AND status = 'staging'
  FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no residents snapshot % being imported in the municipality in scope', p_snapshot_id
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  EXECUTE format($ddl$
    CREATE TABLE registry_parts.%1$I (
      municipality_code text NOT NULL DEFAULT %2$L CONSTRAINT load_municipality CHECK (municipality_code = %2$L),
      snapshot_id bigint NOT NULL DEFAULT %3$s CONSTRAINT load_snapshot CHECK (snapshot_id = %3$s),
      resident_code text, household_no text, relationship text,
      is_head_raw text,
      is_head boolean GENERATED ALWAYS AS (is_head_raw = '1') STORED,
      family_name text, given_name text, family_kana text, given_kana text,
      birth_date_raw text,
      birth_date date GENERATED ALWAYS AS (%4$s) STORED,
      sex text, address text,
      moved_in_on_raw text,
      moved_in_on date GENERATED ALWAYS AS (%5$s) STORED,
      removed_on_raw text,
      removed_on date GENERATED ALWAYS AS (%6$s) STORED,
      removal_reason_raw text,
      removal_reason text GENERATED ALWAYS AS (nullif(removal_reason_raw, '')) STORED,
      prev_household_no_raw text,
      prev_household_no text GENERATED ALWAYS AS (nullif(prev_household_no_raw, '')) STORED,
      household_changed_on_raw text,
      household_changed_on date GENERATED ALWAYS AS (%7$s) STORED
    )$ddl$, tbl, code, p_snapshot_id,
    kyufu_load_date_sql('birth_date_raw'), kyufu_load_date_sql('moved_in_on_raw'),
    kyufu_load_date_sql('removed_on_raw'), kyufu_load_date_sql('household_changed_on_raw'));
  EXECUTE format('GRANT INSERT ON registry_parts.%I TO kyufu_app', tbl);
  RETURN tbl;
END $$;

-- Publish a loaded partition (see the top of this file), of either load: this file's text load (the
-- *_raw columns) or 0012's typed load (none). The two share everything but their checks, so one function
-- tells them apart by the table itself: the scope check, the parent's constraints, the index builds and the
-- ATTACH exist once. First, in one ALTER TABLE (one pass over the rows), the parent's own CHECK and NOT NULL
-- constraints (ATTACH requires them) and:
-- * text load: every line rule of imports.py that needs only its own line, as CHECK constraints (the lists
--   of 続柄 and 消除事由 are imports.py's, passed as values); then two current heads in a household; then
--   the load-only columns and constraints are dropped (a catalog change, no rewrite);
-- * typed load: as defense in depth, the line rules across columns that cost little on typed values (~0.1 s
--   a million rows in that pass: 世帯主 agrees with 続柄, 消除日 and 消除事由 come together, the dates in
--   order). Not repeated, because the C encoder guarantees them and they are not cheap: pattern and list
--   rules (katakana, code shapes, the 続柄 / 消除事由 lists: p_relationships and p_removal_reasons are not
--   read), empty required values (NULL fails NOT NULL anyway), and two current heads in a household (a hash
--   aggregate over the heads, 0.6-0.8 s a million rows, a third of a bare COPY).
-- Either way the primary key's unique index refuses a repeated 住民票コード, and a broken rule, whose message
-- may quote a row (a duplicate key's DETAIL does), is caught here and raised again as a bare
-- check_violation, which is all the server logs; imports.py then runs the text path's report, which names
-- every bad line. maintenance_work_mem: the index sorts of a million rows stay in memory; two parallel
-- maintenance workers: the primary key and the household index built in 0.9-1.3 s each instead of
-- 1.2-1.8 s (shared two-core machine).
CREATE FUNCTION kyufu_residents_publish(p_snapshot_id bigint, p_relationships text[], p_removal_reasons text[])
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
SET maintenance_work_mem = '512MB' SET work_mem = '256MB' SET default_statistics_target = 10
SET max_parallel_maintenance_workers = 2 AS $$
DECLARE
  code text := kyufu_current_municipality();
  tbl text := 'residents_' || p_snapshot_id;
  rel regclass := to_regclass('registry_parts.' || quote_ident('residents_' || p_snapshot_id));
  pkey text := 'residents_' || p_snapshot_id || '_pkey';
  typed boolean;
  parent_rules text;
  not_null text;
  two_heads boolean;
  idx record;
BEGIN
  PERFORM 1 FROM public.registry_snapshots
  WHERE municipality_code = code AND snapshot_id = p_snapshot_id AND kind = 'residents' AND status = 'staging'
  FOR UPDATE;
  IF NOT FOUND OR rel IS NULL OR EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = rel) THEN
    RAISE EXCEPTION 'no residents snapshot % loaded in the municipality in scope', p_snapshot_id
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  typed := NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = rel AND attname = 'birth_date_raw' AND NOT attisdropped);
  EXECUTE format('REVOKE ALL ON %s FROM kyufu_app', rel);
  SELECT string_agg(format('ADD CONSTRAINT %I %s', conname, pg_get_constraintdef(oid)), ', ') INTO parent_rules
  FROM pg_constraint WHERE conrelid = 'public.residents'::regclass AND contype = 'c';
  SELECT string_agg(format('ALTER COLUMN %I SET NOT NULL', attname), ', ') INTO not_null
  FROM pg_attribute WHERE attrelid = 'public.residents'::regclass AND attnum > 0 AND attnotnull AND NOT attisdropped
    AND attname NOT IN ('municipality_code', 'snapshot_id');
  BEGIN
    IF typed THEN
      EXECUTE format($ddl$
        ALTER TABLE %1$s
          ADD CONSTRAINT load_is_head CHECK (is_head = (relationship = '世帯主')),
          ADD CONSTRAINT load_moved_in_after_birth CHECK (moved_in_on >= birth_date),
          ADD CONSTRAINT load_removed_after_moved_in CHECK (removed_on >= coalesce(moved_in_on, birth_date)),
          ADD CONSTRAINT load_removal_reason CHECK ((removal_reason IS NULL) = (removed_on IS NULL)),
          %2$s, %3$s
        $ddl$, rel, parent_rules, not_null);
    ELSE
      EXECUTE format($ddl$
        ALTER TABLE %1$s
          ADD CONSTRAINT load_household_no
            CHECK (household_no <> '' AND octet_length(household_no) <= 20 AND household_no !~ '[^0-9A-Za-z-]'),
          ADD CONSTRAINT load_relationship CHECK (relationship = ANY (%2$L::text[])),
          ADD CONSTRAINT load_is_head CHECK (is_head_raw IN ('0', '1') AND (is_head_raw = '1') = (relationship = '世帯主')),
          ADD CONSTRAINT load_family_name CHECK (family_name <> '' AND length(family_name) <= 50),
          ADD CONSTRAINT load_given_name CHECK (given_name <> '' AND length(given_name) <= 50),
          ADD CONSTRAINT load_family_kana
            CHECK (family_kana <> '' AND family_kana !~ '[^ァ-ヺー・]' AND length(family_kana) <= 50),
          ADD CONSTRAINT load_given_kana
            CHECK (given_kana <> '' AND given_kana !~ '[^ァ-ヺー・]' AND length(given_kana) <= 50),
          ADD CONSTRAINT load_address CHECK (address <> '' AND length(address) <= 200),
          ADD CONSTRAINT load_dates CHECK (
            (moved_in_on IS NOT NULL OR coalesce(moved_in_on_raw, '') = '')
            AND (removed_on IS NOT NULL OR coalesce(removed_on_raw, '') = '')
            AND (household_changed_on IS NOT NULL OR coalesce(household_changed_on_raw, '') = '')),
          ADD CONSTRAINT load_moved_in_after_birth CHECK (moved_in_on >= birth_date),
          ADD CONSTRAINT load_removed_after_moved_in CHECK (removed_on >= coalesce(moved_in_on, birth_date)),
          ADD CONSTRAINT load_removal_reason CHECK (
            (coalesce(removal_reason_raw, '') = '') = (coalesce(removed_on_raw, '') = '')
            AND (coalesce(removal_reason_raw, '') = '' OR removal_reason_raw = ANY (%3$L::text[]))),
          ADD CONSTRAINT load_household_change CHECK (
            (coalesce(prev_household_no_raw, '') = '') = (coalesce(household_changed_on_raw, '') = '')
            AND (coalesce(prev_household_no_raw, '') = ''
                 OR (octet_length(prev_household_no_raw) <= 20 AND prev_household_no_raw !~ '[^0-9A-Za-z-]'))),
          %4$s, %5$s
        $ddl$, rel, p_relationships, p_removal_reasons, parent_rules, not_null);
      EXECUTE format('SELECT EXISTS (SELECT FROM %s WHERE is_head AND removed_on IS NULL
                                     GROUP BY household_no HAVING count(*) > 1)', rel) INTO two_heads;
      IF two_heads THEN
        RAISE EXCEPTION 'two current heads in a household' USING ERRCODE = 'unique_violation';
      END IF;
    END IF;
    EXECUTE format('CREATE UNIQUE INDEX %I ON %s (municipality_code, snapshot_id, resident_code)', pkey, rel);
  EXCEPTION WHEN integrity_constraint_violation OR data_exception THEN
    RAISE EXCEPTION 'residents snapshot % breaks a line rule of the import', p_snapshot_id
      USING ERRCODE = 'check_violation';
  END;
  IF typed THEN
    EXECUTE format('ALTER TABLE %s
        DROP CONSTRAINT load_is_head, DROP CONSTRAINT load_moved_in_after_birth,
        DROP CONSTRAINT load_removed_after_moved_in, DROP CONSTRAINT load_removal_reason,
        ADD PRIMARY KEY USING INDEX %I', rel, pkey);
  ELSE
    EXECUTE format('ALTER TABLE %s
        DROP CONSTRAINT load_household_no, DROP CONSTRAINT load_relationship, DROP CONSTRAINT load_is_head,
        DROP CONSTRAINT load_family_name, DROP CONSTRAINT load_given_name, DROP CONSTRAINT load_family_kana,
        DROP CONSTRAINT load_given_kana, DROP CONSTRAINT load_address, DROP CONSTRAINT load_dates,
        DROP CONSTRAINT load_moved_in_after_birth, DROP CONSTRAINT load_removed_after_moved_in,
        DROP CONSTRAINT load_removal_reason, DROP CONSTRAINT load_household_change,
        ALTER COLUMN is_head DROP EXPRESSION, ALTER COLUMN birth_date DROP EXPRESSION,
        ALTER COLUMN moved_in_on DROP EXPRESSION, ALTER COLUMN removed_on DROP EXPRESSION,
        ALTER COLUMN removal_reason DROP EXPRESSION, ALTER COLUMN prev_household_no DROP EXPRESSION,
        ALTER COLUMN household_changed_on DROP EXPRESSION,
        DROP COLUMN is_head_raw, DROP COLUMN birth_date_raw, DROP COLUMN moved_in_on_raw, DROP COLUMN removed_on_raw,
        DROP COLUMN removal_reason_raw, DROP COLUMN prev_household_no_raw, DROP COLUMN household_changed_on_raw,
        ADD PRIMARY KEY USING INDEX %I', rel, pkey);
  END IF;
  -- The parent's other indexes, built in bulk (ATTACH adopts an index of the same definition).
  FOR idx IN SELECT c.relname, i.indexrelid, i.indisunique
             FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
             WHERE i.indrelid = 'public.residents'::regclass AND NOT i.indisprimary ORDER BY c.relname LOOP
    EXECUTE format('CREATE %sINDEX %I ON %s %s', CASE WHEN idx.indisunique THEN 'UNIQUE ' ELSE '' END,
                   tbl || substr(idx.relname, length('residents') + 1), rel,
                   substring(pg_get_indexdef(idx.indexrelid) FROM ' USING .*$'));
  END LOOP;
  -- Statistics now: until autovacuum gets to it the planner would take a million residents for a few
  -- (eligibility right after an import chose nested loops over them). A 3,000-row sample (statistics
  -- target 10: 0.02 s instead of 0.3 s) gives the sizes and distinct counts that decide join methods;
  -- autovacuum analyzes the partition again with the full target soon after the commit.
  EXECUTE format('ANALYZE %s', rel);
  PERFORM kyufu_isolate_tenant_table(rel);
  -- load_snapshot proves the partition bound, so ATTACH does not scan the rows again.
  EXECUTE format('ALTER TABLE public.residents ATTACH PARTITION %s FOR VALUES IN (%s)', rel, p_snapshot_id);
END $$;

REVOKE EXECUTE ON FUNCTION kyufu_residents_load_begin(bigint), kyufu_residents_publish(bigint, text[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kyufu_residents_load_begin(bigint), kyufu_residents_publish(bigint, text[], text[]) TO kyufu_app;


-- Eligibility (app/registry/eligibility.py) ---------------------------------------------------------------

-- Nothing reads entitlements by (program, status) selectively: the status filters of letters, push and the
-- summary keep most of a program's rows, and the unique key (program, 世帯番号) already leads with the
-- program. Each of the ~450,000 entitlements of a first run paid one more index insertion and WAL record.
DROP INDEX entitlements_program_status;

-- The inputs of a program's last completed eligibility run. Only eligibility writes or withdraws
-- entitlements, and what freezes one (a status other than open/withdrawn, an application, a payment, an
-- exported letter) is never undone, so a run with the same program definition, residents snapshot and
-- tax snapshot as the last one can change nothing: determine_eligibility then skips the computation and
-- the comparison with ~450,000 entitlements (7-9 s) and only reports.
CREATE TABLE eligibility_runs (
    municipality_code text NOT NULL,
    program_id        bigint NOT NULL,
    program_digest    text NOT NULL,            -- md5 of the programs row as it was (programs are not edited today)
    snapshot_id       bigint NOT NULL,          -- residents
    tax_snapshot_id   bigint,                   -- NULL when the program has no tax condition
    determined_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (municipality_code, program_id),
    FOREIGN KEY (municipality_code, program_id) REFERENCES programs (municipality_code, program_id),
    FOREIGN KEY (municipality_code, snapshot_id) REFERENCES registry_snapshots (municipality_code, snapshot_id),
    FOREIGN KEY (municipality_code, tax_snapshot_id) REFERENCES registry_snapshots (municipality_code, snapshot_id)
);
SELECT kyufu_isolate_tenant_table('eligibility_runs');
GRANT SELECT, INSERT, UPDATE ON eligibility_runs TO kyufu_app;
