-- Proxy applications (代理申請) and DV evacuees (配偶者等からの暴力を理由に避難している方): issue 15, points 2
-- and 3.
--
-- Proxies. A household member, a legal representative (法定代理人) or a person who cares for the 世帯主
-- (平素から身の回りの世話をしている者) applies for the 世帯主 at the counter; staff key the application in the
-- console (app/intake/proxy.py) through the same once-only claim path as every channel, and record here who
-- the proxy is (name and kana encrypted under the municipality's key, bound to the application), how they
-- are related and which documents were seen. The money goes to the 世帯主's account, or to the proxy's own
-- where the program allows it (programs.proxy_account_allowed; a trigger refuses it elsewhere). A proxy's
-- application is never decided by the machine: applications_proxy_reviewed refuses 'verified' (as 0010 does
-- for a registry match), so a reviewer always looks at it.
--
-- DV evacuees. An evacuee whose 住民票 stayed in the registered municipality (B) files a 申出 with the
-- municipality where they actually live (A), with a 保護命令 or a support centre's certificate. A pays the
-- evacuee and the members who fled with them; B pays the registered household without them. The record that
-- crosses the two is platform data in the schema `dv_match`, built like duplicate_match (0021): owned by
-- kyufu_owner, no privilege for the app role, reached only through SECURITY DEFINER functions and views
-- filtered by kyufu_current_municipality(). What crosses is the least the rule needs:
--
--   * A → B: keyed hashes of the named people (app/registry/duplicates.person_digests under the platform
--     duplicate key: 住民票コード when known, kana name + birth date), the reference (V-XXXX-XXXX-XXXX,
--     random) and how many people; never a name, an address, a date, nor which municipality A is. B finds
--     its own members by hashing its household again (as the duplicate case page does).
--   * B → A: whether every named person was excluded ('excluded'), or why not ('not_found',
--     'already_paid'); never B's household, entitlement, amount or members.
--   * dv_match.matches: the entitlements of B that share a hash with a request (found when A files, and
--     when B contributes hashes later: trigger on duplicate_match.hashes).
--   * dv_holds (view): while a request is open ('filed') every matched entitlement of B is held, and A's
--     own entitlement for the evacuees is held until B has excluded them: no payment is created for either,
--     none joins a batch, and a batch already holding one (drafted before the 申出) is not approved.
--   * B answers with kyufu_dv_answer after it reduced its entitlement (dv_exclusions, written in the same
--     transaction: the function refuses 'excluded' without them). A 申出 names people of B's registry, so
--     B's staff see their own residents; neither side's staff see the other's records.
--
-- A pays through its own entitlement (entitlements.dv_reference = the request's reference; household_no is
-- the reference too, so it can never meet a registry household) and an application staff key with the
-- evacuee's account; both are A's tenant rows.

-- ---- proxies ------------------------------------------------------------------------------------------------

ALTER TABLE programs ADD COLUMN proxy_account_allowed boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN programs.proxy_account_allowed IS
    '代理人の口座への振込を認める: a proxy may have the benefit paid to their own account (always reviewed)';

-- 'counter': identified in person at the counter by staff (a proxy with their ID, a DV 申出). Like a registry
-- match it is not a mailed code, so applications_registry_match_reviewed (0010) keeps it from 'verified'.
ALTER TABLE applications DROP CONSTRAINT applications_identification_known,
    ADD CONSTRAINT applications_identification_known
        CHECK (identification IN ('letter', 'registry_match', 'counter')),
    ADD CONSTRAINT applications_proxy_reviewed CHECK (NOT is_proxy OR status <> 'verified');

CREATE TABLE application_proxies (
    municipality_code   text NOT NULL,
    application_id      bigint NOT NULL,
    relationship        text NOT NULL
                        CHECK (relationship IN ('household_member', 'legal_representative', 'caregiver')),
    -- The proxy's own 住民票コード when they are a member of the household (found by kana name + birth date).
    proxy_resident_code text CHECK (proxy_resident_code ~ '^[0-9]{11}$'),
    -- {"name", "kana", "birth_date"} as JSON, encrypted under the municipality's key (app/intake/proxy.py).
    proxy_enc           bytea NOT NULL,
    evidence            text[] NOT NULL CHECK (cardinality(evidence) > 0 AND evidence <@ ARRAY[
                            'proxy_identity', 'delegation', 'legal_representation', 'care_confirmation',
                            'account_document']),
    pay_to_proxy        boolean NOT NULL DEFAULT false,
    recorded_by         bigint NOT NULL,
    recorded_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (municipality_code, application_id),
    FOREIGN KEY (municipality_code, application_id) REFERENCES applications (municipality_code, application_id),
    FOREIGN KEY (municipality_code, recorded_by) REFERENCES staff_users (municipality_code, staff_id),
    CONSTRAINT application_proxies_member_known
        CHECK ((relationship = 'household_member') = (proxy_resident_code IS NOT NULL)),
    -- Every proxy shows their own ID; what else depends on the relationship (app/intake/proxy.py says which).
    CONSTRAINT application_proxies_identity_seen CHECK ('proxy_identity' = ANY (evidence))
);

-- The proxy's account only where the program allows it, and only on a proxy's application (the app role
-- may not update the row: what was recorded at the counter stays as recorded).
CREATE FUNCTION application_proxies_guard() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE TRIGGER application_proxies_guard BEFORE INSERT ON application_proxies
    FOR EACH ROW EXECUTE FUNCTION application_proxies_guard();

SELECT kyufu_isolate_tenant_table('application_proxies');
GRANT SELECT, INSERT ON application_proxies TO kyufu_app;

-- ---- DV evacuees: the paying municipality's entitlement ------------------------------------------------------

ALTER TABLE entitlements ADD COLUMN dv_reference text
    CONSTRAINT entitlements_dv_reference_format CHECK (dv_reference ~ '^V-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}$');
COMMENT ON COLUMN entitlements.dv_reference IS
    'set on the entitlement a municipality pays DV evacuees under (dv_requests): not from its registry';
-- The evacuees are not in this municipality's registry, so such an entitlement has no head here.
ALTER TABLE entitlements ALTER COLUMN head_resident_code DROP NOT NULL,
    ADD CONSTRAINT entitlements_head_known CHECK (head_resident_code IS NOT NULL OR dv_reference IS NOT NULL),
    ADD CONSTRAINT entitlements_dv_household CHECK (dv_reference IS NULL OR household_no = dv_reference);

-- The 申出 as the municipality the evacuee lives in (A) recorded it. Everything personal (the people's
-- names, kana, birth dates and 住民票コード, the actual address, a contact) is one ciphertext under A's key
-- bound to the row; in clear only what A's staff list and the rule needs.
CREATE TABLE dv_requests (
    municipality_code            text NOT NULL,
    request_id                   bigint GENERATED ALWAYS AS IDENTITY,
    reference                    text NOT NULL CHECK (reference ~ '^V-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}$'),
    program_id                   bigint NOT NULL,
    registered_municipality_code text NOT NULL REFERENCES municipalities (code),
    evidence                     text NOT NULL CHECK (evidence IN ('protection_order', 'support_certificate')),
    evidence_issued_on           date NOT NULL,
    persons                      int NOT NULL CHECK (persons BETWEEN 1 AND 10),
    details_enc                  bytea NOT NULL,
    entitlement_id               bigint NOT NULL,
    application_id               bigint NOT NULL,
    filed_by                     bigint NOT NULL,
    filed_at                     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (municipality_code, request_id),
    UNIQUE (municipality_code, reference),
    UNIQUE (municipality_code, entitlement_id),
    FOREIGN KEY (municipality_code, program_id) REFERENCES programs (municipality_code, program_id),
    FOREIGN KEY (municipality_code, entitlement_id) REFERENCES entitlements (municipality_code, entitlement_id),
    FOREIGN KEY (municipality_code, application_id) REFERENCES applications (municipality_code, application_id),
    FOREIGN KEY (municipality_code, filed_by) REFERENCES staff_users (municipality_code, staff_id),
    CONSTRAINT dv_requests_elsewhere CHECK (registered_municipality_code <> municipality_code)
);

-- The registered municipality's (B's) side: each member it excluded from its entitlement, with the share
-- taken off (0 for a member the program does not count), in B's own tenant table.
CREATE TABLE dv_exclusions (
    municipality_code text NOT NULL,
    reference         text NOT NULL CHECK (reference ~ '^V-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}$'),
    entitlement_id    bigint NOT NULL,
    resident_code     text NOT NULL CHECK (resident_code ~ '^[0-9]{11}$'),
    person            smallint NOT NULL CHECK (person BETWEEN 0 AND 9),  -- the request's person it matched
    counted           boolean NOT NULL,
    share_yen         bigint NOT NULL CHECK (share_yen >= 0 AND (counted OR share_yen = 0)),
    applied_by        bigint NOT NULL,
    applied_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (municipality_code, reference, person),
    -- A person is taken out of an entitlement once.
    UNIQUE (municipality_code, entitlement_id, resident_code),
    FOREIGN KEY (municipality_code, entitlement_id) REFERENCES entitlements (municipality_code, entitlement_id),
    FOREIGN KEY (municipality_code, applied_by) REFERENCES staff_users (municipality_code, staff_id)
);

