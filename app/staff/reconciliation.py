"""Returned (不能) transfers: list them with the bank's reason, mark for re-contact, re-issue once the
account is corrected. payments_one_live keeps a re-issue to one live payment per entitlement."""

from __future__ import annotations

import asyncpg

from app.crypto import FieldCipher
from app import audit
from app.staff.accounts import Staff
from app.staff.errors import Conflict, InvalidInput, NotFound
from app.staff.payments import insert_payment

RETURNED = """
SELECT p.payment_id, p.entitlement_id, p.amount_yen, p.bank_code, coalesce(pr.reason, p.return_reason) AS reason,
       p.batch_id, e.program_id, f.recontact_at, f.note, u.login AS recontact_by_login,
       ri.payment_id AS reissued_payment_id, ri.created_at AS reissued_at
FROM payments p
JOIN entitlements e ON e.municipality_code = p.municipality_code AND e.entitlement_id = p.entitlement_id
LEFT JOIN payment_returns pr ON pr.municipality_code = p.municipality_code AND pr.payment_id = p.payment_id
LEFT JOIN payment_followups f ON f.municipality_code = p.municipality_code AND f.payment_id = p.payment_id
LEFT JOIN staff_users u ON u.municipality_code = f.municipality_code AND u.staff_id = f.recontact_by
LEFT JOIN payment_reissues ri ON ri.municipality_code = p.municipality_code AND ri.replaces_payment_id = p.payment_id
WHERE p.municipality_code = $1 AND p.status = 'returned'
ORDER BY ri.payment_id IS NOT NULL, p.payment_id
LIMIT 500
"""
PAYMENT = """
SELECT payment_id, entitlement_id, application_id, amount_yen, status FROM payments
WHERE municipality_code = $1 AND payment_id = $2 FOR UPDATE
"""
MARK = """
INSERT INTO payment_followups (municipality_code, payment_id, recontact_by, note) VALUES ($1, $2, $3, $4)
ON CONFLICT (municipality_code, payment_id) DO UPDATE SET note = EXCLUDED.note, recontact_by = EXCLUDED.recontact_by,
    recontact_at = now()
"""
FOLLOWUP = "SELECT 1 FROM payment_followups WHERE municipality_code = $1 AND payment_id = $2"
REISSUED = "SELECT payment_id FROM payment_reissues WHERE municipality_code = $1 AND replaces_payment_id = $2"
# payment_reissues_once (one re-issue per returned payment) and payments_one_live back this in the database.
RECORD_REISSUE = "INSERT INTO payment_reissues (municipality_code, payment_id, replaces_payment_id) VALUES ($1, $2, $3)"


async def returned(conn: asyncpg.Connection, code: str) -> list[asyncpg.Record]:
    return await conn.fetch(RETURNED, code)


async def _returned_payment(conn: asyncpg.Connection, code: str, payment_id: int) -> asyncpg.Record:
    row = await conn.fetchrow(PAYMENT, code, payment_id)
    if row is None:
        raise NotFound()
    if row["status"] != "returned":
        raise Conflict("振込不能になった支払ではありません。")
    return row


async def mark_recontact(conn: asyncpg.Connection, code: str, staff: Staff, payment_id: int, note: str) -> None:
    staff.require("reviewer", "drafter")
    note = (note or "").strip()
    if len(note) > 1000:
        raise InvalidInput("メモ（note）は1000文字以内で入力してください。")
    await _returned_payment(conn, code, payment_id)
    await conn.execute(MARK, code, payment_id, staff.staff_id, note)
    await audit.append(conn, code, staff, "payment.recontact", "payment", payment_id, {"note": note})


def corrected_account(form: dict) -> dict:
    """Validate a corrected account from the reconciliation form; InvalidInput names the field."""
    from payouts.kana import ZenginKanaError, to_zengin_kana

    bank, branch = (form.get("bank_code") or "").strip(), (form.get("branch_code") or "").strip()
    number, kind = (form.get("account_number") or "").strip(), (form.get("account_type") or "").strip()
    if not (len(bank) == 4 and bank.isascii() and bank.isdigit()):
        raise InvalidInput("金融機関コード（bank_code）は半角数字4桁で入力してください。")
    if not (len(branch) == 3 and branch.isascii() and branch.isdigit()):
        raise InvalidInput("支店コード（branch_code）は半角数字3桁で入力してください。")
    if kind not in ("1", "2", "4", "9"):
        raise InvalidInput("預金種目（account_type）を選んでください。")
    if not (1 <= len(number) <= 7 and number.isascii() and number.isdigit()):
        raise InvalidInput("口座番号（account_number）は7桁以内の半角数字で入力してください。")
    try:
        holder = to_zengin_kana(form.get("holder_kana") or "", max_width=30)
    except ZenginKanaError as exc:
        raise InvalidInput(f"口座名義（holder_kana）: {exc}") from None
    return {"bank_code": bank, "branch_code": branch, "account_type": int(kind),
            "account_number": number.zfill(7), "holder_kana": holder}


async def reissue(
    conn: asyncpg.Connection, cipher: FieldCipher, code: str, staff: Staff, payment_id: int, account: dict,
) -> int:
    """A new 'ready' payment to the corrected account, for a later batch; returns its id."""
    staff.require("drafter")
    original = await _returned_payment(conn, code, payment_id)
    if await conn.fetchval(FOLLOWUP, code, payment_id) is None:
        raise Conflict("先に再連絡の記録をしてください。")
    if await conn.fetchval(REISSUED, code, payment_id) is not None:
        raise Conflict("この支払は既に再発行されています。")
    try:
        async with conn.transaction():  # a savepoint, so the refusal below leaves the transaction usable
            new_id = await insert_payment(
                conn, cipher, code, entitlement_id=original["entitlement_id"],
                application_id=original["application_id"], amount_yen=original["amount_yen"], **account,
            )
            await conn.execute(RECORD_REISSUE, code, new_id, payment_id)
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name not in ("payments_one_live", "payment_reissues_once"):
            raise
        raise Conflict("この受給権には既に有効な支払があります。二重には支払えません。") from None
    await audit.append(conn, code, staff, "payment.reissue", "payment", payment_id, {"new_payment_id": new_id})
    return new_id
