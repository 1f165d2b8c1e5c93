-- 申請型 intake without a letter: a resident identifies with kana name + birth date + address, matched
-- against the registry (app/intake/identity.py). Such an application is marked, always goes to staff
-- review, and failed identifications are counted per identity for a lockout.

-- How the applicant was identified. 'letter': a 確認書 / 支給のお知らせ code and PIN (online, paper or
-- push); 'registry_match': kana name + birth date + address matched one member of an entitled household.
-- A registry match is weaker evidence than a mailed code, so the machine may never decide it alone:
-- verification adds the reason identified_without_letter, and this CHECK refuses 'verified' whatever
-- code path writes the status (staff move needs_review to approved themselves).
ALTER TABLE applications
    ADD COLUMN identification text NOT NULL DEFAULT 'letter'
        CONSTRAINT applications_identification_known CHECK (identification IN ('letter', 'registry_match')),
    ADD CONSTRAINT applications_registry_match_reviewed CHECK (identification = 'letter' OR status <> 'verified');

-- Failed identifications per identity, for the lockout (5 failures lock it for 30 minutes). The identity
-- is stored only as HMAC-SHA256(municipality, kana name, birth date) under a key derived from the
-- municipality's data key: the typed name and birth date are never stored, and the table is useless
-- without that key. Address guesses for one person therefore count against the same five.
CREATE TABLE intake_identity_lockouts (
    municipality_code text NOT NULL REFERENCES municipalities (code),
    identity_key      bytea NOT NULL CHECK (length(identity_key) = 32),
    failed_attempts   int NOT NULL DEFAULT 0 CHECK (failed_attempts >= 0),
    locked_until      timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (municipality_code, identity_key)
);
SELECT kyufu_isolate_tenant_table('intake_identity_lockouts');
GRANT SELECT, INSERT, UPDATE, DELETE ON intake_identity_lockouts TO kyufu_app;

-- Identification looks residents up by birth date (about a hundred residents share one in the largest
-- city), across the snapshots a program's entitlements come from; without this it reads every resident.
CREATE INDEX residents_birth_date ON residents (municipality_code, birth_date);
