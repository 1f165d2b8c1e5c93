"""The transactional outbox: jobs are rows first, Redis messages second.

A change that needs background work inserts an outbox row in its own transaction. After commit the
dispatcher enqueues the row with arq's `_job_id` set to the row's job_id (so a second enqueue of the same
row is a no-op while the job is queued or running), and the job marks the row done in the same
transaction as its effect. The sweeper (an arq cron job) re-enqueues rows that are not done after a
timeout, which is how jobs lost by Redis (restart, eviction, flush) are re-derived.

Rows of a batchable job are enqueued together (BATCHED): one `verify_applications_batch` job for up to
`batch_size` `verify_application` rows of a municipality, because deciding 250 applications in one
transaction costs little more than deciding one (measured by `kyufu registry bench`). Each application
keeps its own outbox row, which the batch job marks done in the transaction that decides it, so every
guarantee of the single job holds: a row is done exactly when its application is decided; the sweeper
regroups rows that are not done (the new batch's job id differs, and a batch that then overlaps one still
running is harmless: verification locks each application and decides only those still 'received').
"""

from __future__ import annotations

import json
import logging

import asyncpg
from arq.connections import ArqRedis
from arq.constants import job_key_prefix, result_key_prefix
from arq.jobs import serialize_job
from arq.utils import timestamp_ms

from app.db import fetch_always
from app.tenancy.municipalities import municipality_codes
from app.tenancy.transaction import platform_transaction, tenant_transaction

log = logging.getLogger("kyufu.outbox")

ADD = """
INSERT INTO outbox (municipality_code, job_name, job_id, args)
VALUES ($1, $2, $3, $4::jsonb)
ON CONFLICT (municipality_code, job_id) DO NOTHING
"""
# Rows never enqueued, or (when $2 is given) enqueued long enough ago that the job should have finished. SKIP
# LOCKED lets several sweepers (one per worker process) share the work without enqueueing a row twice at once.
DUE = """
SELECT outbox_id, job_name, job_id, args FROM outbox
WHERE municipality_code = $1 AND done_at IS NULL
  AND (enqueued_at IS NULL OR enqueued_at < now() - make_interval(secs => $2::float8))
ORDER BY outbox_id
LIMIT $3
FOR UPDATE SKIP LOCKED
"""
# The dispatcher's case (never enqueued) as its own query, so that the partial index outbox_unsent
# (0007) serves it: with the OR above, the planner walks every row not yet done, and under a surge
# nothing marks rows done while the backlog grows.
DUE_NEW = """
SELECT outbox_id, job_name, job_id, args FROM outbox
WHERE municipality_code = $1 AND done_at IS NULL AND enqueued_at IS NULL
ORDER BY outbox_id
LIMIT $2
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

# arq's enqueue_job for many jobs in one round trip: a job whose job key exists (queued or running) is
# skipped, which makes a second enqueue of a row a no-op. Unlike arq, a result key does not block: every
# row passed here is not done, and a run that succeeded marked its row done in its own transaction, so a
# result means a run that failed (e.g. PostgreSQL was restarted under it); arq keeps it for keep_result
# (an hour), and honouring it would leave the row undone that long. Found by tests/chaos/test_postgres.py.
# A script runs atomically, as arq's WATCH/MULTI does for one job. KEYS: the queue, then job key and
# result key per job; ARGV: job id, score (ms), expiry (ms) and serialized job per job.
ENQUEUE_MANY = """
local n = 0
for i = 0, (#KEYS - 1) / 2 - 1 do
  if redis.call('EXISTS', KEYS[2 + 2 * i]) == 0 then
    redis.call('DEL', KEYS[3 + 2 * i])
    redis.call('PSETEX', KEYS[2 + 2 * i], ARGV[3 + 4 * i], ARGV[4 + 4 * i])
    redis.call('ZADD', KEYS[1], ARGV[2 + 4 * i], ARGV[1 + 4 * i])
    n = n + 1
  end
end
return n
"""


VERIFY_JOB = "verify_application"


def job_id(kind: str, *parts: object) -> str:
    """The one job-id format: `kind:part:part...`. A job's id names the change that needs it (an
    application, a batch and its generation), so enqueueing the same row twice is one job."""
    return ":".join((kind, *(str(p) for p in parts)))


def verify_job_id(code: str, application_id: int) -> str:
    return job_id("verify", code, application_id)


async def add(conn: asyncpg.Connection, municipality_code: str, job_name: str, job_id: str, *args) -> None:
    """Record a job to run after the caller's transaction commits (call inside that transaction)."""
    await conn.execute(ADD, municipality_code, job_name, job_id, json.dumps(list(args)))


