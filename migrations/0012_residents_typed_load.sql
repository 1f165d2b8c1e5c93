-- A typed load of a residents snapshot's partition, for files the C encoder has already checked.
--
-- app/registry/residentcsv.py turns a UTF-8 extract whose every line passes the rules of
-- app/registry/imports.py (app/registry/_residentcsv.c checks them all, including repeated 住民票コード and
-- two current heads) into a binary COPY payload of the 16 typed columns, sorted by 住民票コード. Such a
-- file skips 0011's *_raw columns and generated date parsing, the line-rule CHECKs in the server and the
-- drop of the load-only columns; the index builds read presorted keys. Any other file (a bad or unusual
-- line, CP932, the module not built) takes 0011's pair, which checks everything and feeds the report.
--
-- The typed load is published by 0011's kyufu_residents_publish, which takes either load (it tells them
-- apart by the *_raw columns) and adds fewer checks to this one (see there), and it has exactly the
-- security of 0011's pair: SECURITY DEFINER functions of kyufu_owner, search_path pinned,
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

REVOKE EXECUTE ON FUNCTION kyufu_residents_load_typed(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kyufu_residents_load_typed(bigint) TO kyufu_app;
