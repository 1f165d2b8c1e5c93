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
async def test_worker_sigkilled_mid_batch_then_restarted(cluster):
    """Verification runs as batch jobs (workers/outbox.py groups the rows). A batch is held mid-transaction
    by a row lock this test takes on one of its applications, the worker is SIGKILLed while the batch
    waits, the lock is let go and a new worker started: nothing is lost and nothing decided twice. arq
    re-runs a killed worker's job only when its in-progress key expires (job_timeout 60 s + 10 s,
    workers/settings.py); the sweeper cannot shortcut that (the job key still exists)."""
    from app.tenancy.transaction import tenant_transaction

    letters = await make_letters(cluster.pool, cluster.settings.master_key_bytes, CODE, 300)
    await asyncio.to_thread(cluster.start_app)
    receipts = await apply_all(cluster.url, letters)
    assert await _unverified(cluster.pool) == 300  # no worker yet: everything waits in Redis/outbox
    async with tenant_transaction(cluster.pool, CODE, readonly=True) as conn:
        held_id = await conn.fetchval("SELECT max(application_id) FROM applications")
    lock = await cluster.pool.acquire()
    tx = lock.transaction()
    await tx.start()
    try:
        await lock.execute("SELECT set_config('kyufu.municipality', $1, true)", CODE)
        await lock.execute(
            "SELECT 1 FROM applications WHERE municipality_code = $1 AND application_id = $2 FOR UPDATE", CODE, held_id
        )
        cluster.start_worker()
        # Wait until every other batch is done and the held one is waiting on the lock.
        left, stable_since = 300, None
        for _ in range(600):
            now_left = await _unverified(cluster.pool)
            waiting = await _waiting_on_locks(cluster.pool)
            if now_left == left and waiting and now_left < 300:
                stable_since = stable_since or asyncio.get_running_loop().time()
                if asyncio.get_running_loop().time() - stable_since > 1.0:
                    break
            else:
                left, stable_since = now_left, None
            await asyncio.sleep(0.05)
        assert 0 < left < 300 and await _waiting_on_locks(cluster.pool), (left, "no batch held mid-transaction")
        cluster.kill("worker")
    finally:
        await tx.rollback()
        await cluster.pool.release(lock)
    assert await _unverified(cluster.pool) == left  # the killed batch decided nothing
    cluster.start_worker()
    c = await invariants.check(cluster.pool, CODE, receipts, 300, timeout=400)
    assert c["applications"] == 300


async def _waiting_on_locks(pool) -> bool:
    """A transaction of the worker waits for a row lock (pg_stat_activity shows every role's wait to
    itself only; the test pool is the worker's role)."""
    from app.registry.verify import LOAD

    # Matched on the query's start: pg_stat_activity keeps only its first 1,024 bytes (track_activity_query_size),
    # and the FOR UPDATE at the end of verification's LOAD lies beyond them.
    async with pool.acquire() as conn:
        return bool(
            await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE wait_event_type = 'Lock' AND left(query, 200) = left($1, 200)",
                LOAD,
            )
        )


async def test_valkey_killed_and_restarted_empty_during_intake(cluster):
    letters = await make_letters(cluster.pool, cluster.settings.master_key_bytes, CODE, 120)
    await asyncio.to_thread(cluster.start_app)
    first = await apply_all(cluster.url, letters[:60])  # enqueued in Valkey; no worker runs yet
    # The app dispatches 0.5 s after a commit (app/intake/web/batcher.py): wait until all 60 are in Valkey, or
    # the kill finds some still unsent and a later dispatch enqueues them after the restart (seen on a
    # loaded machine: 54 of 60 "came back").
    for _ in range(200):
        if await _unsent(cluster.pool) == 0:
            break
        await asyncio.sleep(0.05)
    assert await _unsent(cluster.pool) == 0, "the first 60 were not dispatched to Valkey"
    cluster.services.stop_valkey(kill=True)  # SIGKILL; no AOF in this cluster: restarts empty
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
        ids = [
            r["application_id"]
            for r in await conn.fetch(
                "SELECT application_id FROM applications WHERE receipt_no = ANY($1::text[])", receipts
            )
        ]
    r = Redis.from_url(cluster.settings.redis_url)
    try:
        # Verification jobs are batches (verify_applications_batch:CODE:first-last), not one per id.
        batches = [k async for k in r.scan_iter(f"arq:job:verify_applications_batch:{CODE}:*")]
        return sum([await r.exists(f"arq:job:verify:{CODE}:{i}") for i in ids]) + len(batches)
    finally:
        await r.aclose()
