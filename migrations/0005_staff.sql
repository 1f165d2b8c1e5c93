-- The staff console: server-side sessions, per-municipality console settings, follow-up marks on
-- returned payments, rejection comments on batches, and the append-only, hash-chained audit trail.

-- TOTP replay protection: the last 30-second step a code was accepted for; a code is usable once.
ALTER TABLE staff_users ADD COLUMN totp_last_step bigint;

-- Revocable server-side sessions. The cookie carries a random token; only its SHA-256 is stored, so a
-- leaked table does not hand out sessions.
CREATE TABLE staff_sessions (
    municipality_code text NOT NULL,
    token_sha256      text NOT NULL CHECK (token_sha256 ~ '^[0-9a-f]{64}$'),
    staff_id          bigint NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    last_seen_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at        timestamptz,
    PRIMARY KEY (municipality_code, token_sha256),
    FOREIGN KEY (municipality_code, staff_id) REFERENCES staff_users (municipality_code, staff_id)
);
CREATE INDEX staff_sessions_staff ON staff_sessions (municipality_code, staff_id) WHERE revoked_at IS NULL;

-- Console settings a municipality's admin may change. Bank settings, including how many business days
-- ahead a 振込指定日 must be, belong to the payout stage (municipality_bank_settings, 0006).
CREATE TABLE staff_settings (
    municipality_code           text NOT NULL REFERENCES municipalities (code),
    session_idle_minutes        int NOT NULL DEFAULT 30 CHECK (session_idle_minutes BETWEEN 5 AND 480),
    updated_at                  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (municipality_code)
);

-- A batch the approver sent back: it stays a draft, off the approval queue until its drafter resubmits
-- or cancels it. The comment is what the approver wrote.
ALTER TABLE payout_batches
    ADD COLUMN rejected_at       timestamptz,
    ADD COLUMN rejected_by       bigint,
    ADD COLUMN rejection_comment text CHECK (length(rejection_comment) <= 1000),
    ADD CONSTRAINT payout_batches_rejected_by_fk FOREIGN KEY (municipality_code, rejected_by)
        REFERENCES staff_users (municipality_code, staff_id);

-- Follow-up of a returned (不能) payment: staff mark it for re-contact. The re-issue itself is recorded in
-- payment_reissues (0006) and kept to one live payment per entitlement by payments_one_live.
CREATE TABLE payment_followups (
    municipality_code   text NOT NULL,
    payment_id          bigint NOT NULL,
    recontact_at        timestamptz NOT NULL DEFAULT now(),
    recontact_by        bigint NOT NULL,
    note                text NOT NULL DEFAULT '' CHECK (length(note) <= 1000),
    PRIMARY KEY (municipality_code, payment_id),
    FOREIGN KEY (municipality_code, payment_id) REFERENCES payments (municipality_code, payment_id),
    FOREIGN KEY (municipality_code, recontact_by) REFERENCES staff_users (municipality_code, staff_id)
);

-- The audit trail. Every row is chained to the previous row of its municipality:
--   hash = sha256(canonical(municipality_code, seq, prev_hash, occurred_at, actor, action, object_type,
--                           object_id, details))
-- where canonical() writes each field as "<byte length>:<utf-8 bytes>;" (so no value can be confused with a
-- separator) and occurred_at is UTC 'YYYY-MM-DDTHH:MI:SS.ffffff'. app/staff/audit.py recomputes the same
-- formula independently to verify the chain. The trigger, not the caller, assigns seq, prev_hash,
-- occurred_at and hash, so nothing that inserts can write a row outside the chain.
CREATE TABLE audit_log (
    municipality_code text NOT NULL REFERENCES municipalities (code),
    seq               bigint NOT NULL CHECK (seq > 0),
    occurred_at       timestamptz NOT NULL,
    actor_staff_id    bigint,                -- NULL: the system or a CLI operator
    actor_label       text NOT NULL DEFAULT '',
    action            text NOT NULL CHECK (action ~ '^[a-z_.]{1,64}$'),
    object_type       text NOT NULL DEFAULT '',
    object_id         text NOT NULL DEFAULT '',
    details           text NOT NULL DEFAULT '{}' CHECK (details::jsonb IS NOT NULL),  -- canonical JSON text
    prev_hash         text NOT NULL CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
    hash              text NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$'),
    PRIMARY KEY (municipality_code, seq),
    FOREIGN KEY (municipality_code, actor_staff_id) REFERENCES staff_users (municipality_code, staff_id)
);

CREATE FUNCTION kyufu_audit_field(v text) RETURNS text LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT octet_length(v)::text || ':' || v || ';'
$$;

CREATE FUNCTION kyufu_audit_hash(r audit_log) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT encode(sha256(convert_to(
      kyufu_audit_field(r.municipality_code) || kyufu_audit_field(r.seq::text) || kyufu_audit_field(r.prev_hash)
   || kyufu_audit_field(to_char(r.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'))
   || kyufu_audit_field(coalesce(r.actor_staff_id::text, '')) || kyufu_audit_field(r.actor_label)
   || kyufu_audit_field(r.action) || kyufu_audit_field(r.object_type) || kyufu_audit_field(r.object_id)
   || kyufu_audit_field(r.details), 'UTF8')), 'hex')
$$;

CREATE FUNCTION audit_log_chain() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE last record;
BEGIN
  -- Two transactions appending at once would both read the same tail and fork the chain. The advisory
  -- lock (per municipality, held to commit) serialises appends; the tail is read after taking it, and
  -- in READ COMMITTED each statement sees what the previous holder committed. Under a snapshot that
  -- predates the holder's commit the same seq would be chosen twice: the primary key refuses that.
  PERFORM pg_advisory_xact_lock(hashtextextended('kyufu_audit:' || NEW.municipality_code, 0));
  SELECT seq, hash INTO last FROM audit_log WHERE municipality_code = NEW.municipality_code
   ORDER BY seq DESC LIMIT 1;
  NEW.seq := coalesce(last.seq, 0) + 1;
  NEW.prev_hash := coalesce(last.hash, repeat('0', 64));
  NEW.occurred_at := date_trunc('microseconds', clock_timestamp());
  NEW.hash := kyufu_audit_hash(NEW);
  RETURN NEW;
END $$;
CREATE TRIGGER audit_log_chain BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION audit_log_chain();

-- Append-only for everyone, the owner included: the grants keep the app role to SELECT/INSERT, and this
-- trigger refuses UPDATE and DELETE of any row (and TRUNCATE) whoever asks. Editing history takes
-- disabling the trigger, which needs the owner, and `kyufu audit verify` then finds the broken link.
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP
    USING ERRCODE = 'insufficient_privilege', CONSTRAINT = 'audit_log_append_only';
END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

SELECT kyufu_isolate_tenant_table('staff_sessions');
SELECT kyufu_isolate_tenant_table('staff_settings');
SELECT kyufu_isolate_tenant_table('payment_followups');
SELECT kyufu_isolate_tenant_table('audit_log');

GRANT SELECT, INSERT, UPDATE ON staff_sessions, staff_settings, payment_followups TO kyufu_app;
GRANT SELECT, INSERT ON audit_log TO kyufu_app;
GRANT EXECUTE ON FUNCTION kyufu_audit_field(text), kyufu_audit_hash(audit_log) TO kyufu_app;
-- create_payments_for_program reserves payment ids first: the ciphertext's associated data names the row.
GRANT USAGE ON SEQUENCE payments_payment_id_seq TO kyufu_app;
