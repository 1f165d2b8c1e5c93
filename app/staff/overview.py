"""The console's dashboard: per program, what is entitled, applied, decided, paid and still owed, what
組戻し and 返還 recovered and what is still to be recovered (payouts/recovery.py), and the 審査 queue's
length. Figures only; no personal data."""

from __future__ import annotations

import json

import asyncpg

from app.staff import review
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


async def program_overview(conn: asyncpg.Connection, code: str) -> list[dict]:
    """One row per program; `by_status` counts applications by status, `recovery` the yen recovered and
    still outstanding (recovery.program_totals)."""
    totals = await recovery.program_totals(conn, code)
    return [
        dict(r) | {"by_status": json.loads(r["by_status"]), "recovery": totals[r["program_id"]]}
        for r in await conn.fetch(DASHBOARD, code)
    ]


async def queue_count(conn: asyncpg.Connection, code: str) -> int:
    return await conn.fetchval(review.QUEUE_COUNT, code)
