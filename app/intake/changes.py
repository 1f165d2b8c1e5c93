"""口座変更の届出: a resident who has applied gives another account, while the payment is not drafted.

The rule (migration 0022, trigger application_account_changes_before_batch): the account may change only
while no payment of the entitlement is in a batch or beyond (released, paid, returned). A 'ready' payment,
left by a draft that was cancelled, still holds the old account; the change cancels it, so the next draft
creates the payment from the new account (drafting skips only entitlements with a payment that is not
cancelled: payouts/payments.py).

A change, in the caller's tenant transaction: the old account is kept in application_account_changes
(encrypted bound to the change row) with who, when and the channel; the application gets the new account,
encrypted bound to the application like the original, and goes back to 'received' with its keyed account
hash replaced; its verification outbox row is made due again (the worker marks the row of
`outbox.verify_job_id` done when it decides the application), so the holder check and the shared-account
check see the new account; the audit trail records the change. Nothing here writes a personal value into
a log or an exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import asyncpg

from app import audit, outbox
from app.crypto import FieldCipher
from app.intake.forms import BankAccount
from app.staff.accounts import Staff
from payouts.accounts import account_key

Kind = Literal["none", "same", "changeable", "too_late", "closed", "changed"]

# The active application of the entitlement with its account and the furthest its payment has gone.
# FOR UPDATE (only when changing): two changes of one application run one after the other, and
# verification (which locks the application too) decides either the old account before the change or the
# new one after it.
APPLICATION = """
SELECT a.application_id, a.receipt_no, a.status, a.bank_code, a.branch_code, a.account_type,
       a.account_number_enc, a.holder_kana_enc, e.status AS entitlement_status,
       EXISTS (SELECT 1 FROM payments p WHERE p.municipality_code = a.municipality_code
               AND p.entitlement_id = a.entitlement_id
               AND p.status IN ('in_batch', 'released', 'paid', 'returned')) AS in_batch
FROM applications a
JOIN entitlements e ON e.municipality_code = a.municipality_code AND e.entitlement_id = a.entitlement_id
WHERE a.municipality_code = $1 AND a.entitlement_id = $2 AND a.status NOT IN ('rejected', 'withdrawn')
"""
LOCK_APPLICATION = APPLICATION + "FOR UPDATE OF a"
# A ready payment holds the old account and is in no batch: it never leaves, the next draft makes a new one.
CANCEL_READY = """
UPDATE payments SET status = 'cancelled'
WHERE municipality_code = $1 AND entitlement_id = $2 AND status = 'ready' AND batch_id IS NULL
RETURNING payment_id
"""
RESERVE_CHANGE_ID = "SELECT nextval('application_account_changes_change_id_seq')"
INSERT_CHANGE = """
INSERT INTO application_account_changes (municipality_code, change_id, application_id, entitlement_id, changed_by,
    channel, old_bank_code, old_branch_code, old_account_type, old_account_number_enc, old_holder_kana_enc,
    new_bank_code, new_branch_code)
OVERRIDING SYSTEM VALUE
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
"""
UPDATE_APPLICATION = """
UPDATE applications
SET bank_code = $3, branch_code = $4, account_type = $5, account_number_enc = $6, holder_kana_enc = $7,
    status = 'received', reason_codes = '{}', decided_at = NULL, decided_by = NULL
WHERE municipality_code = $1 AND application_id = $2
"""
UPDATE_ACCOUNT_KEY = """
UPDATE application_account_keys SET account_key = $3 WHERE municipality_code = $1 AND application_id = $2
"""
# The application's verification row, due again (a push application never had one: it is added).
VERIFY_AGAIN = """
INSERT INTO outbox (municipality_code, job_name, job_id, args)
VALUES ($1, $2, $3, jsonb_build_array($1::text, $4::bigint))
ON CONFLICT (municipality_code, job_id) DO UPDATE SET done_at = NULL, enqueued_at = NULL
"""
CHANGES = """
SELECT change_id, changed_at, changed_by, channel, old_bank_code, old_branch_code, new_bank_code, new_branch_code
FROM application_account_changes
WHERE municipality_code = $1 AND application_id = $2
ORDER BY change_id
"""


class AccountChangeTooLate(Exception):
    """The entitlement's payment went into a batch while the change was being made (the database refused)."""


@dataclass(frozen=True)
class Change:
    """What a new account would do to the application (`kind`), or did ('changed')."""

    kind: Kind
    receipt_no: str | None = None
    application_id: int | None = None
    change_id: int | None = None


