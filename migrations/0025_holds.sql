-- Holds (支給保留・支給停止) and the screening of unpaid entitlements against a newer 住基 snapshot
-- (issue 15, points 4 and 5).
--
-- payment_holds: one row per hold on an entitlement (and so on every payment of it: one live payment per
-- entitlement, payments_one_live). A hold names its reason (DV, 死亡, 転出, 調査中, 差押禁止の確認) and
-- where it came from: a staff member ('staff'), the screening of a snapshot ('screening', with what it
-- found and the program's suggested rule), or another module of the service acting for the municipality
-- in scope ('system', e.g. a DV 申出 recorded elsewhere). While a hold is active (released_at IS NULL):
--
--   * the drafts leave the entitlement out (payouts/payments.py _ELIGIBLE, payouts/drafting.py FREEZE_READY);
--   * no payment of it enters a batch: a statement trigger on new payments and a row trigger on batch_id
--     refuse it (payments_not_held), like the duplicate case triggers of 0021;
--   * a batch holding one of its payments (the hold came after the draft) is not approved
--     (payout_batches_no_held_payment, like 0023); the release job checks before it seals anything
--     (payouts/batches.py perform_release), for a hold placed after approval.
--
-- A hold is active, then released with a decision ('release': pay as before; 'new_head': the entitlement
-- goes to the new 世帯主, who applies afresh). A 支給保留 ('hold') may become a 支給停止 ('stop'), which
-- stays until released; releasing a stop needs another account than the one that stopped it
-- (payment_holds_stop_four_eyes). Nothing else of a hold changes (trigger payment_holds_transitions).
--
-- registry_screenings: each residents snapshot the municipality's unpaid entitlements were screened
-- against (app/registry/screening.py, run by the import in its transaction and after each eligibility
-- run); payout_batches.screened_snapshot_id: the newest such snapshot when the batch's preparation ended.

ALTER TABLE programs ADD COLUMN after_base_date_rule text NOT NULL DEFAULT 'new_head'
    CONSTRAINT programs_after_base_date_rule_check CHECK (after_base_date_rule IN ('new_head', 'stop'));
COMMENT ON COLUMN programs.after_base_date_rule IS
    'what the screening suggests when the payee (世帯主) died after 基準日: pay the new 世帯主, or stop';

CREATE TABLE registry_screenings (
    municipality_code text NOT NULL,
    snapshot_id       bigint NOT NULL,
    screened_at       timestamptz NOT NULL DEFAULT now(),
    checked           bigint NOT NULL CHECK (checked >= 0),  -- unpaid entitlements screened
    held              bigint NOT NULL CHECK (held >= 0),     -- holds this screening placed
    PRIMARY KEY (municipality_code, snapshot_id),
    FOREIGN KEY (municipality_code, snapshot_id) REFERENCES registry_snapshots (municipality_code, snapshot_id)
);

CREATE TABLE payment_holds (
    municipality_code      text NOT NULL,
    hold_id                bigint GENERATED ALWAYS AS IDENTITY,
    entitlement_id         bigint NOT NULL,
    payment_id             bigint,  -- the payment it was placed from, if any (informative: the hold is on the entitlement)
    reason                 text NOT NULL CHECK (reason IN ('dv', 'death', 'moved_out', 'investigation', 'seizure')),
    kind                   text NOT NULL DEFAULT 'hold' CHECK (kind IN ('hold', 'stop')),
    source                 text NOT NULL CHECK (source IN ('staff', 'screening', 'system')),
    note                   text CHECK (length(note) <= 1000),
    placed_by              bigint,
    placed_at              timestamptz NOT NULL DEFAULT now(),
    -- The screening's finding: the snapshot, the payee it looked at, what the snapshot says of them, and the
    -- program's suggestion (new_head_resident_code: the household's current 世帯主 in that snapshot).
    snapshot_id            bigint,
    payee_resident_code    text CHECK (payee_resident_code ~ '^[0-9]{11}$'),
    finding                text CHECK (finding IN ('died', 'moved_out', 'removed')),
    removed_on             date,
    suggestion             text CHECK (suggestion IN ('release', 'new_head', 'stop')),
    new_head_resident_code text CHECK (new_head_resident_code ~ '^[0-9]{11}$'),
    stopped_by             bigint,
    stopped_at             timestamptz,
    stop_note              text CHECK (length(stop_note) <= 1000),  -- why it was stopped: for whoever may lift it
    released_by            bigint,
    released_at            timestamptz,
    decision               text CHECK (decision IN ('release', 'new_head')),
    decision_note          text CHECK (length(decision_note) <= 1000),
    PRIMARY KEY (municipality_code, hold_id),
    FOREIGN KEY (municipality_code, entitlement_id) REFERENCES entitlements (municipality_code, entitlement_id),
    FOREIGN KEY (municipality_code, payment_id) REFERENCES payments (municipality_code, payment_id),
    FOREIGN KEY (municipality_code, placed_by) REFERENCES staff_users (municipality_code, staff_id),
    FOREIGN KEY (municipality_code, stopped_by) REFERENCES staff_users (municipality_code, staff_id),
    FOREIGN KEY (municipality_code, released_by) REFERENCES staff_users (municipality_code, staff_id),
    FOREIGN KEY (municipality_code, snapshot_id) REFERENCES registry_snapshots (municipality_code, snapshot_id),
    CONSTRAINT payment_holds_staff_placed CHECK (source <> 'staff' OR placed_by IS NOT NULL),
    CONSTRAINT payment_holds_screening_whole CHECK (
        (source = 'screening') = (snapshot_id IS NOT NULL)
        AND (snapshot_id IS NULL) = (finding IS NULL)
        AND (snapshot_id IS NULL) = (payee_resident_code IS NULL)),
    CONSTRAINT payment_holds_new_head_suggested CHECK (suggestion <> 'new_head' OR new_head_resident_code IS NOT NULL),
    CONSTRAINT payment_holds_stop_whole CHECK (
        (kind = 'stop') = (stopped_at IS NOT NULL) AND (stopped_at IS NULL) = (stopped_by IS NULL)
        AND (stopped_at IS NULL) = (stop_note IS NULL)),
    CONSTRAINT payment_holds_release_whole CHECK (
        (released_at IS NULL) = (released_by IS NULL) AND (released_at IS NULL) = (decision IS NULL)),
    -- 支給停止 is lifted by a second person: whoever stopped the payment cannot also restart it.
    CONSTRAINT payment_holds_stop_four_eyes CHECK (kind <> 'stop' OR released_by IS NULL OR released_by <> stopped_by),
    CONSTRAINT payment_holds_new_head_known CHECK (decision <> 'new_head' OR new_head_resident_code IS NOT NULL)
);
-- One active hold per entitlement and reason (a second DV hold on the same household adds nothing); the
-- drafts and the triggers probe it by its (municipality_code, entitlement_id) prefix.
CREATE UNIQUE INDEX payment_holds_one_active ON payment_holds (municipality_code, entitlement_id, reason)
    WHERE released_at IS NULL;
