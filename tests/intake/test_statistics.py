"""Planner statistics for the intake tables (migrations/0013_intake_statistics.sql): the app role can have a
table analyzed once it has grown by its own size, and only then; the batcher asks at most every
STATISTICS_EVERY_S."""

from __future__ import annotations

import asyncio
import time

from app.intake.web import batcher as batcher_module
from app.intake.web.batcher import SubmitBatcher
from app.tenancy.transaction import tenant_transaction

REFRESH = "SELECT kyufu_refresh_intake_statistics()"
OUTBOX_STATS = """
SELECT coalesce(last_analyze, 'epoch') AS last_analyze, n_mod_since_analyze FROM pg_stat_user_tables
WHERE schemaname = 'public' AND relname = 'outbox'
"""
ADD_OUTBOX_ROWS = """
INSERT INTO outbox (municipality_code, job_name, job_id, args)
SELECT $1, 'verify_application', 'stats-test:' || $1 || ':' || i, jsonb_build_array($1, i)
FROM generate_series(1, $2) AS i
"""


async def _outbox_stats(owner_conn):
    return await owner_conn.fetchrow(OUTBOX_STATS)


async def test_app_role_refreshes_a_table_that_doubled_and_only_then(app_pool, owner_conn, municipality):
    code = await municipality()
    # Whatever earlier tests left unanalyzed: start from fresh statistics.
    await owner_conn.execute("ANALYZE outbox")
    reltuples = await owner_conn.fetchval("SELECT reltuples FROM pg_class WHERE oid = 'public.outbox'::regclass")
    before = await _outbox_stats(owner_conn)

    async with app_pool.acquire() as conn:
        # A few rows: far from doubling, nothing to analyze.
        async with tenant_transaction(conn, code):
            await conn.execute(ADD_OUTBOX_ROWS, code, 10)
        await conn.execute("SELECT pg_stat_force_next_flush()")
        await conn.fetchval("SELECT 1")  # the flush happens when the backend next goes idle
        await asyncio.sleep(0.2)
        await conn.fetchval(REFRESH)
        assert (await _outbox_stats(owner_conn))["last_analyze"] == before["last_analyze"]

        # Grown by at least its own size (and at least 200 rows): analyzed, by the app role's call.
        async with tenant_transaction(conn, code):
            await conn.execute(
                ADD_OUTBOX_ROWS.replace("stats-test:", "stats-test-2:"), code, max(200, int(reltuples) + 1)
            )
        await conn.execute("SELECT pg_stat_force_next_flush()")
        deadline = time.monotonic() + 10
        while True:
            await conn.fetchval(REFRESH)
            after = await _outbox_stats(owner_conn)
            if after["last_analyze"] > before["last_analyze"] or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
    assert after["last_analyze"] > before["last_analyze"], "outbox was not analyzed after doubling"
    assert after["n_mod_since_analyze"] < 200


async def test_batcher_asks_at_most_once_per_interval(app_pool, settings, servers):
    import redis.asyncio as redis_asyncio

    redis = redis_asyncio.from_url(servers.redis_url)
    b = SubmitBatcher(app_pool, redis, settings.master_key_bytes)
    try:
        b.refresh_statistics()
        first = b.statistics_task
        assert first is not None
        b.refresh_statistics()
        b.refresh_statistics()
        assert b.statistics_task is first  # within the interval: the same request, no second one
        await first
        assert first.exception() is None
        b.statistics_at -= batcher_module.STATISTICS_EVERY_S  # the interval has passed
        b.refresh_statistics()
        assert b.statistics_task is not first
        await b.statistics_task
        assert b.statistics_task.exception() is None
    finally:
        await b.stop()
        await redis.aclose()


async def test_refresh_failure_is_swallowed_and_logged_by_type(app_pool, settings, servers, caplog, monkeypatch):
    import redis.asyncio as redis_asyncio

    # A function that does not exist stands for any database failure: speed is all that is at stake.
    monkeypatch.setattr(batcher_module, "REFRESH_STATISTICS", "SELECT kyufu_no_such_function()")
    redis = redis_asyncio.from_url(servers.redis_url)
    b = SubmitBatcher(app_pool, redis, settings.master_key_bytes)
    try:
        b.refresh_statistics()
        await b.statistics_task
        assert b.statistics_task.exception() is None
        assert any("statistics refresh skipped (UndefinedFunctionError)" in r.getMessage() for r in caplog.records)
    finally:
        await b.stop()
        await redis.aclose()
