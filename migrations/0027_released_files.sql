-- Released bank files kept in PostgreSQL until delivered (issue 17, fault 6: the node that wrote a
-- released file dies before the bank picked it up; the file is still delivered).
--
-- The release job seals the file on the worker's own disk (KYUFU_OUTBOX_DIR, a scratch area) and, when a
-- delivery stage is configured (KYUFU_BANK_DROP_DIR), copies the sealed bytes and the signed manifest into
-- these tables in the transaction that marks the batch released, with an outbox row for the job
-- `deliver_file`. A commit is acknowledged only once the synchronous standby has it (Patroni
-- synchronous_mode), so from that moment the file survives the loss of any one machine: the worker node
-- that sealed it, or the PostgreSQL leader. Any worker then writes the exact bytes that were signed to the
-- bank's drop directory (the delivery is idempotent: an identical file already there is left alone, a
-- different one is never overwritten). Only committed releases ever reach the bank: a node that dies
-- between sealing and commit leaves its file on its own disk, where no bank transport reads.
--
-- The ciphertext is kept in parts of at most 8 MiB (payouts/delivery.py PART_BYTES): a city's file is a
-- few hundred MB, and neither side should hold it whole in memory.

CREATE TABLE released_files (
    municipality_code text NOT NULL,
    batch_id bigint NOT NULL,
    file_name text NOT NULL,
    ciphertext_sha256 text NOT NULL CHECK (ciphertext_sha256 ~ '^[0-9a-f]{64}$'),
    ciphertext_bytes bigint NOT NULL CHECK (ciphertext_bytes > 0),
    signed_manifest bytea NOT NULL,
    kept_at timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz,
    PRIMARY KEY (municipality_code, batch_id),
    FOREIGN KEY (municipality_code, batch_id) REFERENCES payout_batches (municipality_code, batch_id)
);
COMMENT ON TABLE released_files IS
    'a released batch''s sealed file and signed manifest, kept until the delivery job has put them in the bank''s drop directory (0027)';

CREATE TABLE released_file_parts (
    municipality_code text NOT NULL,
    batch_id bigint NOT NULL,
    part integer NOT NULL CHECK (part >= 0),
    bytes bytea NOT NULL,
    PRIMARY KEY (municipality_code, batch_id, part),
    FOREIGN KEY (municipality_code, batch_id) REFERENCES released_files (municipality_code, batch_id)
);
COMMENT ON TABLE released_file_parts IS 'the sealed file of released_files, in order, in parts of at most 8 MiB (0027)';

SELECT kyufu_isolate_tenant_table('released_files');
SELECT kyufu_isolate_tenant_table('released_file_parts');
-- Insert-only parts; the file row's one change is delivered_at.
GRANT SELECT, INSERT ON released_files, released_file_parts TO kyufu_app;
GRANT UPDATE (delivered_at) ON released_files TO kyufu_app;
