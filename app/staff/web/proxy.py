"""代理申請 (/staff/proxy): staff key the application of a proxy who came to the counter for the 世帯主
(app/intake/proxy.py), and an admin says per program whether a proxy may be paid into their own account.

The page lists recent proxy applications by receipt number and relationship only; the proxy's name is
shown on the application's review screen, an audited personal-data view.
"""

from __future__ import annotations

from urllib.parse import quote

from app.intake import proxy
from app.staff.web.common import cipher, page, redirect
from app.web.templates import env, render

env.filters["proxy_relationship"] = lambda v: proxy.RELATIONSHIPS.get(v, v)
env.filters["proxy_evidence"] = lambda v: proxy.EVIDENCE.get(v, v)


@page("reviewer", "admin")
async def proxy_page(request, conn, staff, ctx):
    code = staff.municipality_code
    return render(
        request,
        "staff_proxy.html",
        ctx
        | {
            "title": "代理申請の受付",
            "programs": await proxy.programs(conn, code),
            "recent": await proxy.recent(conn, code),
            "relationships": proxy.RELATIONSHIPS,
            "evidence": proxy.EVIDENCE,
            "required": proxy.REQUIRED,
            "payees": proxy.PAYEES,
            "receipt": request.query_params.get("receipt", "")[:20],
            "duplicate": request.query_params.get("duplicate", "")[:20],
            "kept_evidence": set(ctx["form"].getlist("evidence")) if ctx["form"] is not None else set(),
        },
    )


@page("reviewer", "admin", back=proxy_page)
async def proxy_submit(request, conn, staff, ctx):
    form = ctx["form"]
    data = dict(form) | {"evidence": form.getlist("evidence")}
    parsed = proxy.parse(data)
    account = proxy.account(data)
    code = staff.municipality_code
    done = await proxy.record(
        conn, request.app.state.settings, await cipher(request, conn, code), code, staff, parsed, account
    )
    receipt = done.outcome.receipt_no or ""
    if done.outcome.kind == "duplicate":
        return redirect(f"/staff/proxy?duplicate={quote(receipt)}#result")
    return redirect(f"/staff/proxy?receipt={quote(receipt)}#result", flash="proxy.record")


@page("admin", back=proxy_page)
async def proxy_setting(request, conn, staff, ctx):
    form = ctx["form"]
    raw = str(form.get("program_id", ""))
    program_id = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 18 else 0
    await proxy.set_account_allowed(conn, staff.municipality_code, staff, program_id, form.get("allowed") == "1")
    return redirect("/staff/proxy#settings", flash="proxy.setting")
