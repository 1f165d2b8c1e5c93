"""審査: the queue of applications the machine could not decide, the side-by-side view, the decision.

Lists show receipt numbers and reason codes only; names, addresses and bank details are decrypted on the
detail screen alone, for a stated purpose, and each such view is an audit entry.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from typing import Any

import asyncpg

from app import audit
from app.crypto import DecryptionError, FieldCipher
from app.db import fetch_one
from app.intake.proxy import proxy_of
from app.staff.accounts import Staff
from app.staff.errors import Conflict, InvalidInput, NotFound
from payouts.holder import holder_matches
from payouts.kana import ZenginKanaError, to_zengin_kana
from payouts.payments import ACCOUNT_NUMBER, BANK_UNREADABLE, HOLDER_KANA

log = logging.getLogger("kyufu.staff")

# Why a staff member opens personal data; the audit entry records which.
PURPOSES = {"review": "審査", "inquiry": "問い合わせ対応", "reconciliation": "振込不能の対応", "audit": "監査"}
REASON_LABELS = {
    "holder_name_mismatch": "口座名義と住民票のカナ氏名が一致しない",
    "identity_unverified": "本人確認が未了",
    "moved_out": "基準日後に転出",
    "deceased": "死亡による消除",
    "proxy": "代理申請",
    # The codes app/registry/verify.py writes.
    "entitlement_changed": "基準日後の住民記録の変更で支給額・対象が変わった可能性",
    "not_head": "申請者が世帯主ではない",
    "not_head_proxy": "世帯主以外の世帯員による代理申請",
    "proxy_outside_household": "世帯外の代理人による申請",
    "kana_mismatch": "口座名義と住民票のカナ氏名が一致しない",
    "holder_is_member_not_applicant": "口座名義が申請者以外の世帯員",
    "registry_kana_invalid": "住民票のカナ氏名を振込用カナにできない",
    "account_shared": "同じ口座が他の世帯の申請にも使われている",
    "late_application": "申請期限後の申請",
    "early_application": "受付開始前の申請",
    "identified_without_letter": "確認書なし（氏名カナ・生年月日・住所の照合で本人確認）",
    # 代理申請 and DV 申出 (app/intake/proxy.py, app/registry/dv.py; migration 0026).
    "proxy_account": "代理人の口座への振込（給付の設定で認められている）",
    "proxy_account_not_allowed": "代理人の口座への振込（給付の設定で認められていない）",
    "dv_evacuee": "DV等避難者の申出による支給（住民票のある団体の除外の確認後に支払）",
}

QUEUE = """
SELECT a.application_id, a.receipt_no, a.channel, a.reason_codes, a.submitted_at, e.program_id, e.amount_yen
FROM applications a
JOIN entitlements e ON e.municipality_code = a.municipality_code AND e.entitlement_id = a.entitlement_id
WHERE a.municipality_code = $1 AND a.status = 'needs_review'
ORDER BY a.submitted_at, a.application_id
LIMIT 200
"""
QUEUE_COUNT = "SELECT count(*) FROM applications WHERE municipality_code = $1 AND status = 'needs_review'"
# Search-first: an exact receipt number, never a browsable list of residents.
FIND = "SELECT application_id FROM applications WHERE municipality_code = $1 AND receipt_no = $2"
APPLICATION = """
SELECT a.application_id, a.entitlement_id, a.receipt_no, a.channel, a.status, a.reason_codes, a.is_proxy,
       a.applicant_resident_code, a.bank_code, a.branch_code, a.account_type, a.account_number_enc,
       a.holder_kana_enc, a.submitted_at, a.decided_at, u.login AS decided_by_login,
       e.program_id, e.snapshot_id, e.household_no, e.head_resident_code, e.members_counted, e.amount_yen,
       pr.name AS program_name, ch.account_changes, ch.account_changed_at
FROM applications a
JOIN entitlements e ON e.municipality_code = a.municipality_code AND e.entitlement_id = a.entitlement_id
JOIN programs pr ON pr.municipality_code = e.municipality_code AND pr.program_id = e.program_id
LEFT JOIN staff_users u ON u.municipality_code = a.municipality_code AND u.staff_id = a.decided_by
CROSS JOIN LATERAL (SELECT count(*) AS account_changes, max(c.changed_at) AS account_changed_at
                    FROM application_account_changes c  -- 口座変更の届出 (app/intake/changes.py)
                    WHERE c.municipality_code = a.municipality_code AND c.application_id = a.application_id) ch
WHERE a.municipality_code = $1 AND a.application_id = $2
"""
HOUSEHOLD = """
SELECT resident_code, relationship, is_head, family_name, given_name, family_kana, given_kana, birth_date, address,
       moved_in_on, removed_on, removal_reason
FROM residents WHERE municipality_code = $1 AND snapshot_id = $2 AND household_no = $3
ORDER BY is_head DESC, birth_date
"""
HISTORY = """
SELECT seq, occurred_at, actor_label, action, details FROM audit_log
WHERE municipality_code = $1 AND object_type = 'application' AND object_id = $2 ORDER BY seq
"""
DECIDE = """
UPDATE applications SET status = $3, decided_at = now(), decided_by = $4
WHERE municipality_code = $1 AND application_id = $2 AND status = 'needs_review'
RETURNING application_id
"""
EXISTS = "SELECT status FROM applications WHERE municipality_code = $1 AND application_id = $2"


def open_account(cipher: FieldCipher, code: str, app: asyncpg.Record) -> tuple[str, str] | None:
    """(account number, holder kana) of an application row, or None if they do not decrypt (logged with
    the error type and the row's ids only)."""
    application_id = app["application_id"]
    try:
        return (
            cipher.decrypt_str("applications", ACCOUNT_NUMBER, application_id, app["account_number_enc"]),
            cipher.decrypt_str("applications", HOLDER_KANA, application_id, app["holder_kana_enc"]),
        )
    except DecryptionError as exc:
        log.error(
            "bank details of application %s (municipality %s) do not decrypt: %s",
            application_id,
            code,
            type(exc).__name__,
        )
        return None


async def queue(conn: asyncpg.Connection, code: str) -> tuple[list[asyncpg.Record], int]:
    return await conn.fetch(QUEUE, code), await conn.fetchval(QUEUE_COUNT, code)


# What people put between the digits of a receipt: hyphens and dashes of every width (an IME gives ー or
# －), spaces of both widths.
_RECEIPT_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015\u2212\u30fc\uff70]")