async def mark_done(conn: asyncpg.Connection, municipality_code: str, job_id: str) -> None:
    """Call inside the job's own transaction, together with the job's effect."""
    await conn.execute(MARK_DONE, municipality_code, job_id)


async def enqueue_many(redis: ArqRedis, jobs: list[tuple[str, str, list]]) -> int:
    """Enqueue (job_name, job_id, args) jobs like `redis.enqueue_job(name, *args, _job_id=job_id)`, in
    one round trip; return how many were new to Redis."""
    if not jobs:
        return 0
    now_ms = timestamp_ms()
    keys: list[str] = [redis.default_queue_name]
    argv: list = []
    for name, job_id, args in jobs:
        keys += [job_key_prefix + job_id, result_key_prefix + job_id]
        argv += [
            job_id,
            now_ms,
            redis.expires_extra_ms,
            serialize_job(name, tuple(args), {}, None, now_ms, serializer=redis.job_serializer),
        ]
    # redis-py types its commands for the blocking and the asyncio client at once (`Awaitable[str] | str`)
    return int(await redis.eval(ENQUEUE_MANY, len(keys), *keys, *argv))  # type: ignore[misc]


# Row job name -> the job that takes many such rows at once, with their arguments combined:
# verify_application(code, id) rows become verify_applications_batch(code, [id, ...]).
BATCHED = {VERIFY_JOB: "verify_applications_batch"}
DEFAULT_BATCH_SIZE = 250


def group_jobs(municipality_code: str, rows, batch_size: int) -> list[tuple[str, str, list]]:
    """(job_name, job_id, args) for the rows, batchable rows grouped in order, `batch_size` at most."""
    jobs: list[tuple[str, str, list]] = []
    batches: dict[str, list] = {}
    for r in rows:
        args = json.loads(r["args"])
        batch_name = BATCHED.get(r["job_name"])
        if batch_name is None or batch_size <= 1:
            jobs.append((r["job_name"], r["job_id"], args))
        else:
            batches.setdefault(batch_name, []).append((r["outbox_id"], args[1]))
    for name, items in batches.items():
        for k in range(0, len(items), batch_size):
            chunk = items[k : k + batch_size]
            # Named by its first and last outbox row: a second dispatch of the same rows is a no-op while
            # the job is queued or running, like a single row's.
            batch_job = job_id(name, municipality_code, f"{chunk[0][0]}-{chunk[-1][0]}")
            jobs.append((name, batch_job, [municipality_code, [application_id for _, application_id in chunk]]))
    return jobs


async def dispatch(
    pool: asyncpg.Pool,
    redis: ArqRedis,
    municipality_code: str,
    *,
    older_than_s: float | None = None,
    limit: int = 1000,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> int:
    """Enqueue due outbox rows of one municipality; return how many rows were handed to Redis.

    Due means never enqueued, or, with `older_than_s`, enqueued that long ago and still not done.
    Batchable rows go as batch jobs of at most `batch_size` rows (1: one job per row).

    If Redis is unreachable the rows stay due and the exception propagates to the caller, who decides
    whether that matters (a request handler does not: the resident already has a receipt).
    """
    async with tenant_transaction(pool, municipality_code) as conn:
        if older_than_s is None:
            rows = await conn.fetch(DUE_NEW, municipality_code, limit)
        else:
            rows = await conn.fetch(DUE, municipality_code, older_than_s, limit)
        if not rows:
            return 0
        await enqueue_many(redis, group_jobs(municipality_code, rows, batch_size))
        await conn.execute(MARK_ENQUEUED, municipality_code, [r["outbox_id"] for r in rows])
    return len(rows)


async def sweep(pool: asyncpg.Pool, redis: ArqRedis, retry_after_s: float, batch_size: int = DEFAULT_BATCH_SIZE) -> int:
    """Re-derive lost jobs for every municipality; return how many rows were enqueued."""
    async with platform_transaction(pool) as conn:
        codes = await municipality_codes(conn)
    total = 0
    for code in codes:
        while True:
            n = await dispatch(pool, redis, code, older_than_s=retry_after_s, batch_size=batch_size)
            total += n
            if n < 1000:
                break
    if total:
        log.info("outbox sweep enqueued %d jobs", total)
    return total


async def backlog(pool: asyncpg.Pool, municipality_code: str) -> tuple[int, float]:
    async with tenant_transaction(pool, municipality_code, readonly=True) as conn:
        row = await fetch_always(conn, BACKLOG, municipality_code)
    return int(row["pending"]), float(row["oldest_s"] or 0.0)
