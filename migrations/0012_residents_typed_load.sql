-- A typed load of a residents snapshot's partition, for files the C encoder has already checked.
--
-- app/registry/residentcsv.py turns a UTF-8 extract whose every line passes the rules of
-- app/registry/imports.py (app/registry/_residentcsv.c checks them all, including repeated 住民票コード and
-- two current heads) into a binary COPY payload of the 16 typed columns, sorted by 住民票コード. Such a
-- file skips 0011's *_raw columns and generated date parsing, the line-rule CHECKs in the server and the
-- drop of the load-only columns; the index builds read presorted keys. Any other file (a bad or unusual
-- line, CP932, the module not built) takes 0011's pair, which checks everything and feeds the report.
--
-- The typed load is published by 0011's kyufu_residents_publish, replaced below to take either load, and
-- has exactly the security of 0011's pair: SECURITY DEFINER functions of kyufu_owner, search_path pinned,
-- acting only on a 'staging' residents snapshot of the municipality in scope (locked FOR UPDATE); the app gets INSERT on the future partition only, revoked at publish; municipality and snapshot pinned
-- by DEFAULT + CHECK (load_municipality, load_snapshot); the tenant policy added by
-- kyufu_isolate_tenant_table; ATTACH proven by load_snapshot without a scan.

-- The future partition, with the parent's columns typed. Nothing here can fail on a value during the COPY
-- (PostgreSQL would log the failing row with its values, see 0011): no CHECK or NOT NULL but the two that
-- pin municipality and snapshot, filled by defaults.
CREATE FUNCTION kyufu_residents_load_typed(p_snapshot_id bigint) RETURNS text
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
      resident_code text, household_no text, relationship text, is_head boolean,
      family_name text, given_name text, family_kana text, given_kana text,
      birth_date date, sex text, address text, moved_in_on date, removed_on date, removal_reason text,
      prev_household_no text, household_changed_on date
    )$ddl$, tbl, code, p_snapshot_id);
  EXECUTE format('GRANT INSERT ON registry_parts.%I TO kyufu_app', tbl);
  RETURN tbl;
END $$;

-- Publish a loaded partition, of either load (this replaces 0011's function; its signature, owner and grants
-- stay). The two loads share everything but their checks, so one function tells them apart by the table
-- itself (0011's load has the *_raw columns, 0012's does not) instead of a second copy of the scope check,
-- the parent's constraints, the index builds and the ATTACH:
-- * text load (0011): every line rule of imports.py as CHECK constraints, two current heads, then the
--   load-only columns and constraints dropped, exactly as 0011 did;
-- * typed load: the parent's CHECK and NOT NULL constraints and, as defense in depth, the line rules across
--   columns that cost little on typed values (~0.1 s a million rows in that pass: 世帯主 agrees with 続柄,
--   消除日 and 消除事由 come together, the dates in order). Not repeated, because the encoder guarantees them
--   and they are not cheap: pattern and list rules (katakana, code shapes, the 続柄 / 消除事由 lists:
--   p_relationships and p_removal_reasons are not read), empty required values (NULL fails NOT NULL anyway),
--   and two current heads in a household (a hash aggregate over the heads, 0.6-0.8 s a million rows, a third
--   of a bare COPY).
-- Either way the primary key's unique index refuses a repeated 住民票コード, and a broken rule, whose message
-- may quote a row (a duplicate key's DETAIL does), is re-raised as a bare check_violation; imports.py then
-- runs the text path's report, which names every bad line. Two parallel maintenance workers: the primary
-- key and the household index built in 0.9-1.3 s each instead of 1.2-1.8 s (shared two-core machine).
CREATE OR REPLACE FUNCTION kyufu_residents_publish(p_snapshot_id bigint, p_relationships text[], p_removal_reasons text[])
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
  -- A quick sample for the planner until autovacuum analyzes with the full target (see 0011).
  EXECUTE format('ANALYZE %s', rel);
  PERFORM kyufu_isolate_tenant_table(rel);
  -- load_snapshot proves the partition bound, so ATTACH does not scan the rows again.
  EXECUTE format('ALTER TABLE public.residents ATTACH PARTITION %s FOR VALUES IN (%s)', rel, p_snapshot_id);
END $$;

REVOKE EXECUTE ON FUNCTION kyufu_residents_load_typed(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kyufu_residents_load_typed(bigint) TO kyufu_app;