def normalise_receipt(text: str) -> str:
    """A receipt number as printed (123-4567-8901), read out, or typed with full-width digits: the digits."""
    return _RECEIPT_SEPARATORS.sub("", unicodedata.normalize("NFKC", text or ""))


async def find(conn: asyncpg.Connection, code: str, staff: Staff, receipt_no: str) -> int | None:
    """The application of a receipt number, or None; the search is recorded either way (so it is the
    caller's to answer a miss without rolling the transaction back)."""
    staff.require("reviewer", "admin")
    receipt_no = normalise_receipt(receipt_no)
    if not receipt_no or len(receipt_no) > 40:
        raise InvalidInput("受付番号を入力してください。")
    app_id = await conn.fetchval(FIND, code, receipt_no)
    await audit.append(
        conn, code, staff, "application.search", "application", app_id or "", {"found": app_id is not None}
    )
    return app_id


async def summary(conn: asyncpg.Connection, code: str, application_id: int) -> asyncpg.Record:
    return await fetch_one(conn, APPLICATION, code, application_id)


async def personal_view(
    conn: asyncpg.Connection,
    cipher: FieldCipher,
    code: str,
    staff: Staff,
    application_id: int,
    purpose: str,
) -> dict[str, Any]:
    """The application beside the registry's household, decrypted, recorded with who and why."""
    staff.require("reviewer", "admin")
    if purpose not in PURPOSES:
        raise InvalidInput("閲覧の目的（purpose）を選んでください。")
    app = await summary(conn, code, application_id)
    account = open_account(cipher, code, app)
    proxy = await proxy_of(conn, cipher, code, application_id) if app["is_proxy"] else None
    # A proxy's application pays the 世帯主 unless it pays the proxy's own account (app/intake/proxy.py).
    payee_code = app["applicant_resident_code"] or app["head_resident_code"]
    if proxy is not None and not proxy["pay_to_proxy"]:
        payee_code = app["head_resident_code"]
    household, payee = _side_by_side(
        await conn.fetch(HOUSEHOLD, code, app["snapshot_id"], app["household_no"]),
        account[1] if account else None,
        payee_code,
    )
    details: dict[str, Any] = {"purpose": purpose}
    if account is None:
        details["bank_unreadable"] = True
    await audit.append(conn, code, staff, "personal_data.view", "application", application_id, details)
    return {
        "app": app,
        "account_number": account[0] if account else None,
        "holder_kana": account[1] if account else None,
        "bank_error": None if account else BANK_UNREADABLE,
        "household": household,
        "payee": payee,
        "history": await conn.fetch(HISTORY, code, str(application_id)),
        "purpose": purpose,
        "proxy": proxy,
    }


def _side_by_side(
    household: list[asyncpg.Record], holder_kana: str | None, payee_code: str
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The household's rows, each marked whether it is the payee and whether the account's holder is that
    member by the account-holder check (payouts/holder.py); and the payee's row with its kana as a bank
    writes it (振込用カナ), to show beside the holder's. The payee is the applicant, or the head for a
    letter or a プッシュ型 payout."""
    rows, payee = [], None
    for m in household:
        row = dict(m)
        kana = f"{m['family_kana']} {m['given_kana']}"
        row["is_payee"] = m["resident_code"] == payee_code
        row["holder_match"] = holder_kana is not None and holder_matches(holder_kana, kana).matched
        rows.append(row)
        if row["is_payee"]:
            try:
                zengin = to_zengin_kana(kana, allow_wo=True)
            except ZenginKanaError:
                zengin = None
            payee = row | {"zengin_kana": zengin}
    return rows, payee


async def decide(
    conn: asyncpg.Connection,
    cipher: FieldCipher,
    code: str,
    staff: Staff,
    application_id: int,
    decision: str,
    comment: str,
) -> None:
    """Approve or reject an application in needs_review; a rejection needs a comment. An application whose
    bank details do not decrypt can be rejected but not approved (it could never be paid)."""
    staff.require("reviewer")
    if decision not in ("approve", "reject"):
        raise InvalidInput("判定（decision）は承認か却下を選んでください。")
    comment = (comment or "").strip()
    if decision == "reject" and not comment:
        raise InvalidInput("却下の理由（comment）を入力してください。")
    if len(comment) > 1000:
        raise InvalidInput("コメント（comment）は1000文字以内で入力してください。")
    status = "approved" if decision == "approve" else "rejected"
    if decision == "approve" and open_account(cipher, code, await summary(conn, code, application_id)) is None:
        raise Conflict("この申請は承認できません。" + BANK_UNREADABLE)
    if await conn.fetchval(DECIDE, code, application_id, status, staff.staff_id) is None:
        current = await conn.fetchval(EXISTS, code, application_id)
        if current is None:
            raise NotFound()
        raise Conflict("この申請は審査待ちではありません（既に判定済みの可能性があります）。")
    await audit.append(conn, code, staff, f"review.{decision}", "application", application_id, {"comment": comment})
