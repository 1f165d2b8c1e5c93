-- Planner statistics for the tables a surge fills from empty.
--
-- A surge starts with applications, intake_idempotency_keys and outbox (nearly) empty, and each backend
-- caches its plans: asyncpg's prepared statements turn generic after five runs, and the foreign-key checks
-- (one per inserted row) keep the plan of their first use. Planned while a table holds a handful of rows,
-- "find this application by (municipality_code, application_id)" became a sequential scan, or a scan of
-- the municipality's rows through applications_status with a filter on the id: every check then reads every
-- application so far, and the cost per submission grows with the table (measured: 0.78 ms per row in the
-- idempotency key's foreign-key check after 10,000 applications; 15 µs with statistics). ANALYZE sends
-- an invalidation that makes every backend plan again, with the table's real size.
--
-- Autovacuum gets there eventually (by default after 50 rows + 10 % of the table, checked once a minute),
-- which is a minute of quadratic work at the start of the surge, repeated whenever the table doubles
-- between checks. So the intake batcher (app/intake/batcher.py) calls this function after its commits, at
-- most twice a second per process: it analyzes each of these tables that has changed by at least its own
-- size (at least 200 rows) since its last analyze, i.e. at doublings: about a dozen times in the first
-- million applications, each a few tens of milliseconds.
--
-- SECURITY DEFINER because only the owner may ANALYZE; the app role gets nothing but this fixed list of
-- tables. SKIP_LOCKED: a process that finds another's ANALYZE (or autovacuum's) running leaves it to that
-- one. The statistics of tables under row-level security are not shown to the app role (pg_stats hides
-- them when RLS applies), so this exposes no row of another municipality.
CREATE FUNCTION kyufu_refresh_intake_statistics() RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
  t record;
  analyzed integer := 0;
BEGIN
  FOR t IN SELECT s.relname
           FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
           WHERE s.schemaname = 'public'
             AND s.relname IN ('applications', 'intake_idempotency_keys', 'outbox', 'intake_duplicate_claims')
             AND s.n_mod_since_analyze >= greatest(200, c.reltuples)
           ORDER BY s.relname LOOP
    EXECUTE format('ANALYZE (SKIP_LOCKED) public.%I', t.relname);
    analyzed := analyzed + 1;
  END LOOP;
  RETURN analyzed;
END $$;
REVOKE EXECUTE ON FUNCTION kyufu_refresh_intake_statistics() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kyufu_refresh_intake_statistics() TO kyufu_app;
