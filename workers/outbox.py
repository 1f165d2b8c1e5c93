"""The transactional outbox: jobs are rows first, Redis messages second.

A change that needs background work inserts an outbox row in its own transaction. After commit the
dispatcher enqueues the row with arq's `_job_id` set to the row's job_id (so a second enqueue of the same
row is a no-op while the job or its result is in Redis), and the job marks the row done in the same
transaction as its effect. The sweeper (an arq cron job) re-enqueues rows that are not done after a
timeout, which is how jobs lost by Redis (restart, eviction, flush) are re-derived.
"""

from __future__ import annotations

import json
import logging

import asyncpg
from arq.connections import ArqRedis

from app.tenancy.transaction import platform_transaction, tenant_transaction

log = logging.getLogger("kyufu.outbox")

ADD = """
INSERT INTO outbox (municipality_code, job_name, job_id, args)
VALUES ($1, $2, $3, $4::jsonb)
ON CONFLICT (municipality_code, job_id) DO NOTHING
"""
# Rows never enqueued, or (when $2 is given) enqueued long enough ago that the job should have finished. SKIP LOCKED lets
# several sweepers (one per worker process) share the work without enqueueing a row twice at once.
DUE = """
SELECT outbox_id, job_name, job_id, args FROM outbox
WHERE municipality_code = $1 AND done_at IS NULL
  AND (enqueued_at IS NULL OR enqueued_at < now() - make_interval(secs => $2::float8))
ORDER BY outbox_id
LIMIT $3
FOR UPDATE SKIP LOCKED
"""
MARK_ENQUEUED = """
UPDATE outbox SET enqueued_at = now(), enqueue_count = enqueue_count + 1
WHERE municipality_code = $1 AND outbox_id = ANY($2::bigint[])
"""
MARK_DONE = "UPDATE outbox SET done_at = now() WHERE municipality_code = $1 AND job_id = $2 AND done_at IS NULL"
BACKLOG = """
SELECT count(*) AS pending, extract(epoch FROM now() - min(created_at)) AS oldest_s
FROM outbox WHERE municipality_code = $1 AND done_at IS NULL
"""
MUNICIPALITY_CODES = "SELECT code FROM municipalities ORDER BY code"


async def add(conn: asyncpg.Connection, municipality_code: str, job_name: str, job_id: str, *args) -> None:
    """Record a job to run after the caller's transaction commits (call inside that transaction)."""
    await conn.execute(ADD, municipality_code, job_name, job_id, json.dumps(list(args)))


async def mark_done(conn: asyncpg.Connection, municipality_code: str, job_id: str) -> None:
    """Call inside the job's own transaction, together with the job's effect."""
    await conn.execute(MARK_DONE, municipality_code, job_id)


async def dispatch(
    pool: asyncpg.Pool, redis: ArqRedis, municipality_code: str, *, older_than_s: float | None = None,
    limit: int = 1000,
) -> int:
    """Enqueue due outbox rows of one municipality; return how many were handed to Redis.

    Due means never enqueued, or, with `older_than_s`, enqueued that long ago and still not done.

    If Redis is unreachable the rows stay due and the exception propagates to the caller, who decides
    whether that matters (a request handler does not: the resident already has a receipt).
    """
    async with tenant_transaction(pool, municipality_code) as conn:
        rows = await conn.fetch(DUE, municipality_code, older_than_s, limit)
        if not rows:
            return 0
        for row in rows:
            await redis.enqueue_job(row["job_name"], *json.loads(row["args"]), _job_id=row["job_id"])
        await conn.execute(MARK_ENQUEUED, municipality_code, [r["outbox_id"] for r in rows])
    return len(rows)


async def sweep(pool: asyncpg.Pool, redis: ArqRedis, retry_after_s: float) -> int:
    """Re-derive lost jobs for every municipality; return how many rows were enqueued."""
    async with platform_transaction(pool) as conn:
        codes = [r["code"] for r in await conn.fetch(MUNICIPALITY_CODES)]
    total = 0
    for code in codes:
        while True:
            n = await dispatch(pool, redis, code, older_than_s=retry_after_s)
            total += n
            if n < 1000:
                break
    if total:
        log.info("outbox sweep enqueued %d jobs", total)
    return total


async def backlog(pool: asyncpg.Pool, municipality_code: str) -> tuple[int, float]:
    async with tenant_transaction(pool, municipality_code, readonly=True) as conn:
        row = await conn.fetchrow(BACKLOG, municipality_code)
    return int(row["pending"]), float(row["oldest_s"] or 0.0)
