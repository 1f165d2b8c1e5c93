"""組戻し・返還 (/staff/recovery, /staff/payments/<id>/recovery and its POSTs): the cases, one payment's
case, and each step of it. The rules, roles and audit entries are payouts/recovery.py's."""

from __future__ import annotations

from app.staff.errors import InvalidInput, NotFound
from app.staff.web.common import form_date, int_param, page, redirect
from app.web.templates import render
from payouts import recovery


def _yen(value: object, field: str) -> int:
    """Whole yen as staff type it: half-width digits, thousands commas allowed."""
    text = str(value or "").strip().replace(",", "")
    if not (text.isascii() and text.isdigit()) or len(text) > 13:
        raise InvalidInput(f"{field}は半角数字（円単位）で入力してください。")
    return int(text)


def _text(form, name: str) -> str:
    return str(form.get(name, "") or "")


def _back(payment_id: int, flash: str | None = None):
    return redirect(f"/staff/payments/{payment_id}/recovery", flash=flash)


@page(*recovery.VIEWERS)
async def recovery_list(request, conn, staff, ctx):
    code = staff.municipality_code
    q = request.query_params.get("q")
    if q is not None:
        found = await recovery.find_payment(conn, code, q)
        if found is not None:
            return _back(found)
    raw_batch = request.query_params.get("batch")
    batch_id = None
    if raw_batch:
        if not (raw_batch.isascii() and raw_batch.isdigit()) or len(raw_batch) > 18:
            raise NotFound()
        batch_id = int(raw_batch)
    return render(
        request,
        "staff_recovery_list.html",
        ctx
        | {
            "title": "組戻し・返還" + (f"（起案 #{batch_id}）" if batch_id is not None else ""),
            "q": q,
            "not_found": bool(q and q.strip()),
            "batch_id": batch_id,
            "cases": await recovery.cases(conn, code, batch_id),
            "recall_status": recovery.RECALL_STATUS,
            "debt_status": recovery.DEBT_STATUS,
        },
    )


@page(*recovery.VIEWERS)
async def recovery_case(request, conn, staff, ctx):
    payment_id = int_param(request, "payment_id")
    code = staff.municipality_code
    case = await recovery.case(conn, code, payment_id)
    debt = case["debt"]
    problem = ""
    if debt and debt["write_off_requested_by"] is not None and staff.has("approver"):
        problem = await recovery.write_off_problem(conn, code, debt["write_off_requested_by"], staff)
    return render(
        request,
        "staff_recovery_case.html",
        ctx
        | case
        | {
            "title": f"組戻し・返還: 支払番号 {payment_id}",
            "write_off_problem": problem,
            "recall_status": recovery.RECALL_STATUS,
            "debt_status": recovery.DEBT_STATUS,
            "outcomes": recovery.OUTCOMES,
            "notice_kinds": recovery.NOTICE_KINDS,
        },
    )


@page(*recovery.OPENERS, back=recovery_case)
async def recall_request(request, conn, staff, ctx):
    payment_id = int_param(request, "payment_id")
    await recovery.request_recall(conn, staff.municipality_code, staff, payment_id, _text(ctx["form"], "reason"))
    return _back(payment_id, "recall.request")


@page(*recovery.RECORDERS, back=recovery_case)
async def recall_answer(request, conn, staff, ctx):
    payment_id = int_param(request, "payment_id")
    form = ctx["form"]
    await recovery.answer_recall(
        conn,
        staff.municipality_code,
        staff,
        payment_id,
        _text(form, "outcome"),
        _text(form, "bank_answer"),
        _yen(form.get("fee_yen"), "組戻し手数料（fee_yen）"),
    )
    return _back(payment_id, "recall.answer")


@page(*recovery.OPENERS, back=recovery_case)
async def debt_open(request, conn, staff, ctx):
    payment_id = int_param(request, "payment_id")
    form = ctx["form"]
    await recovery.open_debt(
        conn,
        staff.municipality_code,
        staff,
        payment_id,
        _yen(form.get("amount_yen"), "返還請求額（amount_yen）"),
        _text(form, "reason"),
    )
    return _back(payment_id, "debt.open")


@page(*recovery.RECORDERS, back=recovery_case)
async def debt_notice(request, conn, staff, ctx):
    payment_id = int_param(request, "payment_id")
    form = ctx["form"]
    await recovery.record_notice(
        conn,
        staff.municipality_code,
        staff,
        payment_id,
        _text(form, "kind"),
        form_date(form.get("sent_on"), "送付日（sent_on）"),
        _text(form, "note"),
    )
    return _back(payment_id, "debt.notice")


@page(*recovery.RECORDERS, back=recovery_case)
async def debt_repayment(request, conn, staff, ctx):
    payment_id = int_param(request, "payment_id")
    form = ctx["form"]
    await recovery.record_repayment(
        conn,
        staff.municipality_code,
        staff,
        payment_id,
        _yen(form.get("amount_yen"), "返還額（amount_yen）"),
        form_date(form.get("received_on"), "受領日（received_on）"),
        _text(form, "note"),
    )
    return _back(payment_id, "debt.repayment")


@page(*recovery.OPENERS, back=recovery_case)
async def write_off_request(request, conn, staff, ctx):
    payment_id = int_param(request, "payment_id")
    await recovery.request_write_off(conn, staff.municipality_code, staff, payment_id, _text(ctx["form"], "reason"))
    return _back(payment_id, "debt.write_off_request")


@page("approver", back=recovery_case)
async def write_off_approve(request, conn, staff, ctx):
    payment_id = int_param(request, "payment_id")
    await recovery.approve_write_off(conn, staff.municipality_code, staff, payment_id)
    return _back(payment_id, "debt.write_off_approve")


@page("approver", *recovery.OPENERS, back=recovery_case)
async def write_off_refuse(request, conn, staff, ctx):
    payment_id = int_param(request, "payment_id")
    await recovery.refuse_write_off(conn, staff.municipality_code, staff, payment_id, _text(ctx["form"], "comment"))
    return _back(payment_id, "debt.write_off_refuse")
