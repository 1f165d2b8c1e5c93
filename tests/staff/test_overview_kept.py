"""The console home's per-program counts (app/staff/overview.py): live for a small municipality, the kept
count for a large one (refreshed by the worker's refresh_progress once a view finds it a minute old)."""

from __future__ import annotations

import datetime as dt

from redis.asyncio import Redis

from app.main import arq_redis
from app.staff import overview, progress
from app.tenancy.transaction import tenant_transaction
from tests.staff.conftest import add_application
from workers.progress import refresh_progress


async def _view(pool, redis, code, **kw):
    async with tenant_transaction(pool, code, readonly=True) as conn:
        [row], at = await overview.program_overview(conn, code, redis, **kw)
    return sum(row["by_status"].values()), at


async def test_a_small_municipality_is_counted_live(make_world, app_pool, settings):
    world = await make_world(applications=2)
    redis = arq_redis(settings)
    try:
        assert (await _view(app_pool, redis, world.code))[0] == 2
        async with tenant_transaction(app_pool, world.code) as conn:
            await add_application(conn, world)
        assert (await _view(app_pool, redis, world.code))[0] == 3  # at once, not a minute later
    finally:
        await redis.aclose()


async def test_a_large_municipality_sees_the_kept_count_and_the_worker_counts_again(
    make_world, app_pool, settings, monkeypatch
):
    monkeypatch.setattr(overview, "LIVE_BELOW", 2)  # two applications make this world "large"
    world = await make_world(applications=2)
    code, job = world.code, f"arq:job:{progress.REFRESH_JOB}:{world.code}"
    redis = arq_redis(settings)
    try:
        n, first = await _view(app_pool, redis, code)  # nothing kept yet: counted now, and kept
        assert n == 2
        async with tenant_transaction(app_pool, code) as conn:
            await add_application(conn, world)
        assert await _view(app_pool, redis, code) == (2, first) and not await redis.exists(job)
        late = first + dt.timedelta(seconds=progress.FRESH_S + 1)
        assert await _view(app_pool, redis, code, now=late) == (2, first) and await redis.exists(job)
        await refresh_progress({"pool": app_pool, "redis": redis}, code)
        n, fresh = await _view(app_pool, redis, code)
        assert n == 3 and fresh > first
    finally:
        await redis.delete(job)
        await redis.zrem("arq:queue", job.removeprefix("arq:job:"))
        await redis.aclose()


async def test_without_valkey_the_home_page_counts(make_world, app_pool, caplog):
    world = await make_world(applications=1)
    down = Redis.from_url("redis://127.0.0.1:9", socket_connect_timeout=0.5)
    try:
        assert (await _view(app_pool, down, world.code))[0] == 1
    finally:
        await down.aclose()
    assert "overview of" in caplog.text and "not read from Redis" in caplog.text
