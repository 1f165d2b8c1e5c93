"""組戻し and 返還: getting back money a released payment should not have paid (migration 0019).

Two procedures, one per payment, each a state machine the database holds (triggers in 0019; the checks
here come first only so that staff get a message naming the field or the state):

* **組戻し依頼** (`payment_recalls`): staff ask the bank to recall the transfer of a payment that left in a
  released file ('paid', or 'in_batch' of a released batch). requested → the bank answers: 'returned'
  (組戻し済: the money is back; the bank's fee, `fee_yen` ≥ 0, is the municipality's) or 'refused'
  (組戻し不能). One open request per payment; an answer is final; after a refusal a new request may be made.
  A 'returned' answer makes the payment 'returned' (reason 組戻し) in the same statement: the entitlement is
  not paid again by itself (drafting skips an entitlement that has any payment that was not cancelled);
  paying it again is staff's deliberate re-contact and one re-issue on the reconciliation screen
  (payouts/reconcile.py; `payments_one_live`, `payment_reissues_once`).
* **返還請求** (`payment_debts`): where the money was credited and the recipient must pay it back. A debt
  of at most the payment's amount, one per payment, not while a recall waits for the bank's answer (and no
  recall after it); the notices sent (返還請求書, 督促状: `debt_notices`); the repayments received
  (`debt_repayments`, append-only), whose sum is the debt's `repaid_yen` and never exceeds its amount; the
  debt is 'repaid' when nothing is left, or 'written_off' when one staff member asked and another approved.
  A payment with a debt stays credited (it cannot become 'returned'), and a recovered debt never frees its
  entitlement for a second payment: the payment stays 'paid'.

Roles (the console's `page()` checks them too):

* reviewer or drafter — record what happened: the bank's answer, a notice sent, a repayment received;
* drafter — decide that money must come back: request a recall, open a debt, ask for a write-off;
* approver (会計管理者) — approve or refuse a write-off: never the staff member who asked for it, nor one
  who is not independent of them (`kyufu_approval_conflict`, as for batches); the requester may withdraw.
  A write-off gives up public money, so it takes two people, like the release of a file.

Every step appends an audit entry (recall.request, recall.answer, debt.open, debt.notice, debt.repayment,
debt.write_off_request, debt.write_off_approve, debt.write_off_refuse) with amounts, ids and the staff
member's own words; no resident data. Functions run inside the caller's tenant_transaction.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg

from app import audit
from app.db import fetch_always
from app.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.principals import Staff
from payouts.bankdays import JST, today_jst

RECORDERS = ("reviewer", "drafter")
OPENERS = ("drafter",)
VIEWERS = ("reviewer", "drafter", "approver")
TEXT_MAX = 1000
MAX_YEN = 9_999_999_999
OUTCOMES = {"returned": "組戻し済", "refused": "組戻し不能"}
NOTICE_KINDS = {"demand": "返還請求書", "reminder": "督促状"}
RECALL_STATUS = {"requested": "依頼中（銀行の回答待ち）", **OUTCOMES}
DEBT_STATUS = {"open": "未完済", "repaid": "完済", "written_off": "償却"}

# A payment as the case page shows it: ids, amounts, states and the receipt number; no personal data.
PAYMENT_COLUMNS = """
p.payment_id, p.entitlement_id, p.amount_yen, p.status, p.bank_code, p.batch_id, p.paid_on, p.return_reason,
b.status AS batch_status, b.transfer_date, b.released_at, a.receipt_no, e.program_id, pr.name AS program_name,
(p.status IN ('paid', 'released') OR (p.status = 'in_batch' AND b.status = 'released')) AS sent
"""
PAYMENT_FROM = """
FROM payments p
JOIN entitlements e ON e.municipality_code = p.municipality_code AND e.entitlement_id = p.entitlement_id
JOIN programs pr ON pr.municipality_code = e.municipality_code AND pr.program_id = e.program_id
LEFT JOIN payout_batches b ON b.municipality_code = p.municipality_code AND b.batch_id = p.batch_id
LEFT JOIN applications a ON a.municipality_code = p.municipality_code AND a.application_id = p.application_id
WHERE p.municipality_code = $1 AND p.payment_id = $2
"""
PAYMENT = f"SELECT {PAYMENT_COLUMNS} {PAYMENT_FROM}"
# The payment row lock orders a recall, a debt and a returns import of one payment (the triggers take it too).
LOCK_PAYMENT = f"SELECT {PAYMENT_COLUMNS} {PAYMENT_FROM} FOR UPDATE OF p"
# A payment by 支払番号 or by its application's 受付番号 (the newest payment first: a re-issue after a return).
FIND_PAYMENT = """
SELECT p.payment_id FROM payments p
LEFT JOIN applications a ON a.municipality_code = p.municipality_code AND a.application_id = p.application_id
WHERE p.municipality_code = $1 AND (p.payment_id = $2 OR a.receipt_no = $3)
ORDER BY p.payment_id = $2 DESC, p.payment_id DESC LIMIT 1
"""
RECALLS_OF = """
SELECT r.recall_id, r.status, r.reason, r.requested_at, q.login AS requested_by_login, r.bank_answer, r.fee_yen,
       r.answered_at, w.login AS answered_by_login
