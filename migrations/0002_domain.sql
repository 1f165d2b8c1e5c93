-- The core domain, shared by registry/eligibility, intake, the staff console and the payout stage.
-- Later migrations extend these tables; the invariants that stop double claims and double payments live
-- here as constraints, not in application code.

-- A registry extract or tax file, loaded as one immutable snapshot. Re-importing the same file (same
-- SHA-256) is a no-op by the unique key.
CREATE TABLE registry_snapshots (
    municipality_code text NOT NULL REFERENCES municipalities (code),
    snapshot_id       bigint GENERATED ALWAYS AS IDENTITY,
    kind              text NOT NULL CHECK (kind IN ('residents', 'tax', 'accounts')),
    fiscal_year       int CHECK (fiscal_year BETWEEN 2000 AND 2100),
    file_sha256       text NOT NULL CHECK (file_sha256 ~ '^[0-9a-f]{64}$'),
    row_count         int NOT NULL DEFAULT 0,
    status            text NOT NULL DEFAULT 'staging' CHECK (status IN ('staging', 'published', 'rejected')),
    created_at        timestamptz NOT NULL DEFAULT now(),
    published_at      timestamptz,
    PRIMARY KEY (municipality_code, snapshot_id),
    UNIQUE (municipality_code, kind, file_sha256)
);

-- 住民基本台帳 rows of one snapshot. Names stay in clear here (RLS-scoped) because eligibility and
-- identification match on them set-wise; bank details, by contrast, are always encrypted.
CREATE TABLE residents (
    municipality_code text NOT NULL,
    snapshot_id       bigint NOT NULL,
    resident_code     text NOT NULL CHECK (resident_code ~ '^[0-9]{11}$'),   -- 住民票コード
    household_no      text NOT NULL,                                         -- 世帯番号
    relationship      text NOT NULL,                                         -- 続柄
    is_head           boolean NOT NULL,                                      -- 世帯主
    family_name       text NOT NULL,
    given_name        text NOT NULL,
    family_kana       text NOT NULL,
    given_kana        text NOT NULL,
    birth_date        date NOT NULL,
    sex               text NOT NULL CHECK (sex IN ('1', '2', '9')),
    address           text NOT NULL,
    moved_in_on       date,                                                  -- 住定日
    removed_on        date,                                                  -- 消除日
    removal_reason    text,                                                  -- 消除事由
    PRIMARY KEY (municipality_code, snapshot_id, resident_code),
    FOREIGN KEY (municipality_code, snapshot_id) REFERENCES registry_snapshots (municipality_code, snapshot_id)
);
CREATE INDEX residents_household ON residents (municipality_code, snapshot_id, household_no);

-- 課税区分 per household or resident for a fiscal year, from the tax system.
CREATE TABLE tax_statuses (
    municipality_code text NOT NULL,
    snapshot_id       bigint NOT NULL,
    line_no           int NOT NULL,
    fiscal_year       int NOT NULL,
    household_no      text,
    resident_code     text CHECK (resident_code ~ '^[0-9]{11}$'),
    tax_class         text NOT NULL CHECK (tax_class IN ('taxable', 'exempt', 'per_capita_only')),
    CHECK (num_nonnulls(household_no, resident_code) = 1),
    PRIMARY KEY (municipality_code, snapshot_id, line_no),
    FOREIGN KEY (municipality_code, snapshot_id) REFERENCES registry_snapshots (municipality_code, snapshot_id)
);

