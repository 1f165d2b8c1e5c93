-- Paper intake keyed twice (ベリファイ入力; issue 15, point 1). app/intake/paper.py is the code.
--
-- A returned 申請書 is a physical object: it arrives in a box (paper_boxes: 箱番号, 受付日, how many forms were
-- counted into it) and has a place there (paper_forms: 通番 1..n, one row per form, created with the box),
-- so the forms of a box can always be reconciled against what was keyed. Two different clerks each key a
-- form (paper_entries 1 and 2); the code compares the two field by field. A match is decided at once; a
-- mismatch waits for a third clerk, who sees both and keys the decision (entry 3). The decided entry is
-- submitted through the same once-only claim path as online (app/intake/claims.py, channel 'paper'), in
-- the same transaction as the form's new state; a form with missing or illegible items gets a 不備 record
-- (paper_deficiencies) and, later, a 不備返戻 letter.
--
-- The rules that hold whatever the code does:
--   * paper_entries_different_clerks: one person keys a form at most once, so entries 1 and 2 are two
--     people, and the resolver (entry 3) is neither of them;
--   * a form leaves its box's count only by being decided, and a decided form never changes again
--     (trigger paper_forms_decided_is_final);
--   * one form creates at most one application (paper_forms_one_application), and the application carries
--     the once-per-entitlement rule of every channel (applications_one_active).
--
-- Account numbers and holder kana are encrypted with the municipality's data key, bound to the entry
-- (associated data: table, column, "<form_id>:<entry_no>"), as applications' are.

-- The data-entry role (入力): keys paper forms and receives boxes; sees no registry data.
ALTER TABLE staff_users
    DROP CONSTRAINT staff_users_roles_known,
    ADD CONSTRAINT staff_users_roles_known
        CHECK (roles <@ ARRAY['reviewer', 'drafter', 'approver', 'admin', 'keyer']::text[]);
ALTER TABLE staff_role_grants
    DROP CONSTRAINT staff_role_grants_role_check,
    ADD CONSTRAINT staff_role_grants_role_check CHECK (role IN ('reviewer', 'drafter', 'approver', 'admin', 'keyer'));

CREATE TABLE paper_boxes (
    municipality_code text NOT NULL,
    box_id            bigint GENERATED ALWAYS AS IDENTITY,
    program_id        bigint NOT NULL,
    box_no            text NOT NULL CHECK (box_no ~ '^[0-9A-Z][0-9A-Z-]{0,19}$'),
    received_on       date NOT NULL,
    form_count        integer NOT NULL CHECK (form_count BETWEEN 1 AND 2000),
    received_by       bigint NOT NULL,
    received_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (municipality_code, box_id),
    UNIQUE (municipality_code, box_no),
    FOREIGN KEY (municipality_code, program_id) REFERENCES programs (municipality_code, program_id),
    FOREIGN KEY (municipality_code, received_by) REFERENCES staff_users (municipality_code, staff_id)
);

