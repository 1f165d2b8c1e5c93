"""支給保留・支給停止 (/staff/holds): the list of holds, one hold with its history and decisions, and the
actions: place a hold from an application's page, stop, release, and decide a hold the registry
screening placed (payouts/holds.py has the rules; the database enforces them, migration 0025).
"""

from __future__ import annotations

from app.errors import InvalidInput
from app.registry import screening
from app.staff import review
from app.staff.web.common import int_param, page, redirect
from app.staff.web.review import application_page
from app.web.templates import render
from payouts import holds


def _labels() -> dict:
    return {
        "hold_reasons": holds.REASONS,
        "hold_kinds": holds.KINDS,
        "hold_decisions": holds.DECISIONS,
        "hold_sources": holds.SOURCES,
        "hold_findings": holds.FINDINGS,
        "hold_suggestions": holds.SUGGESTIONS,
    }


@page("reviewer", "drafter", "admin")
async def hold_list(request, conn, staff, ctx):
    code = staff.municipality_code
    selected = request.query_params.get("hold", "")
    detail = None
    if selected.isascii() and selected.isdigit() and len(selected) <= 18:
        detail = await holds.get_hold(conn, code, int(selected))
    return render(
        request,
        "staff_holds.html",
        ctx
        | _labels()
        | {
            "title": "支給保留・支給停止",
            "active": await holds.active_holds(conn, code),
            "released": await holds.recently_released(conn, code),
            "detail": detail,
            "rules": await screening.program_rules(conn, code) if staff.has("admin") else [],
            "rule_labels": screening.RULES,
        },
    )


@page("reviewer", "admin", back=application_page)
async def hold_place(request, conn, staff, ctx):
    """From an application's page: hold its entitlement, and so any payment of it."""
    form = ctx["form"]
    code = staff.municipality_code
    app = await review.summary(conn, code, int_param(request, "application_id"))
    hold_id = await holds.place_hold(
        conn,
        code,
        staff,
        app["entitlement_id"],
        str(form.get("reason", "")),
        str(form.get("note", "")),
        kind=str(form.get("kind", "hold")),
    )
    return redirect(f"/staff/holds?hold={hold_id}#hold", flash="hold.place")


@page("reviewer", back=hold_list, keep_query=("hold",))
async def hold_stop(request, conn, staff, ctx):
    hold_id = int_param(request, "hold_id")
    await holds.stop_hold(conn, staff.municipality_code, staff, hold_id, str(ctx["form"].get("note", "")))
    return redirect(f"/staff/holds?hold={hold_id}#hold", flash="hold.stop")


@page("reviewer", back=hold_list, keep_query=("hold",))
async def hold_release(request, conn, staff, ctx):
    hold_id = int_param(request, "hold_id")
    await holds.release_hold(conn, staff.municipality_code, staff, hold_id, str(ctx["form"].get("note", "")))
    return redirect(f"/staff/holds?hold={hold_id}#hold", flash="hold.release")


@page("reviewer", back=hold_list, keep_query=("hold",))
async def hold_decide(request, conn, staff, ctx):
    """The decision on a hold the registry screening placed: release, stop, or the new 世帯主."""
    hold_id = int_param(request, "hold_id")
    form = ctx["form"]
    await holds.decide(
        conn, staff.municipality_code, staff, hold_id, str(form.get("decision", "")), str(form.get("note", ""))
    )
    return redirect(f"/staff/holds?hold={hold_id}#hold", flash="hold.decide")


@page("admin", back=hold_list)
async def hold_rule(request, conn, staff, ctx):
    """An admin sets a program's rule for a payee who died after 基準日 (what the screening suggests)."""
    form = ctx["form"]
    program = str(form.get("program", "")).strip()
    if not (program.isascii() and program.isdigit()) or len(program) > 18:
        raise InvalidInput("給付（program）を選んでください。")
    await screening.set_rule(conn, staff.municipality_code, staff, int(program), str(form.get("rule", "")))
    return redirect("/staff/holds#rules", flash="hold.rule")
