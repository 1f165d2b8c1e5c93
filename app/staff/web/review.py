"""審査 (/staff/review, /staff/applications/...): the queue, search by receipt number, one application and
its decision."""

from __future__ import annotations

from app.staff import review
from app.staff.web.common import cipher, int_param, page, redirect, show_again
from app.web.templates import render
from payouts import holds

NO_SUCH_RECEIPT = "その受付番号の申請は見つかりません。番号を確かめてください。"


@page("reviewer", "admin")
async def review_queue(request, conn, staff, ctx):
    rows, total = await review.queue(conn, staff.municipality_code)
    return render(
        request,
        "staff_review.html",
        ctx
        | {
            "title": "審査",
            "rows": rows,
            "total": total,
            "reason_labels": review.REASON_LABELS,
        },
    )


@page("reviewer", "admin", back=review_queue)
async def review_search(request, conn, staff, ctx):
    app_id = await review.find(conn, staff.municipality_code, staff, str(ctx["form"].get("receipt_no", "")))
    if app_id is None:
        # Answered in this transaction, not by raising NotFound: the search's audit entry must commit.
        return await show_again(review_queue, request, conn, staff, ctx, NO_SUCH_RECEIPT, 404)
    return redirect(f"/staff/applications/{app_id}")


@page("reviewer", "admin")
async def application_page(request, conn, staff, ctx):
    app_id = int_param(request, "application_id")
    code = staff.municipality_code
    purpose = request.query_params.get("purpose")
    view = None
    if purpose:
        view = await review.personal_view(conn, await cipher(request, conn, code), code, staff, app_id, purpose)
    app = view["app"] if view else await review.summary(conn, code, app_id)
    return render(
        request,
        "staff_application.html",
        ctx
        | {
            "title": f"申請 {app['receipt_no']}",
            "app": app,
            "view": view,
            "purposes": review.PURPOSES,
            "reason_labels": review.REASON_LABELS,
            "holds": await holds.entitlement_holds(conn, code, app["entitlement_id"]),
            "hold_reasons": holds.REASONS,
            "hold_kinds": holds.KINDS,
            "hold_decisions": holds.DECISIONS,
        },
    )


# The page shown again after a refused decision opens the personal data for the purpose it was open for
# (recorded again: it is shown again).
@page("reviewer", back=application_page, keep_query=("purpose",))
async def application_decision(request, conn, staff, ctx):
    app_id = int_param(request, "application_id")
    form = ctx["form"]
    code = staff.municipality_code
    decision = str(form.get("decision", ""))
    await review.decide(
        conn, await cipher(request, conn, code), code, staff, app_id, decision, str(form.get("comment", ""))
    )
    return redirect("/staff/review", flash=f"review.{decision}")
