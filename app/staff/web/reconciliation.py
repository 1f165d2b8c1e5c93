"""振込不能の対応 (/staff/reconciliation, /staff/payments/...): returned payments, recontact, reissue."""

from __future__ import annotations

from app.staff.web.common import cipher, int_param, page, redirect
from app.web.templates import render
from payouts import reconcile


@page("reviewer", "drafter")
async def reconciliation_page(request, conn, staff, ctx):
    return render(
        request,
        "staff_reconciliation.html",
        ctx
        | {
            "title": "振込不能の対応",
            "rows": await reconcile.returned(conn, staff.municipality_code),
        },
    )


@page("reviewer", "drafter", back=reconciliation_page)
async def payment_recontact(request, conn, staff, ctx):
    payment_id = int_param(request, "payment_id")
    await reconcile.mark_recontact(conn, staff.municipality_code, staff, payment_id, str(ctx["form"].get("note", "")))
    return redirect("/staff/reconciliation", flash="payment.recontact")


@page("drafter", back=reconciliation_page)
async def payment_reissue(request, conn, staff, ctx):
    payment_id = int_param(request, "payment_id")
    code = staff.municipality_code
    account = reconcile.corrected_account(dict(ctx["form"]))
    await reconcile.reissue(conn, await cipher(request, conn, code), code, staff, payment_id, account)
    return redirect("/staff/reconciliation", flash="payment.reissue")
