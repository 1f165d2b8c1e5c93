"""The console's dashboard: per program, what is entitled, applied, decided, paid and still owed, what
組戻し and 返還 recovered and what is still to be recovered (payouts/recovery.py), and the 審査 queue's
length. Figures only; no personal data.

The per-program counts (DASHBOARD) read every application and payment of the municipality: 9.8 s at a
million applications (devtools/progress_bench.py, measured with the machine loaded). So a municipality
whose last count was large (LIVE_BELOW applications or more) is shown its last count, kept in Valkey with
its time, and the worker counts again (job refresh_progress, which keeps 支給状況's count too) when a view
finds it older than progress.FRESH_S; a small municipality, or one whose count is not kept, is counted live. The
recovery totals and the queue's length are small queries and always live.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

import asyncpg

from app.staff import progress, review
from payouts import recovery

DASHBOARD = """
SELECT pr.program_id, pr.name, pr.payment_mode,
  (SELECT count(*) FROM entitlements e
    WHERE e.municipality_code = pr.municipality_code AND e.program_id = pr.program_id) AS entitlements,
  (SELECT coalesce(sum(e.amount_yen), 0)::bigint FROM entitlements e
    WHERE e.municipality_code = pr.municipality_code AND e.program_id = pr.program_id) AS entitled_yen,
  (SELECT coalesce(jsonb_object_agg(status, n), '{}')::text FROM (
     SELECT a.status, count(*) AS n FROM applications a JOIN entitlements e USING (municipality_code, entitlement_id)
     WHERE a.municipality_code = pr.municipality_code AND e.program_id = pr.program_id
     GROUP BY a.status) s) AS by_status,
  (SELECT coalesce(sum(e.amount_yen), 0)::bigint
    FROM applications a JOIN entitlements e USING (municipality_code, entitlement_id)
    WHERE a.municipality_code = pr.municipality_code AND e.program_id = pr.program_id
      AND a.status IN ('verified', 'approved')
      AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.municipality_code = a.municipality_code
                      AND p.entitlement_id = a.entitlement_id AND (p.status = 'paid' OR (p.status = 'in_batch'
                      AND EXISTS (SELECT 1 FROM payout_batches b WHERE b.municipality_code = p.municipality_code
                                  AND b.batch_id = p.batch_id AND b.status = 'released'))))) AS verified_unpaid_yen,
  (SELECT coalesce(sum(p.amount_yen), 0)::bigint
    FROM payments p JOIN entitlements e USING (municipality_code, entitlement_id)
    WHERE p.municipality_code = pr.municipality_code AND e.program_id = pr.program_id AND p.status = 'paid') AS paid_yen
FROM programs pr WHERE pr.municipality_code = $1 ORDER BY pr.program_id
"""


log = logging.getLogger("kyufu.staff")

CACHE_KEY = "kyufu:overview:{}"
CACHE_TTL_S = 7 * 24 * 3600
LIVE_BELOW = 50_000  # applications: below this the live count takes well under 100 ms
NOW = "SELECT clock_timestamp()"


async def count(conn: asyncpg.Connection, code: str) -> dict[str, Any]:
    """DASHBOARD now: {"at": when the statement started (ISO), "rows": [...], "applications": n}."""
    at = await conn.fetchval(NOW)
    rows = [dict(r) | {"by_status": json.loads(r["by_status"])} for r in await conn.fetch(DASHBOARD, code)]
    return {"at": at.isoformat(), "rows": rows, "applications": sum(sum(r["by_status"].values()) for r in rows)}


async def store(redis: Any, code: str, counted: dict[str, Any]) -> None:
    await redis.set(CACHE_KEY.format(code), json.dumps(counted, separators=(",", ":")), ex=CACHE_TTL_S)


async def refresh(conn: asyncpg.Connection, redis: Any, code: str) -> dict[str, Any]:
    """Count and keep the count (the worker's job refresh_progress)."""
    counted = await count(conn, code)
    await store(redis, code, counted)
    return counted


async def _counted(conn: asyncpg.Connection, redis: Any, code: str, now: dt.datetime | None) -> dict[str, Any]:
    try:
        raw = await redis.get(CACHE_KEY.format(code)) if redis is not None else None
    except Exception as exc:  # Valkey unreachable: count while the person waits
        log.warning("overview of %s not read from Redis (%s)", code, type(exc).__name__)
        raw = None
    kept = json.loads(raw) if raw else None
    if kept is None or kept["applications"] < LIVE_BELOW:
        counted = await count(conn, code)
        if redis is not None:
            try:
                await store(redis, code, counted)
            except Exception as exc:  # counted, but not kept: the next view counts again
                log.warning("overview of %s not kept in Redis (%s)", code, type(exc).__name__)
        return counted
    await progress.refresh_if_stale(redis, code, dt.datetime.fromisoformat(kept["at"]), now)
    return kept


async def program_overview(
    conn: asyncpg.Connection, code: str, redis: Any = None, *, now: dt.datetime | None = None
) -> tuple[list[dict], dt.datetime]:
    """One row per program; `by_status` counts applications by status, `recovery` the yen recovered and
    still outstanding (recovery.program_totals); and when the counts were made. With `redis`, a large
    municipality's counts are the kept ones (see the module's docstring)."""
    counted = await _counted(conn, redis, code, now)
    totals = await recovery.program_totals(conn, code)
    rows = [r | {"recovery": totals[r["program_id"]]} for r in counted["rows"]]
    return rows, dt.datetime.fromisoformat(counted["at"])


async def queue_count(conn: asyncpg.Connection, code: str) -> int:
    return await conn.fetchval(review.QUEUE_COUNT, code)
