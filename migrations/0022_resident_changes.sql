-- 口座変更の届出 (issue 18, point 3): a resident who has applied gives another account.
--
-- application_account_changes records each change: which application, when, by whom (a label such as
-- 'resident:letter:12'), through which channel, and the account it replaced, encrypted bound to the change
-- row (the same field cipher as applications; associated data: table, column, change_id), so staff can see
-- what was there before. The application itself carries the new account (app/intake/changes.py re-encrypts
-- it bound to the application, like the original) and goes back to 'received' for verification.
--
-- The rule: an account may change only while no payment of the entitlement has gone into a batch (or
-- beyond: released, paid, returned). A 'ready' payment (created for a draft that was then cancelled) still
-- holds the old account: the change cancels it, so the next draft creates one from the new account. The
-- trigger below refuses the record (and so the whole change, which writes it in the same transaction)
-- once a payment is in a batch; the code checks first only to answer the resident in plain words.

CREATE TABLE application_account_changes (
    municipality_code    text NOT NULL,
    change_id            bigint GENERATED ALWAYS AS IDENTITY,
    application_id       bigint NOT NULL,
    entitlement_id       bigint NOT NULL,
    changed_at           timestamptz NOT NULL DEFAULT now(),
    changed_by           text NOT NULL CHECK (length(changed_by) BETWEEN 1 AND 200),
    channel              text NOT NULL CHECK (channel IN ('online', 'paper')),
    old_bank_code        text NOT NULL CHECK (old_bank_code ~ '^[0-9]{4}$'),
    old_branch_code      text NOT NULL CHECK (old_branch_code ~ '^[0-9]{3}$'),
    old_account_type     smallint NOT NULL CHECK (old_account_type IN (1, 2, 4, 9)),
    old_account_number_enc bytea NOT NULL,
    old_holder_kana_enc  bytea NOT NULL,
    new_bank_code        text NOT NULL CHECK (new_bank_code ~ '^[0-9]{4}$'),
    new_branch_code      text NOT NULL CHECK (new_branch_code ~ '^[0-9]{3}$'),
    PRIMARY KEY (municipality_code, change_id),
    FOREIGN KEY (municipality_code, application_id) REFERENCES applications (municipality_code, application_id),
    FOREIGN KEY (municipality_code, entitlement_id) REFERENCES entitlements (municipality_code, entitlement_id)
);
CREATE INDEX application_account_changes_application ON application_account_changes (municipality_code, application_id);

CREATE FUNCTION application_account_changes_before_batch() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE TRIGGER application_account_changes_before_batch BEFORE INSERT ON application_account_changes
    FOR EACH ROW EXECUTE FUNCTION application_account_changes_before_batch();

SELECT kyufu_isolate_tenant_table('application_account_changes');
GRANT SELECT, INSERT ON application_account_changes TO kyufu_app;
-- The id is reserved before the insert: it is part of the old account's ciphertext's associated data.
GRANT USAGE ON SEQUENCE application_account_changes_change_id_seq TO kyufu_app;
-- The application's keyed account hash follows its account (verification compares accounts by it).
GRANT UPDATE ON application_account_keys TO kyufu_app;