-- A benefit a municipality runs.
CREATE TABLE programs (
    municipality_code   text NOT NULL REFERENCES municipalities (code),
    program_id          bigint GENERATED ALWAYS AS IDENTITY,
    name                text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    base_date           date NOT NULL,                                     -- 基準日
    unit                text NOT NULL CHECK (unit IN ('person', 'household')),
    amount_yen          bigint NOT NULL CHECK (amount_yen > 0),
    child_amount_yen    bigint CHECK (child_amount_yen > 0),               -- per child under child_age_under
    child_age_under     int NOT NULL DEFAULT 18 CHECK (child_age_under BETWEEN 1 AND 30),
    tax_condition       text NOT NULL DEFAULT 'none' CHECK (tax_condition IN ('none', 'exempt', 'exempt_or_per_capita')),
    tax_fiscal_year     int,
    min_age             int CHECK (min_age >= 0),
    max_age             int CHECK (max_age >= 0),
    apply_from          date,
    apply_until         date,
    payment_mode        text NOT NULL CHECK (payment_mode IN ('application', 'letter', 'push')),  -- 申請型/確認書型/プッシュ型
    decline_deadline    date,                                              -- 辞退 deadline (push)
    created_at          timestamptz NOT NULL DEFAULT now(),
    CHECK (tax_condition = 'none' OR tax_fiscal_year IS NOT NULL),
    CHECK (payment_mode <> 'push' OR decline_deadline IS NOT NULL),
    CHECK (apply_until IS NULL OR apply_from IS NULL OR apply_until >= apply_from),
    PRIMARY KEY (municipality_code, program_id)
);

-- Frozen result of eligibility: who is entitled to how much, from which snapshot, by which rule.
CREATE TABLE entitlements (
    municipality_code  text NOT NULL,
    entitlement_id     bigint GENERATED ALWAYS AS IDENTITY,
    program_id         bigint NOT NULL,
    snapshot_id        bigint NOT NULL,
    household_no       text NOT NULL,
    head_resident_code text NOT NULL CHECK (head_resident_code ~ '^[0-9]{11}$'),
    members_counted    int NOT NULL CHECK (members_counted > 0),
    amount_yen         bigint NOT NULL CHECK (amount_yen > 0),
    rule               text NOT NULL,
    status             text NOT NULL DEFAULT 'open'
                       CHECK (status IN ('open', 'claimed', 'declined', 'withdrawn', 'paid')),
    created_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (municipality_code, entitlement_id),
    -- One entitlement per household per program: the root of "one claim per entitlement".
    UNIQUE (municipality_code, program_id, household_no),
    FOREIGN KEY (municipality_code, program_id) REFERENCES programs (municipality_code, program_id),
    FOREIGN KEY (municipality_code, snapshot_id) REFERENCES registry_snapshots (municipality_code, snapshot_id)
);

-- 確認書 letters: access code (human-typable, with check character) and a keyed hash of the PIN.
CREATE TABLE letters (
    municipality_code text NOT NULL,
    letter_id         bigint GENERATED ALWAYS AS IDENTITY,
    entitlement_id    bigint NOT NULL,
    kind              text NOT NULL CHECK (kind IN ('confirmation', 'push_notice')),  -- 確認書 / 支給のお知らせ
    access_code       text NOT NULL,
    pin_hash          bytea NOT NULL,
    issued_at         timestamptz NOT NULL DEFAULT now(),
    exported_at       timestamptz,
    invalidated_at    timestamptz,
    failed_attempts   int NOT NULL DEFAULT 0,
    locked_until      timestamptz,
    PRIMARY KEY (municipality_code, letter_id),
    UNIQUE (municipality_code, access_code),
    FOREIGN KEY (municipality_code, entitlement_id) REFERENCES entitlements (municipality_code, entitlement_id)
);
-- At most one valid letter per entitlement: re-issuing must invalidate the old one in the same transaction.
CREATE UNIQUE INDEX letters_one_valid ON letters (municipality_code, entitlement_id) WHERE invalidated_at IS NULL;

-- Accounts the municipality already knows (公金受取口座 or a previous payout), per resident.
CREATE TABLE registered_accounts (
    municipality_code  text NOT NULL REFERENCES municipalities (code),
    resident_code      text NOT NULL CHECK (resident_code ~ '^[0-9]{11}$'),
    bank_code          text NOT NULL CHECK (bank_code ~ '^[0-9]{4}$'),
    branch_code        text NOT NULL CHECK (branch_code ~ '^[0-9]{3}$'),
    account_type       smallint NOT NULL CHECK (account_type IN (1, 2, 4, 9)),
    account_number_enc bytea NOT NULL,
    holder_kana_enc    bytea NOT NULL,
    source             text NOT NULL DEFAULT 'koukin' CHECK (source IN ('koukin', 'previous_payout')),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (municipality_code, resident_code)
);

