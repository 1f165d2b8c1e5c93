"""Releasing a payout file while a machine is lost (issue 17, faults 2 and 5): the PostgreSQL leader, or
the worker node sealing the file, is SIGKILLed while the release job's COPY streams the batch rows. The
batch is released exactly once, by whichever node is left, as one file in the bank's drop directory
(delivered from PostgreSQL, payouts/delivery.py) that the bank verifies and that decrypts to the approved
bytes."""

from __future__ import annotations

import asyncio
import hashlib
import time

import asyncpg
import pytest

from app import outbox
from app.principals import Staff
from app.redisconn import arq_client
from app.services import DATABASE
from app.tenancy.transaction import tenant_transaction
from payouts import batches
from tests.chaos import invariants
from tests.chaos.batches import approved_release, as_the_bank, release_state
from tests.cluster.conftest import CODE

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(900)]

PAYMENTS = 40_000
RELEASED_AT = (
    "SELECT extract(epoch FROM released_at) FROM payout_batches WHERE municipality_code = $1 AND batch_id = $2"
)
DELIVERED = (
    "SELECT count(*) FROM released_files WHERE municipality_code = $1 AND batch_id = $2 AND delivered_at IS NOT NULL"
)
BATCH_COPY = (
    "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND state = 'active' AND query LIKE 'COPY (SELECT payment_id%'"
)


async def _request_release(ha, batch) -> None:
    """送信 as the console does it, then the dispatch the console does after commit (through Sentinel)."""
    approver = Staff(batch.approver, CODE, "approver", "承認", ("approver",))
    async with tenant_transaction(ha.pool, CODE) as conn:
        await batches.release_batch(conn, ha.settings, CODE, approver, batch.batch_id)
    redis = arq_client(ha.settings.redis_url)
    try:
        await outbox.dispatch(ha.pool, redis, CODE)
    finally:
        await redis.aclose()


async def _copy_streaming(ha, node: str, timeout: float = 90) -> None:
    admin = await asyncpg.connect(ha.node_url(node))  # the node itself: sees every session's query
    try:
        deadline = time.monotonic() + timeout
        while not await admin.fetchval(BATCH_COPY, DATABASE):
            assert time.monotonic() < deadline, "the release's COPY never started"
            await asyncio.sleep(0.01)
    finally:
        await admin.close()


async def _released_once(ha, batch, reference: bytes, approved: str, timeout: float) -> float:
    started = time.monotonic()
    while True:
        try:
            if (await release_state(ha.pool, CODE, batch.batch_id))["status"] == "released":
                break
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            await ha.fresh_pool()  # HAProxy cut the pool's sessions to the old leader
        assert time.monotonic() - started < timeout, "not released: " + ha.log_tail("worker1") + ha.log_tail("worker2")
        await asyncio.sleep(0.5)
    released_s = time.monotonic() - started
    await ha.fresh_pool()  # no connection left from before the failover
    while not [n for n in ha.outbox_files() if n.endswith(".manifest.json")]:  # delivered from PostgreSQL
        assert time.monotonic() - started < timeout, "released, not delivered: " + ha.log_tail("worker2")
        await asyncio.sleep(0.2)
    plaintext, file_name = await as_the_bank(ha.settings.database_owner_url, ha.settings, batch, ha.outbox, ha.root)
    assert plaintext == reference and hashlib.sha256(plaintext).hexdigest() == approved
    state = await release_state(ha.pool, CODE, batch.batch_id)
    assert (state["status"], state["released_sha256"], state["releases"]) == ("released", approved, 1)
    assert ha.outbox_files() == [file_name + ".age", file_name + ".manifest.json"]  # one file, no temp left
    async with tenant_transaction(ha.pool, CODE, readonly=True) as conn:
        assert await conn.fetchval(DELIVERED, CODE, batch.batch_id) == 1
    await invariants.check(ha.pool, CODE, [], 0)
    return released_s


async def test_postgres_leader_sigkilled_mid_release_one_file_released_once(ha):
    batch, reference, approved, _ = await approved_release(ha, CODE, PAYMENTS)
    leader = ha.leader()
    await _request_release(ha, batch)
    await _copy_streaming(ha, leader)
    killed_at = time.time()
    ha.kill(leader)
    released_s = await _released_once(ha, batch, reference, approved, timeout=300)
    async with tenant_transaction(ha.pool, CODE, readonly=True) as conn:
        released_at = await conn.fetchval(RELEASED_AT, CODE, batch.batch_id)
    assert released_at > killed_at, "the release had committed before the kill: not mid-release"
    print(
        f"\nPG leader SIGKILL mid-release ({PAYMENTS} payments): released once, byte-identical to the approved"
        f" file, {released_s:.1f} s after the kill"
    )


async def test_worker_sigkilled_mid_release_the_other_releases_once(ha):
    batch, reference, approved, _ = await approved_release(ha, CODE, PAYMENTS)
    ha.stop("worker2")  # one worker takes the job; the other comes up once it is killed mid-COPY
    await _request_release(ha, batch)
    await _copy_streaming(ha, ha.leader())
    ha.kill("worker1")
    ha.start("worker2")
    # arq runs a killed job again only when its in-progress key expires: the longest job timeout of the
    # worker + 10 s (workers/progress.py's refresh_progress has 300 s), whichever node then polls.
    released_s = await _released_once(ha, batch, reference, approved, timeout=480)
    print(
        f"\nworker SIGKILL mid-release ({PAYMENTS} payments): the other worker released it once,"
        f" {released_s:.1f} s after the kill (arq re-runs a killed job when its lock expires)"
    )
