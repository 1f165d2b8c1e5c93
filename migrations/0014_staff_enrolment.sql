-- Separation of duties that one person cannot defeat (issue 12, finding 2).
--
-- Before: an admin created a drafter and an approver, chose both passwords, was shown the approver's TOTP
-- secret, and could then draft, approve and release a batch alone; four eyes compared account ids only.
-- Now (app/staff/enrolment.py, app/staff/grants.py; the reasoning is in app/staff/grants.py):
--   * staff_enrolments: credentials are set only by the account's owner, through a one-time link that
--     expires after 72 hours; only the SHA-256 of its token is stored. Issuing one (a new account, or a
--     reset) disables the account's current password and TOTP. Whoever issued it saw the link, so the
--     issuer of an account's current credentials is recorded as someone who may be acting as it.
--   * staff_role_grants: no role is effective until a second admin confirms it (the four-eyes CHECK below;
--     confirmed by a signed-in admin, never by a CLI operator), and staff_users.roles may only ever gain a
--     role that a confirmed grant backs (trigger staff_users_roles_granted, for every database role).
--   * payout_batches_independent_approver: the approver of a batch must be independent of its drafter, not
--     only another account (kyufu_approval_conflict).
-- The first admins of a municipality have nobody to confirm them: a platform operator may bootstrap an
-- admin while the municipality has fewer than two enabled admins (staff_role_grants origin 'bootstrap').

