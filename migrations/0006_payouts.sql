-- The payout stage: each municipality's contract with its bank, the record of each release, and
-- reconciliation of returned transfers (不能). The batch and payment state machines live in 0002.

-- What the municipality agreed with its 指定金融機関 (zengin.md §8): one row per municipality, edited on
-- the staff console's admin screen (payouts/settings_store.py). Nothing here is personal data: the
-- account is the municipality's own; the recipients are public keys.
CREATE TABLE municipality_bank_settings (
    municipality_code     text NOT NULL REFERENCES municipalities (code),
    requester_code        text NOT NULL CHECK (requester_code ~ '^[0-9]{1,10}$'),       -- 振込依頼人コード
    requester_name_kana   text NOT NULL CHECK (length(requester_name_kana) BETWEEN 1 AND 40),
    bank_code             text NOT NULL CHECK (bank_code ~ '^[0-9]{4}$'),               -- 仕向銀行番号
    bank_name_kana        text NOT NULL DEFAULT '' CHECK (length(bank_name_kana) <= 15),
    branch_code           text NOT NULL CHECK (branch_code ~ '^[0-9]{3}$'),
    branch_name_kana      text NOT NULL DEFAULT '' CHECK (length(branch_name_kana) <= 15),
    account_type          smallint NOT NULL CHECK (account_type IN (1, 2, 9)),
    account_number        text NOT NULL CHECK (account_number ~ '^[0-9]{1,7}$'),
    separator             text NOT NULL CHECK (separator IN ('crlf', 'none')),
    clearing_house_fill   text NOT NULL DEFAULT 'zeros' CHECK (clearing_house_fill IN ('zeros', 'spaces')),
    transfer_designation  text NOT NULL DEFAULT '7' CHECK (transfer_designation IN ('7', '8', '0', ' ')),
    reference_field       text NOT NULL DEFAULT 'customer_code1' CHECK (reference_field IN ('customer_code1', 'edi')),
    allow_wo              boolean NOT NULL DEFAULT false,
    -- age X25519 recipients: the bank, usually also the municipality's archive key.
    age_recipients        text[] NOT NULL CHECK (cardinality(age_recipients) BETWEEN 1 AND 10),
    min_business_days_ahead int NOT NULL DEFAULT 2 CHECK (min_business_days_ahead BETWEEN 0 AND 30),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    updated_by            bigint,
    PRIMARY KEY (municipality_code),
    FOREIGN KEY (municipality_code, updated_by) REFERENCES staff_users (municipality_code, staff_id)
);

-- One row per released batch, written in the same transaction that marks the batch released. It keeps
-- the signed manifest so the release can be re-checked later without the outbox file.
CREATE TABLE payout_releases (
    municipality_code  text NOT NULL,
    batch_id           bigint NOT NULL,
    released_by        bigint NOT NULL,
    file_name          text NOT NULL,
    plaintext_sha256   text NOT NULL CHECK (plaintext_sha256 ~ '^[0-9a-f]{64}$'),
    ciphertext_sha256  text NOT NULL CHECK (ciphertext_sha256 ~ '^[0-9a-f]{64}$'),
    signed_manifest    bytea NOT NULL,
    recovered          boolean NOT NULL DEFAULT false,   -- adopted a file left by an interrupted release
    released_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (municipality_code, batch_id),
    FOREIGN KEY (municipality_code, batch_id) REFERENCES payout_batches (municipality_code, batch_id),
    FOREIGN KEY (municipality_code, released_by) REFERENCES staff_users (municipality_code, staff_id)
);

-- A bank returns file, imported once: the same file (same SHA-256) again is a no-op, and a batch is
-- reconciled by exactly one file (a second, different file for it is refused).
CREATE TABLE payout_return_imports (
    municipality_code text NOT NULL,
    import_id         bigint GENERATED ALWAYS AS IDENTITY,
    batch_id          bigint NOT NULL,
    file_sha256       text NOT NULL CHECK (file_sha256 ~ '^[0-9a-f]{64}$'),
    returned_count    int NOT NULL CHECK (returned_count >= 0),
    paid_count        int NOT NULL CHECK (paid_count >= 0),
    imported_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (municipality_code, import_id),
    CONSTRAINT payout_return_imports_file_once UNIQUE (municipality_code, file_sha256),
    CONSTRAINT payout_return_imports_batch_once UNIQUE (municipality_code, batch_id),
    FOREIGN KEY (municipality_code, batch_id) REFERENCES payout_batches (municipality_code, batch_id)
);

-- Each returned payment, with the bank's reason code (payouts/banksim.py RETURN_REASONS). A payment is
-- returned at most once: a returned payment never goes back to released.
CREATE TABLE payment_returns (
    municipality_code text NOT NULL,
    payment_id        bigint NOT NULL,
    import_id         bigint NOT NULL,
    reason_code       text NOT NULL CHECK (reason_code IN ('2', '3', 'N', '9')),
    reason            text NOT NULL,
    PRIMARY KEY (municipality_code, payment_id),
    FOREIGN KEY (municipality_code, payment_id) REFERENCES payments (municipality_code, payment_id),
    FOREIGN KEY (municipality_code, import_id) REFERENCES payout_return_imports (municipality_code, import_id)
);
CREATE INDEX payment_returns_import ON payment_returns (municipality_code, import_id);

-- A re-issued payment (new account after a return) points at the payment it replaces; the partial
-- unique index payments_one_live (0002) still guarantees one live payment per entitlement.
CREATE TABLE payment_reissues (
    municipality_code text NOT NULL,
    payment_id        bigint NOT NULL,         -- the new payment
    replaces_payment_id bigint NOT NULL,       -- the returned one
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (municipality_code, payment_id),
    CONSTRAINT payment_reissues_once UNIQUE (municipality_code, replaces_payment_id),
    FOREIGN KEY (municipality_code, payment_id) REFERENCES payments (municipality_code, payment_id),
    FOREIGN KEY (municipality_code, replaces_payment_id) REFERENCES payments (municipality_code, payment_id)
);

-- The stage reads a batch in payment_id order (the file order the approver hashed): this index serves
-- that read without a sort, so a million-row batch streams instead of spilling a sort to disk.
CREATE INDEX payments_batch_order ON payments (municipality_code, batch_id, payment_id) WHERE batch_id IS NOT NULL;

SELECT kyufu_isolate_tenant_table('municipality_bank_settings');
SELECT kyufu_isolate_tenant_table('payout_releases');
SELECT kyufu_isolate_tenant_table('payout_return_imports');
SELECT kyufu_isolate_tenant_table('payment_returns');
SELECT kyufu_isolate_tenant_table('payment_reissues');

GRANT SELECT, INSERT, UPDATE ON municipality_bank_settings TO kyufu_app;
GRANT SELECT, INSERT ON payout_releases, payout_return_imports, payment_returns, payment_reissues TO kyufu_app;
