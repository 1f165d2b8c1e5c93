-- Per-batch guardrails (issue 16, point 5), enforced by the database whatever the application does:
--
--   * no payment above its entitlement (statement trigger on insert, row trigger on a change of amount);
--   * a payment joins a batch only while the batch is being prepared (payouts/drafting.py), and a batch
--     never goes back to 'preparing': after that the set of payments an approver sees cannot grow;
--   * no account receives more than the program's `max_payments_per_account` payments in one batch (the
--     阿武町 shape: 463 households' money sent to one account) unless a staff member other than the drafter
--     overrode that account with a reason: the batch's over-limit accounts are recorded when its
--     preparation ends (trigger on 'preparing' → 'draft'), and approval is refused while one is open;
--   * no entitlement paid twice: payments_one_live (0002) already allows one live payment per entitlement.
--
-- Accounts are compared through payments.account_key, the municipality's keyed fingerprint of (bank,
-- branch, type, number) (payouts/accounts.py `account_key`; the same as application_account_keys): the
-- database never sees an account number. Payments created before this migration have none and are not
-- counted (there are none in service: kyufu had not paid anyone yet).

ALTER TABLE payments ADD COLUMN account_key bytea CHECK (length(account_key) = 32);
ALTER TABLE programs ADD COLUMN max_payments_per_account int NOT NULL DEFAULT 1
    CHECK (max_payments_per_account BETWEEN 1 AND 1000);
COMMENT ON COLUMN programs.max_payments_per_account IS
    'payments to one account in one batch above which staff must override the account before approval';

CREATE TABLE payout_batch_account_flags (
    municipality_code text NOT NULL,
    batch_id          bigint NOT NULL,
    account_key       bytea NOT NULL,
    payments          int NOT NULL CHECK (payments > 1),
    total_yen         bigint NOT NULL CHECK (total_yen > 0),
    payment_ids       bigint[] NOT NULL,  -- which payments (the console shows the account and names them)
    overridden_by     bigint,
    overridden_at     timestamptz,
    override_reason   text CHECK (length(override_reason) BETWEEN 1 AND 1000),
    PRIMARY KEY (municipality_code, batch_id, account_key),
    FOREIGN KEY (municipality_code, batch_id) REFERENCES payout_batches (municipality_code, batch_id),
    FOREIGN KEY (municipality_code, overridden_by) REFERENCES staff_users (municipality_code, staff_id),
    CONSTRAINT payout_batch_account_flags_override_whole
        CHECK ((overridden_by IS NULL) = (overridden_at IS NULL) AND (overridden_by IS NULL) = (override_reason IS NULL))
);
SELECT kyufu_isolate_tenant_table('payout_batch_account_flags');
GRANT SELECT, INSERT, UPDATE ON payout_batch_account_flags TO kyufu_app;

-- New payments: within their entitlement, and into a batch only while it is being prepared. One check per
-- statement (the preparation inserts 20,000 rows at a time), not per row. enable_seqscan = off: a transition
-- table has no statistics, and entitlements created moments earlier (eligibility, then 起案) may have none
-- either; the planner then chose to scan entitlements once per new row, and `kyufu payouts bench` did not
-- finish inserting 100,000 payments in 5 minutes. With it each new row is an index probe.
CREATE FUNCTION payments_guard_insert() RETURNS trigger LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE bad bigint;
BEGIN
  SELECT n.payment_id INTO bad FROM new_payments n
  JOIN entitlements e ON e.municipality_code = n.municipality_code AND e.entitlement_id = n.entitlement_id
  WHERE n.amount_yen > e.amount_yen LIMIT 1;
  IF bad IS NOT NULL THEN
    RAISE EXCEPTION 'payment % is above its entitlement', bad
      USING ERRCODE = 'check_violation', CONSTRAINT = 'payments_within_entitlement';
  END IF;
  SELECT n.payment_id INTO bad FROM new_payments n
  JOIN payout_batches b ON b.municipality_code = n.municipality_code AND b.batch_id = n.batch_id
  WHERE b.status <> 'preparing' LIMIT 1;
  IF bad IS NOT NULL THEN
    RAISE EXCEPTION 'payment % cannot join a batch that is not being prepared', bad
      USING ERRCODE = 'check_violation', CONSTRAINT = 'payments_join_preparing_batch';
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER payments_guard_insert AFTER INSERT ON payments
    REFERENCING NEW TABLE AS new_payments FOR EACH STATEMENT EXECUTE FUNCTION payments_guard_insert();

