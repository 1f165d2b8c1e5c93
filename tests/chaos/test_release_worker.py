"""The release runs in the worker (issue 13): 送信 in the console only asks for it. A worker SIGKILLed
while it seals the file (its COPY of the batch rows in flight, the encryptor's temp file open) loses
nothing and releases nothing twice: after a restart the job runs again and the batch is released once,
with one file that the bank verifies and that decrypts to the approved bytes."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import time

import asyncpg
import pytest

from app.principals import Staff
from app.services import DATABASE
from app.tenancy.transaction import tenant_transaction
from payouts import batches
from tests.chaos import invariants
from tests.chaos.batches import approved_release, as_the_bank, release_state
from tests.chaos.harness import CODE

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

PAYMENTS = 40_000
BATCH_COPY = """
SELECT state, wait_event FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'COPY (SELECT payment_id%'
"""


async def test_worker_sigkilled_while_sealing_then_restarted_releases_once(cluster):
    settings = cluster.settings
    batch, reference, approved, _ = await approved_release(cluster, CODE, PAYMENTS)
    approver = Staff(batch.approver, CODE, "approver", "承認", ("approver",))
    async with tenant_transaction(cluster.pool, CODE) as conn:  # 送信 on the console
        await batches.release_batch(conn, settings, CODE, approver, batch.batch_id)

    admin = await asyncpg.connect(cluster.services.urls()["DATABASE_ADMIN_URL"])  # sees every session's query
    try:
        cluster.start_worker()  # its first sweep hands the release job to itself
        worker = cluster.procs["worker"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # stop the worker as soon as its COPY is streaming
            row = await admin.fetchrow(BATCH_COPY, DATABASE)
            if row is not None and row["state"] == "active":
                os.killpg(worker.pid, signal.SIGSTOP)
                break
            await asyncio.sleep(0.002)
        assert row is not None, "the release job never started: " + cluster.log_tail("worker", 1500)
        for _ in range(100):  # frozen mid-stream: wait until PostgreSQL blocks sending it the rest
            await asyncio.sleep(0.1)
            if [n for n in cluster.outbox_files() if n.endswith(".tmp")]:
                break
        sealing = [n for n in cluster.outbox_files() if n.endswith(".tmp")]
        assert sealing, "the encryptor had not opened its temp file: not mid-sealing"
        cluster.kill("worker")  # SIGKILL while stopped: no cleanup, no commit
    finally:
        await admin.close()
    state = await release_state(cluster.pool, CODE, batch.batch_id)
    assert (state["status"], state["released_sha256"], state["releases"]) == ("approved", None, 0)
    assert not [n for n in cluster.outbox_files() if n.endswith(".age")]

    # A new worker: arq runs the killed job again once its in-progress key expires (job timeout + 10 s).
    started = time.monotonic()
    cluster.start_worker()
    while (await release_state(cluster.pool, CODE, batch.batch_id))["status"] != "released":
        assert time.monotonic() - started < 200, "not released after the restart: " + cluster.log_tail("worker")
        await asyncio.sleep(1)
    plaintext, file_name = await as_the_bank(settings.database_owner_url, settings, batch, cluster.outbox, cluster.root)
    assert plaintext == reference and hashlib.sha256(plaintext).hexdigest() == approved
    state = await release_state(cluster.pool, CODE, batch.batch_id)
    assert (state["status"], state["released_sha256"], state["releases"]) == ("released", approved, 1)
    # One file, and the killed worker's temp file is gone.
    assert cluster.outbox_files() == [file_name + ".age", file_name + ".manifest.json"]
    async with tenant_transaction(cluster.pool, CODE, readonly=True) as conn:
        assert (
            await conn.fetchval("SELECT count(*) FROM outbox WHERE job_name = 'release_batch' AND done_at IS NULL") == 0
        )
    await invariants.check(cluster.pool, CODE, [], 0)
    print(f"{PAYMENTS} payments; released {time.monotonic() - started:.1f} s after the restart")