FROM payment_recalls r
JOIN staff_users q ON q.municipality_code = r.municipality_code AND q.staff_id = r.requested_by
LEFT JOIN staff_users w ON w.municipality_code = r.municipality_code AND w.staff_id = r.answered_by
WHERE r.municipality_code = $1 AND r.payment_id = $2
ORDER BY r.recall_id
"""
DEBT_COLUMNS = """
d.debt_id, d.payment_id, d.amount_yen, d.reason, d.opened_at, d.status, d.repaid_yen,
d.amount_yen - d.repaid_yen - coalesce(d.written_off_yen, 0) AS balance_yen,
d.write_off_requested_by, d.write_off_requested_at, d.write_off_reason, d.written_off_at, d.written_off_yen,
o.login AS opened_by_login, wr.login AS write_off_requested_by_login, wa.login AS written_off_by_login
"""
DEBT_FROM = """
FROM payment_debts d
JOIN staff_users o ON o.municipality_code = d.municipality_code AND o.staff_id = d.opened_by
LEFT JOIN staff_users wr ON wr.municipality_code = d.municipality_code AND wr.staff_id = d.write_off_requested_by
LEFT JOIN staff_users wa ON wa.municipality_code = d.municipality_code AND wa.staff_id = d.written_off_by
"""
DEBT_OF = f"SELECT {DEBT_COLUMNS} {DEBT_FROM} WHERE d.municipality_code = $1 AND d.payment_id = $2"
LOCK_DEBT = """
SELECT debt_id, amount_yen, repaid_yen, status, write_off_requested_by FROM payment_debts
WHERE municipality_code = $1 AND payment_id = $2 FOR UPDATE
"""
NOTICES_OF = """
SELECT n.notice_id, n.kind, n.sent_on, n.note, n.recorded_at, u.login AS recorded_by_login
FROM debt_notices n JOIN staff_users u ON u.municipality_code = n.municipality_code AND u.staff_id = n.recorded_by
WHERE n.municipality_code = $1 AND n.debt_id = $2 ORDER BY n.sent_on, n.notice_id
"""
REPAYMENTS_OF = """
SELECT r.repayment_id, r.amount_yen, r.received_on, r.note, r.recorded_at, u.login AS recorded_by_login
FROM debt_repayments r
JOIN staff_users u ON u.municipality_code = r.municipality_code AND u.staff_id = r.recorded_by
WHERE r.municipality_code = $1 AND r.debt_id = $2 ORDER BY r.received_on, r.repayment_id
"""
INSERT_RECALL = """
INSERT INTO payment_recalls (municipality_code, payment_id, reason, requested_by) VALUES ($1, $2, $3, $4)
RETURNING recall_id
"""
OPEN_RECALL = """
SELECT recall_id FROM payment_recalls WHERE municipality_code = $1 AND payment_id = $2 AND status = 'requested'
"""
ANSWER_RECALL = """
UPDATE payment_recalls SET status = $3, bank_answer = $4, fee_yen = $5, answered_by = $6, answered_at = now()
WHERE municipality_code = $1 AND payment_id = $2 AND status = 'requested'
RETURNING recall_id
"""
INSERT_DEBT = """
INSERT INTO payment_debts (municipality_code, payment_id, amount_yen, reason, opened_by) VALUES ($1, $2, $3, $4, $5)
RETURNING debt_id
"""
INSERT_NOTICE = """
INSERT INTO debt_notices (municipality_code, debt_id, kind, sent_on, note, recorded_by) VALUES ($1, $2, $3, $4, $5, $6)
RETURNING notice_id
"""
INSERT_REPAYMENT = """
INSERT INTO debt_repayments (municipality_code, debt_id, amount_yen, received_on, note, recorded_by)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING repayment_id
"""
DEBT_BALANCE = "SELECT status, repaid_yen, amount_yen FROM payment_debts WHERE municipality_code = $1 AND debt_id = $2"
REQUEST_WRITE_OFF = """
UPDATE payment_debts SET write_off_requested_by = $3, write_off_requested_at = now(), write_off_reason = $4
WHERE municipality_code = $1 AND debt_id = $2 AND status = 'open' AND write_off_requested_by IS NULL
"""
APPROVE_WRITE_OFF = """
UPDATE payment_debts SET status = 'written_off', written_off_by = $3, written_off_at = now(),
       written_off_yen = amount_yen - repaid_yen
