-- payments_guard_insert (0018) probes each new payment's entitlement and batch by key.
--
-- As a join, the planner may put entitlements on the outside and rescan the statement's transition table
-- for every entitlement of the municipality: with entitlements created since the last ANALYZE the
-- municipality's rows are estimated at 1, and the plan (seen with auto_explain) was Nested Loop (Index Scan on
-- entitlements_pkey for the municipality) × (Named Tuplestore Scan of new_payments). A second
-- `kyufu payouts bench` on a server that already held 1.66 million payments did not insert 100,000 payments
-- in 200 s, and a draft's 20,000-payment chunk after a fresh eligibility run would meet the same plan.
-- enable_seqscan = off (0018) does not prevent it: that plan has no sequential scan.
--
-- A correlated scalar subquery is executed per new row and is never turned into a join, so each probe is
-- one lookup on the primary key: N probes, whatever the statistics say.
CREATE OR REPLACE FUNCTION payments_guard_insert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE bad bigint;
BEGIN
  SELECT n.payment_id INTO bad FROM new_payments n
  WHERE n.amount_yen > (SELECT e.amount_yen FROM entitlements e
                        WHERE e.municipality_code = n.municipality_code AND e.entitlement_id = n.entitlement_id)
  LIMIT 1;
  IF bad IS NOT NULL THEN
    RAISE EXCEPTION 'payment % is above its entitlement', bad
      USING ERRCODE = 'check_violation', CONSTRAINT = 'payments_within_entitlement';
  END IF;
  SELECT n.payment_id INTO bad FROM new_payments n
  WHERE n.batch_id IS NOT NULL
    AND (SELECT b.status FROM payout_batches b
         WHERE b.municipality_code = n.municipality_code AND b.batch_id = n.batch_id) <> 'preparing'
  LIMIT 1;
  IF bad IS NOT NULL THEN
    RAISE EXCEPTION 'payment % cannot join a batch that is not being prepared', bad
      USING ERRCODE = 'check_violation', CONSTRAINT = 'payments_join_preparing_batch';
  END IF;
  RETURN NULL;
END $$;
