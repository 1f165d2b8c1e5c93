-- The account-holder check on the approval page (issue 16, point 1). Verification compares every account
-- with its payee (payouts/holder.py): a holder who is nobody in the household (kana_mismatch), another
-- member of it (holder_is_member_not_applicant) or a registry name that cannot be written in Zengin kana
-- (registry_kana_invalid) sends the application to review. The approver of a batch is told how its
-- payments went through that check:
--
--   passed      the holder is the payee, and the machine verified the application;
--   reviewed    the holder is the payee, and a reviewer approved the application for another reason;
--   overridden  the check flagged the holder, and a reviewer approved the application anyway (by whom,
--               with which flag);
--   reissued    the account was typed by staff after a return (payouts/reconcile.py), so not checked;
--   unchecked   a payment without an application (none is made by kyufu itself).
--
-- A batch of a city is a million payments: grouping them with their applications takes seconds, too long
-- for each view of the approval page. The batch's payments are fixed once its preparation ends (0018) and
-- a decided application is never decided again, so the summary is computed once, when the preparation
-- ends ('preparing' -> 'draft', the moment 0018 records over-limit accounts), and kept on the batch.
-- Batches prepared before this migration have none (NULL; kyufu had paid nobody yet).

ALTER TABLE payout_batches ADD COLUMN holder_checks jsonb
    CONSTRAINT payout_batches_holder_checks_array CHECK (jsonb_typeof(holder_checks) = 'array');
COMMENT ON COLUMN payout_batches.holder_checks IS
    'per (outcome, reason, decided_by): payments of the batch, as the account-holder check left them; set when preparation ends (0020)';

-- The reason codes of verification that concern the account's holder (payouts/holder.py HOLDER_FLAGS;
-- tests/registry/test_holder.py holds the two lists equal). holder_name_mismatch is the console's older
-- code for kana_mismatch.
CREATE FUNCTION kyufu_holder_flags() RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ARRAY['kana_mismatch', 'holder_is_member_not_applicant', 'registry_kana_invalid', 'holder_name_mismatch']
$$;

-- One pass over the batch's payments (payments_batch index), each joined with its application (primary key)
-- and a possible re-issue (primary key), grouped into a few rows. Runs as the caller, under the tenant policy.
CREATE FUNCTION kyufu_batch_holder_checks(code text, batch bigint) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object('outcome', g.outcome, 'reason', g.reason,
                                                 'decided_by', g.decided_by, 'payments', g.payments)
                              ORDER BY g.outcome, g.reason, g.decided_by), '[]'::jsonb)
    FROM (
        SELECT k.outcome, k.reason, k.decided_by, count(*) AS payments
        FROM payments p
        LEFT JOIN applications a ON a.municipality_code = p.municipality_code AND a.application_id = p.application_id
        LEFT JOIN payment_reissues r ON r.municipality_code = p.municipality_code AND r.payment_id = p.payment_id
        CROSS JOIN LATERAL (
            SELECT CASE WHEN r.payment_id IS NOT NULL THEN 'reissued'
                        WHEN a.application_id IS NULL THEN 'unchecked'
                        WHEN a.reason_codes && kyufu_holder_flags() THEN 'overridden'
                        WHEN a.status = 'approved' THEN 'reviewed'
                        ELSE 'passed' END AS outcome,
                   CASE WHEN r.payment_id IS NULL AND a.reason_codes && kyufu_holder_flags()
                        THEN (SELECT f FROM unnest(a.reason_codes) AS f WHERE f = ANY (kyufu_holder_flags()) LIMIT 1)
                   END AS reason,
                   CASE WHEN r.payment_id IS NULL THEN a.decided_by END AS decided_by
        ) k
        WHERE p.municipality_code = code AND p.batch_id = batch
        GROUP BY k.outcome, k.reason, k.decided_by
    ) g
$$;

CREATE FUNCTION payout_batches_holder_checks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.holder_checks := kyufu_batch_holder_checks(NEW.municipality_code, NEW.batch_id);
  RETURN NEW;
END $$;
CREATE TRIGGER payout_batches_holder_checks BEFORE UPDATE OF status ON payout_batches
    FOR EACH ROW WHEN (OLD.status = 'preparing' AND NEW.status = 'draft')
    EXECUTE FUNCTION payout_batches_holder_checks();
GRANT EXECUTE ON FUNCTION kyufu_holder_flags(), kyufu_batch_holder_checks(text, bigint) TO kyufu_app;
