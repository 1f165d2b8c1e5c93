-- Two changes to payments, both for the payout stage at nationwide scale (payouts/bench.py measures them).

-- 1. A payment's bank account is one ciphertext: bank_enc = AES-GCM(account_number || NUL || holder_kana),
--    associated data '<municipality>|payments|bank|<payment_id>' (app/staff/payments.py seal_bank). The
--    stage decrypts every payment of a batch; one authenticated decryption per payment instead of two,
--    and a third less to read, measured. A value cannot hold NUL (digits; Zengin kana), so the split is
--    unambiguous. Rows written before this migration keep their two ciphertexts (re-encrypting needs the
--    municipality's key, which SQL does not have); the stage refuses such a row by payment id, and
--    app/staff/payments.upgrade_bank_layout re-encrypts them. The CHECK keeps every row readable.
ALTER TABLE payments
    ADD COLUMN bank_enc bytea,
    ALTER COLUMN account_number_enc DROP NOT NULL,
    ALTER COLUMN holder_kana_enc DROP NOT NULL,
    ADD CONSTRAINT payments_bank_details CHECK (
        (bank_enc IS NOT NULL AND account_number_enc IS NULL AND holder_kana_enc IS NULL)
        OR (bank_enc IS NULL AND account_number_enc IS NOT NULL AND holder_kana_enc IS NOT NULL));

-- 2. Releasing a batch no longer rewrites its payments. A payment's row says 'in_batch' from drafting until
--    reconciliation; whether it has been sent is its batch's state (payout_batches.status = 'released',
--    guarded by payout_batches_release_once). Rewriting `status` on every payment of a released batch was a
--    non-HOT update of each row (status is in the predicate of payments_one_live, so every index got a new
--    entry): 24-61 s per million payments, measured, for a fact the batch row records once. Per-payment
--    rows change only where a payment leaves its batch's course: returned or paid (reconciliation).
--    'released' stays a legal value so that the CHECK holds for any row; rows written before are
--    brought into the new model here.
UPDATE payments p SET status = 'in_batch'
FROM payout_batches b
WHERE p.status = 'released' AND b.municipality_code = p.municipality_code AND b.batch_id = p.batch_id
  AND b.status = 'released';

COMMENT ON COLUMN payments.status IS
  'ready | in_batch (drafted, approved or released: see payout_batches.status) | paid | returned | cancelled; '
  '''released'' is no longer written (0009)';