SELECT kyufu_isolate_tenant_table('dv_requests');
SELECT kyufu_isolate_tenant_table('dv_exclusions');
GRANT SELECT, INSERT ON dv_requests, dv_exclusions TO kyufu_app;
-- The request id is reserved before the insert: it is part of details_enc's associated data.
GRANT USAGE ON SEQUENCE dv_requests_request_id_seq TO kyufu_app;

-- ---- DV evacuees: the platform record ---------------------------------------------------------------------

CREATE SCHEMA dv_match;
REVOKE ALL ON SCHEMA dv_match FROM PUBLIC;

CREATE TABLE dv_match.requests (
    request_id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reference             text NOT NULL UNIQUE,
    scheme                text NOT NULL,
    key_version           int NOT NULL REFERENCES duplicate_match.keys (version),
    filed_code            text NOT NULL REFERENCES municipalities (code),
    filed_entitlement_id  bigint NOT NULL,
    registered_code       text NOT NULL REFERENCES municipalities (code),
    persons               int NOT NULL CHECK (persons BETWEEN 1 AND 10),
    state                 text NOT NULL DEFAULT 'filed' CHECK (state IN ('filed', 'excluded', 'refused')),
    refusal               text CHECK (refusal IN ('not_found', 'already_paid')),
    answered_by           bigint,
    answered_at           timestamptz,
    filed_at              timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (filed_code, filed_entitlement_id) REFERENCES entitlements (municipality_code, entitlement_id),
    FOREIGN KEY (registered_code, answered_by) REFERENCES staff_users (municipality_code, staff_id),
    CHECK (filed_code <> registered_code),
    CONSTRAINT requests_answer_whole CHECK ((state = 'filed') = (answered_at IS NULL)
        AND (answered_at IS NULL) = (answered_by IS NULL) AND (state = 'refused') = (refusal IS NOT NULL))
);
CREATE INDEX requests_registered ON dv_match.requests (registered_code) WHERE state = 'filed';
CREATE INDEX requests_filed ON dv_match.requests (filed_code, filed_entitlement_id);