-- One claim on an entitlement, from any channel. Bank details are encrypted with the municipality's key
-- (associated data binds them to this row).
CREATE TABLE applications (
    municipality_code  text NOT NULL,
    application_id     bigint GENERATED ALWAYS AS IDENTITY,
    entitlement_id     bigint NOT NULL,
    receipt_no         text NOT NULL,
    channel            text NOT NULL CHECK (channel IN ('online', 'paper', 'push')),
    status             text NOT NULL DEFAULT 'received'
                       CHECK (status IN ('received', 'verified', 'needs_review', 'approved', 'rejected', 'withdrawn')),
    reason_codes       text[] NOT NULL DEFAULT '{}',
    applicant_resident_code text CHECK (applicant_resident_code ~ '^[0-9]{11}$'),
    is_proxy           boolean NOT NULL DEFAULT false,
    bank_code          text NOT NULL CHECK (bank_code ~ '^[0-9]{4}$'),
    branch_code        text NOT NULL CHECK (branch_code ~ '^[0-9]{3}$'),
    account_type       smallint NOT NULL CHECK (account_type IN (1, 2, 4, 9)),
    account_number_enc bytea NOT NULL,
    holder_kana_enc    bytea NOT NULL,
    submitted_at       timestamptz NOT NULL DEFAULT now(),
    decided_at         timestamptz,
    decided_by         bigint,
    PRIMARY KEY (municipality_code, application_id),
    UNIQUE (municipality_code, receipt_no),
    FOREIGN KEY (municipality_code, entitlement_id) REFERENCES entitlements (municipality_code, entitlement_id)
);
-- The 2020 lesson: one active application per entitlement, across online, paper and push.
CREATE UNIQUE INDEX applications_one_active ON applications (municipality_code, entitlement_id)
    WHERE status NOT IN ('rejected', 'withdrawn');
CREATE INDEX applications_status ON applications (municipality_code, status);

-- A transfer to make. Bank details are copied (still encrypted, re-bound to this row) from the approved
-- application or a corrected account, so a batch never changes when an application is edited later.
CREATE TABLE payments (
    municipality_code  text NOT NULL,
    payment_id         bigint GENERATED ALWAYS AS IDENTITY,
    entitlement_id     bigint NOT NULL,
    application_id     bigint,
    amount_yen         bigint NOT NULL CHECK (amount_yen BETWEEN 1 AND 9999999999),
    bank_code          text NOT NULL CHECK (bank_code ~ '^[0-9]{4}$'),
    branch_code        text NOT NULL CHECK (branch_code ~ '^[0-9]{3}$'),
    account_type       smallint NOT NULL CHECK (account_type IN (1, 2, 4, 9)),
    account_number_enc bytea NOT NULL,
    holder_kana_enc    bytea NOT NULL,
    status             text NOT NULL DEFAULT 'ready'
                       CHECK (status IN ('ready', 'in_batch', 'released', 'paid', 'returned', 'cancelled')),
    batch_id           bigint,             -- the one batch this payment is in (a column, so never two)
    return_reason      text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    paid_on            date,
    CHECK ((status IN ('in_batch', 'released', 'paid')) = (batch_id IS NOT NULL) OR status = 'returned'),
    PRIMARY KEY (municipality_code, payment_id),
    FOREIGN KEY (municipality_code, entitlement_id) REFERENCES entitlements (municipality_code, entitlement_id),
    FOREIGN KEY (municipality_code, application_id) REFERENCES applications (municipality_code, application_id)
);
-- The 2022 lesson, structurally: at most one live or successful payment per entitlement. A returned or
-- cancelled payment frees the slot so a corrected account can be paid in a later batch — once.
CREATE UNIQUE INDEX payments_one_live ON payments (municipality_code, entitlement_id)
    WHERE status IN ('ready', 'in_batch', 'released', 'paid');
