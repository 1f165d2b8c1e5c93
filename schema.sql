-- The schema the migrations in migrations/ build from an empty database: pg_dump --schema-only,
-- normalised (tools/schema.py says how). Generated, do not edit: after adding a migration run
--     .venv/bin/python -m tools.schema --write
-- and commit this file with it. tests/test_schema.py fails while it differs from a fresh migration.

CREATE SCHEMA duplicate_match;

ALTER SCHEMA duplicate_match OWNER TO kyufu_owner;

CREATE SCHEMA dv_match;

ALTER SCHEMA dv_match OWNER TO kyufu_owner;

CREATE SCHEMA registry_parts;

ALTER SCHEMA registry_parts OWNER TO kyufu_owner;

CREATE FUNCTION duplicate_match.new_reference() RETURNS text
    LANGUAGE sql
    AS $$
  SELECT 'D-' || upper(substr(h, 1, 4)) || '-' || upper(substr(h, 5, 4)) || '-' || upper(substr(h, 9, 4))
  FROM (SELECT replace(gen_random_uuid()::text, '-', '') AS h) r  -- the first 12 hex digits of a v4 UUID are random
$$;

ALTER FUNCTION duplicate_match.new_reference() OWNER TO kyufu_owner;

CREATE FUNCTION dv_match.match(p_request bigint) RETURNS void
    LANGUAGE sql
    AS $$
  INSERT INTO dv_match.matches (request_id, entitlement_id)
  SELECT DISTINCT r.request_id, h.entitlement_id
  FROM dv_match.requests r
  JOIN dv_match.digests d ON d.request_id = r.request_id
  JOIN duplicate_match.hashes h ON h.key_version = r.key_version AND h.scheme = r.scheme AND h.kind = d.kind
       AND h.digest = d.digest AND h.municipality_code = r.registered_code
  WHERE r.request_id = p_request AND r.state = 'filed'
  ON CONFLICT DO NOTHING
$$;

ALTER FUNCTION dv_match.match(p_request bigint) OWNER TO kyufu_owner;

CREATE FUNCTION dv_match.match_new_hashes() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
BEGIN
  INSERT INTO dv_match.matches (request_id, entitlement_id)
  SELECT DISTINCT r.request_id, n.entitlement_id
  FROM dv_match.requests r
  JOIN dv_match.digests d ON d.request_id = r.request_id
  JOIN new_hashes n ON n.key_version = r.key_version AND n.scheme = r.scheme AND n.kind = d.kind
       AND n.digest = d.digest AND n.municipality_code = r.registered_code
  WHERE r.state = 'filed'
  ON CONFLICT DO NOTHING;
  RETURN NULL;
END $$;

ALTER FUNCTION dv_match.match_new_hashes() OWNER TO kyufu_owner;

CREATE FUNCTION public.application_account_changes_before_batch() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
  -- FOR UPDATE: a draft freezing this entitlement's ready payment at the same moment either went first
  -- (we see 'in_batch' and refuse) or waits for this transaction (which cancels the ready payment).
  PERFORM 1 FROM payments p
  WHERE p.municipality_code = NEW.municipality_code AND p.entitlement_id = NEW.entitlement_id
  FOR UPDATE;
  IF EXISTS (SELECT 1 FROM payments p
             WHERE p.municipality_code = NEW.municipality_code AND p.entitlement_id = NEW.entitlement_id
               AND p.status IN ('in_batch', 'released', 'paid', 'returned')) THEN
    RAISE EXCEPTION 'entitlement % has a payment in a batch: its account can no longer change', NEW.entitlement_id
      USING ERRCODE = 'check_violation', CONSTRAINT = 'application_account_changes_before_batch';
  END IF;
  RETURN NEW;
END $$;

ALTER FUNCTION public.application_account_changes_before_batch() OWNER TO kyufu_owner;

CREATE FUNCTION public.application_proxies_guard() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM applications a WHERE a.municipality_code = NEW.municipality_code
                 AND a.application_id = NEW.application_id AND a.is_proxy) THEN
    RAISE EXCEPTION 'application % is not a proxy application', NEW.application_id
      USING ERRCODE = 'check_violation', CONSTRAINT = 'application_proxies_is_proxy';
  END IF;
  IF NEW.pay_to_proxy AND NOT EXISTS (
       SELECT 1 FROM applications a
       JOIN entitlements e ON e.municipality_code = a.municipality_code AND e.entitlement_id = a.entitlement_id
       JOIN programs p ON p.municipality_code = e.municipality_code AND p.program_id = e.program_id
       WHERE a.municipality_code = NEW.municipality_code AND a.application_id = NEW.application_id
         AND p.proxy_account_allowed) THEN
    RAISE EXCEPTION 'the program of application % does not pay a proxy''s account', NEW.application_id
      USING ERRCODE = 'check_violation', CONSTRAINT = 'application_proxies_account_allowed';
  END IF;
  RETURN NEW;
END $$;

ALTER FUNCTION public.application_proxies_guard() OWNER TO kyufu_owner;

CREATE FUNCTION public.audit_log_append_only() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
  RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP
    USING ERRCODE = 'insufficient_privilege', CONSTRAINT = 'audit_log_append_only';
END $$;

ALTER FUNCTION public.audit_log_append_only() OWNER TO kyufu_owner;

CREATE FUNCTION public.audit_log_chain() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE last record;
BEGIN
  -- Two transactions appending at once would both read the same tail and fork the chain. The advisory
  -- lock (per municipality, held to commit) serialises appends; the tail is read after taking it, and
  -- in READ COMMITTED each statement sees what the previous holder committed. Under a snapshot that
  -- predates the holder's commit the same seq would be chosen twice: the primary key refuses that.
  PERFORM pg_advisory_xact_lock(hashtextextended('kyufu_audit:' || NEW.municipality_code, 0));
  SELECT seq, hash INTO last FROM audit_log WHERE municipality_code = NEW.municipality_code
   ORDER BY seq DESC LIMIT 1;
  NEW.seq := coalesce(last.seq, 0) + 1;
  NEW.prev_hash := coalesce(last.hash, repeat('0', 64));
  NEW.occurred_at := date_trunc('microseconds', clock_timestamp());
  NEW.hash := kyufu_audit_hash(NEW);
  RETURN NEW;
END $$;

ALTER FUNCTION public.audit_log_chain() OWNER TO kyufu_owner;

CREATE FUNCTION public.debt_repayments_apply() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
  -- The row lock of this UPDATE serialises two repayments of one debt: the second adds to the first's sum.
  UPDATE payment_debts SET repaid_yen = repaid_yen + NEW.amount_yen,
         status = CASE WHEN repaid_yen + NEW.amount_yen = amount_yen THEN 'repaid' ELSE status END
  WHERE municipality_code = NEW.municipality_code AND debt_id = NEW.debt_id AND status = 'open';
  IF NOT FOUND THEN
    RAISE EXCEPTION 'debt % is not open', NEW.debt_id
      USING ERRCODE = 'check_violation', CONSTRAINT = 'payment_debts_settled_is_final';
  END IF;
  RETURN NULL;
END $$;

ALTER FUNCTION public.debt_repayments_apply() OWNER TO kyufu_owner;

CREATE FUNCTION public.debt_rows_need_open_debt() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM payment_debts d WHERE d.municipality_code = NEW.municipality_code
                 AND d.debt_id = NEW.debt_id AND d.status = 'open') THEN
    RAISE EXCEPTION 'debt % is not open', NEW.debt_id
      USING ERRCODE = 'check_violation', CONSTRAINT = 'payment_debts_settled_is_final';
  END IF;
  RETURN NEW;
END $$;

ALTER FUNCTION public.debt_rows_need_open_debt() OWNER TO kyufu_owner;

CREATE FUNCTION public.entitlements_references_exist() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
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

ALTER FUNCTION public.entitlements_references_exist() OWNER TO kyufu_owner;

CREATE FUNCTION public.kyufu_approval_conflict(p_code text, p_drafter bigint, p_approver bigint) RETURNS text
    LANGUAGE sql STABLE
    AS $$
  SELECT CASE
    WHEN p_drafter = p_approver THEN 'same_account'
    WHEN EXISTS (SELECT 1 FROM staff_users u WHERE u.municipality_code = p_code AND u.staff_id = p_approver
                 AND u.created_by = p_drafter) THEN 'created_by_drafter'
    WHEN EXISTS (SELECT 1 FROM staff_role_grants g WHERE g.municipality_code = p_code AND g.staff_id = p_approver
                 AND g.role = 'approver' AND g.status = 'confirmed'
                 AND p_drafter IN (g.requested_by, g.decided_by)) THEN 'granted_by_drafter'
    WHEN NOT kyufu_independent(p_code, p_drafter, NULL, p_approver, NULL) THEN 'shared_hands'
  END
$$;

ALTER FUNCTION public.kyufu_approval_conflict(p_code text, p_drafter bigint, p_approver bigint) OWNER TO kyufu_owner;

CREATE FUNCTION public.kyufu_audit_field(v text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$
  SELECT octet_length(v)::text || ':' || v || ';'
$$;

ALTER FUNCTION public.kyufu_audit_field(v text) OWNER TO kyufu_owner;

CREATE TABLE public.audit_log (
    municipality_code text NOT NULL,
    seq bigint NOT NULL,
    occurred_at timestamp with time zone NOT NULL,
    actor_staff_id bigint,
    actor_label text DEFAULT ''::text NOT NULL,
    action text NOT NULL,
    object_type text DEFAULT ''::text NOT NULL,
    object_id text DEFAULT ''::text NOT NULL,
    details text DEFAULT '{}'::text NOT NULL,
    prev_hash text NOT NULL,
    hash text NOT NULL,
    CONSTRAINT audit_log_action_check CHECK ((action ~ '^[a-z_.]{1,64}$'::text)),
    CONSTRAINT audit_log_details_check CHECK (((details)::jsonb IS NOT NULL)),
    CONSTRAINT audit_log_hash_check CHECK ((hash ~ '^[0-9a-f]{64}$'::text)),
    CONSTRAINT audit_log_prev_hash_check CHECK ((prev_hash ~ '^[0-9a-f]{64}$'::text)),
    CONSTRAINT audit_log_seq_check CHECK ((seq > 0))
);

ALTER TABLE ONLY public.audit_log FORCE ROW LEVEL SECURITY;

ALTER TABLE public.audit_log OWNER TO kyufu_owner;

CREATE FUNCTION public.kyufu_audit_hash(r public.audit_log) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
  SELECT encode(sha256(convert_to(
      kyufu_audit_field(r.municipality_code) || kyufu_audit_field(r.seq::text) || kyufu_audit_field(r.prev_hash)
   || kyufu_audit_field(to_char(r.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'))
   || kyufu_audit_field(coalesce(r.actor_staff_id::text, '')) || kyufu_audit_field(r.actor_label)
   || kyufu_audit_field(r.action) || kyufu_audit_field(r.object_type) || kyufu_audit_field(r.object_id)
   || kyufu_audit_field(r.details), 'UTF8')), 'hex')
$$;

ALTER FUNCTION public.kyufu_audit_hash(r public.audit_log) OWNER TO kyufu_owner;

CREATE FUNCTION public.kyufu_batch_holder_checks(code text, batch bigint) RETURNS jsonb
    LANGUAGE sql STABLE
    AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object('outcome', g.outcome, 'reason', g.reason,
                                                 'decided_by', g.decided_by, 'payments', g.payments)
                              ORDER BY g.outcome, g.reason, g.decided_by), '[]'::jsonb)
    FROM (
        SELECT k.outcome, k.reason, k.decided_by, count(*) AS payments
        FROM payments p
        LEFT JOIN applications a ON a.municipality_code = p.municipality_code AND a.application_id = p.application_id
        LEFT JOIN payment_reissues r ON r.municipality_code = p.municipality_code AND r.payment_id = p.payment_id
        CROSS JOIN LATERAL (
            SELECT CASE WHEN r.payment_id IS NOT NULL THEN 'reissued'
                        WHEN a.application_id IS NULL THEN 'unchecked'
                        WHEN a.reason_codes && kyufu_holder_flags() THEN 'overridden'
                        WHEN a.status = 'approved' THEN 'reviewed'
                        ELSE 'passed' END AS outcome,
                   CASE WHEN r.payment_id IS NULL AND a.reason_codes && kyufu_holder_flags()
                        THEN (SELECT f FROM unnest(a.reason_codes) AS f WHERE f = ANY (kyufu_holder_flags()) LIMIT 1)
                   END AS reason,
                   CASE WHEN r.payment_id IS NULL THEN a.decided_by END AS decided_by
        ) k
        WHERE p.municipality_code = code AND p.batch_id = batch
        GROUP BY k.outcome, k.reason, k.decided_by
    ) g
$$;

ALTER FUNCTION public.kyufu_batch_holder_checks(code text, batch bigint) OWNER TO kyufu_owner;

CREATE FUNCTION public.kyufu_current_municipality() RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
  SELECT nullif(current_setting('kyufu.municipality', true), '')
$$;

ALTER FUNCTION public.kyufu_current_municipality() OWNER TO kyufu_owner;

CREATE FUNCTION public.kyufu_duplicate_resolve(p_reference text, p_resolution text, p_comment text, p_staff_id bigint) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
DECLARE
  code text := kyufu_current_municipality();
  v_case bigint;
  v_closed timestamptz;
BEGIN
  IF code IS NULL THEN
    RAISE EXCEPTION 'no municipality in scope' USING ERRCODE = 'insufficient_privilege';
  END IF;
  SELECT c.case_id, c.closed_at INTO v_case, v_closed
  FROM duplicate_match.cases c
  JOIN duplicate_match.case_sides s ON s.case_id = c.case_id AND s.municipality_code = code
  WHERE c.reference = p_reference
  FOR UPDATE OF c;  -- both sides answering at once: one closes the case, never neither
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no duplicate case % in the municipality in scope', p_reference USING ERRCODE = 'no_data_found';
  END IF;
  IF v_closed IS NOT NULL THEN
    RAISE EXCEPTION 'duplicate case % is closed', p_reference
      USING ERRCODE = 'check_violation', CONSTRAINT = 'duplicate_cases_closed';
  END IF;
  UPDATE duplicate_match.case_sides
  SET resolution = p_resolution, comment = nullif(p_comment, ''), resolved_by = p_staff_id, resolved_at = now()
  WHERE case_id = v_case AND municipality_code = code;
  IF NOT EXISTS (SELECT 1 FROM duplicate_match.case_sides WHERE case_id = v_case AND resolved_at IS NULL) THEN
    UPDATE duplicate_match.cases SET closed_at = now() WHERE case_id = v_case;
    RETURN true;
  END IF;
  RETURN false;
END $$;

ALTER FUNCTION public.kyufu_duplicate_resolve(p_reference text, p_resolution text, p_comment text, p_staff_id bigint) OWNER TO kyufu_owner;

CREATE FUNCTION public.kyufu_duplicates_contribute(p_key_id text, p_program_id bigint, p_entitlement_ids bigint[], p_kinds text[], p_digests bytea[]) RETURNS TABLE(stored bigint, matched bigint, opened bigint)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
DECLARE
  code text := kyufu_current_municipality();
  v_scheme text;
  v_version int;
  v_stored bigint := 0;
BEGIN
  IF code IS NULL THEN
    RAISE EXCEPTION 'no municipality in scope' USING ERRCODE = 'insufficient_privilege';
  END IF;
  SELECT p.national_scheme INTO v_scheme FROM public.programs p
  WHERE p.municipality_code = code AND p.program_id = p_program_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no program % in the municipality in scope', p_program_id USING ERRCODE = 'insufficient_privilege';
  END IF;
  -- FOR SHARE: a rotation (which retires this row FOR UPDATE) waits for contributions under the old key.
  SELECT k.version INTO v_version FROM duplicate_match.keys k
  WHERE k.key_id = p_key_id AND k.retired_at IS NULL FOR SHARE;
  IF NOT FOUND THEN
    IF EXISTS (SELECT 1 FROM duplicate_match.keys) THEN
      RAISE EXCEPTION 'duplicate key % is not the current one', p_key_id
        USING ERRCODE = 'check_violation', CONSTRAINT = 'duplicate_key_current';
    END IF;
    INSERT INTO duplicate_match.keys (version, key_id) VALUES (1, p_key_id) ON CONFLICT DO NOTHING;
    SELECT k.version INTO v_version FROM duplicate_match.keys k
    WHERE k.key_id = p_key_id AND k.retired_at IS NULL FOR SHARE;
    IF NOT FOUND THEN  -- another process registered a different first key at the same moment
      RAISE EXCEPTION 'duplicate key % is not the current one', p_key_id
        USING ERRCODE = 'check_violation', CONSTRAINT = 'duplicate_key_current';
    END IF;
  END IF;
  IF cardinality(p_entitlement_ids) IS DISTINCT FROM cardinality(p_kinds)
     OR cardinality(p_kinds) IS DISTINCT FROM cardinality(p_digests) THEN
    RAISE EXCEPTION 'entitlement ids, kinds and digests differ in length' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF v_scheme IS NOT NULL THEN
    -- Two municipalities contributing to one scheme at once would each miss the other's uncommitted rows:
    -- one at a time per scheme (the second sees the first's rows once it commits).
    PERFORM pg_advisory_xact_lock(hashtextextended('kyufu.duplicates|' || v_scheme, 0));
  END IF;
  DELETE FROM duplicate_match.hashes h WHERE h.municipality_code = code AND h.program_id = p_program_id;
  IF v_scheme IS NULL THEN
    RETURN QUERY SELECT 0::bigint, 0::bigint, 0::bigint;
    RETURN;
  END IF;
  IF EXISTS (SELECT 1 FROM (SELECT DISTINCT u.id FROM unnest(p_entitlement_ids) AS u(id)) i
             WHERE NOT EXISTS (SELECT 1 FROM public.entitlements e WHERE e.municipality_code = code
                               AND e.program_id = p_program_id AND e.entitlement_id = i.id)) THEN
    RAISE EXCEPTION 'hashes name an entitlement that is not of program %', p_program_id
      USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'duplicate_hashes_entitlement';
  END IF;
  INSERT INTO duplicate_match.hashes (key_version, scheme, kind, digest, municipality_code, program_id, entitlement_id)
  SELECT v_version, v_scheme, u.kind, u.digest, code, p_program_id, u.id
  FROM unnest(p_entitlement_ids, p_kinds, p_digests) AS u(id, kind, digest)
  ON CONFLICT DO NOTHING;
  GET DIAGNOSTICS v_stored = ROW_COUNT;
  RETURN QUERY
  WITH pairs AS (
    SELECT mine.entitlement_id AS own_entitlement, other.municipality_code AS other_code,
           other.program_id AS other_program, other.entitlement_id AS other_entitlement,
           array_agg(DISTINCT mine.kind ORDER BY mine.kind) AS kinds
    FROM duplicate_match.hashes mine
    JOIN duplicate_match.hashes other
      ON other.key_version = mine.key_version AND other.scheme = mine.scheme AND other.kind = mine.kind
     AND other.digest = mine.digest AND other.municipality_code <> mine.municipality_code
    WHERE mine.municipality_code = code AND mine.program_id = p_program_id AND mine.key_version = v_version
    GROUP BY 1, 2, 3, 4
  ), keyed AS (
    SELECT pairs.*, v_scheme || '|' || least(code || ':' || own_entitlement, other_code || ':' || other_entitlement)
                    || '|' || greatest(code || ':' || own_entitlement, other_code || ':' || other_entitlement) AS pair_key
    FROM pairs
  ), new_cases AS (
    INSERT INTO duplicate_match.cases (reference, scheme, pair_key, matched_on)
    SELECT duplicate_match.new_reference(), v_scheme, k.pair_key, k.kinds FROM keyed k
    ON CONFLICT (pair_key) DO NOTHING  -- a known pair (open or closed) is not opened again
    RETURNING case_id, pair_key
  ), new_sides AS (
    INSERT INTO duplicate_match.case_sides (case_id, municipality_code, program_id, entitlement_id)
    SELECT n.case_id, s.side_code, s.side_program, s.side_entitlement
    FROM new_cases n JOIN keyed k ON k.pair_key = n.pair_key
    CROSS JOIN LATERAL (VALUES (code, p_program_id, k.own_entitlement),
                               (k.other_code, k.other_program, k.other_entitlement))
         AS s(side_code, side_program, side_entitlement)
    RETURNING 1
  )
  SELECT v_stored, (SELECT count(*) FROM keyed), (SELECT count(*) FROM new_cases)
  FROM (SELECT count(*) FROM new_sides) s;
END $$;

ALTER FUNCTION public.kyufu_duplicates_contribute(p_key_id text, p_program_id bigint, p_entitlement_ids bigint[], p_kinds text[], p_digests bytea[]) OWNER TO kyufu_owner;

CREATE FUNCTION public.kyufu_dv_answer(p_reference text, p_outcome text, p_staff_id bigint) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
DECLARE
  code text := kyufu_current_municipality();
  v_request record;
BEGIN
  IF code IS NULL THEN
    RAISE EXCEPTION 'no municipality in scope' USING ERRCODE = 'insufficient_privilege';
  END IF;
  SELECT r.request_id, r.state, r.persons INTO v_request FROM dv_match.requests r
  WHERE r.reference = p_reference AND r.registered_code = code
  FOR UPDATE;  -- two reviewers answering at once: one answer, never two
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no DV request % for the municipality in scope', p_reference USING ERRCODE = 'no_data_found';
  END IF;
  IF v_request.state <> 'filed' THEN
    RAISE EXCEPTION 'DV request % was answered', p_reference
      USING ERRCODE = 'check_violation', CONSTRAINT = 'dv_requests_answered';
  END IF;
  IF p_outcome = 'excluded' THEN
    -- dv_exclusions is a tenant table: with B in scope, this reads B's rows only.
    IF (SELECT count(DISTINCT x.person) FROM public.dv_exclusions x
        WHERE x.municipality_code = code AND x.reference = p_reference) <> v_request.persons THEN
      RAISE EXCEPTION 'DV request % names people that were not excluded', p_reference
        USING ERRCODE = 'check_violation', CONSTRAINT = 'dv_requests_all_excluded';
    END IF;
    UPDATE dv_match.requests SET state = 'excluded', answered_by = p_staff_id, answered_at = now()
    WHERE request_id = v_request.request_id;
  ELSIF p_outcome IN ('not_found', 'already_paid') THEN
    UPDATE dv_match.requests SET state = 'refused', refusal = p_outcome, answered_by = p_staff_id,
           answered_at = now()
    WHERE request_id = v_request.request_id;
  ELSE
    RAISE EXCEPTION 'unknown outcome' USING ERRCODE = 'invalid_parameter_value';
  END IF;
END $$;

ALTER FUNCTION public.kyufu_dv_answer(p_reference text, p_outcome text, p_staff_id bigint) OWNER TO kyufu_owner;

CREATE FUNCTION public.kyufu_dv_file(p_key_id text, p_reference text, p_program_id bigint, p_entitlement_id bigint, p_registered_code text, p_count integer, p_persons smallint[], p_kinds text[], p_digests bytea[]) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
DECLARE
  code text := kyufu_current_municipality();
  v_scheme text;
  v_version int;
  v_request bigint;
BEGIN
  IF code IS NULL THEN
    RAISE EXCEPTION 'no municipality in scope' USING ERRCODE = 'insufficient_privilege';
  END IF;
  SELECT p.national_scheme INTO v_scheme FROM public.programs p
  WHERE p.municipality_code = code AND p.program_id = p_program_id;
  IF v_scheme IS NULL THEN
    RAISE EXCEPTION 'program % has no national scheme', p_program_id
      USING ERRCODE = 'check_violation', CONSTRAINT = 'dv_requests_scheme';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM public.entitlements e WHERE e.municipality_code = code
                 AND e.entitlement_id = p_entitlement_id AND e.dv_reference = p_reference) THEN
    RAISE EXCEPTION 'entitlement % is not the 申出''s', p_entitlement_id USING ERRCODE = 'insufficient_privilege';
  END IF;
  -- B's programs are out of sight here (FORCE RLS: even this owner function sees A's rows only); B's
  -- contributed hashes are platform data and say that B runs the scheme.
  IF p_registered_code = code OR NOT EXISTS (
       SELECT 1 FROM duplicate_match.hashes h WHERE h.municipality_code = p_registered_code AND h.scheme = v_scheme) THEN
    RAISE EXCEPTION 'the registered municipality runs no program of scheme %', v_scheme
      USING ERRCODE = 'check_violation', CONSTRAINT = 'dv_requests_registered_scheme';
  END IF;
  SELECT k.version INTO v_version FROM duplicate_match.keys k WHERE k.key_id = p_key_id AND k.retired_at IS NULL
  FOR SHARE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'duplicate key % is not the current one', p_key_id
      USING ERRCODE = 'check_violation', CONSTRAINT = 'duplicate_key_current';
  END IF;
  IF cardinality(p_persons) IS DISTINCT FROM cardinality(p_kinds)
     OR cardinality(p_kinds) IS DISTINCT FROM cardinality(p_digests)
     OR EXISTS (SELECT 1 FROM unnest(p_persons) AS u(n) WHERE u.n < 0 OR u.n >= p_count)
     OR (SELECT count(DISTINCT u.n) FROM unnest(p_persons) AS u(n)) <> p_count THEN
    RAISE EXCEPTION 'persons, kinds and digests do not describe % people', p_count
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  INSERT INTO dv_match.requests (reference, scheme, key_version, filed_code, filed_entitlement_id, registered_code,
                                 persons)
  VALUES (p_reference, v_scheme, v_version, code, p_entitlement_id, p_registered_code, p_count)
  RETURNING request_id INTO v_request;
  INSERT INTO dv_match.digests (request_id, person, kind, digest)
  SELECT v_request, u.n, u.kind, u.digest FROM unnest(p_persons, p_kinds, p_digests) AS u(n, kind, digest);
  PERFORM dv_match.match(v_request);
  RETURN EXISTS (SELECT 1 FROM dv_match.matches m WHERE m.request_id = v_request);
END $$;

ALTER FUNCTION public.kyufu_dv_file(p_key_id text, p_reference text, p_program_id bigint, p_entitlement_id bigint, p_registered_code text, p_count integer, p_persons smallint[], p_kinds text[], p_digests bytea[]) OWNER TO kyufu_owner;

CREATE FUNCTION public.kyufu_enabled_admin(p_code text, p_staff bigint) RETURNS boolean
    LANGUAGE sql STABLE
    AS $$
  SELECT EXISTS (SELECT 1 FROM staff_users WHERE municipality_code = p_code AND staff_id = p_staff
                 AND 'admin' = ANY (roles) AND disabled_at IS NULL)
$$;

ALTER FUNCTION public.kyufu_enabled_admin(p_code text, p_staff bigint) OWNER TO kyufu_owner;

