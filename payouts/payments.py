"""Payments: created from approved applications, frozen into batches, followed up when returned.

Bank details move between rows still encrypted in spirit: decrypted from the application (bound to the
application row) and encrypted again bound to the new payment row, so a ciphertext is never valid in two
places and a batch does not change when an application is edited later.
"""

from __future__ import annotations

import logging

import asyncpg

from app.crypto import DecryptionError, FieldCipher
from app.db import fetch_always
from payouts.accounts import account_key

log = logging.getLogger("kyufu.staff")

# Associated data of the encrypted bank fields, per table (row key: the table's id column).
ACCOUNT_NUMBER, HOLDER_KANA = "account_number", "holder_kana"
# A payment's account is one ciphertext (migration 0009): the payout stage decrypts once per payment.
BANK = "bank"
_BANK_SEP = "\x00"  # in neither value: digits, and Zengin kana
# Shown wherever bank details do not decrypt: a key that does not match (a restore with another master or
# data key) or a damaged ciphertext. Nobody at the screen can fix either, and nobody can pay such an account.
BANK_UNREADABLE = "口座情報を復号できませんでした（鍵の不一致またはデータ破損）。システム管理者に連絡してください。"


class BankDetailsUnreadable(Exception):
    """Applications whose bank details do not decrypt; `receipts` are their receipt numbers."""

    def __init__(self, receipts: list[str]):
        super().__init__(f"{len(receipts)} application(s) with bank details that do not decrypt")
        self.receipts = receipts


# Applications that should be paid and have never had a payment (a cancelled one does not count:
# it never left). A returned payment is followed up on the reconciliation screen instead, so the
# same wrong account is not paid again automatically. An entitlement waiting for a cross-municipality
# duplicate case (duplicate_holds, migration 0021) or on hold (支給保留・支給停止, payment_holds, 0025) is left
# out until the case is resolved or the hold released.
_ELIGIBLE = """
SELECT a.application_id, a.entitlement_id, e.amount_yen, a.bank_code, a.branch_code, a.account_type,
       a.account_number_enc, a.holder_kana_enc, a.receipt_no
FROM applications a
JOIN entitlements e ON e.municipality_code = a.municipality_code AND e.entitlement_id = a.entitlement_id
WHERE a.municipality_code = $1 AND e.program_id = $2 AND a.status IN ('verified', 'approved')
  AND e.status NOT IN ('declined', 'withdrawn')
  AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.municipality_code = a.municipality_code
                  AND p.entitlement_id = a.entitlement_id AND p.status <> 'cancelled')
  AND NOT EXISTS (SELECT 1 FROM duplicate_holds h WHERE h.municipality_code = a.municipality_code
                  AND h.entitlement_id = a.entitlement_id)
  AND NOT EXISTS (SELECT 1 FROM payment_holds ph WHERE ph.municipality_code = a.municipality_code
                  AND ph.entitlement_id = a.entitlement_id AND ph.released_at IS NULL)
  AND NOT EXISTS (SELECT 1 FROM dv_holds dh WHERE dh.municipality_code = a.municipality_code
                  AND dh.entitlement_id = a.entitlement_id)  -- a DV 申出 not yet answered (0026)"""
