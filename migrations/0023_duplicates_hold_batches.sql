-- A cross-municipality duplicate case (0021) that opens after a batch was prepared: the payment is already
-- in the batch, so 0021's triggers (no new payment, none joins a batch) do not stop it. Approval does: a
-- batch holding a payment whose entitlement waits for a case (duplicate_holds) is not approved. Staff
-- resolve the case, or cancel the draft (the next preparation skips the held entitlement). A case that
-- opens after approval is checked by the release job before it seals anything (payouts/batches.py
-- perform_release): a trigger on 'released' would fire after the file is already in the outbox.

CREATE FUNCTION payout_batches_wait_for_duplicates() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE held text;
BEGIN
  IF NEW.status = 'approved' AND OLD.status IS DISTINCT FROM 'approved' THEN
    -- duplicate_holds is small (open cases); each probes the batch's payments by entitlement
    -- (payments_entitlement, 0017).
    SELECT h.reference INTO held FROM duplicate_holds h
    JOIN payments p ON p.municipality_code = h.municipality_code AND p.entitlement_id = h.entitlement_id
    WHERE h.municipality_code = NEW.municipality_code AND p.batch_id = NEW.batch_id
    LIMIT 1;
    IF held IS NOT NULL THEN
      RAISE EXCEPTION 'batch % holds a payment waiting for duplicate case %', NEW.batch_id, held
        USING ERRCODE = 'check_violation', CONSTRAINT = 'payout_batches_wait_for_duplicate_case';
    END IF;
  END IF;
  RETURN NEW;
END $$;

CREATE TRIGGER payout_batches_wait_for_duplicates BEFORE UPDATE OF status ON payout_batches
    FOR EACH ROW EXECUTE FUNCTION payout_batches_wait_for_duplicates();