WHERE municipality_code = $1 AND debt_id = $2 AND status = 'open' AND write_off_requested_by IS NOT NULL
RETURNING written_off_yen
"""
REFUSE_WRITE_OFF = """
UPDATE payment_debts SET write_off_requested_by = NULL, write_off_requested_at = NULL, write_off_reason = NULL
WHERE municipality_code = $1 AND debt_id = $2 AND status = 'open' AND write_off_requested_by IS NOT NULL
"""
# Why this approver may not approve this requester's write-off (NULL: they may): migration 0014.
APPROVAL_CONFLICT = "SELECT kyufu_approval_conflict($1, $2, $3)"
# The console's list: open cases first, newest first; optionally one batch's.
RECALL_LIST = """
SELECT r.recall_id, r.payment_id, r.status, r.requested_at, r.answered_at, r.fee_yen, p.amount_yen, p.batch_id,
       pr.name AS program_name
FROM payment_recalls r
JOIN payments p ON p.municipality_code = r.municipality_code AND p.payment_id = r.payment_id
JOIN entitlements e ON e.municipality_code = p.municipality_code AND e.entitlement_id = p.entitlement_id
JOIN programs pr ON pr.municipality_code = e.municipality_code AND pr.program_id = e.program_id
WHERE r.municipality_code = $1 AND ($2::bigint IS NULL OR p.batch_id = $2)
ORDER BY r.status = 'requested' DESC, r.recall_id DESC LIMIT 200
"""
DEBT_LIST = f"""
SELECT {DEBT_COLUMNS}, p.batch_id, pr.name AS program_name,
       (SELECT count(*) FROM debt_notices n WHERE n.municipality_code = d.municipality_code
        AND n.debt_id = d.debt_id) AS notices
{DEBT_FROM}
JOIN payments p ON p.municipality_code = d.municipality_code AND p.payment_id = d.payment_id
JOIN entitlements e ON e.municipality_code = p.municipality_code AND e.entitlement_id = p.entitlement_id
JOIN programs pr ON pr.municipality_code = e.municipality_code AND pr.program_id = e.program_id
WHERE d.municipality_code = $1 AND ($2::bigint IS NULL OR p.batch_id = $2)
ORDER BY d.status = 'open' DESC, d.debt_id DESC LIMIT 200
"""
# One released batch's payments, for picking the one that went wrong (the batch page links here).
BATCH_PAYMENTS = """
SELECT p.payment_id, p.amount_yen, p.status, p.bank_code, a.receipt_no
FROM payments p
JOIN payout_batches b ON b.municipality_code = p.municipality_code AND b.batch_id = p.batch_id
LEFT JOIN applications a ON a.municipality_code = p.municipality_code AND a.application_id = p.application_id
WHERE p.municipality_code = $1 AND p.batch_id = $2 AND b.status = 'released'
ORDER BY p.payment_id LIMIT 200
"""
# Per program: what came back (組戻し: the payment's amount; 返還: the repayments), what is still owed,
# what was written off, the banks' fees, and what waits for a bank's answer.
PROGRAM_TOTALS = """
WITH recalls AS (
  SELECT e.program_id,
         count(*) FILTER (WHERE r.status = 'requested') AS recalls_pending,
         coalesce(sum(p.amount_yen) FILTER (WHERE r.status = 'requested'), 0) AS recalls_pending_yen,
         coalesce(sum(p.amount_yen) FILTER (WHERE r.status = 'returned'), 0) AS recalled_yen,
         coalesce(sum(r.fee_yen), 0) AS recall_fees_yen
  FROM payment_recalls r
  JOIN payments p ON p.municipality_code = r.municipality_code AND p.payment_id = r.payment_id
  JOIN entitlements e ON e.municipality_code = p.municipality_code AND e.entitlement_id = p.entitlement_id
  WHERE r.municipality_code = $1
  GROUP BY e.program_id
), debts AS (
  SELECT e.program_id,
         count(*) FILTER (WHERE d.status = 'open') AS debts_open,
         coalesce(sum(d.repaid_yen), 0) AS repaid_yen,
         coalesce(sum(d.amount_yen - d.repaid_yen) FILTER (WHERE d.status = 'open'), 0) AS outstanding_yen,
         coalesce(sum(d.written_off_yen), 0) AS written_off_yen
  FROM payment_debts d
  JOIN payments p ON p.municipality_code = d.municipality_code AND p.payment_id = d.payment_id
  JOIN entitlements e ON e.municipality_code = p.municipality_code AND e.entitlement_id = p.entitlement_id
  WHERE d.municipality_code = $1
  GROUP BY e.program_id
)
SELECT pr.program_id,
       coalesce(recalls.recalls_pending, 0)::bigint AS recalls_pending,
       coalesce(recalls.recalls_pending_yen, 0)::bigint AS recalls_pending_yen,
       coalesce(recalls.recalled_yen, 0)::bigint AS recalled_yen,
       coalesce(recalls.recall_fees_yen, 0)::bigint AS recall_fees_yen,
       coalesce(debts.debts_open, 0)::bigint AS debts_open,
       coalesce(debts.repaid_yen, 0)::bigint AS repaid_yen,
       coalesce(debts.outstanding_yen, 0)::bigint AS outstanding_yen,
       coalesce(debts.written_off_yen, 0)::bigint AS written_off_yen,
       (coalesce(recalls.recalled_yen, 0) + coalesce(debts.repaid_yen, 0))::bigint AS recovered_yen