CREATE FUNCTION public.kyufu_hands(p_code text, p_staff bigint, p_operator text) RETURNS SETOF text
    LANGUAGE sql STABLE
    AS $$
  WITH RECURSIVE chain (staff_id, principal, depth) AS (
      SELECT p_staff, kyufu_principal(p_staff, p_operator), 0
    UNION
      SELECT e.issued_by, kyufu_principal(e.issued_by, e.issued_by_operator), c.depth + 1
      FROM chain c
      CROSS JOIN LATERAL (
          SELECT issued_by, issued_by_operator, bootstrap FROM staff_enrolments
          WHERE municipality_code = p_code AND staff_id = c.staff_id AND completed_at IS NOT NULL
          ORDER BY completed_at DESC, enrolment_id DESC LIMIT 1) e
      WHERE c.staff_id IS NOT NULL AND NOT e.bootstrap AND c.depth < 32   -- a reset cycle ends here
  )
  SELECT DISTINCT principal FROM chain
$$;

ALTER FUNCTION public.kyufu_hands(p_code text, p_staff bigint, p_operator text) OWNER TO kyufu_owner;

CREATE FUNCTION public.kyufu_holder_flags() RETURNS text[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT ARRAY['kana_mismatch', 'holder_is_member_not_applicant', 'registry_kana_invalid', 'holder_name_mismatch']
$$;

ALTER FUNCTION public.kyufu_holder_flags() OWNER TO kyufu_owner;

CREATE FUNCTION public.kyufu_independent(p_code text, a_staff bigint, a_operator text, b_staff bigint, b_operator text) RETURNS boolean
    LANGUAGE sql STABLE
    AS $$
  SELECT NOT EXISTS (SELECT * FROM kyufu_hands(p_code, a_staff, a_operator)
                     INTERSECT SELECT * FROM kyufu_hands(p_code, b_staff, b_operator))
$$;

ALTER FUNCTION public.kyufu_independent(p_code text, a_staff bigint, a_operator text, b_staff bigint, b_operator text) OWNER TO kyufu_owner;

CREATE FUNCTION public.kyufu_isolate_tenant_table(tbl regclass) RETURNS void
    LANGUAGE plpgsql
    AS $$
BEGIN
  EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
  EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
  EXECUTE format('CREATE POLICY tenant_isolation ON %s
                    USING (municipality_code = kyufu_current_municipality())
                    WITH CHECK (municipality_code = kyufu_current_municipality())', tbl);
END $$;

ALTER FUNCTION public.kyufu_isolate_tenant_table(tbl regclass) OWNER TO kyufu_owner;

CREATE FUNCTION public.kyufu_load_date_sql(raw text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $_$
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
$_$;

ALTER FUNCTION public.kyufu_load_date_sql(raw text) OWNER TO kyufu_owner;

CREATE FUNCTION public.kyufu_payment_sent(p_code text, p_payment bigint) RETURNS boolean
    LANGUAGE plpgsql
    AS $$
DECLARE pay record;
BEGIN
  SELECT p.status, b.status AS batch_status INTO pay FROM payments p
  LEFT JOIN payout_batches b ON b.municipality_code = p.municipality_code AND b.batch_id = p.batch_id
  WHERE p.municipality_code = p_code AND p.payment_id = p_payment
  FOR UPDATE OF p;
  RETURN FOUND AND (pay.status IN ('paid', 'released') OR (pay.status = 'in_batch' AND pay.batch_status = 'released'));
END $$;

ALTER FUNCTION public.kyufu_payment_sent(p_code text, p_payment bigint) OWNER TO kyufu_owner;

CREATE FUNCTION public.kyufu_principal(staff_id bigint, operator text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
  SELECT coalesce('staff:' || staff_id, 'operator:' || operator)
$$;

ALTER FUNCTION public.kyufu_principal(staff_id bigint, operator text) OWNER TO kyufu_owner;

CREATE FUNCTION public.kyufu_refresh_intake_statistics() RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
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

ALTER FUNCTION public.kyufu_refresh_intake_statistics() OWNER TO kyufu_owner;

CREATE FUNCTION public.kyufu_residents_load_begin(p_snapshot_id bigint) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $_$
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
END $_$;

ALTER FUNCTION public.kyufu_residents_load_begin(p_snapshot_id bigint) OWNER TO kyufu_owner;

CREATE FUNCTION public.kyufu_residents_load_typed(p_snapshot_id bigint) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $_$
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
END $_$;

ALTER FUNCTION public.kyufu_residents_load_typed(p_snapshot_id bigint) OWNER TO kyufu_owner;

CREATE FUNCTION public.kyufu_residents_publish(p_snapshot_id bigint, p_relationships text[], p_removal_reasons text[]) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    SET maintenance_work_mem TO '512MB'
    SET work_mem TO '256MB'
    SET default_statistics_target TO '10'
    SET max_parallel_maintenance_workers TO '2'
    AS $_$
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
END $_$;

ALTER FUNCTION public.kyufu_residents_publish(p_snapshot_id bigint, p_relationships text[], p_removal_reasons text[]) OWNER TO kyufu_owner;

CREATE FUNCTION public.kyufu_valid_municipality_code(code text) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $_$
  SELECT code ~ '^[0-9]{6}$'
     AND substr(code, 1, 2)::int BETWEEN 1 AND 47
     AND substr(code, 6, 1)::int = (11 - (6 * substr(code, 1, 1)::int + 5 * substr(code, 2, 1)::int
          + 4 * substr(code, 3, 1)::int + 3 * substr(code, 4, 1)::int + 2 * substr(code, 5, 1)::int) % 11) % 10
$_$;

ALTER FUNCTION public.kyufu_valid_municipality_code(code text) OWNER TO kyufu_owner;

CREATE FUNCTION public.kyufu_ymd_valid(n integer) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
  SELECT n / 10000 >= 1 AND n / 100 % 100 BETWEEN 1 AND 12 AND n % 100 BETWEEN 1 AND
         CASE n / 100 % 100
           WHEN 2 THEN 28 + (n / 10000 % 4 = 0 AND (n / 10000 % 100 <> 0 OR n / 10000 % 400 = 0))::int
           WHEN 4 THEN 30 WHEN 6 THEN 30 WHEN 9 THEN 30 WHEN 11 THEN 30 ELSE 31 END
$$;

ALTER FUNCTION public.kyufu_ymd_valid(n integer) OWNER TO kyufu_owner;

CREATE FUNCTION public.paper_forms_decided_is_final() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
  IF OLD.decided_at IS NOT NULL AND (NEW.state, NEW.application_id, NEW.entitlement_id, NEW.decided_at)
       IS DISTINCT FROM (OLD.state, OLD.application_id, OLD.entitlement_id, OLD.decided_at) THEN
    RAISE EXCEPTION 'paper form % is decided (%): it does not change again', OLD.form_id, OLD.state
      USING ERRCODE = 'check_violation', CONSTRAINT = 'paper_forms_decided_is_final';
  END IF;
  IF NEW.box_id <> OLD.box_id OR NEW.seq <> OLD.seq THEN
    RAISE EXCEPTION 'paper form % keeps its place in its box', OLD.form_id
      USING ERRCODE = 'check_violation', CONSTRAINT = 'paper_forms_decided_is_final';
  END IF;
  RETURN NEW;
END $$;

ALTER FUNCTION public.paper_forms_decided_is_final() OWNER TO kyufu_owner;

CREATE FUNCTION public.payment_debts_guard() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE paid_yen bigint; conflict text;
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF NEW.status <> 'open' OR NEW.repaid_yen <> 0 OR NEW.write_off_requested_by IS NOT NULL THEN
      RAISE EXCEPTION 'a debt starts open, with nothing repaid'
        USING ERRCODE = 'check_violation', CONSTRAINT = 'payment_debts_settled_is_final';
    END IF;
    IF NOT kyufu_payment_sent(NEW.municipality_code, NEW.payment_id) THEN
      RAISE EXCEPTION 'payment % was not sent in a released file (or came back)', NEW.payment_id
        USING ERRCODE = 'check_violation', CONSTRAINT = 'payment_debts_payment_sent';
    END IF;
    IF NEW.amount_yen > (SELECT amount_yen FROM payments WHERE municipality_code = NEW.municipality_code
                         AND payment_id = NEW.payment_id) THEN
      RAISE EXCEPTION 'debt of payment % is above the payment', NEW.payment_id
        USING ERRCODE = 'check_violation', CONSTRAINT = 'payment_debts_within_payment';
    END IF;
    IF EXISTS (SELECT 1 FROM payment_recalls r WHERE r.municipality_code = NEW.municipality_code
               AND r.payment_id = NEW.payment_id AND r.status = 'requested') THEN
      RAISE EXCEPTION 'payment % has a recall waiting for the bank''s answer', NEW.payment_id
        USING ERRCODE = 'check_violation', CONSTRAINT = 'payment_debts_not_during_recall';
    END IF;
    RETURN NEW;
  END IF;
  IF (NEW.debt_id, NEW.payment_id, NEW.amount_yen, NEW.reason, NEW.opened_by, NEW.opened_at)
     IS DISTINCT FROM (OLD.debt_id, OLD.payment_id, OLD.amount_yen, OLD.reason, OLD.opened_by, OLD.opened_at) THEN
    RAISE EXCEPTION 'debt % cannot change what was claimed', OLD.debt_id
      USING ERRCODE = 'check_violation', CONSTRAINT = 'payment_debts_claim_fixed';
  END IF;
  IF OLD.status <> 'open' THEN
    RAISE EXCEPTION 'debt % is settled (%)', OLD.debt_id, OLD.status
      USING ERRCODE = 'check_violation', CONSTRAINT = 'payment_debts_settled_is_final';
  END IF;
  -- repaid_yen is the sum of the recorded repayments, whoever writes the row.
  SELECT coalesce(sum(amount_yen), 0) INTO paid_yen FROM debt_repayments
  WHERE municipality_code = OLD.municipality_code AND debt_id = OLD.debt_id;
  IF NEW.repaid_yen <> paid_yen THEN
    RAISE EXCEPTION 'debt % repaid_yen must be the sum of its repayments', OLD.debt_id
      USING ERRCODE = 'check_violation', CONSTRAINT = 'payment_debts_repaid_is_the_repayments';
  END IF;
  IF NEW.written_off_by IS NOT NULL THEN
    -- Requested and approved are two steps by two people: the approval cannot name its own requester.
    IF NEW.write_off_requested_by IS DISTINCT FROM OLD.write_off_requested_by THEN
      RAISE EXCEPTION 'debt % write-off approved in the statement that requested it', OLD.debt_id
        USING ERRCODE = 'check_violation', CONSTRAINT = 'payment_debts_write_off_four_eyes';
    END IF;
    conflict := kyufu_approval_conflict(NEW.municipality_code, NEW.write_off_requested_by, NEW.written_off_by);
    -- The same account is payment_debts_write_off_four_eyes' to refuse, under its own name.
    IF conflict IS NOT NULL AND conflict <> 'same_account' THEN
      RAISE EXCEPTION 'approver % of the write-off of debt % is not independent of its requester % (%)',
        NEW.written_off_by, NEW.debt_id, NEW.write_off_requested_by, conflict
        USING ERRCODE = 'check_violation', CONSTRAINT = 'payment_debts_write_off_independent';
    END IF;
  END IF;
  RETURN NEW;
END $$;

ALTER FUNCTION public.payment_debts_guard() OWNER TO kyufu_owner;

CREATE FUNCTION public.payment_holds_transitions() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
  IF OLD.released_at IS NOT NULL THEN
    RAISE EXCEPTION 'hold % is released and cannot change', OLD.hold_id
      USING ERRCODE = 'check_violation', CONSTRAINT = 'payment_holds_transitions';
  END IF;
  -- (municipality_code is row-level security's and the foreign keys' to hold; hold_id is an identity.)
  IF (NEW.entitlement_id, NEW.payment_id, NEW.reason, NEW.source, NEW.note,
      NEW.placed_by, NEW.placed_at, NEW.snapshot_id, NEW.payee_resident_code, NEW.finding, NEW.removed_on,
      NEW.suggestion, NEW.new_head_resident_code)
     IS DISTINCT FROM
     (OLD.entitlement_id, OLD.payment_id, OLD.reason, OLD.source, OLD.note,
      OLD.placed_by, OLD.placed_at, OLD.snapshot_id, OLD.payee_resident_code, OLD.finding, OLD.removed_on,
      OLD.suggestion, OLD.new_head_resident_code)
     OR (OLD.kind = 'stop' AND (NEW.kind, NEW.stopped_by, NEW.stopped_at, NEW.stop_note)
                               IS DISTINCT FROM (OLD.kind, OLD.stopped_by, OLD.stopped_at, OLD.stop_note)) THEN
    RAISE EXCEPTION 'hold % may only become a stop or be released', OLD.hold_id
      USING ERRCODE = 'check_violation', CONSTRAINT = 'payment_holds_transitions';
  END IF;
  RETURN NEW;
END $$;

ALTER FUNCTION public.payment_holds_transitions() OWNER TO kyufu_owner;

CREATE FUNCTION public.payment_recalls_guard() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF NEW.status <> 'requested' THEN
      RAISE EXCEPTION 'a recall starts as requested'
        USING ERRCODE = 'check_violation', CONSTRAINT = 'payment_recalls_answered_once';
    END IF;
    IF NOT kyufu_payment_sent(NEW.municipality_code, NEW.payment_id) THEN
      RAISE EXCEPTION 'payment % was not sent in a released file (or came back)', NEW.payment_id
        USING ERRCODE = 'check_violation', CONSTRAINT = 'payment_recalls_payment_sent';
    END IF;
    IF EXISTS (SELECT 1 FROM payment_debts d WHERE d.municipality_code = NEW.municipality_code
               AND d.payment_id = NEW.payment_id) THEN
      RAISE EXCEPTION 'payment % is claimed back from its recipient already', NEW.payment_id
        USING ERRCODE = 'check_violation', CONSTRAINT = 'payment_recalls_not_after_debt';
    END IF;
    RETURN NEW;
  END IF;
  -- (municipality_code is row-level security's to keep: a row never moves to another municipality.)
  IF (NEW.recall_id, NEW.payment_id, NEW.reason, NEW.requested_by, NEW.requested_at)
     IS DISTINCT FROM (OLD.recall_id, OLD.payment_id, OLD.reason, OLD.requested_by, OLD.requested_at) THEN
    RAISE EXCEPTION 'recall % cannot change what was requested', OLD.recall_id
      USING ERRCODE = 'check_violation', CONSTRAINT = 'payment_recalls_request_fixed';
  END IF;
  IF OLD.status <> 'requested' THEN
    RAISE EXCEPTION 'recall % was answered already (%)', OLD.recall_id, OLD.status
      USING ERRCODE = 'check_violation', CONSTRAINT = 'payment_recalls_answered_once';
  END IF;
  IF NEW.status = 'returned' THEN
    -- The money is back: the payment is returned (and so listed for re-contact and one re-issue), never
    -- paid again by itself.
    UPDATE payments SET status = 'returned', return_reason = '組戻し'
    WHERE municipality_code = NEW.municipality_code AND payment_id = NEW.payment_id
      AND status IN ('paid', 'released', 'in_batch');
    IF NOT FOUND THEN
      RAISE EXCEPTION 'payment % of recall % is not a sent payment', NEW.payment_id, NEW.recall_id
        USING ERRCODE = 'check_violation', CONSTRAINT = 'payment_recalls_payment_sent';
    END IF;
  END IF;
  RETURN NEW;
END $$;

ALTER FUNCTION public.payment_recalls_guard() OWNER TO kyufu_owner;

CREATE FUNCTION public.payments_guard_insert() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE bad bigint;
BEGIN
  SELECT n.payment_id INTO bad FROM new_payments n
  WHERE n.amount_yen > (SELECT e.amount_yen FROM entitlements e
                        WHERE e.municipality_code = n.municipality_code AND e.entitlement_id = n.entitlement_id)
  LIMIT 1;
  IF bad IS NOT NULL THEN
    RAISE EXCEPTION 'payment % is above its entitlement', bad
      USING ERRCODE = 'check_violation', CONSTRAINT = 'payments_within_entitlement';
  END IF;
  SELECT n.payment_id INTO bad FROM new_payments n
  WHERE n.batch_id IS NOT NULL
    AND (SELECT b.status FROM payout_batches b
         WHERE b.municipality_code = n.municipality_code AND b.batch_id = n.batch_id) <> 'preparing'
  LIMIT 1;
  IF bad IS NOT NULL THEN
    RAISE EXCEPTION 'payment % cannot join a batch that is not being prepared', bad
      USING ERRCODE = 'check_violation', CONSTRAINT = 'payments_join_preparing_batch';
  END IF;
  RETURN NULL;
END $$;

ALTER FUNCTION public.payments_guard_insert() OWNER TO kyufu_owner;

CREATE FUNCTION public.payments_guard_update() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
  IF NEW.batch_id IS NOT NULL AND NEW.batch_id IS DISTINCT FROM OLD.batch_id AND NOT EXISTS (
       SELECT 1 FROM payout_batches b WHERE b.municipality_code = NEW.municipality_code
       AND b.batch_id = NEW.batch_id AND b.status = 'preparing') THEN
    RAISE EXCEPTION 'payment % cannot join batch %, which is not being prepared', NEW.payment_id, NEW.batch_id
      USING ERRCODE = 'check_violation', CONSTRAINT = 'payments_join_preparing_batch';
  END IF;
  IF (NEW.amount_yen, NEW.entitlement_id) IS DISTINCT FROM (OLD.amount_yen, OLD.entitlement_id) AND EXISTS (
       SELECT 1 FROM entitlements e WHERE e.municipality_code = NEW.municipality_code
       AND e.entitlement_id = NEW.entitlement_id AND NEW.amount_yen > e.amount_yen) THEN
    RAISE EXCEPTION 'payment % is above its entitlement', NEW.payment_id
      USING ERRCODE = 'check_violation', CONSTRAINT = 'payments_within_entitlement';
  END IF;
  RETURN NEW;
END $$;

ALTER FUNCTION public.payments_guard_update() OWNER TO kyufu_owner;

CREATE FUNCTION public.payments_not_held() RETURNS trigger
    LANGUAGE plpgsql
    SET enable_seqscan TO 'off'
    AS $$
DECLARE bad bigint;
BEGIN
  SELECT n.entitlement_id INTO bad FROM new_payments n
  WHERE n.batch_id IS NOT NULL
    AND EXISTS (SELECT 1 FROM payment_holds h WHERE h.municipality_code = n.municipality_code
                AND h.entitlement_id = n.entitlement_id AND h.released_at IS NULL)
  LIMIT 1;
  IF bad IS NOT NULL THEN
    RAISE EXCEPTION 'entitlement % is on hold', bad
      USING ERRCODE = 'check_violation', CONSTRAINT = 'payments_not_held';
  END IF;
  RETURN NULL;
END $$;

ALTER FUNCTION public.payments_not_held() OWNER TO kyufu_owner;

CREATE FUNCTION public.payments_not_held_in_batch() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM payment_holds h WHERE h.municipality_code = NEW.municipality_code
             AND h.entitlement_id = NEW.entitlement_id AND h.released_at IS NULL) THEN
    RAISE EXCEPTION 'entitlement % is on hold', NEW.entitlement_id
      USING ERRCODE = 'check_violation', CONSTRAINT = 'payments_not_held';
  END IF;
  RETURN NEW;
END $$;

ALTER FUNCTION public.payments_not_held_in_batch() OWNER TO kyufu_owner;

CREATE FUNCTION public.payments_recovery_guard() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
  IF NEW.status = 'returned' AND EXISTS (SELECT 1 FROM payment_debts d WHERE d.municipality_code = NEW.municipality_code
                                         AND d.payment_id = NEW.payment_id) THEN
    RAISE EXCEPTION 'payment % is claimed back from its recipient: it was credited', NEW.payment_id
      USING ERRCODE = 'check_violation', CONSTRAINT = 'payments_claimed_back_was_credited';
  END IF;
  IF OLD.status = 'returned' AND EXISTS (SELECT 1 FROM payment_recalls r WHERE r.municipality_code = NEW.municipality_code
                                         AND r.payment_id = NEW.payment_id AND r.status = 'returned') THEN
    RAISE EXCEPTION 'payment % came back by 組戻し and stays returned', NEW.payment_id
      USING ERRCODE = 'check_violation', CONSTRAINT = 'payments_recalled_stay_returned';
  END IF;
  RETURN NEW;
END $$;

ALTER FUNCTION public.payments_recovery_guard() OWNER TO kyufu_owner;

CREATE FUNCTION public.payments_wait_for_duplicates() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    SET enable_seqscan TO 'off'
    AS $$
DECLARE bad bigint;
BEGIN
  SELECT n.entitlement_id INTO bad FROM new_payments n
  JOIN duplicate_holds h ON h.municipality_code = n.municipality_code AND h.entitlement_id = n.entitlement_id
  WHERE n.status IN ('ready', 'in_batch', 'released', 'paid')
  LIMIT 1;
  IF bad IS NOT NULL THEN
    RAISE EXCEPTION 'entitlement % waits for a cross-municipality duplicate case', bad
      USING ERRCODE = 'check_violation', CONSTRAINT = 'payments_wait_for_duplicate_case';
  END IF;
  RETURN NULL;
END $$;

ALTER FUNCTION public.payments_wait_for_duplicates() OWNER TO kyufu_owner;

CREATE FUNCTION public.payments_wait_for_duplicates_in_batch() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM duplicate_holds h
             WHERE h.municipality_code = NEW.municipality_code AND h.entitlement_id = NEW.entitlement_id) THEN
    RAISE EXCEPTION 'entitlement % waits for a cross-municipality duplicate case', NEW.entitlement_id
      USING ERRCODE = 'check_violation', CONSTRAINT = 'payments_wait_for_duplicate_case';
  END IF;
  RETURN NEW;
END $$;

ALTER FUNCTION public.payments_wait_for_duplicates_in_batch() OWNER TO kyufu_owner;

CREATE FUNCTION public.payments_wait_for_dv() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    SET enable_seqscan TO 'off'
    AS $$
DECLARE bad bigint;
BEGIN
  SELECT n.entitlement_id INTO bad FROM new_payments n
  JOIN dv_holds h ON h.municipality_code = n.municipality_code AND h.entitlement_id = n.entitlement_id
  WHERE n.status IN ('ready', 'in_batch', 'released', 'paid')
  LIMIT 1;
  IF bad IS NOT NULL THEN
    RAISE EXCEPTION 'entitlement % waits for a DV request', bad
      USING ERRCODE = 'check_violation', CONSTRAINT = 'payments_wait_for_dv_request';
  END IF;
  RETURN NULL;
END $$;

ALTER FUNCTION public.payments_wait_for_dv() OWNER TO kyufu_owner;

CREATE FUNCTION public.payments_wait_for_dv_in_batch() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM dv_holds h
             WHERE h.municipality_code = NEW.municipality_code AND h.entitlement_id = NEW.entitlement_id) THEN
    RAISE EXCEPTION 'entitlement % waits for a DV request', NEW.entitlement_id
      USING ERRCODE = 'check_violation', CONSTRAINT = 'payments_wait_for_dv_request';
  END IF;
  RETURN NEW;
END $$;

ALTER FUNCTION public.payments_wait_for_dv_in_batch() OWNER TO kyufu_owner;

CREATE FUNCTION public.payout_batches_guardrails() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE open_flags int;
BEGIN
  IF NEW.status = 'preparing' AND OLD.status <> 'preparing' THEN
    RAISE EXCEPTION 'batch % cannot go back to preparing', NEW.batch_id
      USING ERRCODE = 'check_violation', CONSTRAINT = 'payments_join_preparing_batch';
  END IF;
  IF OLD.status = 'preparing' AND NEW.status = 'draft' THEN
    INSERT INTO payout_batch_account_flags (municipality_code, batch_id, account_key, payments, total_yen,
                                            payment_ids)
    SELECT p.municipality_code, p.batch_id, p.account_key, count(*), sum(p.amount_yen),
           array_agg(p.payment_id ORDER BY p.payment_id)
    FROM payments p
    WHERE p.municipality_code = NEW.municipality_code AND p.batch_id = NEW.batch_id AND p.account_key IS NOT NULL
    GROUP BY p.municipality_code, p.batch_id, p.account_key
    HAVING count(*) > (SELECT max_payments_per_account FROM programs pr
                       WHERE pr.municipality_code = NEW.municipality_code AND pr.program_id = NEW.program_id);
  END IF;
  IF NEW.status = 'approved' AND OLD.status IS DISTINCT FROM 'approved' THEN
    SELECT count(*) INTO open_flags FROM payout_batch_account_flags f
    WHERE f.municipality_code = NEW.municipality_code AND f.batch_id = NEW.batch_id
      AND (f.overridden_by IS NULL OR f.overridden_by = NEW.drafted_by);
    IF open_flags > 0 THEN
      RAISE EXCEPTION 'batch % has % account(s) over the per-account limit without an override', NEW.batch_id, open_flags
        USING ERRCODE = 'check_violation', CONSTRAINT = 'payout_batches_accounts_within_limit';
    END IF;
  END IF;
  RETURN NEW;
END $$;

ALTER FUNCTION public.payout_batches_guardrails() OWNER TO kyufu_owner;

CREATE FUNCTION public.payout_batches_holder_checks() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
  NEW.holder_checks := kyufu_batch_holder_checks(NEW.municipality_code, NEW.batch_id);
  RETURN NEW;
END $$;

ALTER FUNCTION public.payout_batches_holder_checks() OWNER TO kyufu_owner;

CREATE FUNCTION public.payout_batches_independent_approver() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE reason text;
BEGIN
  reason := kyufu_approval_conflict(NEW.municipality_code, NEW.drafted_by, NEW.approved_by);
  -- The same account is payout_batches_four_eyes' to refuse (0002), under its own name.
  IF reason IS NOT NULL AND reason <> 'same_account' THEN
    RAISE EXCEPTION 'approver % of batch % is not independent of its drafter % (%)',
      NEW.approved_by, NEW.batch_id, NEW.drafted_by, reason
      USING ERRCODE = 'check_violation', CONSTRAINT = 'payout_batches_independent_approver';
  END IF;
  RETURN NEW;
END $$;

ALTER FUNCTION public.payout_batches_independent_approver() OWNER TO kyufu_owner;

CREATE FUNCTION public.payout_batches_no_held_payment() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE held bigint;
BEGIN
  IF NEW.status = 'approved' AND OLD.status IS DISTINCT FROM 'approved' THEN
    SELECT p.entitlement_id INTO held FROM payments p
    WHERE p.municipality_code = NEW.municipality_code AND p.batch_id = NEW.batch_id
      AND EXISTS (SELECT 1 FROM payment_holds h WHERE h.municipality_code = p.municipality_code
                  AND h.entitlement_id = p.entitlement_id AND h.released_at IS NULL)
    LIMIT 1;
    IF held IS NOT NULL THEN
      RAISE EXCEPTION 'batch % holds a payment of entitlement % which is on hold', NEW.batch_id, held
        USING ERRCODE = 'check_violation', CONSTRAINT = 'payout_batches_no_held_payment';
    END IF;
  END IF;
  RETURN NEW;
END $$;

ALTER FUNCTION public.payout_batches_no_held_payment() OWNER TO kyufu_owner;

CREATE FUNCTION public.payout_batches_release_once() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
  IF OLD.status = 'released' THEN
    RAISE EXCEPTION 'batch % of % was already released', OLD.batch_id, OLD.municipality_code
      USING ERRCODE = 'integrity_constraint_violation', CONSTRAINT = 'payout_batches_release_once';
  END IF;
  RETURN NEW;
END $$;

ALTER FUNCTION public.payout_batches_release_once() OWNER TO kyufu_owner;

CREATE FUNCTION public.payout_batches_screened_snapshot() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
  NEW.screened_snapshot_id := (SELECT max(s.snapshot_id) FROM registry_screenings s
                               WHERE s.municipality_code = NEW.municipality_code);
  RETURN NEW;
END $$;

ALTER FUNCTION public.payout_batches_screened_snapshot() OWNER TO kyufu_owner;

CREATE FUNCTION public.payout_batches_wait_for_duplicates() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE held text;
BEGIN
  IF NEW.status = 'approved' AND OLD.status IS DISTINCT FROM 'approved' THEN
    -- duplicate_holds is small (open cases); each probes the batch's payments by entitlement
    -- (payments_entitlement, 0017).
    SELECT h.reference INTO held FROM duplicate_holds h
    JOIN payments p ON p.municipality_code = h.municipality_code AND p.entitlement_id = h.entitlement_id
    WHERE h.municipality_code = NEW.municipality_code AND p.batch_id = NEW.batch_id
    LIMIT 1;
    IF held IS NOT NULL THEN
      RAISE EXCEPTION 'batch % holds a payment waiting for duplicate case %', NEW.batch_id, held
        USING ERRCODE = 'check_violation', CONSTRAINT = 'payout_batches_wait_for_duplicate_case';
    END IF;
  END IF;
  RETURN NEW;
END $$;

ALTER FUNCTION public.payout_batches_wait_for_duplicates() OWNER TO kyufu_owner;

CREATE FUNCTION public.payout_batches_wait_for_dv() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
DECLARE held text;
BEGIN
  IF NEW.status = 'approved' AND OLD.status IS DISTINCT FROM 'approved' THEN
    SELECT h.reference INTO held FROM dv_holds h
    JOIN payments p ON p.municipality_code = h.municipality_code AND p.entitlement_id = h.entitlement_id
    WHERE h.municipality_code = NEW.municipality_code AND p.batch_id = NEW.batch_id
    LIMIT 1;
    IF held IS NOT NULL THEN
      RAISE EXCEPTION 'batch % holds a payment waiting for a DV request', NEW.batch_id
        USING ERRCODE = 'check_violation', CONSTRAINT = 'payout_batches_wait_for_dv_request';
    END IF;
  END IF;
  RETURN NEW;
END $$;

ALTER FUNCTION public.payout_batches_wait_for_dv() OWNER TO kyufu_owner;

CREATE FUNCTION public.programs_keep_entitlements() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
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

ALTER FUNCTION public.programs_keep_entitlements() OWNER TO kyufu_owner;

CREATE FUNCTION public.registry_snapshots_keep_entitlements() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
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

ALTER FUNCTION public.registry_snapshots_keep_entitlements() OWNER TO kyufu_owner;

CREATE FUNCTION public.registry_snapshots_keep_residents() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM residents r WHERE r.municipality_code = OLD.municipality_code AND r.snapshot_id = OLD.snapshot_id) THEN
    RAISE EXCEPTION 'registry snapshot % still has residents', OLD.snapshot_id
      USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'residents_snapshot_exists';
  END IF;
  RETURN OLD;
END $$;

ALTER FUNCTION public.registry_snapshots_keep_residents() OWNER TO kyufu_owner;

CREATE FUNCTION public.residents_snapshot_exists() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
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

ALTER FUNCTION public.residents_snapshot_exists() OWNER TO kyufu_owner;

CREATE FUNCTION public.staff_enrolments_rules() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF NEW.completed_at IS NOT NULL OR NEW.superseded_at IS NOT NULL THEN
      RAISE EXCEPTION 'an enrolment starts unused'
        USING ERRCODE = 'check_violation', CONSTRAINT = 'staff_enrolments_rules';
    END IF;
    IF NEW.issued_by IS NOT NULL AND NOT kyufu_enabled_admin(NEW.municipality_code, NEW.issued_by) THEN
      RAISE EXCEPTION 'staff % is not an enabled admin and cannot issue enrolments', NEW.issued_by
        USING ERRCODE = 'check_violation', CONSTRAINT = 'staff_enrolments_rules';
    END IF;
    IF NEW.bootstrap AND (
        EXISTS (SELECT 1 FROM staff_enrolments WHERE municipality_code = NEW.municipality_code
                AND staff_id = NEW.staff_id)
        OR NOT EXISTS (SELECT 1 FROM staff_role_grants WHERE municipality_code = NEW.municipality_code
                       AND staff_id = NEW.staff_id AND origin = 'bootstrap'
                       AND requested_by_operator = NEW.issued_by_operator)) THEN
      RAISE EXCEPTION 'only the first enrolment of a bootstrapped admin, by its operator, is a bootstrap'
        USING ERRCODE = 'check_violation', CONSTRAINT = 'staff_enrolments_rules';
    END IF;
    RETURN NEW;
  END IF;
  IF NEW.municipality_code IS DISTINCT FROM OLD.municipality_code THEN
    RETURN NEW;  -- a move to another municipality: the tenant_isolation policy refuses it, after this trigger
  END IF;
  IF OLD.completed_at IS NOT NULL OR OLD.superseded_at IS NOT NULL
     OR (NEW.staff_id, NEW.token_sha256, NEW.totp_secret, NEW.issued_by,
         NEW.issued_by_operator, NEW.bootstrap, NEW.issued_at, NEW.expires_at)
        IS DISTINCT FROM (OLD.staff_id, OLD.token_sha256, OLD.totp_secret, OLD.issued_by,
         OLD.issued_by_operator, OLD.bootstrap, OLD.issued_at, OLD.expires_at)
     OR (NEW.completed_at IS NOT NULL AND OLD.expires_at <= now()) THEN
    RAISE EXCEPTION 'enrolment % is used, superseded or expired, or only its use may be recorded', OLD.enrolment_id
      USING ERRCODE = 'check_violation', CONSTRAINT = 'staff_enrolments_used_once';
  END IF;
  RETURN NEW;
END $$;

ALTER FUNCTION public.staff_enrolments_rules() OWNER TO kyufu_owner;

CREATE FUNCTION public.staff_role_grants_rules() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE admins int;
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF NEW.origin = 'migration' THEN
      RAISE EXCEPTION 'only migration 0014 records grants of origin migration'
        USING ERRCODE = 'check_violation', CONSTRAINT = 'staff_role_grants_rules';
    ELSIF NEW.origin = 'request' THEN
      IF NEW.status <> 'pending' THEN
        RAISE EXCEPTION 'a grant is requested pending and confirmed by another admin'
          USING ERRCODE = 'check_violation', CONSTRAINT = 'staff_role_grants_rules';
      END IF;
      IF NEW.requested_by IS NOT NULL AND NOT kyufu_enabled_admin(NEW.municipality_code, NEW.requested_by) THEN
        RAISE EXCEPTION 'staff % is not an enabled admin and cannot request grants', NEW.requested_by
          USING ERRCODE = 'check_violation', CONSTRAINT = 'staff_role_grants_rules';
      END IF;
    ELSE  -- bootstrap
      -- Two operators bootstrapping at once would each count one admin and make three.
      PERFORM pg_advisory_xact_lock(hashtextextended('kyufu_staff_bootstrap:' || NEW.municipality_code, 0));
      SELECT count(*) INTO admins FROM staff_users
      WHERE municipality_code = NEW.municipality_code AND 'admin' = ANY (roles) AND disabled_at IS NULL;
      IF admins >= 2 THEN
        RAISE EXCEPTION 'municipality % already has % enabled admins: no bootstrap', NEW.municipality_code, admins
          USING ERRCODE = 'check_violation', CONSTRAINT = 'staff_role_grants_bootstrap_limit';
      END IF;
      IF NEW.status <> 'confirmed' OR NOT EXISTS (
          SELECT 1 FROM staff_users WHERE municipality_code = NEW.municipality_code AND staff_id = NEW.staff_id
          AND created_by_operator = NEW.requested_by_operator)
         OR EXISTS (SELECT 1 FROM staff_role_grants WHERE municipality_code = NEW.municipality_code
                    AND staff_id = NEW.staff_id) THEN
        RAISE EXCEPTION 'a bootstrap makes a new account, created by the same operator, an admin'
          USING ERRCODE = 'check_violation', CONSTRAINT = 'staff_role_grants_bootstrap_limit';
      END IF;
    END IF;
    RETURN NEW;
  END IF;
  IF NEW.municipality_code IS DISTINCT FROM OLD.municipality_code THEN
    RETURN NEW;  -- a move to another municipality: the tenant_isolation policy refuses it, after this trigger
  END IF;
  IF (NEW.staff_id, NEW.role, NEW.origin, NEW.requested_by, NEW.requested_by_operator, NEW.requested_at)
     IS DISTINCT FROM (OLD.staff_id, OLD.role, OLD.origin, OLD.requested_by, OLD.requested_by_operator, OLD.requested_at)
     OR NOT ((OLD.status = 'pending' AND NEW.status IN ('confirmed', 'refused', 'cancelled'))
             OR (OLD.status = 'confirmed' AND NEW.status = 'revoked'
                 AND (NEW.decided_by, NEW.decided_by_operator, NEW.decided_at)
                     IS NOT DISTINCT FROM (OLD.decided_by, OLD.decided_by_operator, OLD.decided_at))) THEN
    RAISE EXCEPTION 'grant % cannot go from % to % or change who asked', OLD.grant_id, OLD.status, NEW.status
      USING ERRCODE = 'check_violation', CONSTRAINT = 'staff_role_grants_rules';
  END IF;
  -- (A confirmer who is the requester, or no console admin at all, is staff_role_grants_four_eyes' to refuse.)
  IF OLD.status = 'pending' AND NEW.status = 'confirmed' AND NEW.decided_by IS NOT NULL
     AND NEW.decided_by IS DISTINCT FROM NEW.requested_by THEN
    IF NOT kyufu_enabled_admin(NEW.municipality_code, NEW.decided_by) THEN
      RAISE EXCEPTION 'staff % is not an enabled admin and cannot confirm grants', NEW.decided_by
        USING ERRCODE = 'check_violation', CONSTRAINT = 'staff_role_grants_confirmer_admin';
    END IF;
    IF NOT kyufu_independent(NEW.municipality_code, NEW.requested_by, NEW.requested_by_operator,
                             NEW.decided_by, NEW.decided_by_operator) THEN
      RAISE EXCEPTION 'the confirming admin % is not independent of the requester of grant %',
        NEW.decided_by, NEW.grant_id
        USING ERRCODE = 'check_violation', CONSTRAINT = 'staff_role_grants_independent';
    END IF;
  END IF;
  RETURN NEW;
END $$;

ALTER FUNCTION public.staff_role_grants_rules() OWNER TO kyufu_owner;

CREATE FUNCTION public.staff_users_roles_granted() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE r text;
BEGIN
  FOR r IN SELECT unnest(NEW.roles)
           EXCEPT SELECT unnest(CASE WHEN TG_OP = 'UPDATE' THEN OLD.roles ELSE '{}'::text[] END) LOOP
    IF NOT EXISTS (SELECT 1 FROM staff_role_grants g WHERE g.municipality_code = NEW.municipality_code
                   AND g.staff_id = NEW.staff_id AND g.role = r AND g.status = 'confirmed') THEN
      RAISE EXCEPTION 'role % of staff % has no confirmed grant', r, NEW.staff_id
        USING ERRCODE = 'check_violation', CONSTRAINT = 'staff_users_roles_granted';
    END IF;
  END LOOP;
  IF TG_OP = 'UPDATE' THEN
    UPDATE staff_role_grants SET status = 'revoked', revoked_at = now()
    WHERE municipality_code = NEW.municipality_code AND staff_id = NEW.staff_id AND status = 'confirmed'
      AND NOT role = ANY (NEW.roles);
  END IF;
  RETURN NEW;
END $$;

ALTER FUNCTION public.staff_users_roles_granted() OWNER TO kyufu_owner;

CREATE TABLE duplicate_match.case_sides (
    case_id bigint NOT NULL,
    municipality_code text NOT NULL,
    program_id bigint NOT NULL,
    entitlement_id bigint NOT NULL,
    resolution text,
    comment text,
    resolved_by bigint,
    resolved_at timestamp with time zone,
    CONSTRAINT case_sides_comment_check CHECK ((length(comment) <= 1000)),
    CONSTRAINT case_sides_resolution_check CHECK ((resolution = ANY (ARRAY['pay'::text, 'not_pay'::text]))),
    CONSTRAINT case_sides_resolution_whole CHECK ((((resolution IS NULL) = (resolved_at IS NULL)) AND ((resolution IS NULL) = (resolved_by IS NULL))))
);

ALTER TABLE duplicate_match.case_sides OWNER TO kyufu_owner;

CREATE TABLE duplicate_match.cases (
    case_id bigint NOT NULL,
    reference text NOT NULL,
    scheme text NOT NULL,
    pair_key text NOT NULL,
    matched_on text[] NOT NULL,
    opened_at timestamp with time zone DEFAULT now() NOT NULL,
    closed_at timestamp with time zone,
    CONSTRAINT cases_matched_on_check CHECK (((matched_on <@ ARRAY['resident_code'::text, 'name_birth'::text]) AND (cardinality(matched_on) > 0))),
    CONSTRAINT cases_reference_check CHECK ((reference ~ '^D-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}$'::text))
);

ALTER TABLE duplicate_match.cases OWNER TO kyufu_owner;

ALTER TABLE duplicate_match.cases ALTER COLUMN case_id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME duplicate_match.cases_case_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE duplicate_match.hashes (
    key_version integer NOT NULL,
    scheme text NOT NULL,
    kind text NOT NULL,
    digest bytea NOT NULL,
    municipality_code text NOT NULL,
    program_id bigint NOT NULL,
    entitlement_id bigint NOT NULL,
    contributed_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT hashes_digest_check CHECK ((length(digest) = 32)),
    CONSTRAINT hashes_kind_check CHECK ((kind = ANY (ARRAY['resident_code'::text, 'name_birth'::text])))
);

ALTER TABLE duplicate_match.hashes OWNER TO kyufu_owner;

CREATE TABLE duplicate_match.keys (
    version integer NOT NULL,
    key_id text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    retired_at timestamp with time zone,
    CONSTRAINT keys_key_id_check CHECK ((key_id ~ '^[0-9a-f]{16}$'::text)),
    CONSTRAINT keys_version_check CHECK ((version > 0))
);

ALTER TABLE duplicate_match.keys OWNER TO kyufu_owner;

CREATE TABLE dv_match.digests (
    request_id bigint NOT NULL,
    person smallint NOT NULL,
    kind text NOT NULL,
    digest bytea NOT NULL,
    CONSTRAINT digests_digest_check CHECK ((length(digest) = 32)),
    CONSTRAINT digests_kind_check CHECK ((kind = ANY (ARRAY['resident_code'::text, 'name_birth'::text]))),
    CONSTRAINT digests_person_check CHECK (((person >= 0) AND (person <= 9)))
);

ALTER TABLE dv_match.digests OWNER TO kyufu_owner;

CREATE TABLE dv_match.matches (
    request_id bigint NOT NULL,
    entitlement_id bigint NOT NULL
);

ALTER TABLE dv_match.matches OWNER TO kyufu_owner;

CREATE TABLE dv_match.requests (
    request_id bigint NOT NULL,
    reference text NOT NULL,
    scheme text NOT NULL,
    key_version integer NOT NULL,
    filed_code text NOT NULL,
    filed_entitlement_id bigint NOT NULL,
    registered_code text NOT NULL,
    persons integer NOT NULL,
    state text DEFAULT 'filed'::text NOT NULL,
    refusal text,
    answered_by bigint,
    answered_at timestamp with time zone,
    filed_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT requests_answer_whole CHECK ((((state = 'filed'::text) = (answered_at IS NULL)) AND ((answered_at IS NULL) = (answered_by IS NULL)) AND ((state = 'refused'::text) = (refusal IS NOT NULL)))),
    CONSTRAINT requests_check CHECK ((filed_code <> registered_code)),
    CONSTRAINT requests_persons_check CHECK (((persons >= 1) AND (persons <= 10))),
    CONSTRAINT requests_refusal_check CHECK ((refusal = ANY (ARRAY['not_found'::text, 'already_paid'::text]))),
    CONSTRAINT requests_state_check CHECK ((state = ANY (ARRAY['filed'::text, 'excluded'::text, 'refused'::text])))
);

ALTER TABLE dv_match.requests OWNER TO kyufu_owner;

ALTER TABLE dv_match.requests ALTER COLUMN request_id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME dv_match.requests_request_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.application_account_changes (
    municipality_code text NOT NULL,
    change_id bigint NOT NULL,
    application_id bigint NOT NULL,
    entitlement_id bigint NOT NULL,
    changed_at timestamp with time zone DEFAULT now() NOT NULL,
    changed_by text NOT NULL,
    channel text NOT NULL,
    old_bank_code text NOT NULL,
    old_branch_code text NOT NULL,
    old_account_type smallint NOT NULL,
    old_account_number_enc bytea NOT NULL,
    old_holder_kana_enc bytea NOT NULL,
    new_bank_code text NOT NULL,
    new_branch_code text NOT NULL,
    CONSTRAINT application_account_changes_changed_by_check CHECK (((length(changed_by) >= 1) AND (length(changed_by) <= 200))),
    CONSTRAINT application_account_changes_channel_check CHECK ((channel = ANY (ARRAY['online'::text, 'paper'::text]))),
    CONSTRAINT application_account_changes_new_bank_code_check CHECK ((new_bank_code ~ '^[0-9]{4}$'::text)),
    CONSTRAINT application_account_changes_new_branch_code_check CHECK ((new_branch_code ~ '^[0-9]{3}$'::text)),
    CONSTRAINT application_account_changes_old_account_type_check CHECK ((old_account_type = ANY (ARRAY[1, 2, 4, 9]))),
    CONSTRAINT application_account_changes_old_bank_code_check CHECK ((old_bank_code ~ '^[0-9]{4}$'::text)),
    CONSTRAINT application_account_changes_old_branch_code_check CHECK ((old_branch_code ~ '^[0-9]{3}$'::text))
);

ALTER TABLE ONLY public.application_account_changes FORCE ROW LEVEL SECURITY;

ALTER TABLE public.application_account_changes OWNER TO kyufu_owner;

ALTER TABLE public.application_account_changes ALTER COLUMN change_id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.application_account_changes_change_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.application_account_keys (
    municipality_code text NOT NULL,
    application_id bigint NOT NULL,
    account_key bytea NOT NULL
);

ALTER TABLE ONLY public.application_account_keys FORCE ROW LEVEL SECURITY;

ALTER TABLE public.application_account_keys OWNER TO kyufu_owner;

CREATE TABLE public.application_proxies (
    municipality_code text NOT NULL,
    application_id bigint NOT NULL,
    relationship text NOT NULL,
    proxy_resident_code text,
    proxy_enc bytea NOT NULL,
    evidence text[] NOT NULL,
    pay_to_proxy boolean DEFAULT false NOT NULL,
    recorded_by bigint NOT NULL,
    recorded_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT application_proxies_evidence_check CHECK (((cardinality(evidence) > 0) AND (evidence <@ ARRAY['proxy_identity'::text, 'delegation'::text, 'legal_representation'::text, 'care_confirmation'::text, 'account_document'::text]))),
    CONSTRAINT application_proxies_identity_seen CHECK (('proxy_identity'::text = ANY (evidence))),
    CONSTRAINT application_proxies_member_known CHECK (((relationship = 'household_member'::text) = (proxy_resident_code IS NOT NULL))),
    CONSTRAINT application_proxies_proxy_resident_code_check CHECK ((proxy_resident_code ~ '^[0-9]{11}$'::text)),
    CONSTRAINT application_proxies_relationship_check CHECK ((relationship = ANY (ARRAY['household_member'::text, 'legal_representative'::text, 'caregiver'::text])))
);

ALTER TABLE ONLY public.application_proxies FORCE ROW LEVEL SECURITY;

ALTER TABLE public.application_proxies OWNER TO kyufu_owner;

CREATE TABLE public.applications (
    municipality_code text NOT NULL,
    application_id bigint NOT NULL,
    entitlement_id bigint NOT NULL,
    receipt_no text NOT NULL,
    channel text NOT NULL,
    status text DEFAULT 'received'::text NOT NULL,
    reason_codes text[] DEFAULT '{}'::text[] NOT NULL,
    applicant_resident_code text,
    is_proxy boolean DEFAULT false NOT NULL,
    bank_code text NOT NULL,
    branch_code text NOT NULL,
    account_type smallint NOT NULL,
    account_number_enc bytea NOT NULL,
    holder_kana_enc bytea NOT NULL,
    submitted_at timestamp with time zone DEFAULT now() NOT NULL,
    decided_at timestamp with time zone,
    decided_by bigint,
    identification text DEFAULT 'letter'::text NOT NULL,
    CONSTRAINT applications_account_type_check CHECK ((account_type = ANY (ARRAY[1, 2, 4, 9]))),
    CONSTRAINT applications_applicant_resident_code_check CHECK ((applicant_resident_code ~ '^[0-9]{11}$'::text)),
    CONSTRAINT applications_bank_code_check CHECK ((bank_code ~ '^[0-9]{4}$'::text)),
    CONSTRAINT applications_branch_code_check CHECK ((branch_code ~ '^[0-9]{3}$'::text)),
    CONSTRAINT applications_channel_check CHECK ((channel = ANY (ARRAY['online'::text, 'paper'::text, 'push'::text]))),
    CONSTRAINT applications_identification_known CHECK ((identification = ANY (ARRAY['letter'::text, 'registry_match'::text, 'counter'::text]))),
    CONSTRAINT applications_proxy_reviewed CHECK (((NOT is_proxy) OR (status <> 'verified'::text))),
    CONSTRAINT applications_registry_match_reviewed CHECK (((identification = 'letter'::text) OR (status <> 'verified'::text))),
    CONSTRAINT applications_status_check CHECK ((status = ANY (ARRAY['received'::text, 'verified'::text, 'needs_review'::text, 'approved'::text, 'rejected'::text, 'withdrawn'::text])))
);

ALTER TABLE ONLY public.applications FORCE ROW LEVEL SECURITY;

ALTER TABLE public.applications OWNER TO kyufu_owner;

ALTER TABLE public.applications ALTER COLUMN application_id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.applications_application_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.debt_notices (
    municipality_code text NOT NULL,
    notice_id bigint NOT NULL,
    debt_id bigint NOT NULL,
    kind text NOT NULL,
    sent_on date NOT NULL,
    note text DEFAULT ''::text NOT NULL,
    recorded_by bigint NOT NULL,
    recorded_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT debt_notices_kind_check CHECK ((kind = ANY (ARRAY['demand'::text, 'reminder'::text]))),
    CONSTRAINT debt_notices_note_check CHECK ((length(note) <= 1000))
);

ALTER TABLE ONLY public.debt_notices FORCE ROW LEVEL SECURITY;

ALTER TABLE public.debt_notices OWNER TO kyufu_owner;

ALTER TABLE public.debt_notices ALTER COLUMN notice_id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.debt_notices_notice_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.debt_repayments (
    municipality_code text NOT NULL,
    repayment_id bigint NOT NULL,
    debt_id bigint NOT NULL,
    amount_yen bigint NOT NULL,
    received_on date NOT NULL,
    note text DEFAULT ''::text NOT NULL,
    recorded_by bigint NOT NULL,
    recorded_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT debt_repayments_amount_yen_check CHECK (((amount_yen >= 1) AND (amount_yen <= '9999999999'::bigint))),
    CONSTRAINT debt_repayments_note_check CHECK ((length(note) <= 1000))
);

ALTER TABLE ONLY public.debt_repayments FORCE ROW LEVEL SECURITY;

ALTER TABLE public.debt_repayments OWNER TO kyufu_owner;

ALTER TABLE public.debt_repayments ALTER COLUMN repayment_id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.debt_repayments_repayment_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE VIEW public.duplicate_cases WITH (security_barrier='true') AS
 SELECT s.municipality_code,
    c.reference,
    c.scheme,
    c.matched_on,
    c.opened_at,
    c.closed_at,
    s.program_id,
    s.entitlement_id,
    s.resolution,
    s.comment,
    s.resolved_by,
    s.resolved_at,
    o.municipality_code AS other_municipality_code,
    (o.resolved_at IS NOT NULL) AS other_answered,
    ARRAY( SELECT DISTINCT h.digest
           FROM (duplicate_match.hashes h
             JOIN duplicate_match.hashes x ON (((x.key_version = h.key_version) AND (x.scheme = h.scheme) AND (x.kind = h.kind) AND (x.digest = h.digest))))
          WHERE ((h.municipality_code = s.municipality_code) AND (h.entitlement_id = s.entitlement_id) AND (x.municipality_code = o.municipality_code) AND (x.entitlement_id = o.entitlement_id))) AS matched_digests
   FROM ((duplicate_match.case_sides s
     JOIN duplicate_match.cases c ON ((c.case_id = s.case_id)))
     JOIN duplicate_match.case_sides o ON (((o.case_id = s.case_id) AND (o.municipality_code <> s.municipality_code))))
  WHERE (s.municipality_code = public.kyufu_current_municipality());

ALTER VIEW public.duplicate_cases OWNER TO kyufu_owner;

CREATE VIEW public.duplicate_holds WITH (security_barrier='true') AS
 SELECT s.municipality_code,
    s.entitlement_id,
    c.reference
   FROM (duplicate_match.case_sides s
     JOIN duplicate_match.cases c ON ((c.case_id = s.case_id)))
  WHERE ((s.municipality_code = public.kyufu_current_municipality()) AND ((c.closed_at IS NULL) OR (s.resolution = 'not_pay'::text)));

ALTER VIEW public.duplicate_holds OWNER TO kyufu_owner;

CREATE TABLE public.dv_exclusions (
    municipality_code text NOT NULL,
    reference text NOT NULL,
    entitlement_id bigint NOT NULL,
    resident_code text NOT NULL,
    person smallint NOT NULL,
    counted boolean NOT NULL,
    share_yen bigint NOT NULL,
    applied_by bigint NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT dv_exclusions_check CHECK (((share_yen >= 0) AND (counted OR (share_yen = 0)))),
    CONSTRAINT dv_exclusions_person_check CHECK (((person >= 0) AND (person <= 9))),
    CONSTRAINT dv_exclusions_reference_check CHECK ((reference ~ '^V-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}$'::text)),
    CONSTRAINT dv_exclusions_resident_code_check CHECK ((resident_code ~ '^[0-9]{11}$'::text))
);

ALTER TABLE ONLY public.dv_exclusions FORCE ROW LEVEL SECURITY;

ALTER TABLE public.dv_exclusions OWNER TO kyufu_owner;

CREATE VIEW public.dv_filed WITH (security_barrier='true') AS
 SELECT filed_code AS municipality_code,
    reference,
    registered_code,
    filed_entitlement_id AS entitlement_id,
    persons,
    state,
    refusal,
    answered_at,
    filed_at,
    (EXISTS ( SELECT 1
           FROM dv_match.matches m
          WHERE (m.request_id = r.request_id))) AS matched
   FROM dv_match.requests r
  WHERE (filed_code = public.kyufu_current_municipality());

ALTER VIEW public.dv_filed OWNER TO kyufu_owner;

CREATE VIEW public.dv_holds WITH (security_barrier='true') AS
 SELECT r.registered_code AS municipality_code,
    m.entitlement_id,
    r.reference
   FROM (dv_match.requests r
     JOIN dv_match.matches m ON ((m.request_id = r.request_id)))
  WHERE ((r.registered_code = public.kyufu_current_municipality()) AND (r.state = 'filed'::text))
UNION ALL
 SELECT r.filed_code AS municipality_code,
    r.filed_entitlement_id AS entitlement_id,
    r.reference
   FROM dv_match.requests r
  WHERE ((r.filed_code = public.kyufu_current_municipality()) AND (r.state <> 'excluded'::text));

ALTER VIEW public.dv_holds OWNER TO kyufu_owner;

CREATE VIEW public.dv_incoming WITH (security_barrier='true') AS
 SELECT registered_code AS municipality_code,
    reference,
    scheme,
    persons,
    state,
    refusal,
    answered_by,
    answered_at,
    filed_at,
    ARRAY( SELECT m.entitlement_id
           FROM dv_match.matches m
          WHERE (m.request_id = r.request_id)
          ORDER BY m.entitlement_id) AS entitlement_ids,
    ARRAY( SELECT d.person
           FROM dv_match.digests d
          WHERE (d.request_id = r.request_id)
          ORDER BY d.person, d.kind) AS digest_persons,
    ARRAY( SELECT d.digest
           FROM dv_match.digests d
          WHERE (d.request_id = r.request_id)
          ORDER BY d.person, d.kind) AS digests
   FROM dv_match.requests r
  WHERE (registered_code = public.kyufu_current_municipality());

ALTER VIEW public.dv_incoming OWNER TO kyufu_owner;

CREATE TABLE public.dv_requests (
    municipality_code text NOT NULL,
    request_id bigint NOT NULL,
    reference text NOT NULL,
    program_id bigint NOT NULL,
    registered_municipality_code text NOT NULL,
    evidence text NOT NULL,
    evidence_issued_on date NOT NULL,
    persons integer NOT NULL,
    details_enc bytea NOT NULL,
    entitlement_id bigint NOT NULL,
    application_id bigint NOT NULL,
    filed_by bigint NOT NULL,
    filed_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT dv_requests_elsewhere CHECK ((registered_municipality_code <> municipality_code)),
    CONSTRAINT dv_requests_evidence_check CHECK ((evidence = ANY (ARRAY['protection_order'::text, 'support_certificate'::text]))),
    CONSTRAINT dv_requests_persons_check CHECK (((persons >= 1) AND (persons <= 10))),
    CONSTRAINT dv_requests_reference_check CHECK ((reference ~ '^V-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}$'::text))
);

ALTER TABLE ONLY public.dv_requests FORCE ROW LEVEL SECURITY;

ALTER TABLE public.dv_requests OWNER TO kyufu_owner;

ALTER TABLE public.dv_requests ALTER COLUMN request_id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.dv_requests_request_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.eligibility_runs (
    municipality_code text NOT NULL,
    program_id bigint NOT NULL,
    program_digest text NOT NULL,
    snapshot_id bigint NOT NULL,
    tax_snapshot_id bigint,
    determined_at timestamp with time zone DEFAULT now() NOT NULL
);

ALTER TABLE ONLY public.eligibility_runs FORCE ROW LEVEL SECURITY;

ALTER TABLE public.eligibility_runs OWNER TO kyufu_owner;

CREATE TABLE public.entitlement_conflicts (
    municipality_code text NOT NULL,
    conflict_id bigint NOT NULL,
    entitlement_id bigint NOT NULL,
    snapshot_id bigint NOT NULL,
    kind text NOT NULL,
    new_amount_yen bigint,
    new_members integer,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    resolved_at timestamp with time zone,
    resolved_by bigint,
    CONSTRAINT entitlement_conflicts_kind_check CHECK ((kind = ANY (ARRAY['no_longer_eligible'::text, 'amount_changed'::text]))),
    CONSTRAINT entitlement_conflicts_new_amount_yen_check CHECK ((new_amount_yen > 0))
);

ALTER TABLE ONLY public.entitlement_conflicts FORCE ROW LEVEL SECURITY;

ALTER TABLE public.entitlement_conflicts OWNER TO kyufu_owner;

ALTER TABLE public.entitlement_conflicts ALTER COLUMN conflict_id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.entitlement_conflicts_conflict_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.entitlements (
    municipality_code text NOT NULL,
    entitlement_id bigint NOT NULL,
    program_id bigint NOT NULL,
    snapshot_id bigint NOT NULL,
    household_no text NOT NULL,
    head_resident_code text,
    members_counted integer NOT NULL,
    amount_yen bigint NOT NULL,
    rule text NOT NULL,
    status text DEFAULT 'open'::text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    dv_reference text,
    CONSTRAINT entitlements_amount_yen_check CHECK ((amount_yen > 0)),
    CONSTRAINT entitlements_dv_household CHECK (((dv_reference IS NULL) OR (household_no = dv_reference))),
    CONSTRAINT entitlements_dv_reference_format CHECK ((dv_reference ~ '^V-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}$'::text)),
    CONSTRAINT entitlements_head_known CHECK (((head_resident_code IS NOT NULL) OR (dv_reference IS NOT NULL))),
    CONSTRAINT entitlements_head_resident_code_check CHECK (((octet_length(head_resident_code) = 11) AND (head_resident_code !~ '[^0-9]'::text))),
    CONSTRAINT entitlements_members_counted_check CHECK ((members_counted > 0)),
    CONSTRAINT entitlements_status_check CHECK ((status = ANY (ARRAY['open'::text, 'claimed'::text, 'declined'::text, 'withdrawn'::text, 'paid'::text])))
);

ALTER TABLE ONLY public.entitlements FORCE ROW LEVEL SECURITY;

ALTER TABLE public.entitlements OWNER TO kyufu_owner;

COMMENT ON COLUMN public.entitlements.dv_reference IS 'set on the entitlement a municipality pays DV evacuees under (dv_requests): not from its registry';

ALTER TABLE public.entitlements ALTER COLUMN entitlement_id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.entitlements_entitlement_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.intake_duplicate_claims (
    municipality_code text NOT NULL,
    duplicate_id bigint NOT NULL,
    entitlement_id bigint NOT NULL,
    application_id bigint NOT NULL,
    channel text NOT NULL,
    attempted_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT intake_duplicate_claims_channel_check CHECK ((channel = ANY (ARRAY['online'::text, 'paper'::text, 'push'::text])))
);

ALTER TABLE ONLY public.intake_duplicate_claims FORCE ROW LEVEL SECURITY;

ALTER TABLE public.intake_duplicate_claims OWNER TO kyufu_owner;

ALTER TABLE public.intake_duplicate_claims ALTER COLUMN duplicate_id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.intake_duplicate_claims_duplicate_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.intake_idempotency_keys (
    municipality_code text NOT NULL,
    idempotency_key text NOT NULL,
    request_sha256 bytea NOT NULL,
    status_code smallint NOT NULL,
    response jsonb NOT NULL,
    application_id bigint,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT intake_idempotency_keys_idempotency_key_check CHECK (((length(idempotency_key) >= 1) AND (length(idempotency_key) <= 255))),
    CONSTRAINT intake_idempotency_keys_request_sha256_check CHECK ((length(request_sha256) = 32)),
    CONSTRAINT intake_idempotency_keys_status_code_check CHECK (((status_code >= 200) AND (status_code <= 599)))
);

ALTER TABLE ONLY public.intake_idempotency_keys FORCE ROW LEVEL SECURITY;

ALTER TABLE public.intake_idempotency_keys OWNER TO kyufu_owner;

CREATE TABLE public.intake_identity_lockouts (
    municipality_code text NOT NULL,
    identity_key bytea NOT NULL,
    failed_attempts integer DEFAULT 0 NOT NULL,
    locked_until timestamp with time zone,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT intake_identity_lockouts_failed_attempts_check CHECK ((failed_attempts >= 0)),
    CONSTRAINT intake_identity_lockouts_identity_key_check CHECK ((length(identity_key) = 32))
);

ALTER TABLE ONLY public.intake_identity_lockouts FORCE ROW LEVEL SECURITY;

ALTER TABLE public.intake_identity_lockouts OWNER TO kyufu_owner;

CREATE TABLE public.letters (
    municipality_code text NOT NULL,
    letter_id bigint NOT NULL,
    entitlement_id bigint NOT NULL,
    kind text NOT NULL,
    access_code text NOT NULL,
    pin_hash bytea NOT NULL,
    issued_at timestamp with time zone DEFAULT now() NOT NULL,
    exported_at timestamp with time zone,
    invalidated_at timestamp with time zone,
    failed_attempts integer DEFAULT 0 NOT NULL,
    locked_until timestamp with time zone,
    pin_enc bytea,
    CONSTRAINT letters_kind_check CHECK ((kind = ANY (ARRAY['confirmation'::text, 'push_notice'::text]))),
    CONSTRAINT letters_pin_until_export CHECK (((exported_at IS NULL) OR (pin_enc IS NULL)))
);

ALTER TABLE ONLY public.letters FORCE ROW LEVEL SECURITY;

ALTER TABLE public.letters OWNER TO kyufu_owner;

ALTER TABLE public.letters ALTER COLUMN letter_id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.letters_letter_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.municipalities (
    code text NOT NULL,
    name text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT municipalities_code_valid CHECK (public.kyufu_valid_municipality_code(code)),
    CONSTRAINT municipalities_name_check CHECK (((length(name) >= 1) AND (length(name) <= 100)))
);

ALTER TABLE public.municipalities OWNER TO kyufu_owner;

CREATE TABLE public.municipality_bank_settings (
    municipality_code text NOT NULL,
    requester_code text NOT NULL,
    requester_name_kana text NOT NULL,
    bank_code text NOT NULL,
    bank_name_kana text DEFAULT ''::text NOT NULL,
    branch_code text NOT NULL,
    branch_name_kana text DEFAULT ''::text NOT NULL,
    account_type smallint NOT NULL,
    account_number text NOT NULL,
    separator text NOT NULL,
    clearing_house_fill text DEFAULT 'zeros'::text NOT NULL,
    transfer_designation text DEFAULT '7'::text NOT NULL,
    reference_field text DEFAULT 'customer_code1'::text NOT NULL,
    allow_wo boolean DEFAULT false NOT NULL,
    age_recipients text[] NOT NULL,
    min_business_days_ahead integer DEFAULT 2 NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_by bigint,
    CONSTRAINT municipality_bank_settings_account_number_check CHECK ((account_number ~ '^[0-9]{1,7}$'::text)),
    CONSTRAINT municipality_bank_settings_account_type_check CHECK ((account_type = ANY (ARRAY[1, 2, 9]))),
    CONSTRAINT municipality_bank_settings_age_recipients_check CHECK (((cardinality(age_recipients) >= 1) AND (cardinality(age_recipients) <= 10))),
    CONSTRAINT municipality_bank_settings_bank_code_check CHECK ((bank_code ~ '^[0-9]{4}$'::text)),
    CONSTRAINT municipality_bank_settings_bank_name_kana_check CHECK ((length(bank_name_kana) <= 15)),
    CONSTRAINT municipality_bank_settings_branch_code_check CHECK ((branch_code ~ '^[0-9]{3}$'::text)),
    CONSTRAINT municipality_bank_settings_branch_name_kana_check CHECK ((length(branch_name_kana) <= 15)),
    CONSTRAINT municipality_bank_settings_clearing_house_fill_check CHECK ((clearing_house_fill = ANY (ARRAY['zeros'::text, 'spaces'::text]))),
    CONSTRAINT municipality_bank_settings_min_business_days_ahead_check CHECK (((min_business_days_ahead >= 0) AND (min_business_days_ahead <= 30))),
    CONSTRAINT municipality_bank_settings_reference_field_check CHECK ((reference_field = ANY (ARRAY['customer_code1'::text, 'edi'::text]))),
    CONSTRAINT municipality_bank_settings_requester_code_check CHECK ((requester_code ~ '^[0-9]{1,10}$'::text)),
    CONSTRAINT municipality_bank_settings_requester_name_kana_check CHECK (((length(requester_name_kana) >= 1) AND (length(requester_name_kana) <= 40))),
    CONSTRAINT municipality_bank_settings_separator_check CHECK ((separator = ANY (ARRAY['crlf'::text, 'none'::text]))),
    CONSTRAINT municipality_bank_settings_transfer_designation_check CHECK ((transfer_designation = ANY (ARRAY['7'::text, '8'::text, '0'::text, ' '::text])))
);

ALTER TABLE ONLY public.municipality_bank_settings FORCE ROW LEVEL SECURITY;

ALTER TABLE public.municipality_bank_settings OWNER TO kyufu_owner;

CREATE TABLE public.municipality_keys (
    municipality_code text NOT NULL,
    purpose text NOT NULL,
    version integer NOT NULL,
    wrapped_key bytea NOT NULL,
    master_key_id text NOT NULL,
    public_key bytea,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT municipality_keys_purpose_check CHECK ((purpose = ANY (ARRAY['data'::text, 'signing'::text]))),
    CONSTRAINT municipality_keys_version_check CHECK ((version > 0))
);

ALTER TABLE ONLY public.municipality_keys FORCE ROW LEVEL SECURITY;

ALTER TABLE public.municipality_keys OWNER TO kyufu_owner;

CREATE TABLE public.outbox (
    municipality_code text NOT NULL,
    outbox_id bigint NOT NULL,
    job_name text NOT NULL,
    job_id text NOT NULL,
    args jsonb DEFAULT '[]'::jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    enqueued_at timestamp with time zone,
    enqueue_count integer DEFAULT 0 NOT NULL,
    done_at timestamp with time zone
);

ALTER TABLE ONLY public.outbox FORCE ROW LEVEL SECURITY;

ALTER TABLE public.outbox OWNER TO kyufu_owner;

ALTER TABLE public.outbox ALTER COLUMN outbox_id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.outbox_outbox_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.paper_boxes (
    municipality_code text NOT NULL,
    box_id bigint NOT NULL,
    program_id bigint NOT NULL,
    box_no text NOT NULL,
    received_on date NOT NULL,
    form_count integer NOT NULL,
    received_by bigint NOT NULL,
    received_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT paper_boxes_box_no_check CHECK ((box_no ~ '^[0-9A-Z][0-9A-Z-]{0,19}$'::text)),
    CONSTRAINT paper_boxes_form_count_check CHECK (((form_count >= 1) AND (form_count <= 2000)))
);

ALTER TABLE ONLY public.paper_boxes FORCE ROW LEVEL SECURITY;

ALTER TABLE public.paper_boxes OWNER TO kyufu_owner;

ALTER TABLE public.paper_boxes ALTER COLUMN box_id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.paper_boxes_box_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.paper_deficiencies (
    municipality_code text NOT NULL,
    form_id bigint NOT NULL,
    entitlement_id bigint,
    codes text[] NOT NULL,
    recorded_by bigint NOT NULL,
    recorded_at timestamp with time zone DEFAULT now() NOT NULL,
    letter_exported_at timestamp with time zone,
    CONSTRAINT paper_deficiencies_codes_check CHECK (((cardinality(codes) >= 1) AND (codes <@ ARRAY['id_document_missing'::text, 'account_document_missing'::text, 'identifier_illegible'::text, 'members_illegible'::text, 'account_illegible'::text, 'holder_illegible'::text, 'members_partial'::text]))),
    CONSTRAINT paper_deficiencies_letter_needs_address CHECK (((letter_exported_at IS NULL) OR (entitlement_id IS NOT NULL)))
);

ALTER TABLE ONLY public.paper_deficiencies FORCE ROW LEVEL SECURITY;

ALTER TABLE public.paper_deficiencies OWNER TO kyufu_owner;

CREATE TABLE public.paper_entries (
    municipality_code text NOT NULL,
    form_id bigint NOT NULL,
    entry_no smallint NOT NULL,
    keyed_by bigint NOT NULL,
    keyed_at timestamp with time zone DEFAULT now() NOT NULL,
    access_code text,
    household_no text,
    entitlement_id bigint,
    members smallint[],
    bank_code text,
    branch_code text,
    account_type smallint,
    account_number_enc bytea,
    holder_kana_enc bytea,
    id_document boolean NOT NULL,
    account_document boolean NOT NULL,
    illegible text[] DEFAULT '{}'::text[] NOT NULL,
    CONSTRAINT paper_entries_access_code_check CHECK ((access_code ~ '^[0-9A-Z]{12}$'::text)),
    CONSTRAINT paper_entries_account CHECK (((('account'::text = ANY (illegible)) = (bank_code IS NULL)) AND ((bank_code IS NULL) = (branch_code IS NULL)) AND ((bank_code IS NULL) = (account_type IS NULL)) AND ((bank_code IS NULL) = (account_number_enc IS NULL)))),
    CONSTRAINT paper_entries_account_type_check CHECK ((account_type = ANY (ARRAY[1, 2, 4, 9]))),
    CONSTRAINT paper_entries_bank_code_check CHECK ((bank_code ~ '^[0-9]{4}$'::text)),
    CONSTRAINT paper_entries_branch_code_check CHECK ((branch_code ~ '^[0-9]{3}$'::text)),
    CONSTRAINT paper_entries_entry_no_check CHECK ((entry_no = ANY (ARRAY[1, 2, 3]))),
    CONSTRAINT paper_entries_holder CHECK ((('holder'::text = ANY (illegible)) = (holder_kana_enc IS NULL))),
    CONSTRAINT paper_entries_household_no_check CHECK (((length(household_no) >= 1) AND (length(household_no) <= 40))),
    CONSTRAINT paper_entries_identifier CHECK ((((access_code IS NULL) OR (household_no IS NULL)) AND (('identifier'::text = ANY (illegible)) = (entitlement_id IS NULL)))),
    CONSTRAINT paper_entries_illegible_check CHECK ((illegible <@ ARRAY['identifier'::text, 'members'::text, 'account'::text, 'holder'::text])),
    CONSTRAINT paper_entries_members CHECK ((('members'::text = ANY (illegible)) = (members IS NULL))),
    CONSTRAINT paper_entries_members_check CHECK (((members IS NULL) OR (((cardinality(members) >= 1) AND (cardinality(members) <= 99)) AND (1 <= ALL (members)))))
);

ALTER TABLE ONLY public.paper_entries FORCE ROW LEVEL SECURITY;

ALTER TABLE public.paper_entries OWNER TO kyufu_owner;

CREATE TABLE public.paper_forms (
    municipality_code text NOT NULL,
    form_id bigint NOT NULL,
    box_id bigint NOT NULL,
    seq integer NOT NULL,
    state text DEFAULT 'received'::text NOT NULL,
    resolve_reason text,
    entitlement_id bigint,
    application_id bigint,
    decided_entry smallint,
    decided_at timestamp with time zone,
    CONSTRAINT paper_forms_application CHECK ((((state = ANY (ARRAY['submitted'::text, 'duplicate'::text])) = (application_id IS NOT NULL)) AND ((state <> ALL (ARRAY['submitted'::text, 'duplicate'::text, 'closed'::text])) OR (entitlement_id IS NOT NULL)))),
    CONSTRAINT paper_forms_decided CHECK ((((state = ANY (ARRAY['submitted'::text, 'duplicate'::text, 'closed'::text, 'deficient'::text])) = (decided_at IS NOT NULL)) AND ((decided_at IS NULL) = (decided_entry IS NULL)))),
    CONSTRAINT paper_forms_decided_entry_check CHECK ((decided_entry = ANY (ARRAY[2, 3]))),
    CONSTRAINT paper_forms_resolve_reason CHECK (((state <> 'to_resolve'::text) OR (resolve_reason IS NOT NULL))),
    CONSTRAINT paper_forms_resolve_reason_check CHECK ((resolve_reason = ANY (ARRAY['mismatch'::text, 'members_partial'::text]))),
    CONSTRAINT paper_forms_seq_check CHECK ((seq >= 1)),
    CONSTRAINT paper_forms_state_check CHECK ((state = ANY (ARRAY['received'::text, 'keyed_once'::text, 'to_resolve'::text, 'submitted'::text, 'duplicate'::text, 'closed'::text, 'deficient'::text])))
);

ALTER TABLE ONLY public.paper_forms FORCE ROW LEVEL SECURITY;

ALTER TABLE public.paper_forms OWNER TO kyufu_owner;

ALTER TABLE public.paper_forms ALTER COLUMN form_id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.paper_forms_form_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.payment_debts (
    municipality_code text NOT NULL,
    debt_id bigint NOT NULL,
    payment_id bigint NOT NULL,
    amount_yen bigint NOT NULL,
    reason text NOT NULL,
    opened_by bigint NOT NULL,
    opened_at timestamp with time zone DEFAULT now() NOT NULL,
    status text DEFAULT 'open'::text NOT NULL,
    repaid_yen bigint DEFAULT 0 NOT NULL,
    write_off_requested_by bigint,
    write_off_requested_at timestamp with time zone,
    write_off_reason text,
    written_off_by bigint,
    written_off_at timestamp with time zone,
    written_off_yen bigint,
    CONSTRAINT payment_debts_amount_yen_check CHECK (((amount_yen >= 1) AND (amount_yen <= '9999999999'::bigint))),
    CONSTRAINT payment_debts_balance_not_negative CHECK (((repaid_yen >= 0) AND (repaid_yen <= amount_yen))),
    CONSTRAINT payment_debts_reason_check CHECK (((length(reason) >= 1) AND (length(reason) <= 1000))),
    CONSTRAINT payment_debts_repaid_when_nothing_left CHECK (((status = 'repaid'::text) = (repaid_yen = amount_yen))),
    CONSTRAINT payment_debts_status_check CHECK ((status = ANY (ARRAY['open'::text, 'repaid'::text, 'written_off'::text]))),
    CONSTRAINT payment_debts_write_off_four_eyes CHECK (((written_off_by IS NULL) OR (written_off_by <> write_off_requested_by))),
    CONSTRAINT payment_debts_write_off_reason_check CHECK (((length(write_off_reason) >= 1) AND (length(write_off_reason) <= 1000))),
    CONSTRAINT payment_debts_write_off_request_whole CHECK ((((write_off_requested_by IS NULL) = (write_off_requested_at IS NULL)) AND ((write_off_requested_by IS NULL) = (write_off_reason IS NULL)))),
    CONSTRAINT payment_debts_written_off_balance CHECK (((written_off_yen IS NULL) OR (written_off_yen = (amount_yen - repaid_yen)))),
    CONSTRAINT payment_debts_written_off_whole CHECK ((((status = 'written_off'::text) = (written_off_by IS NOT NULL)) AND ((written_off_by IS NULL) = (written_off_at IS NULL)) AND ((written_off_by IS NULL) = (written_off_yen IS NULL)) AND ((written_off_by IS NULL) OR (write_off_requested_by IS NOT NULL))))
);

ALTER TABLE ONLY public.payment_debts FORCE ROW LEVEL SECURITY;

ALTER TABLE public.payment_debts OWNER TO kyufu_owner;

COMMENT ON COLUMN public.payment_debts.status IS 'open → repaid (the repayments reach the amount) | written_off (requested by one staff member, approved by another); final';

ALTER TABLE public.payment_debts ALTER COLUMN debt_id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.payment_debts_debt_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.payment_followups (
    municipality_code text NOT NULL,
    payment_id bigint NOT NULL,
    recontact_at timestamp with time zone DEFAULT now() NOT NULL,
    recontact_by bigint NOT NULL,
    note text DEFAULT ''::text NOT NULL,
    CONSTRAINT payment_followups_note_check CHECK ((length(note) <= 1000))
);

ALTER TABLE ONLY public.payment_followups FORCE ROW LEVEL SECURITY;

ALTER TABLE public.payment_followups OWNER TO kyufu_owner;

CREATE TABLE public.payment_holds (
    municipality_code text NOT NULL,
    hold_id bigint NOT NULL,
    entitlement_id bigint NOT NULL,
    payment_id bigint,
    reason text NOT NULL,
    kind text DEFAULT 'hold'::text NOT NULL,
    source text NOT NULL,
    note text,
    placed_by bigint,
    placed_at timestamp with time zone DEFAULT now() NOT NULL,
    snapshot_id bigint,
    payee_resident_code text,
    finding text,
    removed_on date,
    suggestion text,
    new_head_resident_code text,
    stopped_by bigint,
    stopped_at timestamp with time zone,
    stop_note text,
    released_by bigint,
    released_at timestamp with time zone,
    decision text,
    decision_note text,
    CONSTRAINT payment_holds_decision_check CHECK ((decision = ANY (ARRAY['release'::text, 'new_head'::text]))),
    CONSTRAINT payment_holds_decision_note_check CHECK ((length(decision_note) <= 1000)),
    CONSTRAINT payment_holds_finding_check CHECK ((finding = ANY (ARRAY['died'::text, 'moved_out'::text, 'removed'::text]))),
    CONSTRAINT payment_holds_kind_check CHECK ((kind = ANY (ARRAY['hold'::text, 'stop'::text]))),
    CONSTRAINT payment_holds_new_head_known CHECK (((decision <> 'new_head'::text) OR (new_head_resident_code IS NOT NULL))),
    CONSTRAINT payment_holds_new_head_resident_code_check CHECK ((new_head_resident_code ~ '^[0-9]{11}$'::text)),
    CONSTRAINT payment_holds_new_head_suggested CHECK (((suggestion <> 'new_head'::text) OR (new_head_resident_code IS NOT NULL))),
    CONSTRAINT payment_holds_note_check CHECK ((length(note) <= 1000)),
    CONSTRAINT payment_holds_payee_resident_code_check CHECK ((payee_resident_code ~ '^[0-9]{11}$'::text)),
    CONSTRAINT payment_holds_reason_check CHECK ((reason = ANY (ARRAY['dv'::text, 'death'::text, 'moved_out'::text, 'investigation'::text, 'seizure'::text]))),
    CONSTRAINT payment_holds_release_whole CHECK ((((released_at IS NULL) = (released_by IS NULL)) AND ((released_at IS NULL) = (decision IS NULL)))),
    CONSTRAINT payment_holds_screening_whole CHECK ((((source = 'screening'::text) = (snapshot_id IS NOT NULL)) AND ((snapshot_id IS NULL) = (finding IS NULL)) AND ((snapshot_id IS NULL) = (payee_resident_code IS NULL)))),
    CONSTRAINT payment_holds_source_check CHECK ((source = ANY (ARRAY['staff'::text, 'screening'::text, 'system'::text]))),
    CONSTRAINT payment_holds_staff_placed CHECK (((source <> 'staff'::text) OR (placed_by IS NOT NULL))),
    CONSTRAINT payment_holds_stop_four_eyes CHECK (((kind <> 'stop'::text) OR (released_by IS NULL) OR (released_by <> stopped_by))),
    CONSTRAINT payment_holds_stop_note_check CHECK ((length(stop_note) <= 1000)),
    CONSTRAINT payment_holds_stop_whole CHECK ((((kind = 'stop'::text) = (stopped_at IS NOT NULL)) AND ((stopped_at IS NULL) = (stopped_by IS NULL)) AND ((stopped_at IS NULL) = (stop_note IS NULL)))),
    CONSTRAINT payment_holds_suggestion_check CHECK ((suggestion = ANY (ARRAY['release'::text, 'new_head'::text, 'stop'::text])))
);

ALTER TABLE ONLY public.payment_holds FORCE ROW LEVEL SECURITY;

ALTER TABLE public.payment_holds OWNER TO kyufu_owner;

ALTER TABLE public.payment_holds ALTER COLUMN hold_id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.payment_holds_hold_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.payment_recalls (
    municipality_code text NOT NULL,
    recall_id bigint NOT NULL,
    payment_id bigint NOT NULL,
    reason text NOT NULL,
    requested_by bigint NOT NULL,
    requested_at timestamp with time zone DEFAULT now() NOT NULL,
    status text DEFAULT 'requested'::text NOT NULL,
    bank_answer text,
    fee_yen bigint,
    answered_by bigint,
    answered_at timestamp with time zone,
    CONSTRAINT payment_recalls_answer_whole CHECK ((((status = 'requested'::text) = (answered_at IS NULL)) AND ((answered_at IS NULL) = (answered_by IS NULL)) AND ((answered_at IS NULL) = (bank_answer IS NULL)) AND ((answered_at IS NULL) = (fee_yen IS NULL)))),
    CONSTRAINT payment_recalls_bank_answer_check CHECK (((length(bank_answer) >= 1) AND (length(bank_answer) <= 1000))),
    CONSTRAINT payment_recalls_fee_yen_check CHECK (((fee_yen >= 0) AND (fee_yen <= '9999999999'::bigint))),
    CONSTRAINT payment_recalls_reason_check CHECK (((length(reason) >= 1) AND (length(reason) <= 1000))),
    CONSTRAINT payment_recalls_status_check CHECK ((status = ANY (ARRAY['requested'::text, 'returned'::text, 'refused'::text])))
);

ALTER TABLE ONLY public.payment_recalls FORCE ROW LEVEL SECURITY;

ALTER TABLE public.payment_recalls OWNER TO kyufu_owner;

COMMENT ON COLUMN public.payment_recalls.status IS 'requested → returned (組戻し済) | refused (組戻し不能); an answer is final';

ALTER TABLE public.payment_recalls ALTER COLUMN recall_id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.payment_recalls_recall_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.payment_reissues (
    municipality_code text NOT NULL,
    payment_id bigint NOT NULL,
    replaces_payment_id bigint NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);

ALTER TABLE ONLY public.payment_reissues FORCE ROW LEVEL SECURITY;

ALTER TABLE public.payment_reissues OWNER TO kyufu_owner;

CREATE TABLE public.payment_returns (
    municipality_code text NOT NULL,
    payment_id bigint NOT NULL,
    import_id bigint NOT NULL,
    reason_code text NOT NULL,
    reason text NOT NULL,
    CONSTRAINT payment_returns_reason_code_check CHECK ((reason_code = ANY (ARRAY['2'::text, '3'::text, 'N'::text, '9'::text])))
);

ALTER TABLE ONLY public.payment_returns FORCE ROW LEVEL SECURITY;

ALTER TABLE public.payment_returns OWNER TO kyufu_owner;

CREATE TABLE public.payments (
    municipality_code text NOT NULL,
    payment_id bigint NOT NULL,
    entitlement_id bigint NOT NULL,
    application_id bigint,
    amount_yen bigint NOT NULL,
    bank_code text NOT NULL,
    branch_code text NOT NULL,
    account_type smallint NOT NULL,
    account_number_enc bytea,
    holder_kana_enc bytea,
    status text DEFAULT 'ready'::text NOT NULL,
    batch_id bigint,
    return_reason text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    paid_on date,
    bank_enc bytea,
    account_key bytea,
    CONSTRAINT payments_account_key_check CHECK ((length(account_key) = 32)),
    CONSTRAINT payments_account_type_check CHECK ((account_type = ANY (ARRAY[1, 2, 4, 9]))),
    CONSTRAINT payments_amount_yen_check CHECK (((amount_yen >= 1) AND (amount_yen <= '9999999999'::bigint))),
    CONSTRAINT payments_bank_code_check CHECK ((bank_code ~ '^[0-9]{4}$'::text)),
    CONSTRAINT payments_bank_details CHECK ((((bank_enc IS NOT NULL) AND (account_number_enc IS NULL) AND (holder_kana_enc IS NULL)) OR ((bank_enc IS NULL) AND (account_number_enc IS NOT NULL) AND (holder_kana_enc IS NOT NULL)))),
    CONSTRAINT payments_branch_code_check CHECK ((branch_code ~ '^[0-9]{3}$'::text)),
    CONSTRAINT payments_check CHECK ((((status = ANY (ARRAY['in_batch'::text, 'released'::text, 'paid'::text])) = (batch_id IS NOT NULL)) OR (status = 'returned'::text))),
    CONSTRAINT payments_status_check CHECK ((status = ANY (ARRAY['ready'::text, 'in_batch'::text, 'released'::text, 'paid'::text, 'returned'::text, 'cancelled'::text])))
);

ALTER TABLE ONLY public.payments FORCE ROW LEVEL SECURITY;

ALTER TABLE public.payments OWNER TO kyufu_owner;

COMMENT ON COLUMN public.payments.status IS 'ready | in_batch (drafted, approved or released: see payout_batches.status) | paid | returned | cancelled; ''released'' is no longer written (0009)';

ALTER TABLE public.payments ALTER COLUMN payment_id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.payments_payment_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.payout_batch_account_flags (
    municipality_code text NOT NULL,
    batch_id bigint NOT NULL,
    account_key bytea NOT NULL,
    payments integer NOT NULL,
    total_yen bigint NOT NULL,
    payment_ids bigint[] NOT NULL,
    overridden_by bigint,
    overridden_at timestamp with time zone,
    override_reason text,
    CONSTRAINT payout_batch_account_flags_override_reason_check CHECK (((length(override_reason) >= 1) AND (length(override_reason) <= 1000))),
    CONSTRAINT payout_batch_account_flags_override_whole CHECK ((((overridden_by IS NULL) = (overridden_at IS NULL)) AND ((overridden_by IS NULL) = (override_reason IS NULL)))),
    CONSTRAINT payout_batch_account_flags_payments_check CHECK ((payments > 1)),
    CONSTRAINT payout_batch_account_flags_total_yen_check CHECK ((total_yen > 0))
);

ALTER TABLE ONLY public.payout_batch_account_flags FORCE ROW LEVEL SECURITY;

ALTER TABLE public.payout_batch_account_flags OWNER TO kyufu_owner;

CREATE TABLE public.payout_batches (
    municipality_code text NOT NULL,
    batch_id bigint NOT NULL,
    program_id bigint NOT NULL,
    transfer_date date NOT NULL,
    status text DEFAULT 'draft'::text NOT NULL,
    drafted_by bigint NOT NULL,
    drafted_at timestamp with time zone DEFAULT now() NOT NULL,
    record_count integer NOT NULL,
    total_yen bigint NOT NULL,
    plaintext_sha256 text,
    approved_by bigint,
    approved_at timestamp with time zone,
    approved_sha256 text,
    released_at timestamp with time zone,
    released_sha256 text,
    ciphertext_sha256 text,
    file_name text,
    rejected_at timestamp with time zone,
    rejected_by bigint,
    rejection_comment text,
    hash_generation integer DEFAULT 0 NOT NULL,
    hashed_at timestamp with time zone,
    hash_error text,
    hash_progress bigint DEFAULT 0 NOT NULL,
    release_attempt integer DEFAULT 0 NOT NULL,
    release_requested_at timestamp with time zone,
    release_requested_by bigint,
    release_error text,
    expected_count bigint,
    expected_total_yen bigint,
    prepare_step integer DEFAULT 0 NOT NULL,
    prepare_cursor bigint DEFAULT 0 NOT NULL,
    prepared_count bigint DEFAULT 0 NOT NULL,
    prepared_at timestamp with time zone,
    draft_error text,
    holder_checks jsonb,
    screened_snapshot_id bigint,
    CONSTRAINT payout_batches_approved_has_hash CHECK (((status <> ALL (ARRAY['approved'::text, 'released'::text])) OR ((approved_by IS NOT NULL) AND (approved_sha256 IS NOT NULL)))),
    CONSTRAINT payout_batches_approved_sha256_check CHECK ((approved_sha256 ~ '^[0-9a-f]{64}$'::text)),
    CONSTRAINT payout_batches_ciphertext_sha256_check CHECK ((ciphertext_sha256 ~ '^[0-9a-f]{64}$'::text)),
    CONSTRAINT payout_batches_draft_error_check CHECK ((length(draft_error) <= 2000)),
    CONSTRAINT payout_batches_expected_count_check CHECK ((expected_count >= 0)),
    CONSTRAINT payout_batches_expected_total_yen_check CHECK ((expected_total_yen >= 0)),
    CONSTRAINT payout_batches_four_eyes CHECK (((approved_by IS NULL) OR (approved_by <> drafted_by))),
    CONSTRAINT payout_batches_hash_error_check CHECK ((length(hash_error) <= 2000)),
    CONSTRAINT payout_batches_hash_generation_check CHECK ((hash_generation >= 0)),
    CONSTRAINT payout_batches_hash_progress_check CHECK ((hash_progress >= 0)),
    CONSTRAINT payout_batches_holder_checks_array CHECK ((jsonb_typeof(holder_checks) = 'array'::text)),
    CONSTRAINT payout_batches_plaintext_sha256_check CHECK ((plaintext_sha256 ~ '^[0-9a-f]{64}$'::text)),
    CONSTRAINT payout_batches_prepare_step_check CHECK ((prepare_step >= 0)),
    CONSTRAINT payout_batches_prepared_count_check CHECK ((prepared_count >= 0)),
    CONSTRAINT payout_batches_preparing_is_bare CHECK (((status <> 'preparing'::text) OR ((approved_by IS NULL) AND (plaintext_sha256 IS NULL) AND (released_at IS NULL)))),
    CONSTRAINT payout_batches_record_count_check CHECK ((record_count >= 0)),
    CONSTRAINT payout_batches_rejection_comment_check CHECK ((length(rejection_comment) <= 1000)),
    CONSTRAINT payout_batches_release_attempt_check CHECK ((release_attempt >= 0)),
    CONSTRAINT payout_batches_release_error_check CHECK ((length(release_error) <= 2000)),
    CONSTRAINT payout_batches_release_matches_approval CHECK (((status <> 'released'::text) OR ((released_at IS NOT NULL) AND (released_sha256 = approved_sha256)))),
    CONSTRAINT payout_batches_released_sha256_check CHECK ((released_sha256 ~ '^[0-9a-f]{64}$'::text)),
    CONSTRAINT payout_batches_status_check CHECK ((status = ANY (ARRAY['preparing'::text, 'draft'::text, 'approved'::text, 'released'::text, 'cancelled'::text]))),
    CONSTRAINT payout_batches_total_yen_check CHECK ((total_yen >= 0))
);

ALTER TABLE ONLY public.payout_batches FORCE ROW LEVEL SECURITY;

ALTER TABLE public.payout_batches OWNER TO kyufu_owner;

COMMENT ON COLUMN public.payout_batches.status IS 'preparing (the worker creates its payments) | draft | approved | released | cancelled (draft_error: why, when the worker refused it)';

COMMENT ON COLUMN public.payout_batches.holder_checks IS 'per (outcome, reason, decided_by): payments of the batch, as the account-holder check left them; set when preparation ends (0020)';

COMMENT ON COLUMN public.payout_batches.screened_snapshot_id IS 'the newest residents snapshot the unpaid entitlements had been screened against when preparation ended (0025)';

ALTER TABLE public.payout_batches ALTER COLUMN batch_id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.payout_batches_batch_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.payout_releases (
    municipality_code text NOT NULL,
    batch_id bigint NOT NULL,
    released_by bigint NOT NULL,
    file_name text NOT NULL,
    plaintext_sha256 text NOT NULL,
    ciphertext_sha256 text NOT NULL,
    signed_manifest bytea NOT NULL,
    recovered boolean DEFAULT false NOT NULL,
    released_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT payout_releases_ciphertext_sha256_check CHECK ((ciphertext_sha256 ~ '^[0-9a-f]{64}$'::text)),
    CONSTRAINT payout_releases_plaintext_sha256_check CHECK ((plaintext_sha256 ~ '^[0-9a-f]{64}$'::text))
);

ALTER TABLE ONLY public.payout_releases FORCE ROW LEVEL SECURITY;

ALTER TABLE public.payout_releases OWNER TO kyufu_owner;

CREATE TABLE public.payout_return_imports (
    municipality_code text NOT NULL,
    import_id bigint NOT NULL,
    batch_id bigint NOT NULL,
    file_sha256 text NOT NULL,
    returned_count integer NOT NULL,
    paid_count integer NOT NULL,
    imported_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT payout_return_imports_file_sha256_check CHECK ((file_sha256 ~ '^[0-9a-f]{64}$'::text)),
    CONSTRAINT payout_return_imports_paid_count_check CHECK ((paid_count >= 0)),
    CONSTRAINT payout_return_imports_returned_count_check CHECK ((returned_count >= 0))
);

ALTER TABLE ONLY public.payout_return_imports FORCE ROW LEVEL SECURITY;

ALTER TABLE public.payout_return_imports OWNER TO kyufu_owner;

ALTER TABLE public.payout_return_imports ALTER COLUMN import_id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.payout_return_imports_import_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.programs (
    municipality_code text NOT NULL,
    program_id bigint NOT NULL,
    name text NOT NULL,
    base_date date NOT NULL,
    unit text NOT NULL,
    amount_yen bigint NOT NULL,
    child_amount_yen bigint,
    child_age_under integer DEFAULT 18 NOT NULL,
    tax_condition text DEFAULT 'none'::text NOT NULL,
    tax_fiscal_year integer,
    min_age integer,
    max_age integer,
    apply_from date,
    apply_until date,
    payment_mode text NOT NULL,
    decline_deadline date,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    max_payments_per_account integer DEFAULT 1 NOT NULL,
    national_scheme text,
    after_base_date_rule text DEFAULT 'new_head'::text NOT NULL,
    proxy_account_allowed boolean DEFAULT false NOT NULL,
    CONSTRAINT programs_after_base_date_rule_check CHECK ((after_base_date_rule = ANY (ARRAY['new_head'::text, 'stop'::text]))),
    CONSTRAINT programs_amount_yen_check CHECK ((amount_yen > 0)),
    CONSTRAINT programs_check CHECK (((tax_condition = 'none'::text) OR (tax_fiscal_year IS NOT NULL))),
    CONSTRAINT programs_check1 CHECK (((payment_mode <> 'push'::text) OR (decline_deadline IS NOT NULL))),
    CONSTRAINT programs_check2 CHECK (((apply_until IS NULL) OR (apply_from IS NULL) OR (apply_until >= apply_from))),
    CONSTRAINT programs_child_age_under_check CHECK (((child_age_under >= 1) AND (child_age_under <= 30))),
    CONSTRAINT programs_child_amount_yen_check CHECK ((child_amount_yen > 0)),
    CONSTRAINT programs_max_age_check CHECK ((max_age >= 0)),
    CONSTRAINT programs_max_payments_per_account_check CHECK (((max_payments_per_account >= 1) AND (max_payments_per_account <= 1000))),
    CONSTRAINT programs_min_age_check CHECK ((min_age >= 0)),
    CONSTRAINT programs_name_check CHECK (((length(name) >= 1) AND (length(name) <= 200))),
    CONSTRAINT programs_national_scheme_format CHECK ((national_scheme ~ '^[A-Z0-9][A-Z0-9_-]{0,39}$'::text)),
    CONSTRAINT programs_payment_mode_check CHECK ((payment_mode = ANY (ARRAY['application'::text, 'letter'::text, 'push'::text]))),
    CONSTRAINT programs_tax_condition_check CHECK ((tax_condition = ANY (ARRAY['none'::text, 'exempt'::text, 'exempt_or_per_capita'::text]))),
    CONSTRAINT programs_unit_check CHECK ((unit = ANY (ARRAY['person'::text, 'household'::text])))
);

ALTER TABLE ONLY public.programs FORCE ROW LEVEL SECURITY;

ALTER TABLE public.programs OWNER TO kyufu_owner;

COMMENT ON COLUMN public.programs.max_payments_per_account IS 'payments to one account in one batch above which staff must override the account before approval';

COMMENT ON COLUMN public.programs.national_scheme IS 'the national benefit this program runs (e.g. R6-TEIGAKU): cross-municipality duplicates are looked for within it';

COMMENT ON COLUMN public.programs.after_base_date_rule IS 'what the screening suggests when the payee (世帯主) died after 基準日: pay the new 世帯主, or stop';

COMMENT ON COLUMN public.programs.proxy_account_allowed IS '代理人の口座への振込を認める: a proxy may have the benefit paid to their own account (always reviewed)';

ALTER TABLE public.programs ALTER COLUMN program_id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.programs_program_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.registered_accounts (
    municipality_code text NOT NULL,
    resident_code text NOT NULL,
    bank_code text NOT NULL,
    branch_code text NOT NULL,
    account_type smallint NOT NULL,
    account_number_enc bytea NOT NULL,
    holder_kana_enc bytea NOT NULL,
    source text DEFAULT 'koukin'::text NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT registered_accounts_account_type_check CHECK ((account_type = ANY (ARRAY[1, 2, 4, 9]))),
    CONSTRAINT registered_accounts_bank_code_check CHECK ((bank_code ~ '^[0-9]{4}$'::text)),
    CONSTRAINT registered_accounts_branch_code_check CHECK ((branch_code ~ '^[0-9]{3}$'::text)),
    CONSTRAINT registered_accounts_resident_code_check CHECK ((resident_code ~ '^[0-9]{11}$'::text)),
    CONSTRAINT registered_accounts_source_check CHECK ((source = ANY (ARRAY['koukin'::text, 'previous_payout'::text])))
);

ALTER TABLE ONLY public.registered_accounts FORCE ROW LEVEL SECURITY;

ALTER TABLE public.registered_accounts OWNER TO kyufu_owner;

CREATE TABLE public.registry_screenings (
    municipality_code text NOT NULL,
    snapshot_id bigint NOT NULL,
    screened_at timestamp with time zone DEFAULT now() NOT NULL,
    checked bigint NOT NULL,
    held bigint NOT NULL,
    CONSTRAINT registry_screenings_checked_check CHECK ((checked >= 0)),
    CONSTRAINT registry_screenings_held_check CHECK ((held >= 0))
);

ALTER TABLE ONLY public.registry_screenings FORCE ROW LEVEL SECURITY;

ALTER TABLE public.registry_screenings OWNER TO kyufu_owner;

CREATE TABLE public.registry_snapshots (
    municipality_code text NOT NULL,
    snapshot_id bigint NOT NULL,
    kind text NOT NULL,
    fiscal_year integer,
    file_sha256 text NOT NULL,
    row_count integer DEFAULT 0 NOT NULL,
    status text DEFAULT 'staging'::text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    published_at timestamp with time zone,
    CONSTRAINT registry_snapshots_file_sha256_check CHECK ((file_sha256 ~ '^[0-9a-f]{64}$'::text)),
    CONSTRAINT registry_snapshots_fiscal_year_check CHECK (((fiscal_year >= 2000) AND (fiscal_year <= 2100))),
    CONSTRAINT registry_snapshots_kind_check CHECK ((kind = ANY (ARRAY['residents'::text, 'tax'::text, 'accounts'::text]))),
    CONSTRAINT registry_snapshots_status_check CHECK ((status = ANY (ARRAY['staging'::text, 'published'::text, 'rejected'::text])))
);

ALTER TABLE ONLY public.registry_snapshots FORCE ROW LEVEL SECURITY;

ALTER TABLE public.registry_snapshots OWNER TO kyufu_owner;

ALTER TABLE public.registry_snapshots ALTER COLUMN snapshot_id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.registry_snapshots_snapshot_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.released_file_parts (
    municipality_code text NOT NULL,
    batch_id bigint NOT NULL,
    part integer NOT NULL,
    bytes bytea NOT NULL,
    CONSTRAINT released_file_parts_part_check CHECK ((part >= 0))
);

ALTER TABLE ONLY public.released_file_parts FORCE ROW LEVEL SECURITY;

ALTER TABLE public.released_file_parts OWNER TO kyufu_owner;

COMMENT ON TABLE public.released_file_parts IS 'the sealed file of released_files, in order, in parts of at most 8 MiB (0027)';

CREATE TABLE public.released_files (
    municipality_code text NOT NULL,
    batch_id bigint NOT NULL,
    file_name text NOT NULL,
    ciphertext_sha256 text NOT NULL,
    ciphertext_bytes bigint NOT NULL,
    signed_manifest bytea NOT NULL,
    kept_at timestamp with time zone DEFAULT now() NOT NULL,
    delivered_at timestamp with time zone,
    CONSTRAINT released_files_ciphertext_bytes_check CHECK ((ciphertext_bytes > 0)),
    CONSTRAINT released_files_ciphertext_sha256_check CHECK ((ciphertext_sha256 ~ '^[0-9a-f]{64}$'::text))
);

ALTER TABLE ONLY public.released_files FORCE ROW LEVEL SECURITY;

ALTER TABLE public.released_files OWNER TO kyufu_owner;

COMMENT ON TABLE public.released_files IS 'a released batch''s sealed file and signed manifest, kept until the delivery job has put them in the bank''s drop directory (0027)';

CREATE TABLE public.residents (
    municipality_code text NOT NULL,
    snapshot_id bigint NOT NULL,
    resident_code text NOT NULL,
    household_no text NOT NULL,
    relationship text NOT NULL,
    is_head boolean NOT NULL,
    family_name text NOT NULL,
    given_name text NOT NULL,
    family_kana text NOT NULL,
    given_kana text NOT NULL,
    birth_date date NOT NULL,
    sex text NOT NULL,
    address text NOT NULL,
    moved_in_on date,
    removed_on date,
    removal_reason text,
    prev_household_no text,
    household_changed_on date,
    CONSTRAINT residents_household_change_pair CHECK (((prev_household_no IS NULL) = (household_changed_on IS NULL))),
    CONSTRAINT residents_resident_code_check CHECK (((octet_length(resident_code) = 11) AND (resident_code !~ '[^0-9]'::text))),
    CONSTRAINT residents_sex_check CHECK ((sex = ANY (ARRAY['1'::text, '2'::text, '9'::text])))
)
PARTITION BY LIST (snapshot_id);

ALTER TABLE ONLY public.residents FORCE ROW LEVEL SECURITY;

ALTER TABLE public.residents OWNER TO kyufu_owner;

CREATE TABLE public.schema_migrations (
    version integer NOT NULL,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL
);

ALTER TABLE public.schema_migrations OWNER TO kyufu_owner;

CREATE TABLE public.staff_devices (
    municipality_code text NOT NULL,
    staff_id bigint NOT NULL,
    device_sha256 text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    last_used_at timestamp with time zone DEFAULT now() NOT NULL,
    failures integer DEFAULT 0 NOT NULL,
    last_failed_at timestamp with time zone,
    delayed_until timestamp with time zone,
    revoked_at timestamp with time zone,
    CONSTRAINT staff_devices_device_sha256_check CHECK ((device_sha256 ~ '^[0-9a-f]{64}$'::text)),
    CONSTRAINT staff_devices_failures_check CHECK ((failures >= 0))
);

ALTER TABLE ONLY public.staff_devices FORCE ROW LEVEL SECURITY;

ALTER TABLE public.staff_devices OWNER TO kyufu_owner;

CREATE TABLE public.staff_enrolments (
    municipality_code text NOT NULL,
    enrolment_id bigint NOT NULL,
    staff_id bigint NOT NULL,
    token_sha256 text NOT NULL,
    totp_secret bytea NOT NULL,
    issued_by bigint,
    issued_by_operator text,
    bootstrap boolean DEFAULT false NOT NULL,
    issued_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    completed_at timestamp with time zone,
    superseded_at timestamp with time zone,
    CONSTRAINT staff_enrolments_bootstrap_by_operator CHECK (((NOT bootstrap) OR (issued_by_operator IS NOT NULL))),
    CONSTRAINT staff_enrolments_issued_by_operator_check CHECK ((issued_by_operator ~ '^[a-z0-9][a-z0-9._-]{0,63}$'::text)),
    CONSTRAINT staff_enrolments_lifetime CHECK (((expires_at > issued_at) AND (expires_at <= (issued_at + '72:00:00'::interval)))),
    CONSTRAINT staff_enrolments_one_issuer CHECK (((issued_by IS NULL) <> (issued_by_operator IS NULL))),
    CONSTRAINT staff_enrolments_token_sha256_check CHECK ((token_sha256 ~ '^[0-9a-f]{64}$'::text)),
    CONSTRAINT staff_enrolments_used_once CHECK (((completed_at IS NULL) OR (superseded_at IS NULL)))
);

ALTER TABLE ONLY public.staff_enrolments FORCE ROW LEVEL SECURITY;

ALTER TABLE public.staff_enrolments OWNER TO kyufu_owner;

ALTER TABLE public.staff_enrolments ALTER COLUMN enrolment_id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.staff_enrolments_enrolment_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.staff_role_grants (
    municipality_code text NOT NULL,
    grant_id bigint NOT NULL,
    staff_id bigint NOT NULL,
    role text NOT NULL,
    origin text DEFAULT 'request'::text NOT NULL,
    status text DEFAULT 'pending'::text NOT NULL,
    requested_by bigint,
    requested_by_operator text,
    requested_at timestamp with time zone DEFAULT now() NOT NULL,
    decided_by bigint,
    decided_by_operator text,
    decided_at timestamp with time zone,
    revoked_at timestamp with time zone,
    CONSTRAINT staff_role_grants_bootstrap CHECK (((origin <> 'bootstrap'::text) OR ((role = 'admin'::text) AND (requested_by_operator IS NOT NULL) AND (decided_by_operator = requested_by_operator)))),
    CONSTRAINT staff_role_grants_decided CHECK ((((status = 'pending'::text) = (decided_at IS NULL)) AND ((status = 'pending'::text) OR ((decided_by IS NULL) <> (decided_by_operator IS NULL))))),
    CONSTRAINT staff_role_grants_decided_by_operator_check CHECK ((decided_by_operator ~ '^[a-z0-9][a-z0-9._-]{0,63}$'::text)),
    CONSTRAINT staff_role_grants_four_eyes CHECK (((origin <> 'request'::text) OR (status <> ALL (ARRAY['confirmed'::text, 'revoked'::text])) OR ((decided_by IS NOT NULL) AND (decided_by IS DISTINCT FROM requested_by)))),
    CONSTRAINT staff_role_grants_not_own CHECK (((status <> ALL (ARRAY['confirmed'::text, 'revoked'::text])) OR (decided_by IS DISTINCT FROM staff_id))),
    CONSTRAINT staff_role_grants_one_requester CHECK (((requested_by IS NULL) <> (requested_by_operator IS NULL))),
    CONSTRAINT staff_role_grants_origin_check CHECK ((origin = ANY (ARRAY['request'::text, 'bootstrap'::text, 'migration'::text]))),
    CONSTRAINT staff_role_grants_requested_by_operator_check CHECK ((requested_by_operator ~ '^[a-z0-9][a-z0-9._-]{0,63}$'::text)),
    CONSTRAINT staff_role_grants_revoked CHECK (((status = 'revoked'::text) = (revoked_at IS NOT NULL))),
    CONSTRAINT staff_role_grants_role_check CHECK ((role = ANY (ARRAY['reviewer'::text, 'drafter'::text, 'approver'::text, 'admin'::text, 'keyer'::text]))),
    CONSTRAINT staff_role_grants_status_check CHECK ((status = ANY (ARRAY['pending'::text, 'confirmed'::text, 'refused'::text, 'cancelled'::text, 'revoked'::text])))
);

ALTER TABLE ONLY public.staff_role_grants FORCE ROW LEVEL SECURITY;

ALTER TABLE public.staff_role_grants OWNER TO kyufu_owner;

ALTER TABLE public.staff_role_grants ALTER COLUMN grant_id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.staff_role_grants_grant_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.staff_sessions (
    municipality_code text NOT NULL,
    token_sha256 text NOT NULL,
    staff_id bigint NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    last_seen_at timestamp with time zone DEFAULT now() NOT NULL,
    revoked_at timestamp with time zone,
    CONSTRAINT staff_sessions_token_sha256_check CHECK ((token_sha256 ~ '^[0-9a-f]{64}$'::text))
);

ALTER TABLE ONLY public.staff_sessions FORCE ROW LEVEL SECURITY;

ALTER TABLE public.staff_sessions OWNER TO kyufu_owner;

CREATE TABLE public.staff_settings (
    municipality_code text NOT NULL,
    session_idle_minutes integer DEFAULT 30 NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT staff_settings_session_idle_minutes_check CHECK (((session_idle_minutes >= 5) AND (session_idle_minutes <= 480)))
);

ALTER TABLE ONLY public.staff_settings FORCE ROW LEVEL SECURITY;

ALTER TABLE public.staff_settings OWNER TO kyufu_owner;

CREATE TABLE public.staff_signin_failures (
    municipality_code text NOT NULL,
    login_hmac text NOT NULL,
    staff_id bigint,
    failures integer NOT NULL,
    last_failed_at timestamp with time zone NOT NULL,
    delayed_until timestamp with time zone,
    CONSTRAINT staff_signin_failures_failures_check CHECK ((failures > 0)),
    CONSTRAINT staff_signin_failures_login_hmac_check CHECK ((login_hmac ~ '^[0-9a-f]{64}$'::text))
);

ALTER TABLE ONLY public.staff_signin_failures FORCE ROW LEVEL SECURITY;

ALTER TABLE public.staff_signin_failures OWNER TO kyufu_owner;

CREATE TABLE public.staff_users (
    municipality_code text NOT NULL,
    staff_id bigint NOT NULL,
    login text NOT NULL,
    display_name text NOT NULL,
    roles text[] NOT NULL,
    password_hash text NOT NULL,
    totp_secret bytea,
    disabled_at timestamp with time zone,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    totp_last_step bigint,
    created_by bigint,
    created_by_operator text,
    failures_since_signin integer DEFAULT 0 NOT NULL,
    last_failed_at timestamp with time zone,
    notice_failures integer DEFAULT 0 NOT NULL,
    notice_last_failed_at timestamp with time zone,
    CONSTRAINT staff_users_created_by_operator_check CHECK ((created_by_operator ~ '^[a-z0-9][a-z0-9._-]{0,63}$'::text)),
    CONSTRAINT staff_users_display_name_check CHECK (((length(display_name) >= 1) AND (length(display_name) <= 100))),
    CONSTRAINT staff_users_failures_since_signin_check CHECK ((failures_since_signin >= 0)),
    CONSTRAINT staff_users_login_check CHECK ((login ~ '^[a-z0-9][a-z0-9._-]{2,63}$'::text)),
    CONSTRAINT staff_users_notice_failures_check CHECK ((notice_failures >= 0)),
    CONSTRAINT staff_users_one_creator CHECK (((created_by IS NULL) OR (created_by_operator IS NULL))),
    CONSTRAINT staff_users_roles_known CHECK ((roles <@ ARRAY['reviewer'::text, 'drafter'::text, 'approver'::text, 'admin'::text, 'keyer'::text]))
);

ALTER TABLE ONLY public.staff_users FORCE ROW LEVEL SECURITY;

ALTER TABLE public.staff_users OWNER TO kyufu_owner;

ALTER TABLE public.staff_users ALTER COLUMN staff_id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.staff_users_staff_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.tax_statuses (
    municipality_code text NOT NULL,
    snapshot_id bigint NOT NULL,
    line_no integer NOT NULL,
    fiscal_year integer NOT NULL,
    household_no text,
    resident_code text,
    tax_class text NOT NULL,
    CONSTRAINT tax_statuses_check CHECK ((num_nonnulls(household_no, resident_code) = 1)),
    CONSTRAINT tax_statuses_resident_code_check CHECK ((resident_code ~ '^[0-9]{11}$'::text)),
    CONSTRAINT tax_statuses_tax_class_check CHECK ((tax_class = ANY (ARRAY['taxable'::text, 'exempt'::text, 'per_capita_only'::text])))
);

ALTER TABLE ONLY public.tax_statuses FORCE ROW LEVEL SECURITY;

ALTER TABLE public.tax_statuses OWNER TO kyufu_owner;

CREATE TABLE registry_parts.residents_default (
    municipality_code text CONSTRAINT residents_municipality_code_not_null NOT NULL,
    snapshot_id bigint CONSTRAINT residents_snapshot_id_not_null NOT NULL,
    resident_code text CONSTRAINT residents_resident_code_not_null NOT NULL,
    household_no text CONSTRAINT residents_household_no_not_null NOT NULL,
    relationship text CONSTRAINT residents_relationship_not_null NOT NULL,
    is_head boolean CONSTRAINT residents_is_head_not_null NOT NULL,
    family_name text CONSTRAINT residents_family_name_not_null NOT NULL,
    given_name text CONSTRAINT residents_given_name_not_null NOT NULL,
    family_kana text CONSTRAINT residents_family_kana_not_null NOT NULL,
    given_kana text CONSTRAINT residents_given_kana_not_null NOT NULL,
    birth_date date CONSTRAINT residents_birth_date_not_null NOT NULL,
    sex text CONSTRAINT residents_sex_not_null NOT NULL,
    address text CONSTRAINT residents_address_not_null NOT NULL,
    moved_in_on date,
    removed_on date,
    removal_reason text,
    prev_household_no text,
    household_changed_on date,
    CONSTRAINT residents_household_change_pair CHECK (((prev_household_no IS NULL) = (household_changed_on IS NULL))),
    CONSTRAINT residents_resident_code_check CHECK (((octet_length(resident_code) = 11) AND (resident_code !~ '[^0-9]'::text))),
    CONSTRAINT residents_sex_check CHECK ((sex = ANY (ARRAY['1'::text, '2'::text, '9'::text])))
);

ALTER TABLE ONLY registry_parts.residents_default FORCE ROW LEVEL SECURITY;

ALTER TABLE registry_parts.residents_default OWNER TO kyufu_owner;

ALTER TABLE ONLY public.residents ATTACH PARTITION registry_parts.residents_default DEFAULT;

ALTER TABLE ONLY duplicate_match.case_sides
    ADD CONSTRAINT case_sides_pkey PRIMARY KEY (case_id, municipality_code);

ALTER TABLE ONLY duplicate_match.cases
    ADD CONSTRAINT cases_pair_key_key UNIQUE (pair_key);

ALTER TABLE ONLY duplicate_match.cases
    ADD CONSTRAINT cases_pkey PRIMARY KEY (case_id);

ALTER TABLE ONLY duplicate_match.cases
    ADD CONSTRAINT cases_reference_key UNIQUE (reference);

ALTER TABLE ONLY duplicate_match.hashes
    ADD CONSTRAINT hashes_pkey PRIMARY KEY (key_version, scheme, kind, digest, municipality_code, entitlement_id);

ALTER TABLE ONLY duplicate_match.keys
    ADD CONSTRAINT keys_key_id_key UNIQUE (key_id);

ALTER TABLE ONLY duplicate_match.keys
    ADD CONSTRAINT keys_pkey PRIMARY KEY (version);

ALTER TABLE ONLY dv_match.digests
    ADD CONSTRAINT digests_pkey PRIMARY KEY (request_id, person, kind);

ALTER TABLE ONLY dv_match.matches
    ADD CONSTRAINT matches_pkey PRIMARY KEY (request_id, entitlement_id);

ALTER TABLE ONLY dv_match.requests
    ADD CONSTRAINT requests_pkey PRIMARY KEY (request_id);

ALTER TABLE ONLY dv_match.requests
    ADD CONSTRAINT requests_reference_key UNIQUE (reference);

ALTER TABLE ONLY public.application_account_changes
    ADD CONSTRAINT application_account_changes_pkey PRIMARY KEY (municipality_code, change_id);

ALTER TABLE ONLY public.application_account_keys
    ADD CONSTRAINT application_account_keys_pkey PRIMARY KEY (municipality_code, application_id);

ALTER TABLE ONLY public.application_proxies
    ADD CONSTRAINT application_proxies_pkey PRIMARY KEY (municipality_code, application_id);

ALTER TABLE ONLY public.applications
    ADD CONSTRAINT applications_municipality_code_receipt_no_key UNIQUE (municipality_code, receipt_no);

ALTER TABLE ONLY public.applications
    ADD CONSTRAINT applications_pkey PRIMARY KEY (municipality_code, application_id);

ALTER TABLE ONLY public.audit_log
    ADD CONSTRAINT audit_log_pkey PRIMARY KEY (municipality_code, seq);

ALTER TABLE ONLY public.debt_notices
    ADD CONSTRAINT debt_notices_pkey PRIMARY KEY (municipality_code, notice_id);

ALTER TABLE ONLY public.debt_repayments
    ADD CONSTRAINT debt_repayments_pkey PRIMARY KEY (municipality_code, repayment_id);

ALTER TABLE ONLY public.dv_exclusions
    ADD CONSTRAINT dv_exclusions_municipality_code_entitlement_id_resident_cod_key UNIQUE (municipality_code, entitlement_id, resident_code);

ALTER TABLE ONLY public.dv_exclusions
    ADD CONSTRAINT dv_exclusions_pkey PRIMARY KEY (municipality_code, reference, person);

ALTER TABLE ONLY public.dv_requests
    ADD CONSTRAINT dv_requests_municipality_code_entitlement_id_key UNIQUE (municipality_code, entitlement_id);

ALTER TABLE ONLY public.dv_requests
    ADD CONSTRAINT dv_requests_municipality_code_reference_key UNIQUE (municipality_code, reference);

ALTER TABLE ONLY public.dv_requests
    ADD CONSTRAINT dv_requests_pkey PRIMARY KEY (municipality_code, request_id);

ALTER TABLE ONLY public.eligibility_runs
    ADD CONSTRAINT eligibility_runs_pkey PRIMARY KEY (municipality_code, program_id);

ALTER TABLE ONLY public.entitlement_conflicts
    ADD CONSTRAINT entitlement_conflicts_municipality_code_entitlement_id_snap_key UNIQUE (municipality_code, entitlement_id, snapshot_id);

ALTER TABLE ONLY public.entitlement_conflicts
    ADD CONSTRAINT entitlement_conflicts_pkey PRIMARY KEY (municipality_code, conflict_id);

ALTER TABLE ONLY public.entitlements
    ADD CONSTRAINT entitlements_municipality_code_program_id_household_no_key UNIQUE (municipality_code, program_id, household_no);

ALTER TABLE ONLY public.entitlements
    ADD CONSTRAINT entitlements_pkey PRIMARY KEY (municipality_code, entitlement_id);

ALTER TABLE ONLY public.intake_duplicate_claims
    ADD CONSTRAINT intake_duplicate_claims_pkey PRIMARY KEY (municipality_code, duplicate_id);

ALTER TABLE ONLY public.intake_idempotency_keys
    ADD CONSTRAINT intake_idempotency_keys_pkey PRIMARY KEY (municipality_code, idempotency_key);

ALTER TABLE ONLY public.intake_identity_lockouts
    ADD CONSTRAINT intake_identity_lockouts_pkey PRIMARY KEY (municipality_code, identity_key);

ALTER TABLE ONLY public.letters
    ADD CONSTRAINT letters_municipality_code_access_code_key UNIQUE (municipality_code, access_code);

ALTER TABLE ONLY public.letters
    ADD CONSTRAINT letters_pkey PRIMARY KEY (municipality_code, letter_id);

ALTER TABLE ONLY public.municipalities
    ADD CONSTRAINT municipalities_pkey PRIMARY KEY (code);

ALTER TABLE ONLY public.municipality_bank_settings
    ADD CONSTRAINT municipality_bank_settings_pkey PRIMARY KEY (municipality_code);

ALTER TABLE ONLY public.municipality_keys
    ADD CONSTRAINT municipality_keys_pkey PRIMARY KEY (municipality_code, purpose, version);

ALTER TABLE ONLY public.outbox
    ADD CONSTRAINT outbox_municipality_code_job_id_key UNIQUE (municipality_code, job_id);

ALTER TABLE ONLY public.outbox
    ADD CONSTRAINT outbox_pkey PRIMARY KEY (municipality_code, outbox_id);

ALTER TABLE ONLY public.paper_boxes
    ADD CONSTRAINT paper_boxes_municipality_code_box_no_key UNIQUE (municipality_code, box_no);

ALTER TABLE ONLY public.paper_boxes
    ADD CONSTRAINT paper_boxes_pkey PRIMARY KEY (municipality_code, box_id);

ALTER TABLE ONLY public.paper_deficiencies
    ADD CONSTRAINT paper_deficiencies_pkey PRIMARY KEY (municipality_code, form_id);

ALTER TABLE ONLY public.paper_entries
    ADD CONSTRAINT paper_entries_different_clerks UNIQUE (municipality_code, form_id, keyed_by);

ALTER TABLE ONLY public.paper_entries
    ADD CONSTRAINT paper_entries_pkey PRIMARY KEY (municipality_code, form_id, entry_no);

ALTER TABLE ONLY public.paper_forms
    ADD CONSTRAINT paper_forms_municipality_code_box_id_seq_key UNIQUE (municipality_code, box_id, seq);

ALTER TABLE ONLY public.paper_forms
    ADD CONSTRAINT paper_forms_pkey PRIMARY KEY (municipality_code, form_id);

ALTER TABLE ONLY public.payment_debts
    ADD CONSTRAINT payment_debts_one_per_payment UNIQUE (municipality_code, payment_id);

ALTER TABLE ONLY public.payment_debts
    ADD CONSTRAINT payment_debts_pkey PRIMARY KEY (municipality_code, debt_id);

ALTER TABLE ONLY public.payment_followups
    ADD CONSTRAINT payment_followups_pkey PRIMARY KEY (municipality_code, payment_id);

ALTER TABLE ONLY public.payment_holds
    ADD CONSTRAINT payment_holds_pkey PRIMARY KEY (municipality_code, hold_id);

ALTER TABLE ONLY public.payment_recalls
    ADD CONSTRAINT payment_recalls_pkey PRIMARY KEY (municipality_code, recall_id);

ALTER TABLE ONLY public.payment_reissues
    ADD CONSTRAINT payment_reissues_once UNIQUE (municipality_code, replaces_payment_id);

ALTER TABLE ONLY public.payment_reissues
    ADD CONSTRAINT payment_reissues_pkey PRIMARY KEY (municipality_code, payment_id);

ALTER TABLE ONLY public.payment_returns
    ADD CONSTRAINT payment_returns_pkey PRIMARY KEY (municipality_code, payment_id);

ALTER TABLE ONLY public.payments
    ADD CONSTRAINT payments_pkey PRIMARY KEY (municipality_code, payment_id);

ALTER TABLE ONLY public.payout_batch_account_flags
    ADD CONSTRAINT payout_batch_account_flags_pkey PRIMARY KEY (municipality_code, batch_id, account_key);

ALTER TABLE public.payout_batches
    ADD CONSTRAINT payout_batches_approves_the_recorded_hash CHECK (((approved_sha256 IS NULL) OR (approved_sha256 = plaintext_sha256))) NOT VALID;

ALTER TABLE ONLY public.payout_batches
    ADD CONSTRAINT payout_batches_pkey PRIMARY KEY (municipality_code, batch_id);

ALTER TABLE ONLY public.payout_releases
    ADD CONSTRAINT payout_releases_pkey PRIMARY KEY (municipality_code, batch_id);

ALTER TABLE ONLY public.payout_return_imports
    ADD CONSTRAINT payout_return_imports_batch_once UNIQUE (municipality_code, batch_id);

ALTER TABLE ONLY public.payout_return_imports
    ADD CONSTRAINT payout_return_imports_file_once UNIQUE (municipality_code, file_sha256);

ALTER TABLE ONLY public.payout_return_imports
    ADD CONSTRAINT payout_return_imports_pkey PRIMARY KEY (municipality_code, import_id);

ALTER TABLE ONLY public.programs
    ADD CONSTRAINT programs_pkey PRIMARY KEY (municipality_code, program_id);

ALTER TABLE ONLY public.registered_accounts
    ADD CONSTRAINT registered_accounts_pkey PRIMARY KEY (municipality_code, resident_code);

ALTER TABLE ONLY public.registry_screenings
    ADD CONSTRAINT registry_screenings_pkey PRIMARY KEY (municipality_code, snapshot_id);

ALTER TABLE ONLY public.registry_snapshots
    ADD CONSTRAINT registry_snapshots_municipality_code_kind_file_sha256_key UNIQUE (municipality_code, kind, file_sha256);

ALTER TABLE ONLY public.registry_snapshots
    ADD CONSTRAINT registry_snapshots_pkey PRIMARY KEY (municipality_code, snapshot_id);

ALTER TABLE ONLY public.released_file_parts
    ADD CONSTRAINT released_file_parts_pkey PRIMARY KEY (municipality_code, batch_id, part);

ALTER TABLE ONLY public.released_files
    ADD CONSTRAINT released_files_pkey PRIMARY KEY (municipality_code, batch_id);

ALTER TABLE ONLY public.residents
    ADD CONSTRAINT residents_pkey PRIMARY KEY (municipality_code, snapshot_id, resident_code);

ALTER TABLE ONLY public.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (version);

ALTER TABLE ONLY public.staff_devices
    ADD CONSTRAINT staff_devices_pkey PRIMARY KEY (municipality_code, staff_id, device_sha256);

ALTER TABLE ONLY public.staff_enrolments
    ADD CONSTRAINT staff_enrolments_municipality_code_token_sha256_key UNIQUE (municipality_code, token_sha256);

ALTER TABLE ONLY public.staff_enrolments
    ADD CONSTRAINT staff_enrolments_pkey PRIMARY KEY (municipality_code, enrolment_id);

ALTER TABLE ONLY public.staff_role_grants
    ADD CONSTRAINT staff_role_grants_pkey PRIMARY KEY (municipality_code, grant_id);

ALTER TABLE ONLY public.staff_sessions
    ADD CONSTRAINT staff_sessions_pkey PRIMARY KEY (municipality_code, token_sha256);

ALTER TABLE ONLY public.staff_settings
    ADD CONSTRAINT staff_settings_pkey PRIMARY KEY (municipality_code);

ALTER TABLE ONLY public.staff_signin_failures
    ADD CONSTRAINT staff_signin_failures_pkey PRIMARY KEY (municipality_code, login_hmac);

ALTER TABLE ONLY public.staff_users
    ADD CONSTRAINT staff_users_municipality_code_login_key UNIQUE (municipality_code, login);

ALTER TABLE ONLY public.staff_users
    ADD CONSTRAINT staff_users_pkey PRIMARY KEY (municipality_code, staff_id);

ALTER TABLE ONLY public.tax_statuses
    ADD CONSTRAINT tax_statuses_pkey PRIMARY KEY (municipality_code, snapshot_id, line_no);

ALTER TABLE ONLY registry_parts.residents_default
    ADD CONSTRAINT residents_default_pkey PRIMARY KEY (municipality_code, snapshot_id, resident_code);

CREATE INDEX case_sides_entitlement ON duplicate_match.case_sides USING btree (municipality_code, entitlement_id);

CREATE INDEX hashes_entitlement ON duplicate_match.hashes USING btree (municipality_code, entitlement_id);

CREATE INDEX hashes_program ON duplicate_match.hashes USING btree (municipality_code, program_id);

CREATE UNIQUE INDEX keys_one_current ON duplicate_match.keys USING btree ((true)) WHERE (retired_at IS NULL);

CREATE INDEX digests_digest ON dv_match.digests USING btree (digest);

CREATE INDEX requests_filed ON dv_match.requests USING btree (filed_code, filed_entitlement_id);

CREATE INDEX requests_registered ON dv_match.requests USING btree (registered_code) WHERE (state = 'filed'::text);

CREATE INDEX application_account_changes_application ON public.application_account_changes USING btree (municipality_code, application_id);

CREATE INDEX application_account_keys_key ON public.application_account_keys USING btree (municipality_code, account_key);

CREATE UNIQUE INDEX applications_one_active ON public.applications USING btree (municipality_code, entitlement_id) WHERE (status <> ALL (ARRAY['rejected'::text, 'withdrawn'::text]));

CREATE INDEX applications_status ON public.applications USING btree (municipality_code, status);

CREATE INDEX debt_notices_debt ON public.debt_notices USING btree (municipality_code, debt_id);

CREATE INDEX debt_repayments_debt ON public.debt_repayments USING btree (municipality_code, debt_id);

CREATE INDEX intake_duplicate_claims_entitlement ON public.intake_duplicate_claims USING btree (municipality_code, entitlement_id);

CREATE INDEX intake_idempotency_keys_age ON public.intake_idempotency_keys USING btree (municipality_code, created_at);

CREATE UNIQUE INDEX letters_one_valid ON public.letters USING btree (municipality_code, entitlement_id) WHERE (invalidated_at IS NULL);

CREATE INDEX letters_unexported ON public.letters USING btree (municipality_code, entitlement_id) WHERE (exported_at IS NULL);

CREATE INDEX outbox_pending ON public.outbox USING btree (municipality_code, created_at) WHERE (done_at IS NULL);

CREATE INDEX outbox_unsent ON public.outbox USING btree (municipality_code, outbox_id) WHERE ((done_at IS NULL) AND (enqueued_at IS NULL));

CREATE INDEX paper_deficiencies_unexported ON public.paper_deficiencies USING btree (municipality_code, recorded_at) WHERE (letter_exported_at IS NULL);

CREATE UNIQUE INDEX paper_forms_one_application ON public.paper_forms USING btree (municipality_code, application_id) WHERE (state = 'submitted'::text);

CREATE INDEX paper_forms_state ON public.paper_forms USING btree (municipality_code, box_id, state);

CREATE INDEX payment_holds_entitlement ON public.payment_holds USING btree (municipality_code, entitlement_id);

CREATE UNIQUE INDEX payment_holds_one_active ON public.payment_holds USING btree (municipality_code, entitlement_id, reason) WHERE (released_at IS NULL);

CREATE UNIQUE INDEX payment_recalls_one_open ON public.payment_recalls USING btree (municipality_code, payment_id) WHERE (status = 'requested'::text);

CREATE INDEX payment_recalls_payment ON public.payment_recalls USING btree (municipality_code, payment_id);

CREATE UNIQUE INDEX payment_recalls_returned_once ON public.payment_recalls USING btree (municipality_code, payment_id) WHERE (status = 'returned'::text);

CREATE INDEX payment_returns_import ON public.payment_returns USING btree (municipality_code, import_id);

CREATE INDEX payments_batch ON public.payments USING btree (municipality_code, batch_id) WHERE (batch_id IS NOT NULL);

CREATE INDEX payments_batch_order ON public.payments USING btree (municipality_code, batch_id, payment_id) WHERE (batch_id IS NOT NULL);

CREATE INDEX payments_entitlement ON public.payments USING btree (municipality_code, entitlement_id);

CREATE UNIQUE INDEX payments_one_live ON public.payments USING btree (municipality_code, entitlement_id) WHERE (status = ANY (ARRAY['ready'::text, 'in_batch'::text, 'released'::text, 'paid'::text]));

CREATE UNIQUE INDEX payout_batches_one_preparing ON public.payout_batches USING btree (municipality_code, program_id) WHERE (status = 'preparing'::text);

CREATE UNIQUE INDEX programs_one_per_scheme ON public.programs USING btree (municipality_code, national_scheme) WHERE (national_scheme IS NOT NULL);

CREATE INDEX residents_birth_date ON ONLY public.residents USING btree (birth_date);

CREATE INDEX residents_household ON ONLY public.residents USING btree (household_no);

CREATE INDEX residents_prev_household ON ONLY public.residents USING btree (prev_household_no) WHERE (prev_household_no IS NOT NULL);

CREATE INDEX staff_enrolments_latest ON public.staff_enrolments USING btree (municipality_code, staff_id, completed_at DESC) WHERE (completed_at IS NOT NULL);

CREATE UNIQUE INDEX staff_enrolments_one_open ON public.staff_enrolments USING btree (municipality_code, staff_id) WHERE ((completed_at IS NULL) AND (superseded_at IS NULL));

CREATE UNIQUE INDEX staff_role_grants_one_live ON public.staff_role_grants USING btree (municipality_code, staff_id, role) WHERE (status = ANY (ARRAY['pending'::text, 'confirmed'::text]));

CREATE INDEX staff_role_grants_pending ON public.staff_role_grants USING btree (municipality_code, requested_at) WHERE (status = 'pending'::text);

CREATE INDEX staff_sessions_staff ON public.staff_sessions USING btree (municipality_code, staff_id) WHERE (revoked_at IS NULL);

CREATE INDEX staff_signin_failures_age ON public.staff_signin_failures USING btree (municipality_code, last_failed_at);

CREATE INDEX staff_signin_failures_staff ON public.staff_signin_failures USING btree (municipality_code, staff_id) WHERE (staff_id IS NOT NULL);

CREATE INDEX residents_default_birth_date_idx ON registry_parts.residents_default USING btree (birth_date);

CREATE INDEX residents_default_household_no_idx ON registry_parts.residents_default USING btree (household_no);

CREATE INDEX residents_default_prev_household_no_idx ON registry_parts.residents_default USING btree (prev_household_no) WHERE (prev_household_no IS NOT NULL);

ALTER INDEX public.residents_birth_date ATTACH PARTITION registry_parts.residents_default_birth_date_idx;

ALTER INDEX public.residents_household ATTACH PARTITION registry_parts.residents_default_household_no_idx;

ALTER INDEX public.residents_pkey ATTACH PARTITION registry_parts.residents_default_pkey;

ALTER INDEX public.residents_prev_household ATTACH PARTITION registry_parts.residents_default_prev_household_no_idx;

CREATE TRIGGER hashes_match_dv_requests AFTER INSERT ON duplicate_match.hashes REFERENCING NEW TABLE AS new_hashes FOR EACH STATEMENT EXECUTE FUNCTION dv_match.match_new_hashes();

CREATE TRIGGER application_account_changes_before_batch BEFORE INSERT ON public.application_account_changes FOR EACH ROW EXECUTE FUNCTION public.application_account_changes_before_batch();

CREATE TRIGGER application_proxies_guard BEFORE INSERT ON public.application_proxies FOR EACH ROW EXECUTE FUNCTION public.application_proxies_guard();

CREATE TRIGGER audit_log_append_only BEFORE DELETE OR UPDATE ON public.audit_log FOR EACH ROW EXECUTE FUNCTION public.audit_log_append_only();

CREATE TRIGGER audit_log_chain BEFORE INSERT ON public.audit_log FOR EACH ROW EXECUTE FUNCTION public.audit_log_chain();

CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON public.audit_log FOR EACH STATEMENT EXECUTE FUNCTION public.audit_log_append_only();

CREATE TRIGGER debt_notices_open_debt BEFORE INSERT ON public.debt_notices FOR EACH ROW EXECUTE FUNCTION public.debt_rows_need_open_debt();

CREATE TRIGGER debt_repayments_apply AFTER INSERT ON public.debt_repayments FOR EACH ROW EXECUTE FUNCTION public.debt_repayments_apply();

CREATE TRIGGER entitlements_references_exist_insert AFTER INSERT ON public.entitlements REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.entitlements_references_exist();

CREATE TRIGGER entitlements_references_exist_update AFTER UPDATE ON public.entitlements REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.entitlements_references_exist();

CREATE TRIGGER paper_forms_decided_is_final BEFORE UPDATE ON public.paper_forms FOR EACH ROW EXECUTE FUNCTION public.paper_forms_decided_is_final();

CREATE TRIGGER payment_debts_guard BEFORE INSERT OR UPDATE ON public.payment_debts FOR EACH ROW EXECUTE FUNCTION public.payment_debts_guard();

CREATE TRIGGER payment_holds_transitions BEFORE UPDATE ON public.payment_holds FOR EACH ROW EXECUTE FUNCTION public.payment_holds_transitions();

CREATE TRIGGER payment_recalls_guard BEFORE INSERT OR UPDATE ON public.payment_recalls FOR EACH ROW EXECUTE FUNCTION public.payment_recalls_guard();

CREATE TRIGGER payments_guard_insert AFTER INSERT ON public.payments REFERENCING NEW TABLE AS new_payments FOR EACH STATEMENT EXECUTE FUNCTION public.payments_guard_insert();

CREATE TRIGGER payments_guard_update BEFORE UPDATE OF batch_id, amount_yen, entitlement_id ON public.payments FOR EACH ROW EXECUTE FUNCTION public.payments_guard_update();

CREATE TRIGGER payments_not_held AFTER INSERT ON public.payments REFERENCING NEW TABLE AS new_payments FOR EACH STATEMENT EXECUTE FUNCTION public.payments_not_held();

CREATE TRIGGER payments_not_held_in_batch BEFORE UPDATE OF batch_id ON public.payments FOR EACH ROW WHEN (((new.batch_id IS NOT NULL) AND (new.batch_id IS DISTINCT FROM old.batch_id))) EXECUTE FUNCTION public.payments_not_held_in_batch();

CREATE TRIGGER payments_recovery_guard BEFORE UPDATE OF status ON public.payments FOR EACH ROW WHEN (((old.status IS DISTINCT FROM new.status) AND (('returned'::text = old.status) OR ('returned'::text = new.status)))) EXECUTE FUNCTION public.payments_recovery_guard();

CREATE TRIGGER payments_wait_for_duplicates AFTER INSERT ON public.payments REFERENCING NEW TABLE AS new_payments FOR EACH STATEMENT EXECUTE FUNCTION public.payments_wait_for_duplicates();

CREATE TRIGGER payments_wait_for_duplicates_in_batch BEFORE UPDATE OF batch_id ON public.payments FOR EACH ROW WHEN (((new.batch_id IS NOT NULL) AND (new.batch_id IS DISTINCT FROM old.batch_id))) EXECUTE FUNCTION public.payments_wait_for_duplicates_in_batch();

CREATE TRIGGER payments_wait_for_dv AFTER INSERT ON public.payments REFERENCING NEW TABLE AS new_payments FOR EACH STATEMENT EXECUTE FUNCTION public.payments_wait_for_dv();

CREATE TRIGGER payments_wait_for_dv_in_batch BEFORE UPDATE OF batch_id ON public.payments FOR EACH ROW WHEN (((new.batch_id IS NOT NULL) AND (new.batch_id IS DISTINCT FROM old.batch_id))) EXECUTE FUNCTION public.payments_wait_for_dv_in_batch();

CREATE TRIGGER payout_batches_guardrails BEFORE UPDATE OF status ON public.payout_batches FOR EACH ROW EXECUTE FUNCTION public.payout_batches_guardrails();

CREATE TRIGGER payout_batches_holder_checks BEFORE UPDATE OF status ON public.payout_batches FOR EACH ROW WHEN (((old.status = 'preparing'::text) AND (new.status = 'draft'::text))) EXECUTE FUNCTION public.payout_batches_holder_checks();

CREATE TRIGGER payout_batches_independent_approver BEFORE INSERT OR UPDATE OF approved_by ON public.payout_batches FOR EACH ROW WHEN ((new.approved_by IS NOT NULL)) EXECUTE FUNCTION public.payout_batches_independent_approver();

CREATE TRIGGER payout_batches_no_held_payment BEFORE UPDATE OF status ON public.payout_batches FOR EACH ROW EXECUTE FUNCTION public.payout_batches_no_held_payment();

CREATE TRIGGER payout_batches_release_once BEFORE UPDATE ON public.payout_batches FOR EACH ROW EXECUTE FUNCTION public.payout_batches_release_once();

CREATE TRIGGER payout_batches_screened_snapshot BEFORE UPDATE OF status ON public.payout_batches FOR EACH ROW WHEN (((old.status = 'preparing'::text) AND (new.status = 'draft'::text))) EXECUTE FUNCTION public.payout_batches_screened_snapshot();

CREATE TRIGGER payout_batches_wait_for_duplicates BEFORE UPDATE OF status ON public.payout_batches FOR EACH ROW EXECUTE FUNCTION public.payout_batches_wait_for_duplicates();

CREATE TRIGGER payout_batches_wait_for_dv BEFORE UPDATE OF status ON public.payout_batches FOR EACH ROW EXECUTE FUNCTION public.payout_batches_wait_for_dv();

CREATE TRIGGER programs_keep_entitlements BEFORE DELETE OR UPDATE OF municipality_code, program_id ON public.programs FOR EACH ROW EXECUTE FUNCTION public.programs_keep_entitlements();

CREATE TRIGGER registry_snapshots_keep_entitlements BEFORE DELETE OR UPDATE OF municipality_code, snapshot_id ON public.registry_snapshots FOR EACH ROW EXECUTE FUNCTION public.registry_snapshots_keep_entitlements();

CREATE TRIGGER registry_snapshots_keep_residents BEFORE DELETE ON public.registry_snapshots FOR EACH ROW EXECUTE FUNCTION public.registry_snapshots_keep_residents();

CREATE TRIGGER residents_snapshot_exists AFTER INSERT ON public.residents REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.residents_snapshot_exists();

CREATE TRIGGER staff_enrolments_rules BEFORE INSERT OR UPDATE ON public.staff_enrolments FOR EACH ROW EXECUTE FUNCTION public.staff_enrolments_rules();

CREATE TRIGGER staff_role_grants_rules BEFORE INSERT OR UPDATE ON public.staff_role_grants FOR EACH ROW EXECUTE FUNCTION public.staff_role_grants_rules();

CREATE TRIGGER staff_users_roles_granted BEFORE INSERT OR UPDATE OF roles ON public.staff_users FOR EACH ROW EXECUTE FUNCTION public.staff_users_roles_granted();

ALTER TABLE ONLY duplicate_match.case_sides
    ADD CONSTRAINT case_sides_case_id_fkey FOREIGN KEY (case_id) REFERENCES duplicate_match.cases(case_id);

ALTER TABLE ONLY duplicate_match.case_sides
    ADD CONSTRAINT case_sides_municipality_code_entitlement_id_fkey FOREIGN KEY (municipality_code, entitlement_id) REFERENCES public.entitlements(municipality_code, entitlement_id);

ALTER TABLE ONLY duplicate_match.case_sides
    ADD CONSTRAINT case_sides_municipality_code_fkey FOREIGN KEY (municipality_code) REFERENCES public.municipalities(code);

ALTER TABLE ONLY duplicate_match.case_sides
    ADD CONSTRAINT case_sides_municipality_code_resolved_by_fkey FOREIGN KEY (municipality_code, resolved_by) REFERENCES public.staff_users(municipality_code, staff_id);

ALTER TABLE ONLY duplicate_match.hashes
    ADD CONSTRAINT hashes_key_version_fkey FOREIGN KEY (key_version) REFERENCES duplicate_match.keys(version);

ALTER TABLE ONLY duplicate_match.hashes
    ADD CONSTRAINT hashes_municipality_code_fkey FOREIGN KEY (municipality_code) REFERENCES public.municipalities(code);

ALTER TABLE ONLY dv_match.digests
    ADD CONSTRAINT digests_request_id_fkey FOREIGN KEY (request_id) REFERENCES dv_match.requests(request_id);

ALTER TABLE ONLY dv_match.matches
    ADD CONSTRAINT matches_request_id_fkey FOREIGN KEY (request_id) REFERENCES dv_match.requests(request_id);

ALTER TABLE ONLY dv_match.requests
    ADD CONSTRAINT requests_filed_code_filed_entitlement_id_fkey FOREIGN KEY (filed_code, filed_entitlement_id) REFERENCES public.entitlements(municipality_code, entitlement_id);

ALTER TABLE ONLY dv_match.requests
    ADD CONSTRAINT requests_filed_code_fkey FOREIGN KEY (filed_code) REFERENCES public.municipalities(code);

ALTER TABLE ONLY dv_match.requests
    ADD CONSTRAINT requests_key_version_fkey FOREIGN KEY (key_version) REFERENCES duplicate_match.keys(version);

ALTER TABLE ONLY dv_match.requests
    ADD CONSTRAINT requests_registered_code_answered_by_fkey FOREIGN KEY (registered_code, answered_by) REFERENCES public.staff_users(municipality_code, staff_id);

ALTER TABLE ONLY dv_match.requests
    ADD CONSTRAINT requests_registered_code_fkey FOREIGN KEY (registered_code) REFERENCES public.municipalities(code);

ALTER TABLE ONLY public.application_account_changes
    ADD CONSTRAINT application_account_changes_municipality_code_application__fkey FOREIGN KEY (municipality_code, application_id) REFERENCES public.applications(municipality_code, application_id);

ALTER TABLE ONLY public.application_account_changes
    ADD CONSTRAINT application_account_changes_municipality_code_entitlement__fkey FOREIGN KEY (municipality_code, entitlement_id) REFERENCES public.entitlements(municipality_code, entitlement_id);

ALTER TABLE ONLY public.application_account_keys
    ADD CONSTRAINT application_account_keys_municipality_code_application_id_fkey FOREIGN KEY (municipality_code, application_id) REFERENCES public.applications(municipality_code, application_id);

ALTER TABLE ONLY public.application_proxies
    ADD CONSTRAINT application_proxies_municipality_code_application_id_fkey FOREIGN KEY (municipality_code, application_id) REFERENCES public.applications(municipality_code, application_id);

ALTER TABLE ONLY public.application_proxies
    ADD CONSTRAINT application_proxies_municipality_code_recorded_by_fkey FOREIGN KEY (municipality_code, recorded_by) REFERENCES public.staff_users(municipality_code, staff_id);

ALTER TABLE ONLY public.applications
    ADD CONSTRAINT applications_municipality_code_entitlement_id_fkey FOREIGN KEY (municipality_code, entitlement_id) REFERENCES public.entitlements(municipality_code, entitlement_id);

ALTER TABLE ONLY public.audit_log
    ADD CONSTRAINT audit_log_municipality_code_actor_staff_id_fkey FOREIGN KEY (municipality_code, actor_staff_id) REFERENCES public.staff_users(municipality_code, staff_id);

ALTER TABLE ONLY public.audit_log
    ADD CONSTRAINT audit_log_municipality_code_fkey FOREIGN KEY (municipality_code) REFERENCES public.municipalities(code);

ALTER TABLE ONLY public.debt_notices
    ADD CONSTRAINT debt_notices_municipality_code_debt_id_fkey FOREIGN KEY (municipality_code, debt_id) REFERENCES public.payment_debts(municipality_code, debt_id);

ALTER TABLE ONLY public.debt_notices
    ADD CONSTRAINT debt_notices_municipality_code_recorded_by_fkey FOREIGN KEY (municipality_code, recorded_by) REFERENCES public.staff_users(municipality_code, staff_id);

ALTER TABLE ONLY public.debt_repayments
    ADD CONSTRAINT debt_repayments_municipality_code_debt_id_fkey FOREIGN KEY (municipality_code, debt_id) REFERENCES public.payment_debts(municipality_code, debt_id);

ALTER TABLE ONLY public.debt_repayments
    ADD CONSTRAINT debt_repayments_municipality_code_recorded_by_fkey FOREIGN KEY (municipality_code, recorded_by) REFERENCES public.staff_users(municipality_code, staff_id);

ALTER TABLE ONLY public.dv_exclusions
    ADD CONSTRAINT dv_exclusions_municipality_code_applied_by_fkey FOREIGN KEY (municipality_code, applied_by) REFERENCES public.staff_users(municipality_code, staff_id);

ALTER TABLE ONLY public.dv_exclusions
    ADD CONSTRAINT dv_exclusions_municipality_code_entitlement_id_fkey FOREIGN KEY (municipality_code, entitlement_id) REFERENCES public.entitlements(municipality_code, entitlement_id);

ALTER TABLE ONLY public.dv_requests
    ADD CONSTRAINT dv_requests_municipality_code_application_id_fkey FOREIGN KEY (municipality_code, application_id) REFERENCES public.applications(municipality_code, application_id);

ALTER TABLE ONLY public.dv_requests
    ADD CONSTRAINT dv_requests_municipality_code_entitlement_id_fkey FOREIGN KEY (municipality_code, entitlement_id) REFERENCES public.entitlements(municipality_code, entitlement_id);

ALTER TABLE ONLY public.dv_requests
    ADD CONSTRAINT dv_requests_municipality_code_filed_by_fkey FOREIGN KEY (municipality_code, filed_by) REFERENCES public.staff_users(municipality_code, staff_id);

ALTER TABLE ONLY public.dv_requests
    ADD CONSTRAINT dv_requests_municipality_code_program_id_fkey FOREIGN KEY (municipality_code, program_id) REFERENCES public.programs(municipality_code, program_id);

ALTER TABLE ONLY public.dv_requests
    ADD CONSTRAINT dv_requests_registered_municipality_code_fkey FOREIGN KEY (registered_municipality_code) REFERENCES public.municipalities(code);

ALTER TABLE ONLY public.eligibility_runs
    ADD CONSTRAINT eligibility_runs_municipality_code_program_id_fkey FOREIGN KEY (municipality_code, program_id) REFERENCES public.programs(municipality_code, program_id);

ALTER TABLE ONLY public.eligibility_runs
    ADD CONSTRAINT eligibility_runs_municipality_code_snapshot_id_fkey FOREIGN KEY (municipality_code, snapshot_id) REFERENCES public.registry_snapshots(municipality_code, snapshot_id);

ALTER TABLE ONLY public.eligibility_runs
    ADD CONSTRAINT eligibility_runs_municipality_code_tax_snapshot_id_fkey FOREIGN KEY (municipality_code, tax_snapshot_id) REFERENCES public.registry_snapshots(municipality_code, snapshot_id);

ALTER TABLE ONLY public.entitlement_conflicts
    ADD CONSTRAINT entitlement_conflicts_municipality_code_entitlement_id_fkey FOREIGN KEY (municipality_code, entitlement_id) REFERENCES public.entitlements(municipality_code, entitlement_id);

ALTER TABLE ONLY public.entitlement_conflicts
    ADD CONSTRAINT entitlement_conflicts_municipality_code_snapshot_id_fkey FOREIGN KEY (municipality_code, snapshot_id) REFERENCES public.registry_snapshots(municipality_code, snapshot_id);

ALTER TABLE ONLY public.intake_duplicate_claims
    ADD CONSTRAINT intake_duplicate_claims_municipality_code_application_id_fkey FOREIGN KEY (municipality_code, application_id) REFERENCES public.applications(municipality_code, application_id);

ALTER TABLE ONLY public.intake_duplicate_claims
    ADD CONSTRAINT intake_duplicate_claims_municipality_code_entitlement_id_fkey FOREIGN KEY (municipality_code, entitlement_id) REFERENCES public.entitlements(municipality_code, entitlement_id);

ALTER TABLE ONLY public.intake_idempotency_keys
    ADD CONSTRAINT intake_idempotency_keys_municipality_code_application_id_fkey FOREIGN KEY (municipality_code, application_id) REFERENCES public.applications(municipality_code, application_id);

ALTER TABLE ONLY public.intake_idempotency_keys
    ADD CONSTRAINT intake_idempotency_keys_municipality_code_fkey FOREIGN KEY (municipality_code) REFERENCES public.municipalities(code);

ALTER TABLE ONLY public.intake_identity_lockouts
    ADD CONSTRAINT intake_identity_lockouts_municipality_code_fkey FOREIGN KEY (municipality_code) REFERENCES public.municipalities(code);

ALTER TABLE ONLY public.letters
    ADD CONSTRAINT letters_municipality_code_entitlement_id_fkey FOREIGN KEY (municipality_code, entitlement_id) REFERENCES public.entitlements(municipality_code, entitlement_id);

ALTER TABLE ONLY public.municipality_bank_settings
    ADD CONSTRAINT municipality_bank_settings_municipality_code_fkey FOREIGN KEY (municipality_code) REFERENCES public.municipalities(code);

ALTER TABLE ONLY public.municipality_bank_settings
    ADD CONSTRAINT municipality_bank_settings_municipality_code_updated_by_fkey FOREIGN KEY (municipality_code, updated_by) REFERENCES public.staff_users(municipality_code, staff_id);

ALTER TABLE ONLY public.municipality_keys
    ADD CONSTRAINT municipality_keys_municipality_code_fkey FOREIGN KEY (municipality_code) REFERENCES public.municipalities(code);

ALTER TABLE ONLY public.outbox
    ADD CONSTRAINT outbox_municipality_code_fkey FOREIGN KEY (municipality_code) REFERENCES public.municipalities(code);

ALTER TABLE ONLY public.paper_boxes
    ADD CONSTRAINT paper_boxes_municipality_code_program_id_fkey FOREIGN KEY (municipality_code, program_id) REFERENCES public.programs(municipality_code, program_id);

ALTER TABLE ONLY public.paper_boxes
    ADD CONSTRAINT paper_boxes_municipality_code_received_by_fkey FOREIGN KEY (municipality_code, received_by) REFERENCES public.staff_users(municipality_code, staff_id);

ALTER TABLE ONLY public.paper_deficiencies
    ADD CONSTRAINT paper_deficiencies_municipality_code_entitlement_id_fkey FOREIGN KEY (municipality_code, entitlement_id) REFERENCES public.entitlements(municipality_code, entitlement_id);

ALTER TABLE ONLY public.paper_deficiencies
    ADD CONSTRAINT paper_deficiencies_municipality_code_form_id_fkey FOREIGN KEY (municipality_code, form_id) REFERENCES public.paper_forms(municipality_code, form_id);

ALTER TABLE ONLY public.paper_deficiencies
    ADD CONSTRAINT paper_deficiencies_municipality_code_recorded_by_fkey FOREIGN KEY (municipality_code, recorded_by) REFERENCES public.staff_users(municipality_code, staff_id);

ALTER TABLE ONLY public.paper_entries
    ADD CONSTRAINT paper_entries_municipality_code_entitlement_id_fkey FOREIGN KEY (municipality_code, entitlement_id) REFERENCES public.entitlements(municipality_code, entitlement_id);

ALTER TABLE ONLY public.paper_entries
    ADD CONSTRAINT paper_entries_municipality_code_form_id_fkey FOREIGN KEY (municipality_code, form_id) REFERENCES public.paper_forms(municipality_code, form_id);

ALTER TABLE ONLY public.paper_entries
    ADD CONSTRAINT paper_entries_municipality_code_keyed_by_fkey FOREIGN KEY (municipality_code, keyed_by) REFERENCES public.staff_users(municipality_code, staff_id);

ALTER TABLE ONLY public.paper_forms
    ADD CONSTRAINT paper_forms_municipality_code_application_id_fkey FOREIGN KEY (municipality_code, application_id) REFERENCES public.applications(municipality_code, application_id);

ALTER TABLE ONLY public.paper_forms
    ADD CONSTRAINT paper_forms_municipality_code_box_id_fkey FOREIGN KEY (municipality_code, box_id) REFERENCES public.paper_boxes(municipality_code, box_id);

ALTER TABLE ONLY public.paper_forms
    ADD CONSTRAINT paper_forms_municipality_code_entitlement_id_fkey FOREIGN KEY (municipality_code, entitlement_id) REFERENCES public.entitlements(municipality_code, entitlement_id);

ALTER TABLE ONLY public.payment_debts
    ADD CONSTRAINT payment_debts_municipality_code_opened_by_fkey FOREIGN KEY (municipality_code, opened_by) REFERENCES public.staff_users(municipality_code, staff_id);

ALTER TABLE ONLY public.payment_debts
    ADD CONSTRAINT payment_debts_municipality_code_payment_id_fkey FOREIGN KEY (municipality_code, payment_id) REFERENCES public.payments(municipality_code, payment_id);

ALTER TABLE ONLY public.payment_debts
    ADD CONSTRAINT payment_debts_municipality_code_write_off_requested_by_fkey FOREIGN KEY (municipality_code, write_off_requested_by) REFERENCES public.staff_users(municipality_code, staff_id);

ALTER TABLE ONLY public.payment_debts
    ADD CONSTRAINT payment_debts_municipality_code_written_off_by_fkey FOREIGN KEY (municipality_code, written_off_by) REFERENCES public.staff_users(municipality_code, staff_id);

ALTER TABLE ONLY public.payment_followups
    ADD CONSTRAINT payment_followups_municipality_code_payment_id_fkey FOREIGN KEY (municipality_code, payment_id) REFERENCES public.payments(municipality_code, payment_id);

ALTER TABLE ONLY public.payment_followups
    ADD CONSTRAINT payment_followups_municipality_code_recontact_by_fkey FOREIGN KEY (municipality_code, recontact_by) REFERENCES public.staff_users(municipality_code, staff_id);

ALTER TABLE ONLY public.payment_holds
    ADD CONSTRAINT payment_holds_municipality_code_entitlement_id_fkey FOREIGN KEY (municipality_code, entitlement_id) REFERENCES public.entitlements(municipality_code, entitlement_id);

ALTER TABLE ONLY public.payment_holds
    ADD CONSTRAINT payment_holds_municipality_code_payment_id_fkey FOREIGN KEY (municipality_code, payment_id) REFERENCES public.payments(municipality_code, payment_id);

ALTER TABLE ONLY public.payment_holds
    ADD CONSTRAINT payment_holds_municipality_code_placed_by_fkey FOREIGN KEY (municipality_code, placed_by) REFERENCES public.staff_users(municipality_code, staff_id);

ALTER TABLE ONLY public.payment_holds
    ADD CONSTRAINT payment_holds_municipality_code_released_by_fkey FOREIGN KEY (municipality_code, released_by) REFERENCES public.staff_users(municipality_code, staff_id);

ALTER TABLE ONLY public.payment_holds
    ADD CONSTRAINT payment_holds_municipality_code_snapshot_id_fkey FOREIGN KEY (municipality_code, snapshot_id) REFERENCES public.registry_snapshots(municipality_code, snapshot_id);

ALTER TABLE ONLY public.payment_holds
    ADD CONSTRAINT payment_holds_municipality_code_stopped_by_fkey FOREIGN KEY (municipality_code, stopped_by) REFERENCES public.staff_users(municipality_code, staff_id);

ALTER TABLE ONLY public.payment_recalls
    ADD CONSTRAINT payment_recalls_municipality_code_answered_by_fkey FOREIGN KEY (municipality_code, answered_by) REFERENCES public.staff_users(municipality_code, staff_id);

ALTER TABLE ONLY public.payment_recalls
    ADD CONSTRAINT payment_recalls_municipality_code_payment_id_fkey FOREIGN KEY (municipality_code, payment_id) REFERENCES public.payments(municipality_code, payment_id);

ALTER TABLE ONLY public.payment_recalls
    ADD CONSTRAINT payment_recalls_municipality_code_requested_by_fkey FOREIGN KEY (municipality_code, requested_by) REFERENCES public.staff_users(municipality_code, staff_id);

ALTER TABLE ONLY public.payment_reissues
    ADD CONSTRAINT payment_reissues_municipality_code_payment_id_fkey FOREIGN KEY (municipality_code, payment_id) REFERENCES public.payments(municipality_code, payment_id);

ALTER TABLE ONLY public.payment_reissues
    ADD CONSTRAINT payment_reissues_municipality_code_replaces_payment_id_fkey FOREIGN KEY (municipality_code, replaces_payment_id) REFERENCES public.payments(municipality_code, payment_id);

ALTER TABLE ONLY public.payment_returns
    ADD CONSTRAINT payment_returns_municipality_code_import_id_fkey FOREIGN KEY (municipality_code, import_id) REFERENCES public.payout_return_imports(municipality_code, import_id);

ALTER TABLE ONLY public.payment_returns
    ADD CONSTRAINT payment_returns_municipality_code_payment_id_fkey FOREIGN KEY (municipality_code, payment_id) REFERENCES public.payments(municipality_code, payment_id);

ALTER TABLE ONLY public.payments
    ADD CONSTRAINT payments_municipality_code_application_id_fkey FOREIGN KEY (municipality_code, application_id) REFERENCES public.applications(municipality_code, application_id);

ALTER TABLE ONLY public.payments
    ADD CONSTRAINT payments_municipality_code_batch_id_fkey FOREIGN KEY (municipality_code, batch_id) REFERENCES public.payout_batches(municipality_code, batch_id);

ALTER TABLE ONLY public.payments
    ADD CONSTRAINT payments_municipality_code_entitlement_id_fkey FOREIGN KEY (municipality_code, entitlement_id) REFERENCES public.entitlements(municipality_code, entitlement_id);

ALTER TABLE ONLY public.payout_batch_account_flags
    ADD CONSTRAINT payout_batch_account_flags_municipality_code_batch_id_fkey FOREIGN KEY (municipality_code, batch_id) REFERENCES public.payout_batches(municipality_code, batch_id);

ALTER TABLE ONLY public.payout_batch_account_flags
    ADD CONSTRAINT payout_batch_account_flags_municipality_code_overridden_by_fkey FOREIGN KEY (municipality_code, overridden_by) REFERENCES public.staff_users(municipality_code, staff_id);

ALTER TABLE ONLY public.payout_batches
    ADD CONSTRAINT payout_batches_municipality_code_approved_by_fkey FOREIGN KEY (municipality_code, approved_by) REFERENCES public.staff_users(municipality_code, staff_id);

ALTER TABLE ONLY public.payout_batches
    ADD CONSTRAINT payout_batches_municipality_code_drafted_by_fkey FOREIGN KEY (municipality_code, drafted_by) REFERENCES public.staff_users(municipality_code, staff_id);

ALTER TABLE ONLY public.payout_batches
    ADD CONSTRAINT payout_batches_municipality_code_program_id_fkey FOREIGN KEY (municipality_code, program_id) REFERENCES public.programs(municipality_code, program_id);

ALTER TABLE ONLY public.payout_batches
    ADD CONSTRAINT payout_batches_municipality_code_release_requested_by_fkey FOREIGN KEY (municipality_code, release_requested_by) REFERENCES public.staff_users(municipality_code, staff_id);

ALTER TABLE ONLY public.payout_batches
    ADD CONSTRAINT payout_batches_rejected_by_fk FOREIGN KEY (municipality_code, rejected_by) REFERENCES public.staff_users(municipality_code, staff_id);

ALTER TABLE ONLY public.payout_releases
    ADD CONSTRAINT payout_releases_municipality_code_batch_id_fkey FOREIGN KEY (municipality_code, batch_id) REFERENCES public.payout_batches(municipality_code, batch_id);

ALTER TABLE ONLY public.payout_releases
    ADD CONSTRAINT payout_releases_municipality_code_released_by_fkey FOREIGN KEY (municipality_code, released_by) REFERENCES public.staff_users(municipality_code, staff_id);

ALTER TABLE ONLY public.payout_return_imports
    ADD CONSTRAINT payout_return_imports_municipality_code_batch_id_fkey FOREIGN KEY (municipality_code, batch_id) REFERENCES public.payout_batches(municipality_code, batch_id);

ALTER TABLE ONLY public.programs
    ADD CONSTRAINT programs_municipality_code_fkey FOREIGN KEY (municipality_code) REFERENCES public.municipalities(code);

ALTER TABLE ONLY public.registered_accounts
    ADD CONSTRAINT registered_accounts_municipality_code_fkey FOREIGN KEY (municipality_code) REFERENCES public.municipalities(code);

ALTER TABLE ONLY public.registry_screenings
    ADD CONSTRAINT registry_screenings_municipality_code_snapshot_id_fkey FOREIGN KEY (municipality_code, snapshot_id) REFERENCES public.registry_snapshots(municipality_code, snapshot_id);

ALTER TABLE ONLY public.registry_snapshots
    ADD CONSTRAINT registry_snapshots_municipality_code_fkey FOREIGN KEY (municipality_code) REFERENCES public.municipalities(code);

ALTER TABLE ONLY public.released_file_parts
    ADD CONSTRAINT released_file_parts_municipality_code_batch_id_fkey FOREIGN KEY (municipality_code, batch_id) REFERENCES public.released_files(municipality_code, batch_id);

ALTER TABLE ONLY public.released_files
    ADD CONSTRAINT released_files_municipality_code_batch_id_fkey FOREIGN KEY (municipality_code, batch_id) REFERENCES public.payout_batches(municipality_code, batch_id);

ALTER TABLE ONLY public.staff_devices
    ADD CONSTRAINT staff_devices_municipality_code_staff_id_fkey FOREIGN KEY (municipality_code, staff_id) REFERENCES public.staff_users(municipality_code, staff_id);

ALTER TABLE ONLY public.staff_enrolments
    ADD CONSTRAINT staff_enrolments_municipality_code_issued_by_fkey FOREIGN KEY (municipality_code, issued_by) REFERENCES public.staff_users(municipality_code, staff_id);

ALTER TABLE ONLY public.staff_enrolments
    ADD CONSTRAINT staff_enrolments_municipality_code_staff_id_fkey FOREIGN KEY (municipality_code, staff_id) REFERENCES public.staff_users(municipality_code, staff_id);

ALTER TABLE ONLY public.staff_role_grants
    ADD CONSTRAINT staff_role_grants_municipality_code_decided_by_fkey FOREIGN KEY (municipality_code, decided_by) REFERENCES public.staff_users(municipality_code, staff_id);

ALTER TABLE ONLY public.staff_role_grants
    ADD CONSTRAINT staff_role_grants_municipality_code_requested_by_fkey FOREIGN KEY (municipality_code, requested_by) REFERENCES public.staff_users(municipality_code, staff_id);

ALTER TABLE ONLY public.staff_role_grants
    ADD CONSTRAINT staff_role_grants_municipality_code_staff_id_fkey FOREIGN KEY (municipality_code, staff_id) REFERENCES public.staff_users(municipality_code, staff_id);

ALTER TABLE ONLY public.staff_sessions
    ADD CONSTRAINT staff_sessions_municipality_code_staff_id_fkey FOREIGN KEY (municipality_code, staff_id) REFERENCES public.staff_users(municipality_code, staff_id);

ALTER TABLE ONLY public.staff_settings
    ADD CONSTRAINT staff_settings_municipality_code_fkey FOREIGN KEY (municipality_code) REFERENCES public.municipalities(code);

ALTER TABLE ONLY public.staff_signin_failures
    ADD CONSTRAINT staff_signin_failures_municipality_code_fkey FOREIGN KEY (municipality_code) REFERENCES public.municipalities(code);

ALTER TABLE ONLY public.staff_signin_failures
    ADD CONSTRAINT staff_signin_failures_municipality_code_staff_id_fkey FOREIGN KEY (municipality_code, staff_id) REFERENCES public.staff_users(municipality_code, staff_id);

ALTER TABLE ONLY public.staff_users
    ADD CONSTRAINT staff_users_created_by_fk FOREIGN KEY (municipality_code, created_by) REFERENCES public.staff_users(municipality_code, staff_id);

ALTER TABLE ONLY public.staff_users
    ADD CONSTRAINT staff_users_municipality_code_fkey FOREIGN KEY (municipality_code) REFERENCES public.municipalities(code);

ALTER TABLE ONLY public.tax_statuses
    ADD CONSTRAINT tax_statuses_municipality_code_snapshot_id_fkey FOREIGN KEY (municipality_code, snapshot_id) REFERENCES public.registry_snapshots(municipality_code, snapshot_id);

ALTER TABLE duplicate_match.case_sides ENABLE ROW LEVEL SECURITY;

ALTER TABLE duplicate_match.cases ENABLE ROW LEVEL SECURITY;

ALTER TABLE duplicate_match.hashes ENABLE ROW LEVEL SECURITY;

ALTER TABLE duplicate_match.keys ENABLE ROW LEVEL SECURITY;

ALTER TABLE dv_match.digests ENABLE ROW LEVEL SECURITY;

ALTER TABLE dv_match.matches ENABLE ROW LEVEL SECURITY;

ALTER TABLE dv_match.requests ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.application_account_changes ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.application_account_keys ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.application_proxies ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.applications ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.audit_log ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.debt_notices ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.debt_repayments ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.dv_exclusions ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.dv_requests ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.eligibility_runs ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.entitlement_conflicts ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.entitlements ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.intake_duplicate_claims ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.intake_idempotency_keys ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.intake_identity_lockouts ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.letters ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.municipality_bank_settings ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.municipality_keys ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.outbox ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.paper_boxes ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.paper_deficiencies ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.paper_entries ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.paper_forms ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.payment_debts ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.payment_followups ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.payment_holds ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.payment_recalls ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.payment_reissues ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.payment_returns ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.payments ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.payout_batch_account_flags ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.payout_batches ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.payout_releases ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.payout_return_imports ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.programs ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.registered_accounts ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.registry_screenings ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.registry_snapshots ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.released_file_parts ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.released_files ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.residents ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.staff_devices ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.staff_enrolments ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.staff_role_grants ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.staff_sessions ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.staff_settings ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.staff_signin_failures ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.staff_users ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.tax_statuses ENABLE ROW LEVEL SECURITY;

CREATE POLICY tenant_isolation ON public.application_account_changes USING ((municipality_code = public.kyufu_current_municipality())) WITH CHECK ((municipality_code = public.kyufu_current_municipality()));

CREATE POLICY tenant_isolation ON public.application_account_keys USING ((municipality_code = public.kyufu_current_municipality())) WITH CHECK ((municipality_code = public.kyufu_current_municipality()));

CREATE POLICY tenant_isolation ON public.application_proxies USING ((municipality_code = public.kyufu_current_municipality())) WITH CHECK ((municipality_code = public.kyufu_current_municipality()));

CREATE POLICY tenant_isolation ON public.applications USING ((municipality_code = public.kyufu_current_municipality())) WITH CHECK ((municipality_code = public.kyufu_current_municipality()));

CREATE POLICY tenant_isolation ON public.audit_log USING ((municipality_code = public.kyufu_current_municipality())) WITH CHECK ((municipality_code = public.kyufu_current_municipality()));

CREATE POLICY tenant_isolation ON public.debt_notices USING ((municipality_code = public.kyufu_current_municipality())) WITH CHECK ((municipality_code = public.kyufu_current_municipality()));

CREATE POLICY tenant_isolation ON public.debt_repayments USING ((municipality_code = public.kyufu_current_municipality())) WITH CHECK ((municipality_code = public.kyufu_current_municipality()));

CREATE POLICY tenant_isolation ON public.dv_exclusions USING ((municipality_code = public.kyufu_current_municipality())) WITH CHECK ((municipality_code = public.kyufu_current_municipality()));

CREATE POLICY tenant_isolation ON public.dv_requests USING ((municipality_code = public.kyufu_current_municipality())) WITH CHECK ((municipality_code = public.kyufu_current_municipality()));

CREATE POLICY tenant_isolation ON public.eligibility_runs USING ((municipality_code = public.kyufu_current_municipality())) WITH CHECK ((municipality_code = public.kyufu_current_municipality()));

CREATE POLICY tenant_isolation ON public.entitlement_conflicts USING ((municipality_code = public.kyufu_current_municipality())) WITH CHECK ((municipality_code = public.kyufu_current_municipality()));

CREATE POLICY tenant_isolation ON public.entitlements USING ((municipality_code = public.kyufu_current_municipality())) WITH CHECK ((municipality_code = public.kyufu_current_municipality()));

CREATE POLICY tenant_isolation ON public.intake_duplicate_claims USING ((municipality_code = public.kyufu_current_municipality())) WITH CHECK ((municipality_code = public.kyufu_current_municipality()));

CREATE POLICY tenant_isolation ON public.intake_idempotency_keys USING ((municipality_code = public.kyufu_current_municipality())) WITH CHECK ((municipality_code = public.kyufu_current_municipality()));

CREATE POLICY tenant_isolation ON public.intake_identity_lockouts USING ((municipality_code = public.kyufu_current_municipality())) WITH CHECK ((municipality_code = public.kyufu_current_municipality()));

CREATE POLICY tenant_isolation ON public.letters USING ((municipality_code = public.kyufu_current_municipality())) WITH CHECK ((municipality_code = public.kyufu_current_municipality()));

CREATE POLICY tenant_isolation ON public.municipality_bank_settings USING ((municipality_code = public.kyufu_current_municipality())) WITH CHECK ((municipality_code = public.kyufu_current_municipality()));

CREATE POLICY tenant_isolation ON public.municipality_keys USING ((municipality_code = public.kyufu_current_municipality())) WITH CHECK ((municipality_code = public.kyufu_current_municipality()));

CREATE POLICY tenant_isolation ON public.outbox USING ((municipality_code = public.kyufu_current_municipality())) WITH CHECK ((municipality_code = public.kyufu_current_municipality()));

CREATE POLICY tenant_isolation ON public.paper_boxes USING ((municipality_code = public.kyufu_current_municipality())) WITH CHECK ((municipality_code = public.kyufu_current_municipality()));

CREATE POLICY tenant_isolation ON public.paper_deficiencies USING ((municipality_code = public.kyufu_current_municipality())) WITH CHECK ((municipality_code = public.kyufu_current_municipality()));

CREATE POLICY tenant_isolation ON public.paper_entries USING ((municipality_code = public.kyufu_current_municipality())) WITH CHECK ((municipality_code = public.kyufu_current_municipality()));

CREATE POLICY tenant_isolation ON public.paper_forms USING ((municipality_code = public.kyufu_current_municipality())) WITH CHECK ((municipality_code = public.kyufu_current_municipality()));

CREATE POLICY tenant_isolation ON public.payment_debts USING ((municipality_code = public.kyufu_current_municipality())) WITH CHECK ((municipality_code = public.kyufu_current_municipality()));

CREATE POLICY tenant_isolation ON public.payment_followups USING ((municipality_code = public.kyufu_current_municipality())) WITH CHECK ((municipality_code = public.kyufu_current_municipality()));

CREATE POLICY tenant_isolation ON public.payment_holds USING ((municipality_code = public.kyufu_current_municipality())) WITH CHECK ((municipality_code = public.kyufu_current_municipality()));

CREATE POLICY tenant_isolation ON public.payment_recalls USING ((municipality_code = public.kyufu_current_municipality())) WITH CHECK ((municipality_code = public.kyufu_current_municipality()));

CREATE POLICY tenant_isolation ON public.payment_reissues USING ((municipality_code = public.kyufu_current_municipality())) WITH CHECK ((municipality_code = public.kyufu_current_municipality()));

CREATE POLICY tenant_isolation ON public.payment_returns USING ((municipality_code = public.kyufu_current_municipality())) WITH CHECK ((municipality_code = public.kyufu_current_municipality()));

CREATE POLICY tenant_isolation ON public.payments USING ((municipality_code = public.kyufu_current_municipality())) WITH CHECK ((municipality_code = public.kyufu_current_municipality()));

CREATE POLICY tenant_isolation ON public.payout_batch_account_flags USING ((municipality_code = public.kyufu_current_municipality())) WITH CHECK ((municipality_code = public.kyufu_current_municipality()));

CREATE POLICY tenant_isolation ON public.payout_batches USING ((municipality_code = public.kyufu_current_municipality())) WITH CHECK ((municipality_code = public.kyufu_current_municipality()));

CREATE POLICY tenant_isolation ON public.payout_releases USING ((municipality_code = public.kyufu_current_municipality())) WITH CHECK ((municipality_code = public.kyufu_current_municipality()));

CREATE POLICY tenant_isolation ON public.payout_return_imports USING ((municipality_code = public.kyufu_current_municipality())) WITH CHECK ((municipality_code = public.kyufu_current_municipality()));

CREATE POLICY tenant_isolation ON public.programs USING ((municipality_code = public.kyufu_current_municipality())) WITH CHECK ((municipality_code = public.kyufu_current_municipality()));

CREATE POLICY tenant_isolation ON public.registered_accounts USING ((municipality_code = public.kyufu_current_municipality())) WITH CHECK ((municipality_code = public.kyufu_current_municipality()));

CREATE POLICY tenant_isolation ON public.registry_screenings USING ((municipality_code = public.kyufu_current_municipality())) WITH CHECK ((municipality_code = public.kyufu_current_municipality()));

CREATE POLICY tenant_isolation ON public.registry_snapshots USING ((municipality_code = public.kyufu_current_municipality())) WITH CHECK ((municipality_code = public.kyufu_current_municipality()));

CREATE POLICY tenant_isolation ON public.released_file_parts USING ((municipality_code = public.kyufu_current_municipality())) WITH CHECK ((municipality_code = public.kyufu_current_municipality()));

CREATE POLICY tenant_isolation ON public.released_files USING ((municipality_code = public.kyufu_current_municipality())) WITH CHECK ((municipality_code = public.kyufu_current_municipality()));

CREATE POLICY tenant_isolation ON public.residents USING ((municipality_code = public.kyufu_current_municipality())) WITH CHECK ((municipality_code = public.kyufu_current_municipality()));

CREATE POLICY tenant_isolation ON public.staff_devices USING ((municipality_code = public.kyufu_current_municipality())) WITH CHECK ((municipality_code = public.kyufu_current_municipality()));

CREATE POLICY tenant_isolation ON public.staff_enrolments USING ((municipality_code = public.kyufu_current_municipality())) WITH CHECK ((municipality_code = public.kyufu_current_municipality()));

CREATE POLICY tenant_isolation ON public.staff_role_grants USING ((municipality_code = public.kyufu_current_municipality())) WITH CHECK ((municipality_code = public.kyufu_current_municipality()));

CREATE POLICY tenant_isolation ON public.staff_sessions USING ((municipality_code = public.kyufu_current_municipality())) WITH CHECK ((municipality_code = public.kyufu_current_municipality()));

CREATE POLICY tenant_isolation ON public.staff_settings USING ((municipality_code = public.kyufu_current_municipality())) WITH CHECK ((municipality_code = public.kyufu_current_municipality()));

CREATE POLICY tenant_isolation ON public.staff_signin_failures USING ((municipality_code = public.kyufu_current_municipality())) WITH CHECK ((municipality_code = public.kyufu_current_municipality()));

CREATE POLICY tenant_isolation ON public.staff_users USING ((municipality_code = public.kyufu_current_municipality())) WITH CHECK ((municipality_code = public.kyufu_current_municipality()));

CREATE POLICY tenant_isolation ON public.tax_statuses USING ((municipality_code = public.kyufu_current_municipality())) WITH CHECK ((municipality_code = public.kyufu_current_municipality()));

ALTER TABLE registry_parts.residents_default ENABLE ROW LEVEL SECURITY;

CREATE POLICY tenant_isolation ON registry_parts.residents_default USING ((municipality_code = public.kyufu_current_municipality())) WITH CHECK ((municipality_code = public.kyufu_current_municipality()));

GRANT USAGE ON SCHEMA public TO kyufu_app;

GRANT USAGE ON SCHEMA registry_parts TO kyufu_app;

GRANT ALL ON FUNCTION public.kyufu_approval_conflict(p_code text, p_drafter bigint, p_approver bigint) TO kyufu_app;

GRANT ALL ON FUNCTION public.kyufu_audit_field(v text) TO kyufu_app;

GRANT SELECT,INSERT ON TABLE public.audit_log TO kyufu_app;

GRANT ALL ON FUNCTION public.kyufu_audit_hash(r public.audit_log) TO kyufu_app;

GRANT ALL ON FUNCTION public.kyufu_batch_holder_checks(code text, batch bigint) TO kyufu_app;

GRANT ALL ON FUNCTION public.kyufu_current_municipality() TO kyufu_app;

REVOKE ALL ON FUNCTION public.kyufu_duplicate_resolve(p_reference text, p_resolution text, p_comment text, p_staff_id bigint) FROM PUBLIC;
GRANT ALL ON FUNCTION public.kyufu_duplicate_resolve(p_reference text, p_resolution text, p_comment text, p_staff_id bigint) TO kyufu_app;

REVOKE ALL ON FUNCTION public.kyufu_duplicates_contribute(p_key_id text, p_program_id bigint, p_entitlement_ids bigint[], p_kinds text[], p_digests bytea[]) FROM PUBLIC;
GRANT ALL ON FUNCTION public.kyufu_duplicates_contribute(p_key_id text, p_program_id bigint, p_entitlement_ids bigint[], p_kinds text[], p_digests bytea[]) TO kyufu_app;

REVOKE ALL ON FUNCTION public.kyufu_dv_answer(p_reference text, p_outcome text, p_staff_id bigint) FROM PUBLIC;
GRANT ALL ON FUNCTION public.kyufu_dv_answer(p_reference text, p_outcome text, p_staff_id bigint) TO kyufu_app;

REVOKE ALL ON FUNCTION public.kyufu_dv_file(p_key_id text, p_reference text, p_program_id bigint, p_entitlement_id bigint, p_registered_code text, p_count integer, p_persons smallint[], p_kinds text[], p_digests bytea[]) FROM PUBLIC;
GRANT ALL ON FUNCTION public.kyufu_dv_file(p_key_id text, p_reference text, p_program_id bigint, p_entitlement_id bigint, p_registered_code text, p_count integer, p_persons smallint[], p_kinds text[], p_digests bytea[]) TO kyufu_app;

GRANT ALL ON FUNCTION public.kyufu_enabled_admin(p_code text, p_staff bigint) TO kyufu_app;

GRANT ALL ON FUNCTION public.kyufu_hands(p_code text, p_staff bigint, p_operator text) TO kyufu_app;

GRANT ALL ON FUNCTION public.kyufu_holder_flags() TO kyufu_app;

GRANT ALL ON FUNCTION public.kyufu_independent(p_code text, a_staff bigint, a_operator text, b_staff bigint, b_operator text) TO kyufu_app;

REVOKE ALL ON FUNCTION public.kyufu_isolate_tenant_table(tbl regclass) FROM PUBLIC;

REVOKE ALL ON FUNCTION public.kyufu_load_date_sql(raw text) FROM PUBLIC;

GRANT ALL ON FUNCTION public.kyufu_principal(staff_id bigint, operator text) TO kyufu_app;

REVOKE ALL ON FUNCTION public.kyufu_refresh_intake_statistics() FROM PUBLIC;
GRANT ALL ON FUNCTION public.kyufu_refresh_intake_statistics() TO kyufu_app;

REVOKE ALL ON FUNCTION public.kyufu_residents_load_begin(p_snapshot_id bigint) FROM PUBLIC;
GRANT ALL ON FUNCTION public.kyufu_residents_load_begin(p_snapshot_id bigint) TO kyufu_app;

REVOKE ALL ON FUNCTION public.kyufu_residents_load_typed(p_snapshot_id bigint) FROM PUBLIC;
GRANT ALL ON FUNCTION public.kyufu_residents_load_typed(p_snapshot_id bigint) TO kyufu_app;

REVOKE ALL ON FUNCTION public.kyufu_residents_publish(p_snapshot_id bigint, p_relationships text[], p_removal_reasons text[]) FROM PUBLIC;
GRANT ALL ON FUNCTION public.kyufu_residents_publish(p_snapshot_id bigint, p_relationships text[], p_removal_reasons text[]) TO kyufu_app;

GRANT ALL ON FUNCTION public.kyufu_valid_municipality_code(code text) TO kyufu_app;

GRANT ALL ON FUNCTION public.kyufu_ymd_valid(n integer) TO kyufu_app;

GRANT SELECT,INSERT ON TABLE public.application_account_changes TO kyufu_app;

GRANT USAGE ON SEQUENCE public.application_account_changes_change_id_seq TO kyufu_app;

GRANT SELECT,INSERT,UPDATE ON TABLE public.application_account_keys TO kyufu_app;

GRANT SELECT,INSERT ON TABLE public.application_proxies TO kyufu_app;

GRANT SELECT,INSERT,UPDATE ON TABLE public.applications TO kyufu_app;

GRANT USAGE ON SEQUENCE public.applications_application_id_seq TO kyufu_app;

GRANT SELECT,INSERT ON TABLE public.debt_notices TO kyufu_app;

GRANT SELECT,INSERT ON TABLE public.debt_repayments TO kyufu_app;

GRANT SELECT ON TABLE public.duplicate_cases TO kyufu_app;

GRANT SELECT ON TABLE public.duplicate_holds TO kyufu_app;

GRANT SELECT,INSERT ON TABLE public.dv_exclusions TO kyufu_app;

GRANT SELECT ON TABLE public.dv_filed TO kyufu_app;

GRANT SELECT ON TABLE public.dv_holds TO kyufu_app;

GRANT SELECT ON TABLE public.dv_incoming TO kyufu_app;

GRANT SELECT,INSERT ON TABLE public.dv_requests TO kyufu_app;

GRANT USAGE ON SEQUENCE public.dv_requests_request_id_seq TO kyufu_app;

GRANT SELECT,INSERT,UPDATE ON TABLE public.eligibility_runs TO kyufu_app;

GRANT SELECT,INSERT,UPDATE ON TABLE public.entitlement_conflicts TO kyufu_app;

GRANT SELECT,INSERT,UPDATE ON TABLE public.entitlements TO kyufu_app;

GRANT SELECT,INSERT ON TABLE public.intake_duplicate_claims TO kyufu_app;

GRANT SELECT,INSERT,DELETE ON TABLE public.intake_idempotency_keys TO kyufu_app;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.intake_identity_lockouts TO kyufu_app;

GRANT SELECT,INSERT,UPDATE ON TABLE public.letters TO kyufu_app;

GRANT SELECT ON TABLE public.municipalities TO kyufu_app;

GRANT SELECT,INSERT,UPDATE ON TABLE public.municipality_bank_settings TO kyufu_app;

GRANT SELECT ON TABLE public.municipality_keys TO kyufu_app;

GRANT SELECT,INSERT,UPDATE ON TABLE public.outbox TO kyufu_app;

GRANT SELECT,INSERT,UPDATE ON TABLE public.paper_boxes TO kyufu_app;

GRANT SELECT,INSERT,UPDATE ON TABLE public.paper_deficiencies TO kyufu_app;

GRANT SELECT,INSERT ON TABLE public.paper_entries TO kyufu_app;

GRANT SELECT,INSERT,UPDATE ON TABLE public.paper_forms TO kyufu_app;

GRANT SELECT,INSERT,UPDATE ON TABLE public.payment_debts TO kyufu_app;

GRANT SELECT,INSERT,UPDATE ON TABLE public.payment_followups TO kyufu_app;

GRANT SELECT,INSERT,UPDATE ON TABLE public.payment_holds TO kyufu_app;

GRANT SELECT,INSERT,UPDATE ON TABLE public.payment_recalls TO kyufu_app;

GRANT SELECT,INSERT ON TABLE public.payment_reissues TO kyufu_app;

GRANT SELECT,INSERT ON TABLE public.payment_returns TO kyufu_app;

GRANT SELECT,INSERT,UPDATE ON TABLE public.payments TO kyufu_app;

GRANT USAGE ON SEQUENCE public.payments_payment_id_seq TO kyufu_app;

GRANT SELECT,INSERT,UPDATE ON TABLE public.payout_batch_account_flags TO kyufu_app;

GRANT SELECT,INSERT,UPDATE ON TABLE public.payout_batches TO kyufu_app;

GRANT SELECT,INSERT ON TABLE public.payout_releases TO kyufu_app;

GRANT SELECT,INSERT ON TABLE public.payout_return_imports TO kyufu_app;

GRANT SELECT,INSERT,UPDATE ON TABLE public.programs TO kyufu_app;

GRANT SELECT,INSERT,UPDATE ON TABLE public.registered_accounts TO kyufu_app;

GRANT SELECT,INSERT,UPDATE ON TABLE public.registry_screenings TO kyufu_app;

GRANT SELECT,INSERT,UPDATE ON TABLE public.registry_snapshots TO kyufu_app;

GRANT SELECT,INSERT ON TABLE public.released_file_parts TO kyufu_app;

GRANT SELECT,INSERT ON TABLE public.released_files TO kyufu_app;

GRANT UPDATE(delivered_at) ON TABLE public.released_files TO kyufu_app;

GRANT SELECT,INSERT ON TABLE public.residents TO kyufu_app;

GRANT SELECT,INSERT,UPDATE ON TABLE public.staff_devices TO kyufu_app;

GRANT SELECT,INSERT,UPDATE ON TABLE public.staff_enrolments TO kyufu_app;

GRANT SELECT,INSERT,UPDATE ON TABLE public.staff_role_grants TO kyufu_app;

GRANT SELECT,INSERT,UPDATE ON TABLE public.staff_sessions TO kyufu_app;

GRANT SELECT,INSERT,UPDATE ON TABLE public.staff_settings TO kyufu_app;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.staff_signin_failures TO kyufu_app;

GRANT SELECT,INSERT,UPDATE ON TABLE public.staff_users TO kyufu_app;

GRANT SELECT,INSERT ON TABLE public.tax_statuses TO kyufu_app;
