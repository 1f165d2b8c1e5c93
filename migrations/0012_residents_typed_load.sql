-- A typed load of a residents snapshot's partition, for files the C encoder has already checked.
--
-- app/registry/residentcsv.py turns a UTF-8 extract whose every line passes the rules of
-- app/registry/imports.py (app/registry/_residentcsv.c checks them all, including repeated 住民票コード and
-- two current heads) into a binary COPY payload of the 16 typed columns, sorted by 住民票コード. Such a
-- file skips 0011's *_raw columns and generated date parsing, the line-rule CHECKs in the server and the
-- drop of the load-only columns; the index builds read presorted keys. Any other file (a bad or unusual
-- line, CP932, the module not built) takes 0011's pair, which checks everything and feeds the report.
--
-- The pair has exactly the security of 0011's: SECURITY DEFINER functions of kyufu_owner, search_path
-- pinned, acting only on a 'staging' residents snapshot of the municipality in scope (locked FOR UPDATE);
-- the app gets INSERT on the future partition only, revoked at publish; municipality and snapshot pinned
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

-- Publish a typed partition. One ALTER TABLE (one pass over the rows) adds the parent's CHECK and NOT NULL
-- constraints (ATTACH requires them) and, as defense in depth, the line rules across columns that cost
-- little on typed values (~0.1 s a million rows in that pass: 世帯主 agrees with 続柄, 消除日 and 消除事由
-- come together, the dates in order); then the primary key's unique index, which also refuses a repeated
-- 住民票コード. A broken rule, whose message may quote a row (a duplicate key's DETAIL does), is re-raised
-- as a bare check_violation; imports.py then runs 0011's path, which refuses the file and reports every
-- bad line. Not repeated here, because the encoder guarantees them and they are not cheap: pattern and
-- list rules (katakana, code shapes, 続柄 / 消除事由 lists: the encoder only writes what passed), empty
-- required values (it declines them; NULL would fail NOT NULL anyway), and two current heads in a
-- household (a hash aggregate over the heads, 0.6-0.8 s a million rows, a third of a bare COPY).
-- Two parallel maintenance workers: the primary key and the household index built in 0.9-1.3 s each
-- instead of 1.2-1.8 s (shared two-core machine).
CREATE FUNCTION kyufu_residents_publish_typed(p_snapshot_id bigint)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
SET maintenance_work_mem = '512MB' SET work_mem = '256MB' SET default_statistics_target = 10
SET max_parallel_maintenance_workers = 2 AS $$
DECLARE
  code text := kyufu_current_municipality();
  tbl text := 'residents_' || p_snapshot_id;
  rel regclass := to_regclass('registry_parts.' || quote_ident('residents_' || p_snapshot_id));
  pkey text := 'residents_' || p_snapshot_id || '_pkey';
  parent_rules text;
  not_null text;
  idx record;
BEGIN
  PERFORM 1 FROM public.registry_snapshots
  WHERE municipality_code = code AND snapshot_id = p_snapshot_id AND kind = 'residents' AND status = 'staging'
  FOR UPDATE;
  IF NOT FOUND OR rel IS NULL OR EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = rel) THEN
    RAISE EXCEPTION 'no residents snapshot % loaded in the municipality in scope', p_snapshot_id
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  EXECUTE format('REVOKE ALL ON %s FROM kyufu_app', rel);
  SELECT string_agg(format('ADD CONSTRAINT %I %s', conname, pg_get_constraintdef(oid)), ', ') INTO parent_rules
  FROM pg_constraint WHERE conrelid = 'public.residents'::regclass AND contype = 'c';
  SELECT string_agg(format('ALTER COLUMN %I SET NOT NULL', attname), ', ') INTO not_null
  FROM pg_attribute WHERE attrelid = 'public.residents'::regclass AND attnum > 0 AND attnotnull AND NOT attisdropped
    AND attname NOT IN ('municipality_code', 'snapshot_id');
  BEGIN
    EXECUTE format($ddl$
      ALTER TABLE %1$s
        ADD CONSTRAINT load_is_head CHECK (is_head = (relationship = '世帯主')),
        ADD CONSTRAINT load_moved_in_after_birth CHECK (moved_in_on >= birth_date),
        ADD CONSTRAINT load_removed_after_moved_in CHECK (removed_on >= coalesce(moved_in_on, birth_date)),
        ADD CONSTRAINT load_removal_reason CHECK ((removal_reason IS NULL) = (removed_on IS NULL)),
        %2$s, %3$s
      $ddl$, rel, parent_rules, not_null);
    EXECUTE format('CREATE UNIQUE INDEX %I ON %s (municipality_code, snapshot_id, resident_code)', pkey, rel);
  EXCEPTION WHEN integrity_constraint_violation OR data_exception THEN
    RAISE EXCEPTION 'residents snapshot % breaks a line rule of the import', p_snapshot_id
      USING ERRCODE = 'check_violation';
  END;
  EXECUTE format('ALTER TABLE %s
      DROP CONSTRAINT load_is_head, DROP CONSTRAINT load_moved_in_after_birth,
      DROP CONSTRAINT load_removed_after_moved_in, DROP CONSTRAINT load_removal_reason,
      ADD PRIMARY KEY USING INDEX %I', rel, pkey);
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

REVOKE EXECUTE ON FUNCTION kyufu_residents_load_typed(bigint), kyufu_residents_publish_typed(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kyufu_residents_load_typed(bigint), kyufu_residents_publish_typed(bigint) TO kyufu_app;
