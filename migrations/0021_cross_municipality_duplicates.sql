-- Cross-municipality duplicates (issue 16, point 2), without sharing personal data.
--
-- A person recorded in two municipalities' snapshots for the same national benefit (a move around 基準日
-- that one registry has not caught up with, a registry error) must be found before either pays. Each
-- municipality contributes only keyed hashes of the people its entitlements count: HMAC-SHA256 under a
-- platform key (KYUFU_DUPLICATE_KEY, held like the master key) of the 住民票コード, which follows a person
-- across moves, and of the normalised kana name + birth date (app/registry/duplicates.py computes them;
-- the database never sees the inputs). Equal hashes in two municipalities open a case; each side sees only
-- its own entitlement, the other municipality's name and the case reference, and answers for its own side;
-- the case closes when both have answered; until then neither entitlement is paid.
--
--   * programs.national_scheme says which national benefit a municipality's program is (e.g. 'R6-TEIGAKU'):
--     hashes are compared only within one scheme, and each hash also covers the scheme, so the same person
--     gives unrelated hashes in two schemes;
--   * the hashes and the cases are platform data in the schema `duplicate_match`, owned by kyufu_owner, on
--     which the app role has no privilege at all (not even USAGE). The app reaches them only through:
--       - kyufu_duplicates_contribute(): SECURITY DEFINER, acts for the municipality in scope only (never a
--         parameter), replaces that program's hashes and returns counts, never another municipality's rows;
--       - kyufu_duplicate_resolve(): SECURITY DEFINER, records the answer of the side in scope;
--       - the views duplicate_cases (this municipality's sides: its own entitlement, the other side's
--         municipality code, whether it has answered) and duplicate_holds (the entitlements that may not be
--         paid now), filtered by kyufu_current_municipality() like a tenant table's policy; an unscoped
--         transaction sees nothing.
--     (Row-level security with FORCE, as on tenant tables, would stop the owner's functions from matching
--     across municipalities; the private schema is what keeps the app out instead, as for registry_parts.)
--   * keys: duplicate_match.keys records each key's id (a fingerprint, never the key) and version; only the
--     current version is accepted, hashes are compared only within a version, and rotation (owner, kyufu
--     registry duplicates rotate-key) retires the old version and deletes its hashes before every
--     municipality is hashed again under the new one (rehash);
--   * payments: a statement trigger refuses a payment for a held entitlement, and a row trigger refuses a
--     held entitlement's payment joining a batch (the preparation skips them: payouts/payments.py).

ALTER TABLE programs ADD COLUMN national_scheme text
    CONSTRAINT programs_national_scheme_format CHECK (national_scheme ~ '^[A-Z0-9][A-Z0-9_-]{0,39}$');
COMMENT ON COLUMN programs.national_scheme IS
    'the national benefit this program runs (e.g. R6-TEIGAKU): cross-municipality duplicates are looked for within it';
-- A municipality runs a national benefit once: one program per scheme.
CREATE UNIQUE INDEX programs_one_per_scheme ON programs (municipality_code, national_scheme)
    WHERE national_scheme IS NOT NULL;

CREATE SCHEMA duplicate_match;
REVOKE ALL ON SCHEMA duplicate_match FROM PUBLIC;

