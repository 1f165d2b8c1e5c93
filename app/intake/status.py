"""What a resident sees about their claim: household, amount, and where the application stands."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

import asyncpg

ENTITLEMENT = """
SELECT e.entitlement_id, e.household_no, e.members_counted, e.amount_yen, e.status, e.snapshot_id,
       p.program_id, p.name AS program_name, p.apply_until, p.payment_mode, p.decline_deadline,
       current_date AS today
FROM entitlements e JOIN programs p USING (municipality_code, program_id)
WHERE e.municipality_code = $1 AND e.entitlement_id = $2
"""
HOUSEHOLD = """
SELECT family_name, given_name, relationship, is_head FROM residents
WHERE municipality_code = $1 AND snapshot_id = $2 AND household_no = $3 AND removed_on IS NULL
ORDER BY is_head DESC, birth_date
"""
# The latest application (an active one if any) and its payment, if one exists; `held`: the entitlement is
# on hold (支給保留・支給停止, payouts/holds.py), whose reason the resident is never shown.
LATEST_APPLICATION = """
SELECT a.application_id, a.receipt_no, a.status, a.submitted_at, a.bank_code, a.branch_code,
       pay.status AS payment_status, pay.paid_on, b.transfer_date, b.status AS batch_status,
       EXISTS (SELECT 1 FROM payment_holds h WHERE h.municipality_code = a.municipality_code
               AND h.entitlement_id = a.entitlement_id AND h.released_at IS NULL) AS held
FROM applications a
LEFT JOIN LATERAL (SELECT * FROM payments p WHERE p.municipality_code = a.municipality_code
                   AND p.application_id = a.application_id ORDER BY p.payment_id DESC LIMIT 1) pay ON true
LEFT JOIN payout_batches b ON b.municipality_code = pay.municipality_code AND b.batch_id = pay.batch_id
WHERE a.municipality_code = $1 AND a.entitlement_id = $2
ORDER BY (a.status NOT IN ('rejected', 'withdrawn')) DESC, a.application_id DESC
LIMIT 1
"""
PROGRAMS = """
SELECT program_id, name, amount_yen, child_amount_yen, unit, base_date, apply_from, apply_until, payment_mode,
       decline_deadline, tax_condition, min_age, max_age
FROM programs WHERE municipality_code = $1 ORDER BY program_id
"""


async def programs(conn: asyncpg.Connection, code: str) -> list[dict]:
    """The municipality's programs, as its start page lists them."""
    return [dict(r) for r in await conn.fetch(PROGRAMS, code)]


async def latest_application(conn: asyncpg.Connection, code: str, entitlement_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(LATEST_APPLICATION, code, entitlement_id)


async def household_view(
    conn: asyncpg.Connection, code: str, entitlement_id: int
) -> tuple[dict, list[dict], dict | None] | None:
    """(entitlement, household members, latest application) for the resident's pages; None if there is no
    such entitlement in this municipality."""
    ent = await conn.fetchrow(ENTITLEMENT, code, entitlement_id)
    if ent is None:
        return None
    members = await conn.fetch(HOUSEHOLD, code, ent["snapshot_id"], ent["household_no"])
    app = await latest_application(conn, code, entitlement_id)
    return dict(ent), [dict(r) for r in members], dict(app) if app else None


DeclineState = Literal["not_push", "open", "declined", "past_deadline", "in_progress"]


def decline_state(ent: Mapping[str, Any]) -> DeclineState:
    """Whether the resident may 辞退 online now (an entitlement row of household_view). The deadline is a
    Japanese calendar day, as app.registry.push.decline counts it (the database's current_date, in
    Asia/Tokyo); decline() decides again when asked."""
    if ent["payment_mode"] != "push":
        return "not_push"
    if ent["status"] == "declined":
        return "declined"
    if ent["decline_deadline"] is not None and ent["today"] > ent["decline_deadline"]:
        return "past_deadline"
    if ent["status"] != "open":
        return "in_progress"
    return "open"


@dataclass
class Progress:
    key: str  # received | checking | approved | scheduled | paid | problem
    label: str
    detail: str
    transfer_date: date | None = None


def progress(row: asyncpg.Record | Mapping[str, Any] | None) -> Progress | None:
    """Map application + payment state to the resident's steps (never internal reason codes)."""
    if row is None:
        return None
    pay, status = row["payment_status"], row["status"]
    if pay == "paid":
        return Progress("paid", "振込済み", "ご指定の口座へ振り込みました。通帳等でご確認ください。", row["paid_on"])
    if row.get("held") and pay != "returned" and status not in ("rejected", "withdrawn"):
        # One neutral message whatever the reason: a hold for DV must not tell the household anything, so
        # no hold may say more than any other.
        return Progress(
            "checking",
            "確認中",
            "お支払いの前に確認が必要な事項があり、手続きを止めて確認しています。"
            "確認が終わり次第、手続きを進めます。ご不明な点は窓口にお問い合わせください。",
        )
    if pay == "returned":
        return Progress(
            "problem",
            "振込ができませんでした",
            "口座が解約されている、名義が違うなどの理由で振り込めませんでした。窓口で正しい口座をお届けください。",
        )
    if pay in ("in_batch", "released") and row["transfer_date"] is not None:
        d = row["transfer_date"]
        return Progress(
            "scheduled",
            f"{d.year}年{d.month}月{d.day}日に振込予定",
            "振込予定日になりましたら口座をご確認ください。",
            d,
        )
    if status == "approved" or pay == "ready":
        return Progress("approved", "支給決定", "支給が決定しました。振込日が決まるとここに表示されます。")
    if status in ("verified", "needs_review"):
        return Progress("checking", "審査中", "住民基本台帳等の情報と照合しています。")
    if status == "rejected":
        # The label says what the text says: a decision not to pay, not a request for more information.
        return Progress(
            "problem",
            "支給できませんでした",
            "お申し込みの内容では支給できませんでした。郵送でお知らせする内容をご確認のうえ、窓口にお問い合わせください。",
        )
    if status == "withdrawn":
        return Progress("problem", "取り下げ済み", "この申請は取り下げられています。")
    return Progress("received", "受付済み", "申請を受け付けました。これから内容を確認します。")