CREATE TABLE paper_forms (
    municipality_code text NOT NULL,
    form_id           bigint GENERATED ALWAYS AS IDENTITY,
    box_id            bigint NOT NULL,
    seq               integer NOT NULL CHECK (seq >= 1),
    state             text NOT NULL DEFAULT 'received' CHECK (state IN (
                          'received',    -- in its box, not keyed yet
                          'keyed_once',  -- entry 1 saved, waiting for a second clerk
                          'to_resolve',  -- the entries differ (or the form needs a decision): a third clerk decides
                          'submitted',   -- an application was created from it
                          'duplicate',   -- the entitlement already had an active application (any channel)
                          'closed',      -- the entitlement was declined or withdrawn
                          'deficient')), -- 不備: missing or illegible items
    -- Why it waits for a third clerk: the entries differ, or they agree that not every member was chosen
    -- (kyufu pays an entitlement whole; a household that declines some members is asked first).
    resolve_reason    text CHECK (resolve_reason IN ('mismatch', 'members_partial')),
    entitlement_id    bigint,
    application_id    bigint,       -- created by this form, or (duplicate) the entitlement's active one
    decided_entry     smallint CHECK (decided_entry IN (2, 3)),
    decided_at        timestamptz,
    PRIMARY KEY (municipality_code, form_id),
    UNIQUE (municipality_code, box_id, seq),
    FOREIGN KEY (municipality_code, box_id) REFERENCES paper_boxes (municipality_code, box_id),
    FOREIGN KEY (municipality_code, entitlement_id) REFERENCES entitlements (municipality_code, entitlement_id),
    FOREIGN KEY (municipality_code, application_id) REFERENCES applications (municipality_code, application_id),
    CONSTRAINT paper_forms_decided CHECK (
        (state IN ('submitted', 'duplicate', 'closed', 'deficient')) = (decided_at IS NOT NULL)
        AND (decided_at IS NULL) = (decided_entry IS NULL)),
    CONSTRAINT paper_forms_application CHECK (
        (state IN ('submitted', 'duplicate')) = (application_id IS NOT NULL)
        AND (state NOT IN ('submitted', 'duplicate', 'closed') OR entitlement_id IS NOT NULL)),
    CONSTRAINT paper_forms_resolve_reason CHECK (state <> 'to_resolve' OR resolve_reason IS NOT NULL)
);
CREATE INDEX paper_forms_state ON paper_forms (municipality_code, box_id, state);
-- One form, one application: a form is never submitted twice (and the claim path refuses a second
-- application for the entitlement from any channel).
CREATE UNIQUE INDEX paper_forms_one_application ON paper_forms (municipality_code, application_id)
    WHERE state = 'submitted';

CREATE FUNCTION paper_forms_decided_is_final() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.decided_at IS NOT NULL AND (NEW.state, NEW.application_id, NEW.entitlement_id, NEW.decided_at)
       IS DISTINCT FROM (OLD.state, OLD.application_id, OLD.entitlement_id, OLD.decided_at) THEN
    RAISE EXCEPTION 'paper form % is decided (%): it does not change again', OLD.form_id, OLD.state
      USING ERRCODE = 'check_violation', CONSTRAINT = 'paper_forms_decided_is_final';
  END IF;
  IF NEW.box_id <> OLD.box_id OR NEW.seq <> OLD.seq THEN
    RAISE EXCEPTION 'paper form % keeps its place in its box', OLD.form_id
      USING ERRCODE = 'check_violation', CONSTRAINT = 'paper_forms_decided_is_final';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER paper_forms_decided_is_final BEFORE UPDATE ON paper_forms
    FOR EACH ROW EXECUTE FUNCTION paper_forms_decided_is_final();

