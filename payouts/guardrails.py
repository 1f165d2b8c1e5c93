"""Per-batch guardrails: what must hold before a batch may be approved (migration 0018 enforces each).

* No payment above its entitlement (`payments_within_entitlement`).
* A batch's payments are fixed once its preparation ends (`payments_join_preparing_batch`).
* No entitlement paid twice: one live payment per entitlement (`payments_one_live`), so an entitlement
  paid in another released batch cannot be in this one.
* No account receives more than the program's `max_payments_per_account` payments in one batch (the
  阿武町 shape: one household's account given 463 households' money) unless a staff member other than the
  drafter overrode that account with a reason (`payout_batches_accounts_within_limit`). The over-limit
  accounts are recorded by the database when the preparation ends (payout_batch_account_flags); staff
  see each account (masked) and its payments, and override or send the batch back.

Functions run inside the caller's tenant_transaction.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from app import audit
from app.crypto import DecryptionError, FieldCipher
from app.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.principals import Staff
from payouts.payments import open_bank

# The rules the database holds, as the approval page states them (constraint names for the curious).
RULES = (
    ("受給権の額を超える支払はありません", "payments_within_entitlement"),
    ("起案の準備が終わった後に支払は追加されていません", "payments_join_preparing_batch"),
    ("同じ受給権への支払は1件だけです（他の送信済み振込で支払った受給権は含まれません）", "payments_one_live"),
)
OVERRIDE_REASON_MAX = 1000

FLAGS = """
SELECT encode(f.account_key, 'hex') AS account, f.payments, f.total_yen, f.payment_ids, f.overridden_at,
       f.override_reason, u.login AS overridden_by_login
FROM payout_batch_account_flags f
LEFT JOIN staff_users u ON u.municipality_code = f.municipality_code AND u.staff_id = f.overridden_by
WHERE f.municipality_code = $1 AND f.batch_id = $2
ORDER BY f.payments DESC, f.account_key
"""
OPEN_FLAGS = """
SELECT count(*) FROM payout_batch_account_flags
WHERE municipality_code = $1 AND batch_id = $2 AND overridden_by IS NULL
"""
LIMIT = """
SELECT pr.max_payments_per_account FROM payout_batches b
JOIN programs pr ON pr.municipality_code = b.municipality_code AND pr.program_id = b.program_id
WHERE b.municipality_code = $1 AND b.batch_id = $2
"""
FLAG_PAYMENT = """
SELECT payment_id, bank_code, branch_code, account_type, bank_enc, account_number_enc, holder_kana_enc
FROM payments WHERE municipality_code = $1 AND payment_id = $2
"""
BATCH_FOR_OVERRIDE = """
SELECT status, drafted_by, rejected_at FROM payout_batches WHERE municipality_code = $1 AND batch_id = $2 FOR UPDATE
"""
# A payment of the batch whose entitlement waits for a cross-municipality duplicate case (0021, 0023).
DUPLICATE_HOLD = """
SELECT h.reference FROM duplicate_holds h
JOIN payments p ON p.municipality_code = h.municipality_code AND p.entitlement_id = h.entitlement_id
WHERE h.municipality_code = $1 AND p.batch_id = $2
ORDER BY h.reference LIMIT 1
"""
OVERRIDE = """
UPDATE payout_batch_account_flags SET overridden_by = $4, overridden_at = now(), override_reason = $5
WHERE municipality_code = $1 AND batch_id = $2 AND account_key = decode($3, 'hex') AND overridden_by IS NULL
RETURNING payments, total_yen
"""


async def duplicate_hold(conn: asyncpg.Connection, code: str, batch_id: int) -> str | None:
    """The reference of a duplicate case one of the batch's payments waits for, or None."""
    return await conn.fetchval(DUPLICATE_HOLD, code, batch_id)


def hold_message(reference: str) -> str:
    return (
        f"重複の疑い（事例 {reference}）の確認を待つ支払が含まれています。"
        "事例を解決するか、起案を取り消して起案し直してください。"
    )


async def open_flags(conn: asyncpg.Connection, code: str, batch_id: int) -> int:
    """How many over-limit accounts of the batch still wait for an override."""
    return int(await conn.fetchval(OPEN_FLAGS, code, batch_id))


async def view(conn: asyncpg.Connection, cipher: FieldCipher, code: str, batch_id: int) -> dict[str, Any]:
    """The guardrails as the approval page shows them: the rules, the per-account limit and each
    over-limit account (bank, branch, masked number and holder of its first payment — personal data the
    caller's approval view already records as viewed)."""
    accounts = []
    for f in await conn.fetch(FLAGS, code, batch_id):
        first = await conn.fetchrow(FLAG_PAYMENT, code, f["payment_ids"][0])
        try:
            number, holder = open_bank(cipher, first) if first else ("", "")
            masked = "****" + number[-3:]
        except DecryptionError:
            masked, holder = "（復号できません）", ""
        accounts.append(
            {
                "account": f["account"],
                "bank_code": first["bank_code"] if first else "",
                "branch_code": first["branch_code"] if first else "",
                "account_type": first["account_type"] if first else None,
                "account_number_masked": masked,
                "holder_kana": holder,
                "payments": f["payments"],
                "total_yen": f["total_yen"],
                "payment_ids": list(f["payment_ids"][:20]),
                "overridden_by_login": f["overridden_by_login"],
                "overridden_at": f["overridden_at"],
                "override_reason": f["override_reason"],
            }
        )
    held = await duplicate_hold(conn, code, batch_id)
    return {
        "duplicate_hold": hold_message(held) if held else None,
        "rules": RULES,
        "limit": await conn.fetchval(LIMIT, code, batch_id),
        "accounts": accounts,
        "open": sum(1 for a in accounts if a["overridden_by_login"] is None),
    }


async def override_account(
    conn: asyncpg.Connection, code: str, staff: Staff, batch_id: int, account: str, reason: str
) -> None:
    """Accept an over-limit account of a draft for approval, with the reason (e.g. a facility's account
    receiving its residents' payments). Not by the drafter: the database refuses an approval whose
    override is the drafter's own."""
    staff.require("approver", "reviewer")
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("確認の理由（reason）を入力してください。")
    if len(reason) > OVERRIDE_REASON_MAX:
        raise InvalidInput(f"確認の理由（reason）は{OVERRIDE_REASON_MAX}文字以内で入力してください。")
    if not (len(account) == 64 and all(c in "0123456789abcdef" for c in account)):
        raise NotFound()
    batch = await conn.fetchrow(BATCH_FOR_OVERRIDE, code, batch_id)
    if batch is None:
        raise NotFound()
    if batch["status"] != "draft":
        raise Conflict("承認待ちの起案でだけ口座を確認できます。")
    if batch["drafted_by"] == staff.staff_id:
        raise Forbidden("起案した本人は、上限を超える口座を確認できません。")
    row = await conn.fetchrow(OVERRIDE, code, batch_id, account, staff.staff_id, reason)
    if row is None:
        raise Conflict("この口座は確認済みか、この起案の対象ではありません。")
    await audit.append(
        conn,
        code,
        staff,
        "batch.account_override",
        "batch",
        batch_id,
        {"account": account[:16], "payments": row["payments"], "total_yen": row["total_yen"], "reason": reason},
    )