CREATE TABLE dv_match.digests (
    request_id bigint NOT NULL REFERENCES dv_match.requests (request_id),
    person     smallint NOT NULL CHECK (person BETWEEN 0 AND 9),  -- 0: the 申出者
    kind       text NOT NULL CHECK (kind IN ('resident_code', 'name_birth')),
    digest     bytea NOT NULL CHECK (length(digest) = 32),
    PRIMARY KEY (request_id, person, kind)
);
CREATE INDEX digests_digest ON dv_match.digests (digest);

CREATE TABLE dv_match.matches (
    request_id     bigint NOT NULL REFERENCES dv_match.requests (request_id),
    entitlement_id bigint NOT NULL,
    PRIMARY KEY (request_id, entitlement_id)
);

ALTER TABLE dv_match.requests ENABLE ROW LEVEL SECURITY;
ALTER TABLE dv_match.digests ENABLE ROW LEVEL SECURITY;
ALTER TABLE dv_match.matches ENABLE ROW LEVEL SECURITY;

-- Record, for each open request naming `p_code`, the entitlements of p_code whose current hashes share one.
CREATE FUNCTION dv_match.match(p_request bigint) RETURNS void LANGUAGE sql AS $$
  INSERT INTO dv_match.matches (request_id, entitlement_id)
  SELECT DISTINCT r.request_id, h.entitlement_id
  FROM dv_match.requests r
  JOIN dv_match.digests d ON d.request_id = r.request_id
  JOIN duplicate_match.hashes h ON h.key_version = r.key_version AND h.scheme = r.scheme AND h.kind = d.kind
       AND h.digest = d.digest AND h.municipality_code = r.registered_code
  WHERE r.request_id = p_request AND r.state = 'filed'
  ON CONFLICT DO NOTHING
$$;

-- File a 申出 for the municipality in scope (A). p_entitlement_id: A's entitlement for the evacuees (its
-- dv_reference is the reference); p_registered_code: B; p_persons/p_kinds/p_digests: the hashes. Refuses
-- when A's program has no national scheme, when B runs no program of that scheme (there is nothing there
-- to reduce: it has contributed no hash of that scheme), or when the key is not the current one. Returns
-- whether B's registry had a match already.
CREATE FUNCTION kyufu_dv_file(p_key_id text, p_reference text, p_program_id bigint, p_entitlement_id bigint,
                              p_registered_code text, p_count int, p_persons smallint[], p_kinds text[],
                              p_digests bytea[])
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
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

-- B contributes (or re-contributes) its hashes after A filed: open requests naming B are matched again.
CREATE FUNCTION dv_match.match_new_hashes() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
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
CREATE TRIGGER hashes_match_dv_requests AFTER INSERT ON duplicate_match.hashes
    REFERENCING NEW TABLE AS new_hashes FOR EACH STATEMENT EXECUTE FUNCTION dv_match.match_new_hashes();