-- A change of batch (the freeze of ready payments) or of amount: one row at a time, as these are few.
CREATE FUNCTION payments_guard_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.batch_id IS NOT NULL AND NEW.batch_id IS DISTINCT FROM OLD.batch_id AND NOT EXISTS (
       SELECT 1 FROM payout_batches b WHERE b.municipality_code = NEW.municipality_code
       AND b.batch_id = NEW.batch_id AND b.status = 'preparing') THEN
    RAISE EXCEPTION 'payment % cannot join batch %, which is not being prepared', NEW.payment_id, NEW.batch_id
      USING ERRCODE = 'check_violation', CONSTRAINT = 'payments_join_preparing_batch';
  END IF;
  IF (NEW.amount_yen, NEW.entitlement_id) IS DISTINCT FROM (OLD.amount_yen, OLD.entitlement_id) AND EXISTS (
       SELECT 1 FROM entitlements e WHERE e.municipality_code = NEW.municipality_code
       AND e.entitlement_id = NEW.entitlement_id AND NEW.amount_yen > e.amount_yen) THEN
    RAISE EXCEPTION 'payment % is above its entitlement', NEW.payment_id
      USING ERRCODE = 'check_violation', CONSTRAINT = 'payments_within_entitlement';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER payments_guard_update BEFORE UPDATE OF batch_id, amount_yen, entitlement_id ON payments
    FOR EACH ROW EXECUTE FUNCTION payments_guard_update();

-- The end of a preparation records the batch's over-limit accounts; an approval needs each overridden.
CREATE FUNCTION payout_batches_guardrails() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE open_flags int;
BEGIN
  IF NEW.status = 'preparing' AND OLD.status <> 'preparing' THEN
    RAISE EXCEPTION 'batch % cannot go back to preparing', NEW.batch_id
      USING ERRCODE = 'check_violation', CONSTRAINT = 'payments_join_preparing_batch';
  END IF;
  IF OLD.status = 'preparing' AND NEW.status = 'draft' THEN
    INSERT INTO payout_batch_account_flags (municipality_code, batch_id, account_key, payments, total_yen,
                                            payment_ids)
    SELECT p.municipality_code, p.batch_id, p.account_key, count(*), sum(p.amount_yen),
           array_agg(p.payment_id ORDER BY p.payment_id)
    FROM payments p
    WHERE p.municipality_code = NEW.municipality_code AND p.batch_id = NEW.batch_id AND p.account_key IS NOT NULL
    GROUP BY p.municipality_code, p.batch_id, p.account_key
    HAVING count(*) > (SELECT max_payments_per_account FROM programs pr
                       WHERE pr.municipality_code = NEW.municipality_code AND pr.program_id = NEW.program_id);
  END IF;
  IF NEW.status = 'approved' AND OLD.status IS DISTINCT FROM 'approved' THEN
    SELECT count(*) INTO open_flags FROM payout_batch_account_flags f
    WHERE f.municipality_code = NEW.municipality_code AND f.batch_id = NEW.batch_id
      AND (f.overridden_by IS NULL OR f.overridden_by = NEW.drafted_by);
    IF open_flags > 0 THEN
      RAISE EXCEPTION 'batch % has % account(s) over the per-account limit without an override', NEW.batch_id, open_flags
        USING ERRCODE = 'check_violation', CONSTRAINT = 'payout_batches_accounts_within_limit';
    END IF;
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER payout_batches_guardrails BEFORE UPDATE OF status ON payout_batches
    FOR EACH ROW EXECUTE FUNCTION payout_batches_guardrails();
