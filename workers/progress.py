"""Job `refresh_progress` (app/staff/progress.py): count a municipality's 支給状況 (and the console home's
per-program figures, app/staff/overview.py) again and keep the counts for the console's views, which ask
for it when theirs is a minute old. It keeps no result, so arq frees the job id (one refresh per
municipality at a time) as soon as it ends."""

from __future__ import annotations

from typing import Any

from arq.worker import func

from app.staff import overview, progress
from app.tenancy.transaction import tenant_transaction


async def refresh_progress(ctx: dict[str, Any], code: str) -> str:
    async with tenant_transaction(ctx["pool"], code, readonly=True) as conn:
        counted = await progress.refresh(conn, ctx["redis"], code)
    # The console home's per-program counts (app/staff/overview.py), kept the same way for large municipalities.
    async with tenant_transaction(ctx["pool"], code, readonly=True) as conn:
        await overview.refresh(conn, ctx["redis"], code)
    return f"counted {len(counted.rows)} rows"


# 60 s, not more: arq keeps a killed worker's in-progress jobs locked for the LONGEST function timeout + 10 s
# (workers/verification.py), so a long timeout here would delay every release after a crash. Both counts
# took 14 s together at a million applications on a loaded machine (devtools/progress_bench.py).
JOBS: list = [func(refresh_progress, name=progress.REFRESH_JOB, keep_result=0, timeout=60)]
