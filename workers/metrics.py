"""Business gauges for /metrics: applications by status and the outbox backlog, per municipality.

Computed by the worker every 30 s rather than at scrape time: with RLS, an aggregate is one scoped query
per municipality, which is fine on a schedule and too slow to run on every scrape.
"""

from __future__ import annotations

from typing import Any

from arq import cron

from app.db import fetch_always
from app.metrics import APPLICATIONS, JOBS as JOB_OUTCOMES, OUTBOX_BACKLOG, OUTBOX_OLDEST, QUEUE_DEPTH
from app.tenancy.municipalities import municipality_codes
from app.tenancy.transaction import platform_transaction, tenant_transaction

COUNT_APPLICATIONS = "SELECT status, count(*) AS n FROM applications WHERE municipality_code = $1 GROUP BY status"
BACKLOG = """
SELECT count(*) AS pending, coalesce(extract(epoch FROM now() - min(created_at)), 0) AS oldest_s
FROM outbox WHERE municipality_code = $1 AND done_at IS NULL
"""


async def collect_metrics(ctx: dict[str, Any]) -> None:
    pool = ctx["pool"]
    async with platform_transaction(pool) as conn:
        codes = await municipality_codes(conn)
    for code in codes:
        async with tenant_transaction(pool, code, readonly=True) as conn:
            for row in await conn.fetch(COUNT_APPLICATIONS, code):
                APPLICATIONS.labels(code, row["status"]).set(row["n"])
            backlog = await fetch_always(conn, BACKLOG, code)
        OUTBOX_BACKLOG.labels(code).set(backlog["pending"])
        OUTBOX_OLDEST.labels(code).set(float(backlog["oldest_s"]))
    QUEUE_DEPTH.set(await ctx["redis"].zcard("arq:queue"))
    JOB_OUTCOMES.labels("collect_metrics", "ok").inc()


JOBS: list = []  # no queued jobs here, only the cron below
CRON_JOBS = [cron(collect_metrics, second={0, 30}, unique=True, timeout=60)]