CREATE INDEX payment_holds_entitlement ON payment_holds (municipality_code, entitlement_id);

-- The only changes a hold goes through: a hold becomes a stop; an active hold is released. Released
-- rows, and everything that says who placed what and why, never change.
CREATE FUNCTION payment_holds_transitions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.released_at IS NOT NULL THEN
    RAISE EXCEPTION 'hold % is released and cannot change', OLD.hold_id
      USING ERRCODE = 'check_violation', CONSTRAINT = 'payment_holds_transitions';
  END IF;
  -- (municipality_code is row-level security's and the foreign keys' to hold; hold_id is an identity.)
  IF (NEW.entitlement_id, NEW.payment_id, NEW.reason, NEW.source, NEW.note,
      NEW.placed_by, NEW.placed_at, NEW.snapshot_id, NEW.payee_resident_code, NEW.finding, NEW.removed_on,
      NEW.suggestion, NEW.new_head_resident_code)
     IS DISTINCT FROM
     (OLD.entitlement_id, OLD.payment_id, OLD.reason, OLD.source, OLD.note,
      OLD.placed_by, OLD.placed_at, OLD.snapshot_id, OLD.payee_resident_code, OLD.finding, OLD.removed_on,
      OLD.suggestion, OLD.new_head_resident_code)
     OR (OLD.kind = 'stop' AND (NEW.kind, NEW.stopped_by, NEW.stopped_at, NEW.stop_note)
                               IS DISTINCT FROM (OLD.kind, OLD.stopped_by, OLD.stopped_at, OLD.stop_note)) THEN
    RAISE EXCEPTION 'hold % may only become a stop or be released', OLD.hold_id
      USING ERRCODE = 'check_violation', CONSTRAINT = 'payment_holds_transitions';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER payment_holds_transitions BEFORE UPDATE ON payment_holds
    FOR EACH ROW EXECUTE FUNCTION payment_holds_transitions();