CREATE TABLE duplicate_match.keys (
    version     int PRIMARY KEY CHECK (version > 0),
    key_id      text NOT NULL UNIQUE CHECK (key_id ~ '^[0-9a-f]{16}$'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    retired_at  timestamptz
);
-- One current key at a time.
CREATE UNIQUE INDEX keys_one_current ON duplicate_match.keys ((true)) WHERE retired_at IS NULL;

CREATE TABLE duplicate_match.hashes (
    key_version       int NOT NULL REFERENCES duplicate_match.keys (version),
    scheme            text NOT NULL,
    kind              text NOT NULL CHECK (kind IN ('resident_code', 'name_birth')),
    digest            bytea NOT NULL CHECK (length(digest) = 32),
    municipality_code text NOT NULL REFERENCES municipalities (code),
    program_id        bigint NOT NULL,
    entitlement_id    bigint NOT NULL,
    contributed_at    timestamptz NOT NULL DEFAULT now(),
    -- No foreign key to entitlements: a city contributes a million rows at once, and the per-row check
    -- would cost more than the contribution (0003 says the same of residents); the function checks the
    -- entitlements once per call instead.
    PRIMARY KEY (key_version, scheme, kind, digest, municipality_code, entitlement_id)
);
CREATE INDEX hashes_program ON duplicate_match.hashes (municipality_code, program_id);
CREATE INDEX hashes_entitlement ON duplicate_match.hashes (municipality_code, entitlement_id);

CREATE TABLE duplicate_match.cases (
    case_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- What both municipalities quote to each other: random, so it says nothing about how many cases exist.
    reference   text NOT NULL UNIQUE CHECK (reference ~ '^D-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}$'),
    scheme      text NOT NULL,
    -- scheme|municipality:entitlement|municipality:entitlement, the two sides in text order: one case per pair.
    pair_key    text NOT NULL UNIQUE,
    matched_on  text[] NOT NULL CHECK (matched_on <@ ARRAY['resident_code', 'name_birth'] AND cardinality(matched_on) > 0),
    opened_at   timestamptz NOT NULL DEFAULT now(),
    closed_at   timestamptz
);

CREATE TABLE duplicate_match.case_sides (
    case_id           bigint NOT NULL REFERENCES duplicate_match.cases (case_id),
    municipality_code text NOT NULL REFERENCES municipalities (code),
    program_id        bigint NOT NULL,
    entitlement_id    bigint NOT NULL,
    resolution        text CHECK (resolution IN ('pay', 'not_pay')),  -- 当団体で支給する / 当団体では支給しない
    comment           text CHECK (length(comment) <= 1000),
    resolved_by       bigint,
    resolved_at       timestamptz,
    PRIMARY KEY (case_id, municipality_code),
    FOREIGN KEY (municipality_code, entitlement_id) REFERENCES entitlements (municipality_code, entitlement_id),
    FOREIGN KEY (municipality_code, resolved_by) REFERENCES staff_users (municipality_code, staff_id),
    CONSTRAINT case_sides_resolution_whole
        CHECK ((resolution IS NULL) = (resolved_at IS NULL) AND (resolution IS NULL) = (resolved_by IS NULL))
);
CREATE INDEX case_sides_entitlement ON duplicate_match.case_sides (municipality_code, entitlement_id);

-- Nobody but the owner: no policy means no row for any other role, should a privilege ever be granted.
ALTER TABLE duplicate_match.keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE duplicate_match.hashes ENABLE ROW LEVEL SECURITY;
ALTER TABLE duplicate_match.cases ENABLE ROW LEVEL SECURITY;
ALTER TABLE duplicate_match.case_sides ENABLE ROW LEVEL SECURITY;

CREATE FUNCTION duplicate_match.new_reference() RETURNS text LANGUAGE sql VOLATILE AS $$
  SELECT 'D-' || upper(substr(h, 1, 4)) || '-' || upper(substr(h, 5, 4)) || '-' || upper(substr(h, 9, 4))
  FROM (SELECT replace(gen_random_uuid()::text, '-', '') AS h) r  -- the first 12 hex digits of a v4 UUID are random
$$;

-- Contribute the hashes of one program of the municipality in scope (replacing its earlier ones) and open
-- a case for each pair of entitlements that shares a hash with another municipality under the same scheme
-- and key version. p_key_id must be the current key's id (the first key ever seen becomes version 1);
-- a program without a scheme only has its hashes removed. Returns counts only.
CREATE FUNCTION kyufu_duplicates_contribute(p_key_id text, p_program_id bigint, p_entitlement_ids bigint[],
                                            p_kinds text[], p_digests bytea[])
RETURNS TABLE (stored bigint, matched bigint, opened bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
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

-- The answer of the side in scope to case p_reference. Allowed while the case is open (a side may change its
-- answer until the other side has answered too); the second answer closes it. Returns whether it is closed.
CREATE FUNCTION kyufu_duplicate_resolve(p_reference text, p_resolution text, p_comment text, p_staff_id bigint)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
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

-- This municipality's side of each case. matched_digests: its own hashes (current version) that the other
-- side shares, so the console can tell which member of the household matched by hashing them again.
CREATE VIEW duplicate_cases WITH (security_barrier = true) AS
SELECT s.municipality_code, c.reference, c.scheme, c.matched_on, c.opened_at, c.closed_at,
       s.program_id, s.entitlement_id, s.resolution, s.comment, s.resolved_by, s.resolved_at,
       o.municipality_code AS other_municipality_code, o.resolved_at IS NOT NULL AS other_answered,
       ARRAY(SELECT DISTINCT h.digest FROM duplicate_match.hashes h
             JOIN duplicate_match.hashes x ON x.key_version = h.key_version AND x.scheme = h.scheme
                  AND x.kind = h.kind AND x.digest = h.digest
             WHERE h.municipality_code = s.municipality_code AND h.entitlement_id = s.entitlement_id
               AND x.municipality_code = o.municipality_code AND x.entitlement_id = o.entitlement_id) AS matched_digests
FROM duplicate_match.case_sides s
JOIN duplicate_match.cases c ON c.case_id = s.case_id
JOIN duplicate_match.case_sides o ON o.case_id = s.case_id AND o.municipality_code <> s.municipality_code
WHERE s.municipality_code = kyufu_current_municipality();

-- The entitlements of the municipality in scope whose payment waits: a case still open, or this side
-- answered 'not_pay'. The one statement of the rule: the drafts (payouts/payments.py) and both triggers
-- below read it (payments are only ever written inside their municipality's scope: tenant_isolation).
CREATE VIEW duplicate_holds WITH (security_barrier = true) AS
SELECT s.municipality_code, s.entitlement_id, c.reference
FROM duplicate_match.case_sides s JOIN duplicate_match.cases c ON c.case_id = s.case_id
WHERE s.municipality_code = kyufu_current_municipality() AND (c.closed_at IS NULL OR s.resolution = 'not_pay');

-- A payment waits for its entitlement's case: no new live payment, and no existing one joins a batch.
-- enable_seqscan = off: see payments_guard_insert (0018); a transition table has no statistics.
CREATE FUNCTION payments_wait_for_duplicates() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp SET enable_seqscan = off AS $$
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
CREATE TRIGGER payments_wait_for_duplicates AFTER INSERT ON payments
    REFERENCING NEW TABLE AS new_payments FOR EACH STATEMENT EXECUTE FUNCTION payments_wait_for_duplicates();

CREATE FUNCTION payments_wait_for_duplicates_in_batch() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM duplicate_holds h
             WHERE h.municipality_code = NEW.municipality_code AND h.entitlement_id = NEW.entitlement_id) THEN
    RAISE EXCEPTION 'entitlement % waits for a cross-municipality duplicate case', NEW.entitlement_id
      USING ERRCODE = 'check_violation', CONSTRAINT = 'payments_wait_for_duplicate_case';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER payments_wait_for_duplicates_in_batch BEFORE UPDATE OF batch_id ON payments
    FOR EACH ROW WHEN (NEW.batch_id IS NOT NULL AND NEW.batch_id IS DISTINCT FROM OLD.batch_id)
    EXECUTE FUNCTION payments_wait_for_duplicates_in_batch();

REVOKE EXECUTE ON FUNCTION kyufu_duplicates_contribute(text, bigint, bigint[], text[], bytea[]),
    kyufu_duplicate_resolve(text, text, text, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kyufu_duplicates_contribute(text, bigint, bigint[], text[], bytea[]),
    kyufu_duplicate_resolve(text, text, text, bigint) TO kyufu_app;
GRANT SELECT ON duplicate_cases, duplicate_holds TO kyufu_app;