async def _assess(
    conn: asyncpg.Connection, cipher: FieldCipher, code: str, entitlement_id: int, account: BankAccount, *, lock: bool
) -> tuple[Change, asyncpg.Record | None]:
    row = await conn.fetchrow(LOCK_APPLICATION if lock else APPLICATION, code, entitlement_id)
    if row is None:
        return Change("none"), None
    app_id, receipt = row["application_id"], row["receipt_no"]
    if row["entitlement_status"] in ("declined", "withdrawn"):
        return Change("closed", receipt, app_id), row
    if row["in_batch"] or row["entitlement_status"] == "paid":
        return Change("too_late", receipt, app_id), row
    on_file = (
        row["bank_code"],
        row["branch_code"],
        row["account_type"],
        cipher.decrypt_str("applications", "account_number", app_id, row["account_number_enc"]),
        cipher.decrypt_str("applications", "holder_kana", app_id, row["holder_kana_enc"]),
    )
    given = (account.bank_code, account.branch_code, account.account_type, account.account_number, account.holder_kana)
    if on_file == given:
        return Change("same", receipt, app_id), row
    return Change("changeable", receipt, app_id), row


async def assess_change(
    conn: asyncpg.Connection, cipher: FieldCipher, code: str, entitlement_id: int, account: BankAccount
) -> Change:
    """What giving `account` now would mean: no application yet ('none'), the account on file ('same'),
    a change that can be made ('changeable'), too late ('too_late': the payment is in a batch or paid) or
    'closed' (辞退 or 取り下げ). Reads only; call inside the municipality's tenant transaction."""
    return (await _assess(conn, cipher, code, entitlement_id, account, lock=False))[0]


async def change_account(
    conn: asyncpg.Connection,
    cipher: FieldCipher,
    code: str,
    entitlement_id: int,
    account: BankAccount,
    *,
    actor: str,
    channel: str = "online",
    staff: Staff | None = None,
) -> Change:
    """Replace the active application's account with `account` (口座変更の届出), if the rule allows.

    Returns Change('changed', ...) or, without writing anything, the reason it did not ('none', 'same',
    'too_late', 'closed'; giving the same account twice is 'same', so a double submit changes once).
    Raises AccountChangeTooLate when a draft froze the payment between the check and the write (the
    caller's transaction is then aborted). Call inside tenant_transaction(conn, code); after commit,
    dispatch the outbox (or leave it to the sweeper). `staff`: the clerk who keyed a paper 届出 (the audit
    entry names them); None for the resident's own change."""
    assessed, row = await _assess(conn, cipher, code, entitlement_id, account, lock=True)
    if assessed.kind != "changeable":
        return assessed
    assert row is not None
    app_id = row["application_id"]
    cancelled = [r["payment_id"] for r in await conn.fetch(CANCEL_READY, code, entitlement_id)]
    change_id = await conn.fetchval(RESERVE_CHANGE_ID)
    old_number = cipher.decrypt_str("applications", "account_number", app_id, row["account_number_enc"])
    old_holder = cipher.decrypt_str("applications", "holder_kana", app_id, row["holder_kana_enc"])
    try:
        await conn.execute(
            INSERT_CHANGE,
            code,
            change_id,
            app_id,
            entitlement_id,
            actor,
            channel,
            row["bank_code"],
            row["branch_code"],
            row["account_type"],
            cipher.encrypt("application_account_changes", "old_account_number", change_id, old_number),
            cipher.encrypt("application_account_changes", "old_holder_kana", change_id, old_holder),
            account.bank_code,
            account.branch_code,
        )
    except asyncpg.CheckViolationError as exc:
        if exc.constraint_name == "application_account_changes_before_batch":
            raise AccountChangeTooLate("the payment went into a batch during the change") from None
        raise
    await conn.execute(
        UPDATE_APPLICATION,
        code,
        app_id,
        account.bank_code,
        account.branch_code,
        account.account_type,
        cipher.encrypt("applications", "account_number", app_id, account.account_number),
        cipher.encrypt("applications", "holder_kana", app_id, account.holder_kana),
    )
    await conn.execute(
        UPDATE_ACCOUNT_KEY,
        code,
        app_id,
        account_key(cipher, account.bank_code, account.branch_code, account.account_type, account.account_number),
    )
    await conn.execute(VERIFY_AGAIN, code, outbox.VERIFY_JOB, outbox.verify_job_id(code, app_id), app_id)
    await audit.append(
        conn,
        code,
        staff,
        "application.account_change",
        "application",
        app_id,
        details={"change_id": change_id, "channel": channel, "cancelled_payments": cancelled},
        actor_label=actor,
    )
    return Change("changed", assessed.receipt_no, app_id, change_id)


@dataclass(frozen=True)
class AccountChangeRecord:
    """One 口座変更の届出 as staff see it (codes only; the old number stays encrypted)."""

    change_id: int
    changed_at: datetime
    changed_by: str
    channel: str
    old_bank_code: str
    old_branch_code: str
    new_bank_code: str
    new_branch_code: str


async def account_changes(conn: asyncpg.Connection, code: str, application_id: int) -> list[AccountChangeRecord]:
    """The application's account changes, oldest first (call inside the municipality's tenant transaction)."""
    return [AccountChangeRecord(**dict(r)) for r in await conn.fetch(CHANGES, code, application_id)]