-- A held entitlement's payment does not go into a batch: neither created straight into one (the draft's
-- preparation) nor moved into one. A 'ready' payment may exist: it waits.
-- enable_seqscan = off: see payments_guard_insert (0018); a transition table has no statistics.
CREATE FUNCTION payments_not_held() RETURNS trigger
LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE bad bigint;
BEGIN
  SELECT n.entitlement_id INTO bad FROM new_payments n
  WHERE n.batch_id IS NOT NULL
    AND EXISTS (SELECT 1 FROM payment_holds h WHERE h.municipality_code = n.municipality_code
                AND h.entitlement_id = n.entitlement_id AND h.released_at IS NULL)
  LIMIT 1;
  IF bad IS NOT NULL THEN
    RAISE EXCEPTION 'entitlement % is on hold', bad
      USING ERRCODE = 'check_violation', CONSTRAINT = 'payments_not_held';
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER payments_not_held AFTER INSERT ON payments
    REFERENCING NEW TABLE AS new_payments FOR EACH STATEMENT EXECUTE FUNCTION payments_not_held();

CREATE FUNCTION payments_not_held_in_batch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM payment_holds h WHERE h.municipality_code = NEW.municipality_code
             AND h.entitlement_id = NEW.entitlement_id AND h.released_at IS NULL) THEN
    RAISE EXCEPTION 'entitlement % is on hold', NEW.entitlement_id
      USING ERRCODE = 'check_violation', CONSTRAINT = 'payments_not_held';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER payments_not_held_in_batch BEFORE UPDATE OF batch_id ON payments
    FOR EACH ROW WHEN (NEW.batch_id IS NOT NULL AND NEW.batch_id IS DISTINCT FROM OLD.batch_id)
    EXECUTE FUNCTION payments_not_held_in_batch();

-- A hold placed after the draft: the batch is not approved while one of its payments is held. Staff
-- release the hold, or cancel the draft (the next preparation leaves the held entitlement out).
CREATE FUNCTION payout_batches_no_held_payment() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE held bigint;
BEGIN
  IF NEW.status = 'approved' AND OLD.status IS DISTINCT FROM 'approved' THEN
    SELECT p.entitlement_id INTO held FROM payments p
    WHERE p.municipality_code = NEW.municipality_code AND p.batch_id = NEW.batch_id
      AND EXISTS (SELECT 1 FROM payment_holds h WHERE h.municipality_code = p.municipality_code
                  AND h.entitlement_id = p.entitlement_id AND h.released_at IS NULL)
    LIMIT 1;
    IF held IS NOT NULL THEN
      RAISE EXCEPTION 'batch % holds a payment of entitlement % which is on hold', NEW.batch_id, held
        USING ERRCODE = 'check_violation', CONSTRAINT = 'payout_batches_no_held_payment';
    END IF;
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER payout_batches_no_held_payment BEFORE UPDATE OF status ON payout_batches
    FOR EACH ROW EXECUTE FUNCTION payout_batches_no_held_payment();

-- The snapshot the batch's payments were screened against: the newest screening when preparation ends.
ALTER TABLE payout_batches ADD COLUMN screened_snapshot_id bigint;
COMMENT ON COLUMN payout_batches.screened_snapshot_id IS
    'the newest residents snapshot the unpaid entitlements had been screened against when preparation ended (0025)';
CREATE FUNCTION payout_batches_screened_snapshot() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.screened_snapshot_id := (SELECT max(s.snapshot_id) FROM registry_screenings s
                               WHERE s.municipality_code = NEW.municipality_code);
  RETURN NEW;
END $$;
CREATE TRIGGER payout_batches_screened_snapshot BEFORE UPDATE OF status ON payout_batches
    FOR EACH ROW WHEN (OLD.status = 'preparing' AND NEW.status = 'draft')
    EXECUTE FUNCTION payout_batches_screened_snapshot();

SELECT kyufu_isolate_tenant_table('payment_holds');
SELECT kyufu_isolate_tenant_table('registry_screenings');
GRANT SELECT, INSERT, UPDATE ON payment_holds, registry_screenings TO kyufu_app;
