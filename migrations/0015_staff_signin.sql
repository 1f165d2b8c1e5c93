-- Staff sign-in limits that an outsider cannot turn against a municipality's approvers (issue 12, finding 6).
--
-- Before: five wrong passwords locked the account for 15 minutes, whoever typed them, so anyone who knew
-- or guessed a login ("approver", "admin") could keep it locked for good. Now failures are counted per
-- *path* to an account, and a path that keeps failing is slowed down, not the account
-- (app/staff/signin.py has the delays and the reasoning):
--   * staff_signin_failures: the untrusted path of a login — every browser that holds no device cookie of
--     the account. Keyed by an HMAC of the login (key derived from the municipality's data key), so a
--     login that does not exist is counted and delayed exactly like one that does (the screen must not
--     tell them apart), and what guessers type is not stored.
--   * staff_devices: the browsers an account signed in from before (OWASP "device cookies"). Each has its
--     own count, so a guesser's failures never delay the owner at their known browser.
-- failed_logins and locked_until (0001) held the old per-account lock and are dropped.

CREATE TABLE staff_signin_failures (
    municipality_code text NOT NULL REFERENCES municipalities (code),
    login_hmac        text NOT NULL CHECK (login_hmac ~ '^[0-9a-f]{64}$'),
    -- The account when the login exists at the time of the failure: only for the admins' staff list.
    staff_id          bigint,
    failures          int NOT NULL CHECK (failures > 0),   -- in a row, on this path
    last_failed_at    timestamptz NOT NULL,
    delayed_until     timestamptz,
    PRIMARY KEY (municipality_code, login_hmac),
    FOREIGN KEY (municipality_code, staff_id) REFERENCES staff_users (municipality_code, staff_id)
);
CREATE INDEX staff_signin_failures_staff ON staff_signin_failures (municipality_code, staff_id)
    WHERE staff_id IS NOT NULL;
-- Rows of logins nobody tried for a day are forgotten (their count would restart anyway), a few at a time
-- by each new failure: guessers' made-up logins do not pile up.
CREATE INDEX staff_signin_failures_age ON staff_signin_failures (municipality_code, last_failed_at);

-- Only the SHA-256 of the device id in the cookie is stored (a leaked table trusts no browser).
CREATE TABLE staff_devices (
    municipality_code text NOT NULL,
    staff_id          bigint NOT NULL,
    device_sha256     text NOT NULL CHECK (device_sha256 ~ '^[0-9a-f]{64}$'),
    created_at        timestamptz NOT NULL DEFAULT now(),
    last_used_at      timestamptz NOT NULL DEFAULT now(),
    failures          int NOT NULL DEFAULT 0 CHECK (failures >= 0),
    last_failed_at    timestamptz,
    delayed_until     timestamptz,
    revoked_at        timestamptz,
    PRIMARY KEY (municipality_code, staff_id, device_sha256),
    FOREIGN KEY (municipality_code, staff_id) REFERENCES staff_users (municipality_code, staff_id)
);

-- What the owner is told at their next sign-in: failures against the account since the last sign-in
-- (counted until a sign-in succeeds, then moved to notice_* for the dashboard of the new session).
ALTER TABLE staff_users
    DROP COLUMN failed_logins,
    DROP COLUMN locked_until,
    ADD COLUMN failures_since_signin int NOT NULL DEFAULT 0 CHECK (failures_since_signin >= 0),
    ADD COLUMN last_failed_at        timestamptz,
    ADD COLUMN notice_failures       int NOT NULL DEFAULT 0 CHECK (notice_failures >= 0),
    ADD COLUMN notice_last_failed_at timestamptz;

SELECT kyufu_isolate_tenant_table('staff_signin_failures');
SELECT kyufu_isolate_tenant_table('staff_devices');
GRANT SELECT, INSERT, UPDATE, DELETE ON staff_signin_failures TO kyufu_app;
GRANT SELECT, INSERT, UPDATE ON staff_devices TO kyufu_app;
