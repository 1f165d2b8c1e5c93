-- Resident intake: API idempotency keys and the record of duplicate claims for staff.
-- Sign-in failures and lockout use letters.failed_attempts / letters.locked_until (0002); the per-IP
-- rate limit lives in Redis because it is a speed bump, not a guarantee.

-- `Idempotency-Key` of POST /api/v1/applications, scoped per municipality. The row is written in the
-- same transaction as the application it answers for, so a stored response always describes a committed
-- application. Kept at least 7 days (`kyufu intake purge-idempotency` refuses a shorter horizon).
CREATE TABLE intake_idempotency_keys (
    municipality_code text NOT NULL REFERENCES municipalities (code),
    idempotency_key   text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    request_sha256    bytea NOT NULL CHECK (length(request_sha256) = 32),
    status_code       smallint NOT NULL CHECK (status_code BETWEEN 200 AND 599),
    response          jsonb NOT NULL,              -- receipt number and status only: no personal data
    application_id    bigint,
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (municipality_code, idempotency_key),
    FOREIGN KEY (municipality_code, application_id) REFERENCES applications (municipality_code, application_id)
);
CREATE INDEX intake_idempotency_keys_age ON intake_idempotency_keys (municipality_code, created_at);

-- A second claim on an entitlement that already has an active application (the unique index
-- applications_one_active refused it). Staff see these: one person applying 15 times (2020) is a signal.
CREATE TABLE intake_duplicate_claims (
    municipality_code text NOT NULL,
    duplicate_id      bigint GENERATED ALWAYS AS IDENTITY,
    entitlement_id    bigint NOT NULL,
    application_id    bigint NOT NULL,             -- the active application the claim collided with
    channel           text NOT NULL CHECK (channel IN ('online', 'paper', 'push')),
    attempted_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (municipality_code, duplicate_id),
    FOREIGN KEY (municipality_code, entitlement_id) REFERENCES entitlements (municipality_code, entitlement_id),
    FOREIGN KEY (municipality_code, application_id) REFERENCES applications (municipality_code, application_id)
);
CREATE INDEX intake_duplicate_claims_entitlement ON intake_duplicate_claims (municipality_code, entitlement_id);

SELECT kyufu_isolate_tenant_table('intake_idempotency_keys');
SELECT kyufu_isolate_tenant_table('intake_duplicate_claims');

-- The app reserves application ids before inserting (the id is part of the encryption's associated
-- data, so the row is written once, complete).
GRANT USAGE ON SEQUENCE applications_application_id_seq TO kyufu_app;
GRANT SELECT, INSERT, DELETE ON intake_idempotency_keys TO kyufu_app;
GRANT SELECT, INSERT ON intake_duplicate_claims TO kyufu_app;