FROM programs pr
LEFT JOIN recalls ON recalls.program_id = pr.program_id
LEFT JOIN debts ON debts.program_id = pr.program_id
WHERE pr.municipality_code = $1
ORDER BY pr.program_id
"""

# A refusal by the database (a race the checks below lost, or a rule they do not repeat), as staff read it.
CONSTRAINT_MESSAGES = {
    "payment_recalls_one_open": "この支払には回答待ちの組戻し依頼があります。",
    "payment_recalls_returned_once": "この支払は既に組戻しされています。",
    "payment_recalls_payment_sent": "送信済みの振込の支払（振込不能・組戻し済みでないもの）だけが組戻しの対象です。",
    "payment_recalls_not_after_debt": "この支払には返還請求があります。組戻しは依頼できません。",
    "payment_recalls_answered_once": "この組戻し依頼には回答が記録済みです。",
    "payment_debts_one_per_payment": "この支払には既に返還請求があります。",
    "payment_debts_payment_sent": "送信済みの振込の支払（振込不能・組戻し済みでないもの）だけが返還請求の対象です。",
    "payment_debts_within_payment": "返還請求額（amount_yen）は支払額以下にしてください。",
    "payment_debts_not_during_recall": "組戻しの回答待ちです。組戻し不能の回答を記録してから返還請求してください。",
    "payment_debts_settled_is_final": "この返還請求は完済または償却済みです。",
    "payment_debts_balance_not_negative": "返還額（amount_yen）が残額を超えています。",
    "payment_debts_write_off_four_eyes": "償却を申請した本人は承認できません。別の承認者が承認してください。",
    "payment_debts_write_off_independent": "あなたは償却の申請者から独立していないため、この償却は承認できません。",
    "payment_debts_repaid_when_nothing_left": "残額がないため償却できません。",
    "payments_claimed_back_was_credited": "この支払には返還請求があります（入金済みの支払です）。",
}

INDEPENDENCE_MESSAGES = {
    "same_account": CONSTRAINT_MESSAGES["payment_debts_write_off_four_eyes"],
    "created_by_drafter": "あなたのアカウントは償却の申請者が作成したため、この償却は承認できません。",
    "granted_by_drafter": "あなたの承認の権限は償却の申請者が申請または確認したため、この償却は承認できません。",
    "shared_hands": "あなたと償却の申請者は独立していません（同じ人が両方のアカウントの登録用リンクを発行したか、"
    "一方が他方のリンクを発行しています）。別の承認者が承認してください。",
}


async def _write(conn: asyncpg.Connection, query: str, *args: Any) -> Any:
    """Run one guarded statement in a savepoint and return its value; a constraint the database holds
    becomes a Conflict that says which rule (the transaction stays usable for the caller)."""
    try:
        async with conn.transaction():
            return await conn.fetchval(query, *args)
    except (asyncpg.CheckViolationError, asyncpg.UniqueViolationError) as exc:
        message = CONSTRAINT_MESSAGES.get(exc.constraint_name or "")
        if message is None:
            raise
        raise Conflict(message) from None


def _text(value: str | None, field: str, *, required: bool) -> str:
    text = (value or "").strip()
    if required and not text:
        raise InvalidInput(f"{field}を入力してください。")
    if len(text) > TEXT_MAX:
        raise InvalidInput(f"{field}は{TEXT_MAX}文字以内で入力してください。")
    return text


def _yen(value: int, field: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_YEN:
        raise InvalidInput(f"{field}は{minimum}円以上の金額（円単位の整数）で入力してください。")
    return value


def _date(value: dt.date, field: str, payment: asyncpg.Record, today: dt.date | None) -> dt.date:
    """A day something happened: not in the future, and not before the file left (nothing was sent or
    paid back before that)."""
    if value > (today or today_jst()):
        raise InvalidInput(f"{field}に未来の日付は入力できません。")
    released = payment["released_at"].astimezone(JST).date() if payment["released_at"] else None
    if released is not None and value < released:
        raise InvalidInput(f"{field}が振込データの送信日（{released}）より前です。")
    return value


async def _payment(conn: asyncpg.Connection, code: str, payment_id: int) -> asyncpg.Record:
    row = await conn.fetchrow(LOCK_PAYMENT, code, payment_id)
    if row is None:
        raise NotFound()
    return row


async def _debt(conn: asyncpg.Connection, code: str, payment_id: int) -> asyncpg.Record:
    row = await conn.fetchrow(LOCK_DEBT, code, payment_id)
    if row is None:
        raise Conflict("この支払には返還請求がありません。")
    return row


# ---- reading ---------------------------------------------------------------------------------------------


async def find_payment(conn: asyncpg.Connection, code: str, query: str) -> int | None:
    """The payment a 支払番号 or a 受付番号 names, or None."""
    q = (query or "").strip()
    if not q or len(q) > 40:
        return None
    as_id = int(q) if q.isascii() and q.isdigit() and len(q) <= 18 else None
    return await conn.fetchval(FIND_PAYMENT, code, as_id, q)


async def case(conn: asyncpg.Connection, code: str, payment_id: int) -> dict[str, Any]:
    """One payment's recovery: the payment, its recalls, its debt with notices and repayments, and what can
    be done next (the page offers only those)."""
    payment = await conn.fetchrow(PAYMENT, code, payment_id)
    if payment is None:
        raise NotFound()
    recalls = await conn.fetch(RECALLS_OF, code, payment_id)
    debt = await conn.fetchrow(DEBT_OF, code, payment_id)
    open_recall = next((r for r in recalls if r["status"] == "requested"), None)
    return {
        "payment": payment,
        "recalls": recalls,
        "open_recall": open_recall,
        "debt": debt,
        "notices": await conn.fetch(NOTICES_OF, code, debt["debt_id"]) if debt else [],
        "repayments": await conn.fetch(REPAYMENTS_OF, code, debt["debt_id"]) if debt else [],
        "can_recall": bool(payment["sent"]) and open_recall is None and debt is None,
        "can_open_debt": bool(payment["sent"]) and open_recall is None and debt is None,
    }


async def cases(conn: asyncpg.Connection, code: str, batch_id: int | None = None) -> dict[str, Any]:
    """The console's list: recalls and debts (open first), and with `batch_id` that released batch's payments."""
    return {
        "recalls": await conn.fetch(RECALL_LIST, code, batch_id),
        "debts": await conn.fetch(DEBT_LIST, code, batch_id),
        "batch_payments": await conn.fetch(BATCH_PAYMENTS, code, batch_id) if batch_id is not None else [],
    }


async def program_totals(conn: asyncpg.Connection, code: str) -> dict[int, dict[str, int]]:
    """Per program id: recovered_yen (= recalled_yen + repaid_yen), outstanding_yen (open debts' balances),
    written_off_yen, recall_fees_yen, recalls_pending(_yen) and debts_open. Figures only."""
    return {r["program_id"]: dict(r) for r in await conn.fetch(PROGRAM_TOTALS, code)}


# ---- 組戻し ----------------------------------------------------------------------------------------------


async def request_recall(conn: asyncpg.Connection, code: str, staff: Staff, payment_id: int, reason: str) -> int:
    """組戻し依頼 for a sent payment; returns the recall's id."""
    staff.require(*OPENERS)
    reason = _text(reason, "組戻しの理由（reason）", required=True)
    payment = await _payment(conn, code, payment_id)
    if not payment["sent"]:
        raise Conflict(CONSTRAINT_MESSAGES["payment_recalls_payment_sent"])
    recall_id = await _write(conn, INSERT_RECALL, code, payment_id, reason, staff.staff_id)
    await audit.append(
        conn,
        code,
        staff,
        "recall.request",
        "payment",
        payment_id,
        {"recall_id": recall_id, "amount_yen": payment["amount_yen"], "reason": reason},
    )
    return int(recall_id)


async def answer_recall(
    conn: asyncpg.Connection,
    code: str,
    staff: Staff,
    payment_id: int,
    outcome: str,
    bank_answer: str,
    fee_yen: int,
) -> int:
    """The bank's answer to the payment's open recall: 'returned' (the payment becomes 'returned') or
    'refused' (組戻し不能), with the bank's words and its fee. Returns the recall's id."""
    staff.require(*RECORDERS)
    if outcome not in OUTCOMES:
        raise InvalidInput("銀行の回答（outcome）は「組戻し済」か「組戻し不能」を選んでください。")
    bank_answer = _text(bank_answer, "銀行の回答内容（bank_answer）", required=True)
    fee_yen = _yen(fee_yen, "組戻し手数料（fee_yen）", minimum=0)
    payment = await _payment(conn, code, payment_id)
    if await conn.fetchval(OPEN_RECALL, code, payment_id) is None:
        raise Conflict("この支払に回答待ちの組戻し依頼はありません。")
    recall_id = await _write(conn, ANSWER_RECALL, code, payment_id, outcome, bank_answer, fee_yen, staff.staff_id)
    if recall_id is None:  # cannot happen under the payment's row lock; said rather than assumed
        raise Conflict("この支払に回答待ちの組戻し依頼はありません。")
    await audit.append(
        conn,
        code,
        staff,
        "recall.answer",
        "payment",
        payment_id,
        {
            "recall_id": recall_id,
            "outcome": outcome,
            "amount_yen": payment["amount_yen"],
            "fee_yen": fee_yen,
            "bank_answer": bank_answer,
        },
    )
    return int(recall_id)


# ---- 返還請求 --------------------------------------------------------------------------------------------


async def open_debt(
    conn: asyncpg.Connection, code: str, staff: Staff, payment_id: int, amount_yen: int, reason: str
) -> int:
    """返還請求 of up to the payment's amount from its recipient; returns the debt's id."""
    staff.require(*OPENERS)
    amount_yen = _yen(amount_yen, "返還請求額（amount_yen）", minimum=1)
    reason = _text(reason, "返還請求の理由（reason）", required=True)
    payment = await _payment(conn, code, payment_id)
    if not payment["sent"]:
        raise Conflict(CONSTRAINT_MESSAGES["payment_debts_payment_sent"])
    if amount_yen > payment["amount_yen"]:
        raise InvalidInput(f"返還請求額（amount_yen）は支払額（{payment['amount_yen']:,}円）以下にしてください。")
    debt_id = await _write(conn, INSERT_DEBT, code, payment_id, amount_yen, reason, staff.staff_id)
    await audit.append(
        conn,
        code,
        staff,
        "debt.open",
        "debt",
        debt_id,
        {"payment_id": payment_id, "amount_yen": amount_yen, "reason": reason},
    )
    return int(debt_id)


async def record_notice(
    conn: asyncpg.Connection,
    code: str,
    staff: Staff,
    payment_id: int,
    kind: str,
    sent_on: dt.date,
    note: str,
    *,
    today: dt.date | None = None,
) -> int:
    """A 返還請求書 ('demand') or 督促状 ('reminder') sent for the payment's open debt; returns its id."""
    staff.require(*RECORDERS)
    if kind not in NOTICE_KINDS:
        raise InvalidInput("通知の種類（kind）は「返還請求書」か「督促状」を選んでください。")
    note = _text(note, "メモ（note）", required=False)
    payment = await _payment(conn, code, payment_id)
    sent_on = _date(sent_on, "送付日（sent_on）", payment, today)
    debt = await _debt(conn, code, payment_id)
    if debt["status"] != "open":
        raise Conflict(CONSTRAINT_MESSAGES["payment_debts_settled_is_final"])
    notice_id = await _write(conn, INSERT_NOTICE, code, debt["debt_id"], kind, sent_on, note, staff.staff_id)
    await audit.append(
        conn,
        code,
        staff,
        "debt.notice",
        "debt",
        debt["debt_id"],
        {"notice_id": notice_id, "kind": kind, "sent_on": sent_on.isoformat(), "note": note},
    )
    return int(notice_id)


async def record_repayment(
    conn: asyncpg.Connection,
    code: str,
    staff: Staff,
    payment_id: int,
    amount_yen: int,
    received_on: dt.date,
    note: str,
    *,
    today: dt.date | None = None,
) -> int:
    """A repayment received for the payment's open debt (at most its balance); returns the balance left.
    The debt is 'repaid' when nothing is left (the database does both, with the repayment's row)."""
    staff.require(*RECORDERS)
    amount_yen = _yen(amount_yen, "返還額（amount_yen）", minimum=1)
    note = _text(note, "メモ（note）", required=False)
    payment = await _payment(conn, code, payment_id)
    received_on = _date(received_on, "受領日（received_on）", payment, today)
    debt = await _debt(conn, code, payment_id)
    if debt["status"] != "open":
        raise Conflict(CONSTRAINT_MESSAGES["payment_debts_settled_is_final"])
    balance = debt["amount_yen"] - debt["repaid_yen"]
    if amount_yen > balance:
        raise InvalidInput(f"返還額（amount_yen）が残額（{balance:,}円）を超えています。")
    repayment_id = await _write(
        conn, INSERT_REPAYMENT, code, debt["debt_id"], amount_yen, received_on, note, staff.staff_id
    )
    after = await fetch_always(conn, DEBT_BALANCE, code, debt["debt_id"])
    left = after["amount_yen"] - after["repaid_yen"]
    await audit.append(
        conn,
        code,
        staff,
        "debt.repayment",
        "debt",
        debt["debt_id"],
        {
            "repayment_id": repayment_id,
            "amount_yen": amount_yen,
            "received_on": received_on.isoformat(),
            "balance_yen": left,
            "status": after["status"],
            "note": note,
        },
    )
    return int(left)


async def request_write_off(conn: asyncpg.Connection, code: str, staff: Staff, payment_id: int, reason: str) -> None:
    """Ask for the open debt's balance to be written off (another staff member, an approver, decides)."""
    staff.require(*OPENERS)
    reason = _text(reason, "償却の理由（reason）", required=True)
    await _payment(conn, code, payment_id)
    debt = await _debt(conn, code, payment_id)
    if debt["status"] != "open":
        raise Conflict(CONSTRAINT_MESSAGES["payment_debts_settled_is_final"])
    if debt["write_off_requested_by"] is not None:
        raise Conflict("この返還請求には承認待ちの償却申請があります。")
    await _write(conn, REQUEST_WRITE_OFF, code, debt["debt_id"], staff.staff_id, reason)
    await audit.append(
        conn,
        code,
        staff,
        "debt.write_off_request",
        "debt",
        debt["debt_id"],
        {"balance_yen": debt["amount_yen"] - debt["repaid_yen"], "reason": reason},
    )


async def write_off_problem(conn: asyncpg.Connection, code: str, requested_by: int, approver: Staff) -> str:
    """Why `approver` may not approve a write-off `requested_by` asked for, in Japanese ("" if they may)."""
    reason = await conn.fetchval(APPROVAL_CONFLICT, code, requested_by, approver.staff_id)
    return INDEPENDENCE_MESSAGES.get(reason, "承認できません。") if reason else ""


async def approve_write_off(conn: asyncpg.Connection, code: str, staff: Staff, payment_id: int) -> int:
    """償却の承認: the debt's balance is written off; returns the yen written off. Not by the requester or
    anyone not independent of them (payment_debts_write_off_four_eyes, payment_debts_write_off_independent)."""
    staff.require("approver")
    await _payment(conn, code, payment_id)
    debt = await _debt(conn, code, payment_id)
    if debt["status"] != "open":
        raise Conflict(CONSTRAINT_MESSAGES["payment_debts_settled_is_final"])
    if debt["write_off_requested_by"] is None:
        raise Conflict("この返還請求に償却の申請はありません。")
    problem = await write_off_problem(conn, code, debt["write_off_requested_by"], staff)
    if problem:
        raise Forbidden(problem)
    written_off = await _write(conn, APPROVE_WRITE_OFF, code, debt["debt_id"], staff.staff_id)
    await audit.append(
        conn,
        code,
        staff,
        "debt.write_off_approve",
        "debt",
        debt["debt_id"],
        {"written_off_yen": written_off, "requested_by": debt["write_off_requested_by"]},
    )
    return int(written_off)


async def refuse_write_off(conn: asyncpg.Connection, code: str, staff: Staff, payment_id: int, comment: str) -> None:
    """Refuse (an approver) or withdraw (its requester) a write-off request; the debt stays open."""
    staff.require("approver", *OPENERS)
    comment = _text(comment, "理由（comment）", required=False)
    await _payment(conn, code, payment_id)
    debt = await _debt(conn, code, payment_id)
    if debt["status"] != "open" or debt["write_off_requested_by"] is None:
        raise Conflict("この返還請求に承認待ちの償却の申請はありません。")
    if not staff.has("approver") and debt["write_off_requested_by"] != staff.staff_id:
        raise Forbidden("償却の申請を取り下げられるのは申請した本人か承認者です。")
    await _write(conn, REFUSE_WRITE_OFF, code, debt["debt_id"])
    await audit.append(
        conn,
        code,
        staff,
        "debt.write_off_refuse",
        "debt",
        debt["debt_id"],
        {"requested_by": debt["write_off_requested_by"], "comment": comment},
    )
