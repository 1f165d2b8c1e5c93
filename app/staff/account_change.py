"""口座変更の届出 on paper: a resident who cannot (or would rather not) change the account online sends the
municipality's 届出書 with a copy of the passbook, and a clerk keys it in at the console.

It is the resident's own change (app/intake/changes.py) with the same rule and the same effects: allowed
only while no payment of the entitlement is in a batch or beyond, the old account kept encrypted in
application_account_changes, the application back to 'received' so verification (the account-holder
check, the shared-account check) decides the new account again, and a cancelled 'ready' payment. What
the console adds: the clerk states that the account evidence was seen (口座確認書類), the change is
recorded as channel 'paper' under the clerk's name in the audit trail, and every refusal is a message the
clerk can act on. Nothing here puts the account or the holder's name into a message or a log.
"""

from __future__ import annotations

from collections.abc import Mapping

import asyncpg

from app.crypto import FieldCipher
from app.db import fetch_one
from app.intake.changes import AccountChangeTooLate, Change, change_account
from app.intake.forms import LABELS, FormInvalid, parse_bank
from app.staff.accounts import Staff
from app.staff.errors import Conflict, InvalidInput

ENTITLEMENT_OF = """
SELECT entitlement_id FROM applications WHERE municipality_code = $1 AND application_id = $2
"""
BANK_FIELDS = ("bank_code", "branch_code", "account_type", "account_number", "holder_kana")

TOO_LATE = (
    "この申請の支払は既に振込バッチに入っているか支払済みのため、口座を変更できません。"
    "振込後の訂正は振込不能・組戻しの手続きで行ってください。"
)
REFUSALS = {
    "same": "届出の口座は、登録済みの口座と同じです。変更はありません。",
    "closed": "この申請は辞退または取下げ済みのため、口座を変更できません。",
    "none": "この申請は有効な申請ではないため、口座を変更できません。",
    "too_late": TOO_LATE,
}


async def record_paper_change(
    conn: asyncpg.Connection, cipher: FieldCipher, code: str, staff: Staff, application_id: int, form: Mapping
) -> Change:
    """Key in a paper 口座変更の届出 for one application. Refuses (InvalidInput, Conflict; nothing written)
    a form with errors (every wrong field at once, by its Japanese label), evidence not confirmed, the
    same account, a closed application, or a payment already in a batch. Call inside the tenant
    transaction; after commit, dispatch the outbox (the application's verification is due again)."""
    staff.require("reviewer")
    entitlement_id = (await fetch_one(conn, ENTITLEMENT_OF, code, application_id))["entitlement_id"]
    data = {k: str(form.get(k, "")).strip() for k in BANK_FIELDS}
    data["account_type"] = data["account_type"] or "1"
    try:
        account = parse_bank(data)
    except FormInvalid as exc:
        raise InvalidInput(" ".join(f"{LABELS.get(e.field, '入力項目')}: {e.message}" for e in exc.errors)) from None
    if form.get("evidence_checked") != "yes":
        raise InvalidInput("口座確認書類（通帳・キャッシュカードの写し等）を確認したら、確認欄にチェックしてください。")
    try:
        change = await change_account(
            conn, cipher, code, entitlement_id, account, actor=staff.login, channel="paper", staff=staff
        )
    except AccountChangeTooLate:
        raise Conflict(TOO_LATE) from None
    if change.kind != "changed":
        raise Conflict(REFUSALS[change.kind]) if change.kind != "same" else InvalidInput(REFUSALS["same"])
    return change
