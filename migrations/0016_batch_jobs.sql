-- Hashing and release in the worker (issue 13). No web request renders a batch's file any more:
--   * drafting enqueues `hash_batch` (outbox); the worker renders the file once and records its SHA-256 in
--     plaintext_sha256 (the column 0002 reserved for "the file as drafted"), with progress while it runs;
--   * approval approves that recorded hash (payout_batches_approves_the_recorded_hash);
--   * 送信 enqueues `release_batch` (outbox); the worker renders again, refuses a file whose hash is not
--     the approved one, seals, signs, writes and marks the batch released (payouts/release.py, as before).
-- The generation counters name each request's job, so a re-hash (after a send-back) or a second release
-- attempt (after a refusal) is a new outbox row while a repeated enqueue of the same one stays a no-op.

ALTER TABLE payout_batches
    ADD COLUMN hash_generation      int NOT NULL DEFAULT 0 CHECK (hash_generation >= 0),
    ADD COLUMN hashed_at            timestamptz,
    ADD COLUMN hash_error           text CHECK (length(hash_error) <= 2000),
    ADD COLUMN hash_progress        bigint NOT NULL DEFAULT 0 CHECK (hash_progress >= 0),
    ADD COLUMN release_attempt      int NOT NULL DEFAULT 0 CHECK (release_attempt >= 0),
    ADD COLUMN release_requested_at timestamptz,
    ADD COLUMN release_requested_by bigint,
    ADD COLUMN release_error        text CHECK (length(release_error) <= 2000),
    ADD FOREIGN KEY (municipality_code, release_requested_by) REFERENCES staff_users (municipality_code, staff_id);

-- Batches approved before this migration were approved on a hash rendered in the request: record it as
-- the batch's hash (released ones are immutable: the release-once trigger; the constraint below is NOT
-- VALID so that they need not be rewritten). Drafts get their hash job. Per municipality, inside its scope.
DO $$
DECLARE
  m text;
BEGIN
  FOR m IN SELECT code FROM municipalities ORDER BY code LOOP
    PERFORM set_config('kyufu.municipality', m, true);
    UPDATE payout_batches SET plaintext_sha256 = approved_sha256, hashed_at = approved_at
    WHERE municipality_code = m AND status = 'approved' AND plaintext_sha256 IS NULL;
    INSERT INTO outbox (municipality_code, job_name, job_id, args)
    SELECT b.municipality_code, 'hash_batch', 'payouts.hash:' || b.municipality_code || ':' || b.batch_id || ':0',
           jsonb_build_array(b.municipality_code, b.batch_id, 0)
    FROM payout_batches b
    WHERE b.municipality_code = m AND b.status = 'draft' AND b.plaintext_sha256 IS NULL
    ON CONFLICT DO NOTHING;
  END LOOP;
  PERFORM set_config('kyufu.municipality', '', true);
END $$;

-- An approval is of the hash the worker recorded for this batch, nothing else.
ALTER TABLE payout_batches ADD CONSTRAINT payout_batches_approves_the_recorded_hash
    CHECK (approved_sha256 IS NULL OR approved_sha256 = plaintext_sha256) NOT VALID;

GRANT UPDATE ON payout_batches TO kyufu_app;
