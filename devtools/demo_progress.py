"""The demo's 支給状況 (/staff/progress): where to look and what it shows now. It seeds nothing of its own:
the figures are the demo municipality's real applications, batches and returns, so they grow as a person
applies on the resident site, reviews, drafts and releases, or runs `kyufu demo e2e --municipality ...`."""

from __future__ import annotations

import asyncpg

from app.staff import progress


async def progress_lines(conn: asyncpg.Connection, code: str) -> list[str]:
    """Printable lines (inside the municipality's tenant transaction)."""
    lines = ["console menu 支給状況 (/staff/progress, any login; the same as CSV at /staff/progress.csv), now:"]
    for p in await progress.program_progress(conn, code):
        last = p.latest
        if last is None:
            lines.append(f"  {p.name}: nothing yet (apply on the resident site, or run kyufu demo e2e)")
            continue
        figures = "、".join(f"{progress.LABELS[s]} {last.total[s].n:,}件" for s in progress.SERIES)
        lines.append(f"  {p.name}: {figures}")
    return lines
