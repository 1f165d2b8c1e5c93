"""口座変更の届出（紙） (/staff/applications/{id}/account): a clerk keys in a paper account change
(app/staff/account_change.py holds the rule)."""

from __future__ import annotations

from app.staff import account_change, review
from app.staff.web.common import cipher, int_param, page, redirect
from app.web.templates import render


@page("reviewer")
async def account_change_page(request, conn, staff, ctx):
    app_id = int_param(request, "application_id")
    app = await review.summary(conn, staff.municipality_code, app_id)
    return render(
        request, "staff_account_change.html", ctx | {"title": f"口座変更の届出（紙） {app['receipt_no']}", "app": app}
    )


@page("reviewer", back=account_change_page)
async def account_change_submit(request, conn, staff, ctx):
    app_id = int_param(request, "application_id")
    code = staff.municipality_code
    await account_change.record_paper_change(conn, await cipher(request, conn, code), code, staff, app_id, ctx["form"])
    return redirect(f"/staff/applications/{app_id}", flash="application.account_change")
