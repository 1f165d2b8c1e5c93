"""The dashboard (/staff/): per program what is owed and paid, the 審査 queue, the latest batches."""

from __future__ import annotations

from app.registry import dv
from app.staff import accounts, overview
from app.staff.web.common import jst, page
from app.web.templates import render
from payouts import batches


@page()
async def dashboard(request, conn, staff, ctx):
    code = staff.municipality_code
    rows, counted_at = await overview.program_overview(conn, code, request.app.state.redis)
    queue_count = await overview.queue_count(conn, code)
    notice = await accounts.signin_notice(conn, code, staff.staff_id)
    return render(
        request,
        "staff_dashboard.html",
        ctx
        | {
            "title": "ダッシュボード",
            "programs": rows,
            "counted_at": jst(counted_at, seconds=True),
            "queue_count": queue_count,
            # DV 申出 naming this municipality's residents, not answered yet: their households' payments wait.
            "dv_incoming": await dv.open_incoming(conn, code),
            "batches": (await batches.list_batches(conn, code))[:10],
            "signin_notice": notice
            and {"failures": notice["notice_failures"], "last": jst(notice["notice_last_failed_at"])},
        },
    )