CREATE TABLE paper_entries (
    municipality_code  text NOT NULL,
    form_id            bigint NOT NULL,
    entry_no           smallint NOT NULL CHECK (entry_no IN (1, 2, 3)),  -- 3: the third clerk's decision
    keyed_by           bigint NOT NULL,
    keyed_at           timestamptz NOT NULL DEFAULT now(),
    -- What identifies the household: the 確認書番号 printed on the form (canonical, 12 symbols), or for a
    -- 申請型 program the 世帯番号; and the entitlement it names. NULL when the clerk marked it illegible.
    access_code        text CHECK (access_code ~ '^[0-9A-Z]{12}$'),
    household_no       text CHECK (length(household_no) BETWEEN 1 AND 40),
    entitlement_id     bigint,
    -- The members marked as wanting the benefit, by their line on the form (1 = the first printed).
    members            smallint[] CHECK (members IS NULL OR (cardinality(members) BETWEEN 1 AND 99
                                                             AND 1 <= ALL (members))),
    bank_code          text CHECK (bank_code ~ '^[0-9]{4}$'),
    branch_code        text CHECK (branch_code ~ '^[0-9]{3}$'),
    account_type       smallint CHECK (account_type IN (1, 2, 4, 9)),
    account_number_enc bytea,
    holder_kana_enc    bytea,
    id_document        boolean NOT NULL,  -- 本人確認書類の写し attached
    account_document   boolean NOT NULL,  -- 口座確認書類の写し attached
    -- Items the clerk could not read or found empty: they produce the form's 不備.
    illegible          text[] NOT NULL DEFAULT '{}'
                       CHECK (illegible <@ ARRAY['identifier', 'members', 'account', 'holder']::text[]),
    PRIMARY KEY (municipality_code, form_id, entry_no),
    -- ベリファイ入力: the same person never keys one form twice (so two entries are two people, and the
    -- third clerk who decides a mismatch is neither of them).
    CONSTRAINT paper_entries_different_clerks UNIQUE (municipality_code, form_id, keyed_by),
    FOREIGN KEY (municipality_code, form_id) REFERENCES paper_forms (municipality_code, form_id),
    FOREIGN KEY (municipality_code, keyed_by) REFERENCES staff_users (municipality_code, staff_id),
    FOREIGN KEY (municipality_code, entitlement_id) REFERENCES entitlements (municipality_code, entitlement_id),
    CONSTRAINT paper_entries_identifier CHECK (
        (access_code IS NULL OR household_no IS NULL)
        AND ('identifier' = ANY (illegible)) = (entitlement_id IS NULL)),
    CONSTRAINT paper_entries_members CHECK (('members' = ANY (illegible)) = (members IS NULL)),
    CONSTRAINT paper_entries_account CHECK (
        ('account' = ANY (illegible)) = (bank_code IS NULL)
        AND (bank_code IS NULL) = (branch_code IS NULL)
        AND (bank_code IS NULL) = (account_type IS NULL)
        AND (bank_code IS NULL) = (account_number_enc IS NULL)),
    CONSTRAINT paper_entries_holder CHECK (('holder' = ANY (illegible)) = (holder_kana_enc IS NULL))
);

-- 不備: what was missing or illegible on a decided form, and when its 不備返戻 letter went to print.
CREATE TABLE paper_deficiencies (
    municipality_code  text NOT NULL,
    form_id            bigint NOT NULL,
    entitlement_id     bigint,  -- NULL: the household could not be read, so there is no address to return it to
    codes              text[] NOT NULL CHECK (cardinality(codes) >= 1 AND codes <@ ARRAY[
                           'id_document_missing', 'account_document_missing', 'identifier_illegible',
                           'members_illegible', 'account_illegible', 'holder_illegible', 'members_partial']::text[]),
    recorded_by        bigint NOT NULL,
    recorded_at        timestamptz NOT NULL DEFAULT now(),
    letter_exported_at timestamptz,
    PRIMARY KEY (municipality_code, form_id),
    FOREIGN KEY (municipality_code, form_id) REFERENCES paper_forms (municipality_code, form_id),
    FOREIGN KEY (municipality_code, entitlement_id) REFERENCES entitlements (municipality_code, entitlement_id),
    FOREIGN KEY (municipality_code, recorded_by) REFERENCES staff_users (municipality_code, staff_id),
    CONSTRAINT paper_deficiencies_letter_needs_address CHECK (letter_exported_at IS NULL OR entitlement_id IS NOT NULL)
);
CREATE INDEX paper_deficiencies_unexported ON paper_deficiencies (municipality_code, recorded_at)
    WHERE letter_exported_at IS NULL;

SELECT kyufu_isolate_tenant_table('paper_boxes');
SELECT kyufu_isolate_tenant_table('paper_forms');
SELECT kyufu_isolate_tenant_table('paper_entries');
SELECT kyufu_isolate_tenant_table('paper_deficiencies');
GRANT SELECT, INSERT, UPDATE ON paper_boxes TO kyufu_app;
GRANT SELECT, INSERT, UPDATE ON paper_forms TO kyufu_app;
-- Entries are what each clerk typed: kept as typed, never edited or removed.
GRANT SELECT, INSERT ON paper_entries TO kyufu_app;
GRANT SELECT, INSERT, UPDATE ON paper_deficiencies TO kyufu_app;