CREATE INDEX payments_batch ON payments (municipality_code, batch_id) WHERE batch_id IS NOT NULL;

-- 振込起案 → 振込承認 → release. Four eyes are a CHECK, not an if.
CREATE TABLE payout_batches (
    municipality_code text NOT NULL,
    batch_id          bigint GENERATED ALWAYS AS IDENTITY,
    program_id        bigint NOT NULL,
    transfer_date     date NOT NULL,                      -- 振込指定日
    status            text NOT NULL DEFAULT 'draft'
                      CHECK (status IN ('draft', 'approved', 'released', 'cancelled')),
    drafted_by        bigint NOT NULL,
    drafted_at        timestamptz NOT NULL DEFAULT now(),
    record_count      int NOT NULL CHECK (record_count >= 0),
    total_yen         bigint NOT NULL CHECK (total_yen >= 0),
    plaintext_sha256  text CHECK (plaintext_sha256 ~ '^[0-9a-f]{64}$'),  -- of the file as drafted
    approved_by       bigint,
    approved_at       timestamptz,
    approved_sha256   text CHECK (approved_sha256 ~ '^[0-9a-f]{64}$'),   -- what the approver approved
    released_at       timestamptz,
    released_sha256   text CHECK (released_sha256 ~ '^[0-9a-f]{64}$'),
    ciphertext_sha256 text CHECK (ciphertext_sha256 ~ '^[0-9a-f]{64}$'),
    file_name         text,
    CONSTRAINT payout_batches_four_eyes CHECK (approved_by IS NULL OR approved_by <> drafted_by),
    CONSTRAINT payout_batches_approved_has_hash CHECK (status NOT IN ('approved', 'released')
        OR (approved_by IS NOT NULL AND approved_sha256 IS NOT NULL)),
    -- Only the exact bytes that were approved can be released.
    CONSTRAINT payout_batches_release_matches_approval CHECK (status <> 'released'
        OR (released_at IS NOT NULL AND released_sha256 = approved_sha256)),
    PRIMARY KEY (municipality_code, batch_id),
    FOREIGN KEY (municipality_code, program_id) REFERENCES programs (municipality_code, program_id),
    FOREIGN KEY (municipality_code, drafted_by) REFERENCES staff_users (municipality_code, staff_id),
    FOREIGN KEY (municipality_code, approved_by) REFERENCES staff_users (municipality_code, staff_id)
);
ALTER TABLE payments ADD FOREIGN KEY (municipality_code, batch_id) REFERENCES payout_batches (municipality_code, batch_id);

-- A batch's file can be released once: released_at is written only while it is NULL, enforced here so
-- that no code path (a second request, a retried job) can release it again.
CREATE FUNCTION payout_batches_release_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.status = 'released' THEN
    RAISE EXCEPTION 'batch % of % was already released', OLD.batch_id, OLD.municipality_code
      USING ERRCODE = 'integrity_constraint_violation', CONSTRAINT = 'payout_batches_release_once';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER payout_batches_release_once BEFORE UPDATE ON payout_batches
    FOR EACH ROW EXECUTE FUNCTION payout_batches_release_once();

SELECT kyufu_isolate_tenant_table('registry_snapshots');
SELECT kyufu_isolate_tenant_table('residents');
SELECT kyufu_isolate_tenant_table('tax_statuses');
SELECT kyufu_isolate_tenant_table('programs');
SELECT kyufu_isolate_tenant_table('entitlements');
SELECT kyufu_isolate_tenant_table('letters');
SELECT kyufu_isolate_tenant_table('registered_accounts');
SELECT kyufu_isolate_tenant_table('applications');
SELECT kyufu_isolate_tenant_table('payments');
SELECT kyufu_isolate_tenant_table('payout_batches');

GRANT SELECT, INSERT, UPDATE ON registry_snapshots, programs, entitlements, letters, registered_accounts,
    applications, payments, payout_batches TO kyufu_app;
GRANT SELECT, INSERT ON residents, tax_statuses TO kyufu_app;
