"""支給状況 (/staff/progress): per program, charts of applications received, verified, waiting for 審査,
drafted, paid and returned over time (Japan-time days), counts and yen, with a table of the same figures,
and the same as open data (/staff/progress.csv). Figures only, no personal data, so every staff member
with a confirmed role may see them, as on the dashboard; the figures are app/staff/progress.py's, as last
counted (the page says when; the worker counts again when a view finds the count a minute old)."""

from __future__ import annotations

from starlette.responses import Response

from app.staff import progress
from app.staff.web.charts import Line, legend_swatch, line_chart
from app.staff.web.common import jst, page
from app.web.templates import render
from payouts.bankdays import today_jst


def _charts(p: progress.ProgramProgress) -> dict:
    days = [d.day for d in p.days]
    last = p.days[-1]  # (only called for a program with days)
    charts = {}
    for unit, attr in (("件", "n"), ("円", "yen")):
        lines = [Line(s, progress.LABELS[s], [getattr(d.total[s], attr) for d in p.days]) for s in progress.SERIES]
        fmt = (lambda v: f"{v:,}円") if unit == "円" else (lambda v: f"{v:,}件")
        desc = (
            f"{days[0].isoformat()}から{days[-1].isoformat()}までの日別の累計（審査待ちはその日の終わりの件数）。"
            f"{last.day.isoformat()}時点: "
            + "、".join(f"{progress.LABELS[s]} {fmt(getattr(last.total[s], attr))}" for s in progress.SERIES)
            + "。"
        )
        kind = "件数" if unit == "件" else "金額"
        charts[unit] = line_chart(
            f"chart-{p.program_id}-{'count' if unit == '件' else 'yen'}",
            f"{p.name}の{kind}の推移",
            desc,
            days,
            lines,
            unit,
        )
    return charts


@page()
async def progress_page(request, conn, staff, ctx):
    code = staff.municipality_code
    counted = await progress.current(conn, request.app.state.redis, code)
    programs = await progress.program_progress(conn, code, counted=counted)
    return render(
        request,
        "staff_progress.html",
        ctx
        | {
            "title": "支給状況",
            "programs": [{"p": p, "charts": _charts(p) if p.days else None} for p in programs],
            "series": progress.SERIES,
            "flows": progress.FLOWS,
            "labels": progress.LABELS,
            "swatch": legend_swatch,
            "counted_at": jst(counted.at, seconds=True),
            "fresh_s": progress.FRESH_S,
        },
    )


@page()
async def progress_csv(request, conn, staff, ctx):
    code = staff.municipality_code
    counted = await progress.current(conn, request.app.state.redis, code)
    body = progress.to_csv(await progress.program_progress(conn, code, counted=counted))
    name = f"shikyu-jokyo-{code}-{today_jst().isoformat()}.csv"
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{name}"', "cache-control": "no-store"},
    )
