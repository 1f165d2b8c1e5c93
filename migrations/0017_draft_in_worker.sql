-- Drafting in the worker (issue 13). 振込起案 used to create the program's payments (decrypt each
-- application's account, encrypt it again bound to a new payment row) and freeze them inside the web
-- request: 37 s and 772 MB of a web worker for 595,633 payments. Now the request records the draft as
-- 'preparing' with what the drafter saw (expected count and total, and the moment: `drafted_at`) and asks
-- the worker for job `prepare_batch` (outbox). The worker creates the payments in chunks, each chunk
-- committed with a cursor on the batch, straight into the batch; then, in one transaction, it freezes the
-- ready payments created up to the draft's moment, compares the batch with what the drafter saw, and
-- either makes it a 'draft' (and asks for its hash, job `hash_batch`) or cancels it with the reason.
--
-- Applications decided after the draft's moment are left for the next draft: in a surge verification
-- never stops, and a draft must not chase it.

ALTER TABLE payout_batches DROP CONSTRAINT payout_batches_status_check;
ALTER TABLE payout_batches
    ADD CONSTRAINT payout_batches_status_check
        CHECK (status IN ('preparing', 'draft', 'approved', 'released', 'cancelled')),
    ADD COLUMN expected_count      bigint CHECK (expected_count >= 0),
    ADD COLUMN expected_total_yen  bigint CHECK (expected_total_yen >= 0),
    -- Chunks done, and the last application whose payment a chunk created (the keyset cursor).
    ADD COLUMN prepare_step        int NOT NULL DEFAULT 0 CHECK (prepare_step >= 0),
    ADD COLUMN prepare_cursor      bigint NOT NULL DEFAULT 0,
    ADD COLUMN prepared_count      bigint NOT NULL DEFAULT 0 CHECK (prepared_count >= 0),
    ADD COLUMN prepared_at         timestamptz,
    ADD COLUMN draft_error         text CHECK (length(draft_error) <= 2000),
    -- Nothing is approved, hashed or released before the payments are there.
    ADD CONSTRAINT payout_batches_preparing_is_bare
        CHECK (status <> 'preparing' OR (approved_by IS NULL AND plaintext_sha256 IS NULL AND released_at IS NULL));

-- One preparation per program at a time: a second 振込起案 while one is running is refused at once
-- (it would otherwise find nothing left to freeze, after waiting for the first).
CREATE UNIQUE INDEX payout_batches_one_preparing ON payout_batches (municipality_code, program_id)
    WHERE status = 'preparing';

COMMENT ON COLUMN payout_batches.status IS
    'preparing (the worker creates its payments) | draft | approved | released | cancelled (draft_error: why, when the worker refused it)';

-- The preparation's chunk query (payouts/payments.py ELIGIBLE_CHUNK) asks, for each application in order,
-- whether its entitlement already has a payment that is not cancelled. With LIMIT the planner walks the
-- applications in order and probes payments per row; without an index on the entitlement (the partial
-- payments_one_live index does not cover 'returned') each probe was a scan: a 35,838-payment preparation
-- did not finish in 60 s. With it, a probe is an index lookup.
CREATE INDEX payments_entitlement ON payments (municipality_code, entitlement_id);
