"""Injected faults on real processes (tests/chaos/harness.py), each ending with tests/chaos/invariants.check.

The fast scenarios run in `make test`; `make chaos` runs this directory alone."""

from __future__ import annotations

import asyncio

import pytest

from tests.chaos import invariants
from tests.chaos.clients import apply_all
from tests.chaos.harness import CODE
from tests.intake.helpers import make_letters

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


async def _unverified(pool) -> int:
    return (await invariants.counts(pool, CODE))["unverified"]


@pytest.mark.timeout(600)
async def test_worker_sigkilled_mid_verification_then_restarted(cluster):
    """Jobs a killed worker had started are not lost, but arq re-runs them only when their in-progress key
    expires: the longest function timeout (120 s, workers/verification.py) + 10 s. The sweeper cannot
    shortcut that (the job key still exists, so its enqueue is a no-op). Hence about 2.5 minutes here."""
    letters = await make_letters(cluster.pool, cluster.settings.master_key_bytes, CODE, 300)
    await asyncio.to_thread(cluster.start_app)
    receipts = await apply_all(cluster.url, letters)
    assert await _unverified(cluster.pool) == 300  # no worker yet: everything waits in Redis/outbox
    cluster.start_worker()
    for _ in range(600):  # SIGKILL as soon as verification is under way, not finished
        left = await _unverified(cluster.pool)
        if left < 300:
            break
        await asyncio.sleep(0.05)
    cluster.kill("worker")
    left = await _unverified(cluster.pool)
    assert 0 < left, "the worker finished before it could be killed; use more applications"
    cluster.start_worker()
    c = await invariants.check(cluster.pool, CODE, receipts, 300, timeout=400)
    assert c["applications"] == 300


async def test_valkey_killed_and_restarted_empty_during_intake(cluster):
    letters = await make_letters(cluster.pool, cluster.settings.master_key_bytes, CODE, 120)
    await asyncio.to_thread(cluster.start_app)
    first = await apply_all(cluster.url, letters[:60])  # enqueued in Valkey; no worker runs yet
    # The app dispatches 0.5 s after a commit (app/intake/batcher.py): wait until all 60 are in Valkey, or
    # the kill finds some still unsent and a later dispatch enqueues them after the restart (seen on a
    # loaded machine: 54 of 60 "came back").
    for _ in range(200):
        if await _unsent(cluster.pool) == 0:
            break
        await asyncio.sleep(0.05)
    assert await _unsent(cluster.pool) == 0, "the first 60 were not dispatched to Valkey"
    cluster.services.stop_valkey(kill=True)               # SIGKILL; no AOF in this cluster: restarts empty
    during = await apply_all(cluster.url, letters[60:90])  # Redis down: intake must still take them
    await asyncio.to_thread(cluster.services.start_valkey)
    # The jobs of the first 60 were in Valkey only (their outbox rows are marked enqueued, so nothing but
    # the sweeper will enqueue them again): after the restart none of them may be there.
    assert await _first_jobs_in_redis(cluster, first) == 0, "Valkey did not come back empty"
    after = await apply_all(cluster.url, letters[90:])
    cluster.start_worker()  # its sweeper re-derives the lost jobs from the outbox
    c = await invariants.check(cluster.pool, CODE, first + during + after, 120)
    assert c["applications"] == 120


async def test_app_killed_mid_request_clients_retry_with_the_same_key(cluster):
    letters = await make_letters(cluster.pool, cluster.settings.master_key_bytes, CODE, 200)
    await asyncio.to_thread(cluster.start_app)
    cluster.start_worker()
    submit = asyncio.create_task(apply_all(cluster.url, letters, concurrency=32))
    for _ in range(400):  # kill the app while requests are in flight
        if (await invariants.counts(cluster.pool, CODE))["applications"] >= 40:
            break
        await asyncio.sleep(0.02)
    cluster.kill("app")
    await asyncio.sleep(0.5)
    await asyncio.to_thread(cluster.start_app)
    receipts = await submit
    assert len(set(receipts)) == 200
    await invariants.check(cluster.pool, CODE, receipts, 200)


async def _unsent(pool) -> int:
    from app.tenancy.transaction import tenant_transaction

    async with tenant_transaction(pool, CODE, readonly=True) as conn:
        return await conn.fetchval("SELECT count(*) FROM outbox WHERE enqueued_at IS NULL")


async def _first_jobs_in_redis(cluster, receipts: list[str]) -> int:
    from redis.asyncio import Redis

    from app.tenancy.transaction import tenant_transaction

    async with tenant_transaction(cluster.pool, CODE, readonly=True) as conn:
        ids = [r["application_id"] for r in await conn.fetch(
            "SELECT application_id FROM applications WHERE receipt_no = ANY($1::text[])", receipts)]
    r = Redis.from_url(cluster.settings.redis_url)
    try:
        return sum([await r.exists(f"arq:job:verify:{CODE}:{i}") for i in ids])
    finally:
        await r.aclose()
