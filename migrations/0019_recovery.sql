-- 組戻し and 返還 (issue 16, point 4): getting back money a released payment should not have paid.
--
--   * payment_recalls (組戻し依頼): staff ask the bank to recall a transfer; the bank answers 'returned'
--     (the money is back, less nothing: the bank's fee is charged separately, fee_yen) or 'refused'
--     (組戻し不能: the payee did not consent or the money has gone). One open request per payment; an answer
--     is final. A 'returned' answer marks the payment 'returned' (reason 組戻し) in the same statement, so
--     it shows among the returned payments of the reconciliation screen: paying the entitlement again is
--     the deliberate re-contact and re-issue there (payment_reissues_once, payments_one_live), never
--     automatic (drafting skips an entitlement with any payment that is not cancelled: payouts/payments.py).
--   * payment_debts (返還請求): where the money was credited, the recipient owes it back: amount (at most
--     the payment's), notices sent (debt_notices), repayments (debt_repayments, append-only), the balance
--     (repaid_yen, kept by the repayments' trigger, never above the amount), and a write-off requested by
--     one staff member and approved by another who is independent of them (kyufu_approval_conflict, 0014).
--     One debt per payment. A debt keeps its payment credited: the payment cannot become 'returned'.
--
-- Only a payment that left in a released file can be recalled or claimed back ('paid', or 'in_batch' of a
-- released batch: 0009). The state machines are the triggers below; payouts/recovery.py checks the same
-- rules first only to give staff a message naming the field.

CREATE TABLE payment_recalls (
    municipality_code text NOT NULL,
    recall_id         bigint GENERATED ALWAYS AS IDENTITY,
    payment_id        bigint NOT NULL,
    reason            text NOT NULL CHECK (length(reason) BETWEEN 1 AND 1000),
    requested_by      bigint NOT NULL,
    requested_at      timestamptz NOT NULL DEFAULT now(),
    status            text NOT NULL DEFAULT 'requested' CHECK (status IN ('requested', 'returned', 'refused')),
    bank_answer       text CHECK (length(bank_answer) BETWEEN 1 AND 1000),
    fee_yen           bigint CHECK (fee_yen BETWEEN 0 AND 9999999999),  -- 組戻し手数料, borne by the municipality
    answered_by       bigint,
    answered_at       timestamptz,
    PRIMARY KEY (municipality_code, recall_id),
    FOREIGN KEY (municipality_code, payment_id) REFERENCES payments (municipality_code, payment_id),
    FOREIGN KEY (municipality_code, requested_by) REFERENCES staff_users (municipality_code, staff_id),
    FOREIGN KEY (municipality_code, answered_by) REFERENCES staff_users (municipality_code, staff_id),
    CONSTRAINT payment_recalls_answer_whole CHECK (
        (status = 'requested') = (answered_at IS NULL) AND (answered_at IS NULL) = (answered_by IS NULL)
        AND (answered_at IS NULL) = (bank_answer IS NULL) AND (answered_at IS NULL) = (fee_yen IS NULL))
);
CREATE UNIQUE INDEX payment_recalls_one_open ON payment_recalls (municipality_code, payment_id)
    WHERE status = 'requested';
CREATE UNIQUE INDEX payment_recalls_returned_once ON payment_recalls (municipality_code, payment_id)
    WHERE status = 'returned';
CREATE INDEX payment_recalls_payment ON payment_recalls (municipality_code, payment_id);
COMMENT ON COLUMN payment_recalls.status IS 'requested → returned (組戻し済) | refused (組戻し不能); an answer is final';

CREATE TABLE payment_debts (
    municipality_code      text NOT NULL,
    debt_id                bigint GENERATED ALWAYS AS IDENTITY,
    payment_id             bigint NOT NULL,
    amount_yen             bigint NOT NULL CHECK (amount_yen BETWEEN 1 AND 9999999999),
    reason                 text NOT NULL CHECK (length(reason) BETWEEN 1 AND 1000),
    opened_by              bigint NOT NULL,
    opened_at              timestamptz NOT NULL DEFAULT now(),
    status                 text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'repaid', 'written_off')),
    repaid_yen             bigint NOT NULL DEFAULT 0,  -- sum of debt_repayments (trigger debt_repayments_apply)
    write_off_requested_by bigint,
    write_off_requested_at timestamptz,
    write_off_reason       text CHECK (length(write_off_reason) BETWEEN 1 AND 1000),
    written_off_by         bigint,  -- the approver of the write-off
    written_off_at         timestamptz,
    written_off_yen        bigint,  -- the balance at the write-off
    PRIMARY KEY (municipality_code, debt_id),
    CONSTRAINT payment_debts_one_per_payment UNIQUE (municipality_code, payment_id),
    FOREIGN KEY (municipality_code, payment_id) REFERENCES payments (municipality_code, payment_id),
    FOREIGN KEY (municipality_code, opened_by) REFERENCES staff_users (municipality_code, staff_id),
    FOREIGN KEY (municipality_code, write_off_requested_by) REFERENCES staff_users (municipality_code, staff_id),
    FOREIGN KEY (municipality_code, written_off_by) REFERENCES staff_users (municipality_code, staff_id),
    -- The balance (amount_yen - repaid_yen) is never negative: a repayment above it is refused here.
    CONSTRAINT payment_debts_balance_not_negative CHECK (repaid_yen BETWEEN 0 AND amount_yen),
    CONSTRAINT payment_debts_repaid_when_nothing_left CHECK ((status = 'repaid') = (repaid_yen = amount_yen)),
    CONSTRAINT payment_debts_write_off_request_whole CHECK (
        (write_off_requested_by IS NULL) = (write_off_requested_at IS NULL)
        AND (write_off_requested_by IS NULL) = (write_off_reason IS NULL)),
    CONSTRAINT payment_debts_written_off_whole CHECK (
        (status = 'written_off') = (written_off_by IS NOT NULL) AND (written_off_by IS NULL) = (written_off_at IS NULL)
        AND (written_off_by IS NULL) = (written_off_yen IS NULL)
        AND (written_off_by IS NULL OR write_off_requested_by IS NOT NULL)),
    -- Four eyes: whoever asked for the write-off does not approve it (independence: trigger below).
    CONSTRAINT payment_debts_write_off_four_eyes CHECK (written_off_by IS NULL OR written_off_by <> write_off_requested_by),
    CONSTRAINT payment_debts_written_off_balance CHECK (written_off_yen IS NULL OR written_off_yen = amount_yen - repaid_yen)
);
COMMENT ON COLUMN payment_debts.status IS
    'open → repaid (the repayments reach the amount) | written_off (requested by one staff member, approved by another); final';

CREATE TABLE debt_notices (
    municipality_code text NOT NULL,
    notice_id         bigint GENERATED ALWAYS AS IDENTITY,
    debt_id           bigint NOT NULL,
    kind              text NOT NULL CHECK (kind IN ('demand', 'reminder')),  -- 返還請求書 | 督促状
    sent_on           date NOT NULL,
    note              text NOT NULL DEFAULT '' CHECK (length(note) <= 1000),
    recorded_by       bigint NOT NULL,
    recorded_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (municipality_code, notice_id),
    FOREIGN KEY (municipality_code, debt_id) REFERENCES payment_debts (municipality_code, debt_id),
    FOREIGN KEY (municipality_code, recorded_by) REFERENCES staff_users (municipality_code, staff_id)
);
CREATE INDEX debt_notices_debt ON debt_notices (municipality_code, debt_id);

CREATE TABLE debt_repayments (
    municipality_code text NOT NULL,
    repayment_id      bigint GENERATED ALWAYS AS IDENTITY,
    debt_id           bigint NOT NULL,
    amount_yen        bigint NOT NULL CHECK (amount_yen BETWEEN 1 AND 9999999999),
    received_on       date NOT NULL,
    note              text NOT NULL DEFAULT '' CHECK (length(note) <= 1000),
    recorded_by       bigint NOT NULL,
    recorded_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (municipality_code, repayment_id),
    FOREIGN KEY (municipality_code, debt_id) REFERENCES payment_debts (municipality_code, debt_id),
    FOREIGN KEY (municipality_code, recorded_by) REFERENCES staff_users (municipality_code, staff_id)
);
CREATE INDEX debt_repayments_debt ON debt_repayments (municipality_code, debt_id);

-- Whether a payment left in a released file and was not returned: what can be recalled or claimed back.
-- Locks the payment row, so a recall, a debt and a returns import of the same payment take turns.
CREATE FUNCTION kyufu_payment_sent(p_code text, p_payment bigint) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE pay record;
BEGIN
  SELECT p.status, b.status AS batch_status INTO pay FROM payments p
  LEFT JOIN payout_batches b ON b.municipality_code = p.municipality_code AND b.batch_id = p.batch_id
  WHERE p.municipality_code = p_code AND p.payment_id = p_payment
  FOR UPDATE OF p;
  RETURN FOUND AND (pay.status IN ('paid', 'released') OR (pay.status = 'in_batch' AND pay.batch_status = 'released'));
END $$;

CREATE FUNCTION payment_recalls_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF NEW.status <> 'requested' THEN
      RAISE EXCEPTION 'a recall starts as requested'
        USING ERRCODE = 'check_violation', CONSTRAINT = 'payment_recalls_answered_once';
    END IF;
    IF NOT kyufu_payment_sent(NEW.municipality_code, NEW.payment_id) THEN
      RAISE EXCEPTION 'payment % was not sent in a released file (or came back)', NEW.payment_id
        USING ERRCODE = 'check_violation', CONSTRAINT = 'payment_recalls_payment_sent';
    END IF;
    IF EXISTS (SELECT 1 FROM payment_debts d WHERE d.municipality_code = NEW.municipality_code
               AND d.payment_id = NEW.payment_id) THEN
      RAISE EXCEPTION 'payment % is claimed back from its recipient already', NEW.payment_id
        USING ERRCODE = 'check_violation', CONSTRAINT = 'payment_recalls_not_after_debt';
    END IF;
    RETURN NEW;
  END IF;
  -- (municipality_code is row-level security's to keep: a row never moves to another municipality.)
  IF (NEW.recall_id, NEW.payment_id, NEW.reason, NEW.requested_by, NEW.requested_at)
     IS DISTINCT FROM (OLD.recall_id, OLD.payment_id, OLD.reason, OLD.requested_by, OLD.requested_at) THEN
    RAISE EXCEPTION 'recall % cannot change what was requested', OLD.recall_id
      USING ERRCODE = 'check_violation', CONSTRAINT = 'payment_recalls_request_fixed';
  END IF;
  IF OLD.status <> 'requested' THEN
    RAISE EXCEPTION 'recall % was answered already (%)', OLD.recall_id, OLD.status
      USING ERRCODE = 'check_violation', CONSTRAINT = 'payment_recalls_answered_once';
  END IF;
  IF NEW.status = 'returned' THEN
    -- The money is back: the payment is returned (and so listed for re-contact and one re-issue), never
    -- paid again by itself.
    UPDATE payments SET status = 'returned', return_reason = '組戻し'
    WHERE municipality_code = NEW.municipality_code AND payment_id = NEW.payment_id
      AND status IN ('paid', 'released', 'in_batch');
    IF NOT FOUND THEN
      RAISE EXCEPTION 'payment % of recall % is not a sent payment', NEW.payment_id, NEW.recall_id
        USING ERRCODE = 'check_violation', CONSTRAINT = 'payment_recalls_payment_sent';
    END IF;
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER payment_recalls_guard BEFORE INSERT OR UPDATE ON payment_recalls
    FOR EACH ROW EXECUTE FUNCTION payment_recalls_guard();

CREATE FUNCTION payment_debts_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE paid_yen bigint; conflict text;
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF NEW.status <> 'open' OR NEW.repaid_yen <> 0 OR NEW.write_off_requested_by IS NOT NULL THEN
      RAISE EXCEPTION 'a debt starts open, with nothing repaid'
        USING ERRCODE = 'check_violation', CONSTRAINT = 'payment_debts_settled_is_final';
    END IF;
    IF NOT kyufu_payment_sent(NEW.municipality_code, NEW.payment_id) THEN
      RAISE EXCEPTION 'payment % was not sent in a released file (or came back)', NEW.payment_id
        USING ERRCODE = 'check_violation', CONSTRAINT = 'payment_debts_payment_sent';
    END IF;
    IF NEW.amount_yen > (SELECT amount_yen FROM payments WHERE municipality_code = NEW.municipality_code
                         AND payment_id = NEW.payment_id) THEN
      RAISE EXCEPTION 'debt of payment % is above the payment', NEW.payment_id
        USING ERRCODE = 'check_violation', CONSTRAINT = 'payment_debts_within_payment';
    END IF;
    IF EXISTS (SELECT 1 FROM payment_recalls r WHERE r.municipality_code = NEW.municipality_code
               AND r.payment_id = NEW.payment_id AND r.status = 'requested') THEN
      RAISE EXCEPTION 'payment % has a recall waiting for the bank''s answer', NEW.payment_id
        USING ERRCODE = 'check_violation', CONSTRAINT = 'payment_debts_not_during_recall';
    END IF;
    RETURN NEW;
  END IF;
  IF (NEW.debt_id, NEW.payment_id, NEW.amount_yen, NEW.reason, NEW.opened_by, NEW.opened_at)
     IS DISTINCT FROM (OLD.debt_id, OLD.payment_id, OLD.amount_yen, OLD.reason, OLD.opened_by, OLD.opened_at) THEN
    RAISE EXCEPTION 'debt % cannot change what was claimed', OLD.debt_id
      USING ERRCODE = 'check_violation', CONSTRAINT = 'payment_debts_claim_fixed';
  END IF;
  IF OLD.status <> 'open' THEN
    RAISE EXCEPTION 'debt % is settled (%)', OLD.debt_id, OLD.status
      USING ERRCODE = 'check_violation', CONSTRAINT = 'payment_debts_settled_is_final';
  END IF;
  -- repaid_yen is the sum of the recorded repayments, whoever writes the row.
  SELECT coalesce(sum(amount_yen), 0) INTO paid_yen FROM debt_repayments
  WHERE municipality_code = OLD.municipality_code AND debt_id = OLD.debt_id;
  IF NEW.repaid_yen <> paid_yen THEN
    RAISE EXCEPTION 'debt % repaid_yen must be the sum of its repayments', OLD.debt_id
      USING ERRCODE = 'check_violation', CONSTRAINT = 'payment_debts_repaid_is_the_repayments';
  END IF;
  IF NEW.written_off_by IS NOT NULL THEN
    -- Requested and approved are two steps by two people: the approval cannot name its own requester.
    IF NEW.write_off_requested_by IS DISTINCT FROM OLD.write_off_requested_by THEN
      RAISE EXCEPTION 'debt % write-off approved in the statement that requested it', OLD.debt_id
        USING ERRCODE = 'check_violation', CONSTRAINT = 'payment_debts_write_off_four_eyes';
    END IF;
    conflict := kyufu_approval_conflict(NEW.municipality_code, NEW.write_off_requested_by, NEW.written_off_by);
    -- The same account is payment_debts_write_off_four_eyes' to refuse, under its own name.
    IF conflict IS NOT NULL AND conflict <> 'same_account' THEN
      RAISE EXCEPTION 'approver % of the write-off of debt % is not independent of its requester % (%)',
        NEW.written_off_by, NEW.debt_id, NEW.write_off_requested_by, conflict
        USING ERRCODE = 'check_violation', CONSTRAINT = 'payment_debts_write_off_independent';
    END IF;
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER payment_debts_guard BEFORE INSERT OR UPDATE ON payment_debts
    FOR EACH ROW EXECUTE FUNCTION payment_debts_guard();

-- Notices and repayments are recorded against an open debt only; a repayment moves the balance (and closes
-- the debt when nothing is left), in the same statement.
CREATE FUNCTION debt_rows_need_open_debt() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM payment_debts d WHERE d.municipality_code = NEW.municipality_code
                 AND d.debt_id = NEW.debt_id AND d.status = 'open') THEN
    RAISE EXCEPTION 'debt % is not open', NEW.debt_id
      USING ERRCODE = 'check_violation', CONSTRAINT = 'payment_debts_settled_is_final';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER debt_notices_open_debt BEFORE INSERT ON debt_notices
    FOR EACH ROW EXECUTE FUNCTION debt_rows_need_open_debt();

CREATE FUNCTION debt_repayments_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- The row lock of this UPDATE serialises two repayments of one debt: the second adds to the first's sum.
  UPDATE payment_debts SET repaid_yen = repaid_yen + NEW.amount_yen,
         status = CASE WHEN repaid_yen + NEW.amount_yen = amount_yen THEN 'repaid' ELSE status END
  WHERE municipality_code = NEW.municipality_code AND debt_id = NEW.debt_id AND status = 'open';
  IF NOT FOUND THEN
    RAISE EXCEPTION 'debt % is not open', NEW.debt_id
      USING ERRCODE = 'check_violation', CONSTRAINT = 'payment_debts_settled_is_final';
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER debt_repayments_apply AFTER INSERT ON debt_repayments
    FOR EACH ROW EXECUTE FUNCTION debt_repayments_apply();

-- A payment being claimed back was credited: it cannot become 'returned' (a late returns file listing it is
-- refused, for staff to sort out); a payment that came back by 組戻し stays returned.
CREATE FUNCTION payments_recovery_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.status = 'returned' AND EXISTS (SELECT 1 FROM payment_debts d WHERE d.municipality_code = NEW.municipality_code
                                         AND d.payment_id = NEW.payment_id) THEN
    RAISE EXCEPTION 'payment % is claimed back from its recipient: it was credited', NEW.payment_id
      USING ERRCODE = 'check_violation', CONSTRAINT = 'payments_claimed_back_was_credited';
  END IF;
  IF OLD.status = 'returned' AND EXISTS (SELECT 1 FROM payment_recalls r WHERE r.municipality_code = NEW.municipality_code
                                         AND r.payment_id = NEW.payment_id AND r.status = 'returned') THEN
    RAISE EXCEPTION 'payment % came back by 組戻し and stays returned', NEW.payment_id
      USING ERRCODE = 'check_violation', CONSTRAINT = 'payments_recalled_stay_returned';
  END IF;
  RETURN NEW;
END $$;
-- Only a change to or from 'returned' runs it: the bulk status writes (freeze, paid) skip it in the WHEN.
CREATE TRIGGER payments_recovery_guard BEFORE UPDATE OF status ON payments
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status AND 'returned' IN (OLD.status, NEW.status))
    EXECUTE FUNCTION payments_recovery_guard();

SELECT kyufu_isolate_tenant_table('payment_recalls');
SELECT kyufu_isolate_tenant_table('payment_debts');
SELECT kyufu_isolate_tenant_table('debt_notices');
SELECT kyufu_isolate_tenant_table('debt_repayments');

GRANT SELECT, INSERT, UPDATE ON payment_recalls, payment_debts TO kyufu_app;
-- Notices and repayments are facts recorded once: no UPDATE or DELETE, so the balance cannot be rewritten.
GRANT SELECT, INSERT ON debt_notices, debt_repayments TO kyufu_app;