ELIGIBLE = f"{_ELIGIBLE}\nORDER BY a.application_id"
# The same, for one chunk of a draft's preparation: applications decided up to the draft's moment ($3),
# after the cursor ($4), in application order. FOR SHARE closes a race with 口座変更 (app/intake/changes.py,
# which locks the application FOR UPDATE): without it, a change committing between this read and the
# chunk's insert would leave the new payment on the old account. With it, a change in progress makes the
# chunk wait and re-check the row (now 'received' again: left out), and a change that comes later waits
# for the chunk's commit and then finds the payment in the batch (too late).
ELIGIBLE_CHUNK = f"""{_ELIGIBLE}
  AND coalesce(a.decided_at, a.submitted_at) <= $3 AND a.application_id > $4
ORDER BY a.application_id LIMIT $5
FOR SHARE OF a
"""
ELIGIBLE_TOTALS = f"SELECT count(*) AS count, coalesce(sum(amount_yen), 0)::bigint AS total_yen FROM ({ELIGIBLE}) x"
RESERVE_IDS = "SELECT nextval('payments_payment_id_seq') FROM generate_series(1, $1)"
# The id is chosen before the insert because it is part of the ciphertext's associated data.
# payments_one_live makes a concurrent second creation for the same entitlement a no-op.
INSERT_PAYMENTS = """
INSERT INTO payments (municipality_code, payment_id, entitlement_id, application_id, amount_yen, bank_code,
                      branch_code, account_type, bank_enc, account_key, batch_id, status)
OVERRIDING SYSTEM VALUE
SELECT $1, *, $11::bigint, CASE WHEN $11::bigint IS NULL THEN 'ready' ELSE 'in_batch' END
FROM unnest($2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::text[], $7::text[], $8::smallint[], $9::bytea[],
            $10::bytea[])
ON CONFLICT (municipality_code, entitlement_id) WHERE status IN ('ready', 'in_batch', 'released', 'paid')
DO NOTHING
"""
INSERT_ONE = """
INSERT INTO payments (municipality_code, payment_id, entitlement_id, application_id, amount_yen, bank_code,
                      branch_code, account_type, bank_enc, account_key)
OVERRIDING SYSTEM VALUE
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
"""


async def create_payments_for_program(conn: asyncpg.Connection, cipher: FieldCipher, code: str, program_id: int) -> int:
    """Create a 'ready' payment for every verified/approved application of the program that has none.

    Call inside tenant_transaction(conn, code). Returns how many payments were created (a concurrent
    caller may have created some of them; the unique index keeps each entitlement to one live payment).
    Raises BankDetailsUnreadable, having created none, if any application's bank details do not decrypt.
    For tests and tools that want a program's payments at once; 振込起案 creates them in the worker, in
    chunks (payouts/drafting.py, `create_payments`).
    """
    rows = await conn.fetch(ELIGIBLE, code, program_id)
    created, unreadable = await create_payments(conn, cipher, code, rows)
    if unreadable:
        raise BankDetailsUnreadable(unreadable)
    return created


async def create_payments(
    conn: asyncpg.Connection, cipher: FieldCipher, code: str, rows: list[asyncpg.Record], batch_id: int | None = None
) -> tuple[int, list[str]]:
    """Create a payment for each of `rows` (ELIGIBLE's columns): 'ready', or with `batch_id` straight into
    that batch ('in_batch'). Returns (created, receipt numbers of unreadable applications); when any
    application's bank details do not decrypt, nothing is created: skipping them would pay the rest while
    these wait unseen."""
    if not rows:
        return 0, []
    ids = [r[0] for r in await conn.fetch(RESERVE_IDS, len(rows))]
    sealed, keys, unreadable = [], [], []
    for payment_id, r in zip(ids, rows):
        app_id = r["application_id"]
        try:
            number = cipher.decrypt_str("applications", ACCOUNT_NUMBER, app_id, r["account_number_enc"])
            holder = cipher.decrypt_str("applications", HOLDER_KANA, app_id, r["holder_kana_enc"])
        except DecryptionError as exc:
            log.error(
                "bank details of application %s (municipality %s) do not decrypt: %s", app_id, code, type(exc).__name__
            )
            unreadable.append(r["receipt_no"])
            continue
        sealed.append(seal_bank(cipher, payment_id, number, holder))
        keys.append(account_key(cipher, r["bank_code"], r["branch_code"], r["account_type"], number))
    if unreadable:
        return 0, unreadable
    status = await conn.execute(
        INSERT_PAYMENTS,
        code,
        ids,
        [r["entitlement_id"] for r in rows],
        [r["application_id"] for r in rows],
        [r["amount_yen"] for r in rows],
        [r["bank_code"] for r in rows],
        [r["branch_code"] for r in rows],
        [r["account_type"] for r in rows],
        sealed,
        keys,
        batch_id,
    )
    return int(status.split()[-1]), []


