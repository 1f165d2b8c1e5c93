"""振込起案 and approval (/staff/programs/<id>/draft, /staff/batches/...): drafting a batch, the list, one
batch and its actions (approve, reject, resubmit, cancel, release); the work itself runs in the worker."""

from __future__ import annotations

from app.staff import review
from app.staff.errors import InvalidInput
from app.staff.web.common import cipher, confirm, form_date, int_param, page, redirect
from app.web.templates import render
from payouts import batches, drafting, guardrails
from payouts.bankdays import earliest_transfer_date, today_jst


def _parse_int(value: object, field: str) -> int:
    text = str(value or "").strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 15:
        raise InvalidInput(f"{field}は半角数字で入力してください。")
    return int(text)


@page("drafter")
async def draft_page(request, conn, staff, ctx):
    program_id = int_param(request, "program_id")
    code = staff.municipality_code
    program = await batches.program(conn, code, program_id)
    preview = await batches.draft_preview(conn, code, program_id)
    lead = await batches.lead_days(conn, code)
    return render(
        request,
        "staff_draft.html",
        ctx
        | {
            "title": f"振込起案: {program['name']}",
            "program": program,
            "preview": preview,
            "lead_days": lead,
            "earliest": earliest_transfer_date(today_jst(), lead).isoformat(),
        },
    )


@page("drafter", back=draft_page)
async def draft_submit(request, conn, staff, ctx):
    program_id = int_param(request, "program_id")
    code = staff.municipality_code
    await batches.program(conn, code, program_id)
    form = ctx["form"]
    batch_id = await drafting.draft_batch(
        conn,
        code,
        staff,
        program_id,
        form_date(form.get("transfer_date"), "振込指定日"),
        expected_count=_parse_int(form.get("expected_count"), "件数"),
        expected_total_yen=_parse_int(form.get("expected_total_yen"), "合計金額"),
    )
    return redirect(f"/staff/batches/{batch_id}", flash="batch.draft")


@page()
async def batch_list(request, conn, staff, ctx):
    code = staff.municipality_code
    return render(
        request,
        "staff_batches.html",
        ctx
        | {
            "title": "振込起案・承認",
            "batches": await batches.list_batches(conn, code),
            "programs": await batches.programs(conn, code),
        },
    )


@page()
async def batch_page(request, conn, staff, ctx):
    batch_id = int_param(request, "batch_id")
    code = staff.municipality_code
    batch = await batches.get_batch(conn, code, batch_id)
    view = None
    if staff.has("approver") and batch["status"] != "preparing":  # nothing to approve until it is a draft
        view = await batches.approval_view(
            conn, request.app.state.settings, await cipher(request, conn, code), code, staff, batch_id
        )
    return render(
        request,
        "staff_batch.html",
        ctx
        | {
            "title": f"起案 #{batch_id}",
            "batch": batch,
            "view": view,
            "by_bank": view["by_bank"] if view else await batches.by_bank(conn, code, batch_id),
            "reason_labels": review.REASON_LABELS,
        },
    )


def batch_action(action: str, *roles: str):
    @page(*roles, back=batch_page)
    async def endpoint(request, conn, staff, ctx):
        batch_id = int_param(request, "batch_id")
        code, form, settings = staff.municipality_code, ctx["form"], request.app.state.settings
        if action == "approve":
            await batches.approve_batch(conn, settings, code, staff, batch_id, str(form.get("sha256", "")))
        elif action == "reject":
            await batches.reject_batch(conn, settings, code, staff, batch_id, str(form.get("comment", "")))
        elif action == "resubmit":
            await batches.resubmit_batch(conn, code, staff, batch_id)
        elif action == "cancel":
            await batches.get_batch(conn, code, batch_id)  # another municipality's id: 404, not a question
            asked = confirm(
                request,
                ctx,
                question=f"起案 #{batch_id} を取り消しますか。",
                consequence="取り消した起案は元に戻せません。支払は次の起案の対象に戻ります。",
                button="起案を取り消す",
                back_url=f"/staff/batches/{batch_id}",
            )
            if asked is not None:
                return asked
            await batches.cancel_batch(conn, code, staff, batch_id)
        elif action == "release":
            await batches.release_batch(conn, settings, code, staff, batch_id)
        return redirect(f"/staff/batches/{batch_id}", flash=f"batch.{action}")

    endpoint.__name__ = f"batch_{action}"
    return endpoint


@page("approver", "reviewer", back=batch_page)
async def account_override(request, conn, staff, ctx):
    """Accept an account that receives more payments in this draft than the program allows, with a reason."""
    batch_id = int_param(request, "batch_id")
    account = str(request.path_params["account"])
    await guardrails.override_account(
        conn, staff.municipality_code, staff, batch_id, account, str(ctx["form"].get("reason", ""))
    )
    return redirect(f"/staff/batches/{batch_id}#guardrails", flash="batch.account_override")
