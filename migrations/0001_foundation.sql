-- Foundation: tenants, their keys, staff accounts and the job outbox.
--
-- Conventions every later migration follows (tests/test_tenancy.py enforces them):
--   * a tenant table has `municipality_code` as the first column of its primary key and of every
--     unique constraint, and foreign keys between tenant tables include it (Citus-ready);
--   * ROW LEVEL SECURITY is ENABLEd and FORCEd (so even the owner is filtered) with the policy
--     `tenant_isolation`, which compares against the transaction-local setting kyufu.municipality;
--     current_setting(..., true) is NULL when unset, so an unscoped query sees nothing (fails closed);
--     a migration does all of this with `SELECT kyufu_isolate_tenant_table('new_table');`
--   * the app role (kyufu_app) is granted only what the app needs.

-- The check-digit rule of 地方公共団体コード, mirrored from app/tenancy/codes.py so that the database
-- itself refuses a bad code whatever writes it.
CREATE FUNCTION kyufu_valid_municipality_code(code text) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT code ~ '^[0-9]{6}$'
     AND substr(code, 1, 2)::int BETWEEN 1 AND 47
     AND substr(code, 6, 1)::int = (11 - (6 * substr(code, 1, 1)::int + 5 * substr(code, 2, 1)::int
          + 4 * substr(code, 3, 1)::int + 3 * substr(code, 4, 1)::int + 2 * substr(code, 5, 1)::int) % 11) % 10
$$;

-- The municipality currently in scope, or NULL. Only app/tenancy/transaction.py sets it.
CREATE FUNCTION kyufu_current_municipality() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT nullif(current_setting('kyufu.municipality', true), '')
$$;

-- Platform table (not tenant data): which municipalities exist. Public facts only, so the app may read
-- all of it; only the owner (kyufu municipalities add) writes it.
CREATE TABLE municipalities (
    code        text PRIMARY KEY CONSTRAINT municipalities_code_valid CHECK (kyufu_valid_municipality_code(code)),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Each municipality's keys, wrapped (AES-256-GCM) by the platform master key: 'data' encrypts personal
-- fields, 'signing' is the Ed25519 key that signs bank-file manifests (its public half is published).
CREATE TABLE municipality_keys (
    municipality_code text NOT NULL REFERENCES municipalities (code),
    purpose           text NOT NULL CHECK (purpose IN ('data', 'signing')),
    version           int  NOT NULL CHECK (version > 0),
    wrapped_key       bytea NOT NULL,
    master_key_id     text NOT NULL,
    public_key        bytea,
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (municipality_code, purpose, version)
);

CREATE TABLE staff_users (
    municipality_code text NOT NULL REFERENCES municipalities (code),
    staff_id          bigint GENERATED ALWAYS AS IDENTITY,
    login             text NOT NULL CHECK (login ~ '^[a-z0-9][a-z0-9._-]{2,63}$'),
    display_name      text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 100),
    roles             text[] NOT NULL CHECK (roles <@ ARRAY['reviewer', 'drafter', 'approver', 'admin']::text[]
                                             AND cardinality(roles) > 0),
    password_hash     text NOT NULL,
    totp_secret       bytea,            -- encrypted with the municipality's data key
    failed_logins     int NOT NULL DEFAULT 0,
    locked_until      timestamptz,
    disabled_at       timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (municipality_code, staff_id),
    UNIQUE (municipality_code, login)
);

-- Transactional outbox: every job is derived from a row committed with the change that needs it.
-- The dispatcher enqueues rows with enqueued_at IS NULL; the sweeper re-enqueues rows that are not
-- done after a timeout (Redis may have lost them). job_id is arq's _job_id, so enqueueing twice is a no-op.
CREATE TABLE outbox (
    municipality_code text NOT NULL REFERENCES municipalities (code),
    outbox_id         bigint GENERATED ALWAYS AS IDENTITY,
    job_name          text NOT NULL,
    job_id            text NOT NULL,
    args              jsonb NOT NULL DEFAULT '[]',
    created_at        timestamptz NOT NULL DEFAULT now(),
    enqueued_at       timestamptz,
    enqueue_count     int NOT NULL DEFAULT 0,
    done_at           timestamptz,
    PRIMARY KEY (municipality_code, outbox_id),
    UNIQUE (municipality_code, job_id)
);
CREATE INDEX outbox_pending ON outbox (municipality_code, created_at) WHERE done_at IS NULL;

-- Every tenant table calls this right after it is created: RLS ENABLEd and FORCEd (so even the owner is
-- filtered) and the one policy comparing municipality_code with the transaction-local scope.
-- tests/test_tenancy.py fails for any table with municipality_code that lacks any of it.
CREATE FUNCTION kyufu_isolate_tenant_table(tbl regclass) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
  EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
  EXECUTE format('CREATE POLICY tenant_isolation ON %s
                    USING (municipality_code = kyufu_current_municipality())
                    WITH CHECK (municipality_code = kyufu_current_municipality())', tbl);
END $$;
REVOKE EXECUTE ON FUNCTION kyufu_isolate_tenant_table(regclass) FROM PUBLIC;

SELECT kyufu_isolate_tenant_table('municipality_keys');
SELECT kyufu_isolate_tenant_table('staff_users');
SELECT kyufu_isolate_tenant_table('outbox');

GRANT USAGE ON SCHEMA public TO kyufu_app;
GRANT EXECUTE ON FUNCTION kyufu_valid_municipality_code(text), kyufu_current_municipality() TO kyufu_app;
GRANT SELECT ON municipalities TO kyufu_app;
GRANT SELECT ON municipality_keys TO kyufu_app;
GRANT SELECT, INSERT, UPDATE ON staff_users TO kyufu_app;
GRANT SELECT, INSERT, UPDATE ON outbox TO kyufu_app;
