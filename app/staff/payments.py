"""Payments: created from approved applications, frozen into batches, followed up when returned.

Bank details move between rows still encrypted in spirit: decrypted from the application (bound to the
application row) and encrypted again bound to the new payment row, so a ciphertext is never valid in two
places and a batch does not change when an application is edited later.
"""

from __future__ import annotations

import asyncpg

from app.crypto import FieldCipher

# Associated data of the encrypted bank fields, per table (row key: the table's id column).
ACCOUNT_NUMBER, HOLDER_KANA = "account_number", "holder_kana"

# Applications that should be paid and have never had a payment (a cancelled one does not count:
# it never left). A returned payment is followed up on the reconciliation screen instead, so the
# same wrong account is not paid again automatically.
ELIGIBLE = """
SELECT a.application_id, a.entitlement_id, e.amount_yen, a.bank_code, a.branch_code, a.account_type,
       a.account_number_enc, a.holder_kana_enc
FROM applications a
JOIN entitlements e ON e.municipality_code = a.municipality_code AND e.entitlement_id = a.entitlement_id
WHERE a.municipality_code = $1 AND e.program_id = $2 AND a.status IN ('verified', 'approved')
  AND e.status NOT IN ('declined', 'withdrawn')
  AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.municipality_code = a.municipality_code
                  AND p.entitlement_id = a.entitlement_id AND p.status <> 'cancelled')
ORDER BY a.application_id
"""
ELIGIBLE_TOTALS = f"SELECT count(*) AS count, coalesce(sum(amount_yen), 0)::bigint AS total_yen FROM ({ELIGIBLE}) x"
RESERVE_IDS = "SELECT nextval('payments_payment_id_seq') FROM generate_series(1, $1)"
# The id is chosen before the insert because it is part of the ciphertext's associated data.
# payments_one_live makes a concurrent second creation for the same entitlement a no-op.
INSERT_PAYMENTS = """
INSERT INTO payments (municipality_code, payment_id, entitlement_id, application_id, amount_yen, bank_code,
                      branch_code, account_type, account_number_enc, holder_kana_enc)
OVERRIDING SYSTEM VALUE
SELECT $1, * FROM unnest($2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::text[], $7::text[],
                         $8::smallint[], $9::bytea[], $10::bytea[])
ON CONFLICT (municipality_code, entitlement_id) WHERE status IN ('ready', 'in_batch', 'released', 'paid')
DO NOTHING
"""
INSERT_ONE = """
INSERT INTO payments (municipality_code, payment_id, entitlement_id, application_id, amount_yen, bank_code,
                      branch_code, account_type, account_number_enc, holder_kana_enc)
OVERRIDING SYSTEM VALUE
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
"""


async def create_payments_for_program(conn: asyncpg.Connection, cipher: FieldCipher, code: str, program_id: int) -> int:
    """Create a 'ready' payment for every verified/approved application of the program that has none.

    Call inside tenant_transaction(conn, code). Returns how many payments were created (a concurrent
    caller may have created some of them; the unique index keeps each entitlement to one live payment).
    """
    rows = await conn.fetch(ELIGIBLE, code, program_id)
    if not rows:
        return 0
    ids = [r[0] for r in await conn.fetch(RESERVE_IDS, len(rows))]
    numbers, holders = [], []
    for payment_id, r in zip(ids, rows):
        app_id = r["application_id"]
        number = cipher.decrypt("applications", ACCOUNT_NUMBER, app_id, r["account_number_enc"])
        holder = cipher.decrypt("applications", HOLDER_KANA, app_id, r["holder_kana_enc"])
        numbers.append(cipher.encrypt("payments", ACCOUNT_NUMBER, payment_id, number))
        holders.append(cipher.encrypt("payments", HOLDER_KANA, payment_id, holder))
    status = await conn.execute(
        INSERT_PAYMENTS, code, ids, [r["entitlement_id"] for r in rows], [r["application_id"] for r in rows],
        [r["amount_yen"] for r in rows], [r["bank_code"] for r in rows], [r["branch_code"] for r in rows],
        [r["account_type"] for r in rows], numbers, holders,
    )
    return int(status.split()[-1])


async def insert_payment(
    conn: asyncpg.Connection, cipher: FieldCipher, code: str, *, entitlement_id: int, application_id: int | None,
    amount_yen: int, bank_code: str, branch_code: str, account_type: int, account_number: str, holder_kana: str,
) -> int:
    """One 'ready' payment with the given (plaintext) account, encrypted bound to its row."""
    payment_id = await conn.fetchval(RESERVE_IDS, 1)
    await conn.execute(
        INSERT_ONE, code, payment_id, entitlement_id, application_id, amount_yen, bank_code, branch_code,
        account_type, cipher.encrypt("payments", ACCOUNT_NUMBER, payment_id, account_number),
        cipher.encrypt("payments", HOLDER_KANA, payment_id, holder_kana),
    )
    return payment_id


async def eligible_totals(conn: asyncpg.Connection, code: str, program_id: int) -> asyncpg.Record:
    return await conn.fetchrow(ELIGIBLE_TOTALS, code, program_id)