-- B's answer to request p_reference: 'excluded' (every named person was taken out of B's entitlements:
-- dv_exclusions of this reference in B, written in the same transaction, must cover each person), or
-- 'not_found' / 'already_paid'. Once only.
CREATE FUNCTION kyufu_dv_answer(p_reference text, p_outcome text, p_staff_id bigint)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
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

-- A's view of the requests it filed: the state and B's answer, nothing of B's records.
CREATE VIEW dv_filed WITH (security_barrier = true) AS
SELECT r.filed_code AS municipality_code, r.reference, r.registered_code, r.filed_entitlement_id AS entitlement_id,
       r.persons, r.state, r.refusal, r.answered_at, r.filed_at,
       EXISTS (SELECT 1 FROM dv_match.matches m WHERE m.request_id = r.request_id) AS matched
FROM dv_match.requests r
WHERE r.filed_code = kyufu_current_municipality();

-- B's view of the requests naming it: the reference, the hashes (B hashes its own members to find them),
-- its matched entitlements, its answer. Not the filing municipality.
CREATE VIEW dv_incoming WITH (security_barrier = true) AS
SELECT r.registered_code AS municipality_code, r.reference, r.scheme, r.persons, r.state, r.refusal,
       r.answered_by, r.answered_at, r.filed_at,
       ARRAY(SELECT m.entitlement_id FROM dv_match.matches m WHERE m.request_id = r.request_id
             ORDER BY m.entitlement_id) AS entitlement_ids,
       ARRAY(SELECT d.person FROM dv_match.digests d WHERE d.request_id = r.request_id
             ORDER BY d.person, d.kind) AS digest_persons,
       ARRAY(SELECT d.digest FROM dv_match.digests d WHERE d.request_id = r.request_id
             ORDER BY d.person, d.kind) AS digests
FROM dv_match.requests r
WHERE r.registered_code = kyufu_current_municipality();

-- The entitlements of the municipality in scope that wait for a DV request: B's matched ones while it is
-- open, and A's own until B has excluded the evacuees (a refused request keeps A's held: staff reject it).
CREATE VIEW dv_holds WITH (security_barrier = true) AS
SELECT r.registered_code AS municipality_code, m.entitlement_id, r.reference
FROM dv_match.requests r JOIN dv_match.matches m ON m.request_id = r.request_id
WHERE r.registered_code = kyufu_current_municipality() AND r.state = 'filed'
UNION ALL
SELECT r.filed_code, r.filed_entitlement_id, r.reference
FROM dv_match.requests r
WHERE r.filed_code = kyufu_current_municipality() AND r.state <> 'excluded';

-- The holds, in the database like 0021's and 0023's: no new live payment of a held entitlement, none joins
-- a batch, and a batch already holding one (drafted before the 申出) is not approved.
CREATE FUNCTION payments_wait_for_dv() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp SET enable_seqscan = off AS $$
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
CREATE TRIGGER payments_wait_for_dv AFTER INSERT ON payments
    REFERENCING NEW TABLE AS new_payments FOR EACH STATEMENT EXECUTE FUNCTION payments_wait_for_dv();

CREATE FUNCTION payments_wait_for_dv_in_batch() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM dv_holds h
             WHERE h.municipality_code = NEW.municipality_code AND h.entitlement_id = NEW.entitlement_id) THEN
    RAISE EXCEPTION 'entitlement % waits for a DV request', NEW.entitlement_id
      USING ERRCODE = 'check_violation', CONSTRAINT = 'payments_wait_for_dv_request';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER payments_wait_for_dv_in_batch BEFORE UPDATE OF batch_id ON payments
    FOR EACH ROW WHEN (NEW.batch_id IS NOT NULL AND NEW.batch_id IS DISTINCT FROM OLD.batch_id)
    EXECUTE FUNCTION payments_wait_for_dv_in_batch();

CREATE FUNCTION payout_batches_wait_for_dv() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
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
CREATE TRIGGER payout_batches_wait_for_dv BEFORE UPDATE OF status ON payout_batches
    FOR EACH ROW EXECUTE FUNCTION payout_batches_wait_for_dv();

REVOKE EXECUTE ON FUNCTION kyufu_dv_file(text, text, bigint, bigint, text, int, smallint[], text[], bytea[]),
    kyufu_dv_answer(text, text, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kyufu_dv_file(text, text, bigint, bigint, text, int, smallint[], text[], bytea[]),
    kyufu_dv_answer(text, text, bigint) TO kyufu_app;
GRANT SELECT ON dv_filed, dv_incoming, dv_holds TO kyufu_app;