async def insert_payment(
    conn: asyncpg.Connection,
    cipher: FieldCipher,
    code: str,
    *,
    entitlement_id: int,
    application_id: int | None,
    amount_yen: int,
    bank_code: str,
    branch_code: str,
    account_type: int,
    account_number: str,
    holder_kana: str,
) -> int:
    """One 'ready' payment with the given (plaintext) account, encrypted bound to its row."""
    payment_id = await conn.fetchval(RESERVE_IDS, 1)
    await conn.execute(
        INSERT_ONE,
        code,
        payment_id,
        entitlement_id,
        application_id,
        amount_yen,
        bank_code,
        branch_code,
        account_type,
        seal_bank(cipher, payment_id, account_number, holder_kana),
        account_key(cipher, bank_code, branch_code, account_type, account_number),
    )
    return payment_id


def seal_bank(cipher: FieldCipher, payment_id: int, account_number: str, holder_kana: str) -> bytes:
    """payments.bank_enc: the account number and holder name as one ciphertext bound to the payment row."""
    if _BANK_SEP in account_number or _BANK_SEP in holder_kana:
        raise ValueError("bank details must not contain NUL")
    return cipher.encrypt("payments", BANK, payment_id, account_number + _BANK_SEP + holder_kana)


def open_bank(cipher: FieldCipher, row: asyncpg.Record | dict) -> tuple[str, str]:
    """(account_number, holder_kana) of a payments row (payment_id, bank_enc, and for rows written
    before migration 0009, account_number_enc and holder_kana_enc)."""
    if row["bank_enc"] is None:
        return (
            cipher.decrypt_str("payments", ACCOUNT_NUMBER, row["payment_id"], row["account_number_enc"]),
            cipher.decrypt_str("payments", HOLDER_KANA, row["payment_id"], row["holder_kana_enc"]),
        )
    number, holder = cipher.decrypt_str("payments", BANK, row["payment_id"], row["bank_enc"]).split(_BANK_SEP)
    return number, holder


LEGACY_BANK_ROWS = """
SELECT payment_id, bank_enc, account_number_enc, holder_kana_enc FROM payments
WHERE municipality_code = $1 AND bank_enc IS NULL ORDER BY payment_id LIMIT $2
"""
UPGRADE_BANK = """
UPDATE payments p SET bank_enc = u.bank_enc, account_number_enc = NULL, holder_kana_enc = NULL
FROM unnest($2::bigint[], $3::bytea[]) AS u (payment_id, bank_enc)
WHERE p.municipality_code = $1 AND p.payment_id = u.payment_id AND p.bank_enc IS NULL
"""


async def upgrade_bank_layout(conn: asyncpg.Connection, cipher: FieldCipher, code: str, *, limit: int = 10_000) -> int:
    """Re-encrypt up to `limit` payments written before migration 0009 into bank_enc; returns how many.

    Inside the caller's tenant_transaction. The plaintext is unchanged, so an approved batch's file
    (its SHA-256) is unchanged too. Call until it returns 0."""
    rows = await conn.fetch(LEGACY_BANK_ROWS, code, limit)
    if not rows:
        return 0
    sealed = [seal_bank(cipher, r["payment_id"], *open_bank(cipher, r)) for r in rows]
    status = await conn.execute(UPGRADE_BANK, code, [r["payment_id"] for r in rows], sealed)
    return int(status.split()[-1])


async def eligible_totals(conn: asyncpg.Connection, code: str, program_id: int) -> asyncpg.Record:
    return await fetch_always(conn, ELIGIBLE_TOTALS, code, program_id)