-- A new account holds no role until a grant is confirmed, so roles may be empty now.
ALTER TABLE staff_users
    DROP CONSTRAINT staff_users_roles_check,
    ADD CONSTRAINT staff_users_roles_known
        CHECK (roles <@ ARRAY['reviewer', 'drafter', 'approver', 'admin']::text[]),
    -- Who created the account: a signed-in admin or a named platform operator (NULL, NULL: before 0014).
    ADD COLUMN created_by bigint,
    ADD COLUMN created_by_operator text CHECK (created_by_operator ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
    ADD CONSTRAINT staff_users_one_creator CHECK (created_by IS NULL OR created_by_operator IS NULL),
    ADD CONSTRAINT staff_users_created_by_fk FOREIGN KEY (municipality_code, created_by)
        REFERENCES staff_users (municipality_code, staff_id);

-- A principal as one comparable text: 'staff:<id>' (a console account) or 'operator:<name>' (the CLI).
CREATE FUNCTION kyufu_principal(staff_id bigint, operator text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT coalesce('staff:' || staff_id, 'operator:' || operator)
$$;

CREATE TABLE staff_enrolments (
    municipality_code  text NOT NULL,
    enrolment_id       bigint GENERATED ALWAYS AS IDENTITY,
    staff_id           bigint NOT NULL,
    token_sha256       text NOT NULL CHECK (token_sha256 ~ '^[0-9a-f]{64}$'),
    -- The TOTP secret the enrolment page shows its holder (encrypted with the data key, bound to the
    -- token's hash); copied to staff_users only once the holder has typed a current code from it.
    totp_secret        bytea NOT NULL,
    issued_by          bigint,
    issued_by_operator text CHECK (issued_by_operator ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
    -- The first enrolment of a bootstrapped admin: its operator is the platform's trust anchor and is not
    -- counted as someone who may be acting as the account (see kyufu_hands).
    bootstrap          boolean NOT NULL DEFAULT false,
    issued_at          timestamptz NOT NULL DEFAULT now(),
    expires_at         timestamptz NOT NULL,
    completed_at       timestamptz,
    superseded_at      timestamptz,    -- a newer enrolment of the same account was issued
    PRIMARY KEY (municipality_code, enrolment_id),
    UNIQUE (municipality_code, token_sha256),
    FOREIGN KEY (municipality_code, staff_id) REFERENCES staff_users (municipality_code, staff_id),
    FOREIGN KEY (municipality_code, issued_by) REFERENCES staff_users (municipality_code, staff_id),
    CONSTRAINT staff_enrolments_one_issuer CHECK ((issued_by IS NULL) <> (issued_by_operator IS NULL)),
    CONSTRAINT staff_enrolments_lifetime
        CHECK (expires_at > issued_at AND expires_at <= issued_at + interval '72 hours'),
    CONSTRAINT staff_enrolments_used_once CHECK (completed_at IS NULL OR superseded_at IS NULL),
    CONSTRAINT staff_enrolments_bootstrap_by_operator CHECK (NOT bootstrap OR issued_by_operator IS NOT NULL)
);
-- At most one usable link per account.
CREATE UNIQUE INDEX staff_enrolments_one_open ON staff_enrolments (municipality_code, staff_id)
    WHERE completed_at IS NULL AND superseded_at IS NULL;
CREATE INDEX staff_enrolments_latest ON staff_enrolments (municipality_code, staff_id, completed_at DESC)
    WHERE completed_at IS NOT NULL;

CREATE TABLE staff_role_grants (
    municipality_code     text NOT NULL,
    grant_id              bigint GENERATED ALWAYS AS IDENTITY,
    staff_id              bigint NOT NULL,
    role                  text NOT NULL CHECK (role IN ('reviewer', 'drafter', 'approver', 'admin')),
    origin                text NOT NULL DEFAULT 'request' CHECK (origin IN ('request', 'bootstrap', 'migration')),
    status                text NOT NULL DEFAULT 'pending'
                          CHECK (status IN ('pending', 'confirmed', 'refused', 'cancelled', 'revoked')),
    requested_by          bigint,
    requested_by_operator text CHECK (requested_by_operator ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
    requested_at          timestamptz NOT NULL DEFAULT now(),
    decided_by            bigint,
    decided_by_operator   text CHECK (decided_by_operator ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
    decided_at            timestamptz,
    revoked_at            timestamptz,    -- the role was taken away again (a new grant is needed to give it back)
    PRIMARY KEY (municipality_code, grant_id),
    FOREIGN KEY (municipality_code, staff_id) REFERENCES staff_users (municipality_code, staff_id),
    FOREIGN KEY (municipality_code, requested_by) REFERENCES staff_users (municipality_code, staff_id),
    FOREIGN KEY (municipality_code, decided_by) REFERENCES staff_users (municipality_code, staff_id),
    CONSTRAINT staff_role_grants_one_requester CHECK ((requested_by IS NULL) <> (requested_by_operator IS NULL)),
    CONSTRAINT staff_role_grants_decided CHECK ((status = 'pending') = (decided_at IS NULL)
        AND (status = 'pending' OR (decided_by IS NULL) <> (decided_by_operator IS NULL))),
    CONSTRAINT staff_role_grants_revoked CHECK ((status = 'revoked') = (revoked_at IS NOT NULL)),
    -- Four eyes: a requested grant is confirmed by a signed-in admin (not a CLI operator) who is not the
    -- one who asked for it. (A CLI request has requested_by NULL, so any console admin differs from it;
    -- whether that admin is independent of the operator is the trigger's kyufu_hands check.)
    CONSTRAINT staff_role_grants_four_eyes CHECK (origin <> 'request' OR status NOT IN ('confirmed', 'revoked')
        OR (decided_by IS NOT NULL AND decided_by IS DISTINCT FROM requested_by)),
    -- Nobody confirms a role for themselves.
    CONSTRAINT staff_role_grants_not_own CHECK (status NOT IN ('confirmed', 'revoked') OR decided_by IS DISTINCT FROM staff_id),
    -- A bootstrap is one operator's decision, recorded as such, and only ever makes an admin.
    CONSTRAINT staff_role_grants_bootstrap CHECK (origin <> 'bootstrap' OR (role = 'admin'
        AND requested_by_operator IS NOT NULL AND decided_by_operator = requested_by_operator))
);
CREATE UNIQUE INDEX staff_role_grants_one_live ON staff_role_grants (municipality_code, staff_id, role)
    WHERE status IN ('pending', 'confirmed');
CREATE INDEX staff_role_grants_pending ON staff_role_grants (municipality_code, requested_at) WHERE status = 'pending';

-- Roles already held when this migration runs: one confirmed grant each, marked as the migration's (there
-- is no record of who decided them). Done per municipality inside its own scope, as RLS requires, with
-- one audit entry per municipality saying so.
DO $$
DECLARE
  m text;
  n bigint;
BEGIN
  FOR m IN SELECT code FROM municipalities ORDER BY code LOOP
    PERFORM set_config('kyufu.municipality', m, true);
    INSERT INTO staff_role_grants (municipality_code, staff_id, role, origin, status, requested_by_operator,
                                   decided_by_operator, decided_at)
    SELECT u.municipality_code, u.staff_id, r.role, 'migration', 'confirmed', 'migration-0014', 'migration-0014', now()
    FROM staff_users u CROSS JOIN LATERAL unnest(u.roles) AS r(role)
    WHERE u.municipality_code = m;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
      INSERT INTO audit_log (municipality_code, seq, occurred_at, actor_label, action, object_type, details,
                             prev_hash, hash)
      VALUES (m, 1, now(), 'migration-0014', 'grant.migrated', 'staff_role_grants', '{"grants":' || n || '}',
              repeat('0', 64), repeat('0', 64));
    END IF;
  END LOOP;
  PERFORM set_config('kyufu.municipality', '', true);
END $$;

-- Everyone who may be acting as a principal: the principal itself and, for an account, whoever issued the
-- enrolment that set its current credentials (they saw the link and could have used it), then whoever
-- issued that issuer's, and so on. A bootstrapped admin's first enrolment stops the chain: its operator is
-- the platform's trust anchor (counting it would make every account of the municipality share it).
CREATE FUNCTION kyufu_hands(p_code text, p_staff bigint, p_operator text) RETURNS SETOF text
LANGUAGE sql STABLE AS $$
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

CREATE FUNCTION kyufu_independent(p_code text, a_staff bigint, a_operator text, b_staff bigint, b_operator text)
RETURNS boolean LANGUAGE sql STABLE AS $$
  SELECT NOT EXISTS (SELECT * FROM kyufu_hands(p_code, a_staff, a_operator)
                     INTERSECT SELECT * FROM kyufu_hands(p_code, b_staff, b_operator))
$$;

-- Why `approver` may not approve what `drafter` drafted (NULL: it may). app/staff/batches.py shows the
-- reason in Japanese; the trigger below refuses the same whatever writes the row.
CREATE FUNCTION kyufu_approval_conflict(p_code text, p_drafter bigint, p_approver bigint) RETURNS text
LANGUAGE sql STABLE AS $$
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

CREATE FUNCTION payout_batches_independent_approver() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE TRIGGER payout_batches_independent_approver BEFORE INSERT OR UPDATE OF approved_by ON payout_batches
    FOR EACH ROW WHEN (NEW.approved_by IS NOT NULL) EXECUTE FUNCTION payout_batches_independent_approver();

CREATE FUNCTION kyufu_enabled_admin(p_code text, p_staff bigint) RETURNS boolean LANGUAGE sql STABLE AS $$
  SELECT EXISTS (SELECT 1 FROM staff_users WHERE municipality_code = p_code AND staff_id = p_staff
                 AND 'admin' = ANY (roles) AND disabled_at IS NULL)
$$;

-- Grants: who may ask, the bootstrap limit, and the only changes a grant may go through.
CREATE FUNCTION staff_role_grants_rules() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE TRIGGER staff_role_grants_rules BEFORE INSERT OR UPDATE ON staff_role_grants
    FOR EACH ROW EXECUTE FUNCTION staff_role_grants_rules();

-- staff_users.roles gains a role only with a confirmed grant behind it (whoever writes the row: the app,
-- the CLI or the owner); a role taken away revokes its grant, so giving it back takes a new one.
CREATE FUNCTION staff_users_roles_granted() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE TRIGGER staff_users_roles_granted BEFORE INSERT OR UPDATE OF roles ON staff_users
    FOR EACH ROW EXECUTE FUNCTION staff_users_roles_granted();

-- Enrolments: issued by an enabled admin or an operator; a bootstrap enrolment only as the first of a
-- bootstrapped admin; used at most once, before it expires; nothing else about it changes.
CREATE FUNCTION staff_enrolments_rules() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE TRIGGER staff_enrolments_rules BEFORE INSERT OR UPDATE ON staff_enrolments
    FOR EACH ROW EXECUTE FUNCTION staff_enrolments_rules();

SELECT kyufu_isolate_tenant_table('staff_enrolments');
SELECT kyufu_isolate_tenant_table('staff_role_grants');

GRANT SELECT, INSERT, UPDATE ON staff_enrolments, staff_role_grants TO kyufu_app;
GRANT EXECUTE ON FUNCTION kyufu_principal(bigint, text), kyufu_hands(text, bigint, text),
    kyufu_independent(text, bigint, text, bigint, text), kyufu_approval_conflict(text, bigint, bigint),
    kyufu_enabled_admin(text, bigint) TO kyufu_app;
