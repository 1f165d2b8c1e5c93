"""PostgreSQL restarted under load (issue 7), on the private cluster of tests/chaos/harness.py: while the
app takes applications, and while `kyufu payouts release` generates a batch's file.

Each scenario ends with tests/chaos/invariants.check."""

from __future__ import annotations

import asyncio
import collections
import hashlib
import os
import signal
import time
import uuid

import asyncpg
import httpx
import pytest

from app.services import DATABASE
from tests.chaos import invariants
from tests.chaos.batches import approved_release, as_the_bank, release_state
from tests.chaos.clients import apply, apply_all
from tests.chaos.harness import CODE
from tests.intake.helpers import application_body, make_letters

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

RESIDENTS = 400


async def test_postgres_restarted_during_intake_clients_retry_with_the_same_key(cluster):
    """PostgreSQL crashes (immediate stop) while 32 clients submit and a worker verifies: during the outage
    the API answers a fast 503 in Japanese (never a 500, never a hang); after the restart app and worker
    recover on their own, every client ends with exactly one receipt and every application is verified once."""
    await cluster.commits_survive_a_crash()
    letters = await make_letters(cluster.pool, cluster.settings.master_key_bytes, CODE, RESIDENTS + 1)
    probe_letter, letters = letters[0], letters[1:]
    await asyncio.to_thread(cluster.start_app)
    cluster.start_worker()
    seen: collections.Counter = collections.Counter()
    submit = asyncio.create_task(apply_all(cluster.url, letters, concurrency=32, seen=seen))
    for _ in range(1500):  # crash while requests are in flight and the worker is verifying
        c = await invariants.counts(cluster.pool, CODE)
        if c["applications"] >= RESIDENTS // 5 and c["applications"] - c["unverified"] >= 10:
            break
        await asyncio.sleep(0.02)
    down_at = time.monotonic()
    await asyncio.to_thread(cluster.stop_postgres, "immediate")
    assert not submit.done(), "intake finished before PostgreSQL went down; use more residents"

    probe_key = uuid.uuid4().hex
    async with httpx.AsyncClient(base_url=cluster.url, timeout=15) as client:

        async def timed(request):
            started = time.monotonic()
            response = await request
            return response, time.monotonic() - started

        submitted, submit_s = await timed(
            client.post(
                "/api/v1/applications", json=application_body(probe_letter), headers={"Idempotency-Key": probe_key}
            )
        )
        # Other routes that need the database answer the same way: the status API and a resident page.
        status, status_s = await timed(
            client.post(
                "/api/v1/status",
                json={"municipality_code": CODE, "access_code": probe_letter.access_code, "pin": probe_letter.pin},
            )
        )
        page, page_s = await timed(client.get(f"/m/{CODE}/status"))
        ready = await client.get("/readyz")
        for response, seconds in ((submitted, submit_s), (status, status_s), (page, page_s)):
            assert response.status_code == 503, (response.request.url.path, response.status_code, response.text[:300])
            assert seconds < 3, f"{response.request.url.path} took {seconds:.1f} s to answer during the outage"
            assert response.headers.get("retry-after")
        assert "混み合って" in submitted.json()["error"]["message"]
        assert "Idempotency-Key" in submitted.json()["error"]["message"]  # tells the client how to retry
        assert "時間をおいて" in status.json()["error"]["message"] and "時間をおいて" in page.text
        assert ready.status_code == 503 and "postgres" in ready.json()["failed"]

        await asyncio.to_thread(cluster.start_postgres)
        outage_s = time.monotonic() - down_at
        # The same resident retries with the same key until the app has reconnected.
        probe_receipt = await apply(client, probe_letter, key=probe_key, seen=seen)
    receipts = await submit
    assert len(set(receipts)) == RESIDENTS and probe_receipt not in receipts
    assert seen[503] + seen["transport"] > 0, f"no client met the outage: {seen}"
    try:
        c = await invariants.check(cluster.pool, CODE, receipts + [probe_receipt], RESIDENTS + 1, timeout=120)
    except AssertionError:
        print(cluster.log_tail("worker"))  # shown by pytest with the failure
        raise
    assert cluster.procs["app"].poll() is None and cluster.procs["worker"].poll() is None  # recovered, not restarted
    print(
        f"outage {outage_s:.1f} s; outage answers in {submit_s:.2f}/{status_s:.2f}/{page_s:.2f} s; "
        f"clients saw {dict(seen)}; {c}"
    )


# Large enough that the batch's COPY outlasts the socket buffers once the release is frozen (so PostgreSQL
# still holds unsent rows when it restarts), small enough to seed in a few seconds.
# Big enough that the rows cannot all sit in the socket buffers while the release is frozen (~15 MB of COPY
# text); with 40,000 a loaded CI machine once saw the whole COPY end before the freeze took hold.
RELEASE_PAYMENTS = 100_000
# The release's COPY of the batch rows (payouts/pipeline.py STAGE_QUERY, wrapped by asyncpg).
BATCH_COPY = """
SELECT state, wait_event FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'COPY (SELECT payment_id%'
"""


@pytest.mark.timeout(300)
async def test_postgres_restarted_mid_generation_release_fails_cleanly_then_yields_the_approved_file(cluster):
    """`kyufu payouts release` is frozen while its COPY streams the batch rows (PostgreSQL blocked writing the
    rest to it), PostgreSQL is restarted (pg_ctl stop -m fast + start), the release resumes: it fails with a
    Japanese message, leaves nothing in the outbox (not even a temp file) and records nothing. Re-run, it
    releases a file the bank verifies and decrypts to the approved bytes, once; a third run is refused."""
    settings = cluster.settings
    batch, reference, approved, release = await approved_release(cluster, CODE, RELEASE_PAYMENTS)

    admin = await asyncpg.connect(cluster.services.urls()["DATABASE_ADMIN_URL"])  # sees every session's query
    proc = cluster.spawn("release-interrupted", *release)
    try:
        while proc.poll() is None:  # freeze the release as soon as its COPY is streaming
            row = await admin.fetchrow(BATCH_COPY, DATABASE)
            if row is not None and row["state"] == "active":
                os.kill(proc.pid, signal.SIGSTOP)
                break
            await asyncio.sleep(0.002)
        assert proc.poll() is None, "the release ended before its COPY could be caught: " + cluster.log_tail(
            "release-interrupted", 500
        )
        # Frozen mid-stream: once the socket buffers are full PostgreSQL blocks sending the remaining rows, so
        # the end of the COPY cannot reach the release. On a busy machine the server may take a while to get
        # there; if the COPY ends instead, everything fitted in the buffers and the batch is too small.
        blocked = []
        for _ in range(100):
            await asyncio.sleep(0.1)
            row = await admin.fetchrow(BATCH_COPY, DATABASE)
            assert row is not None and row["state"] == "active", (
                f"the COPY ended while the release was frozen ({row and dict(row)}); use a bigger batch"
            )
            blocked.append(row["wait_event"] == "ClientWrite")
            if blocked[-3:] == [True] * 3:
                break
        assert blocked[-3:] == [True] * 3, "PostgreSQL never blocked sending the rows to the frozen release"
        sealing_started = [n for n in cluster.outbox_files() if n.endswith(".tmp")]
        down_at = time.monotonic()
        await asyncio.to_thread(cluster.stop_postgres, "fast")
        await asyncio.to_thread(cluster.start_postgres)
        outage_s = time.monotonic() - down_at
    finally:
        await admin.close()
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
    await asyncio.to_thread(proc.wait, 60)
    log = cluster.log_tail("release-interrupted")
    cluster.stop("release-interrupted")
    assert sealing_started, "the encryptor had not opened its temp file: not mid-generation"
    assert proc.returncode == 2 and "データベースとの接続が切れたため" in log, log[-2000:]
    assert "Traceback" not in log, log[-2000:]
    assert cluster.outbox_files() == [], "a file or temp file was left by the interrupted release"
    state = await release_state(cluster.pool, CODE, batch.batch_id)
    assert (state["status"], state["released_sha256"], state["releases"]) == ("approved", None, 0)

    started = time.monotonic()
    code, out = await asyncio.to_thread(cluster.run_cli, "release-rerun", *release)
    rerun_s = time.monotonic() - started
    assert code == 0, out[-2000:]
    plaintext, file_name = await as_the_bank(settings.database_owner_url, settings, batch, cluster.outbox, cluster.root)
    assert plaintext == reference  # byte-identical to the approved generation
    assert hashlib.sha256(plaintext).hexdigest() == approved
    state = await release_state(cluster.pool, CODE, batch.batch_id)
    assert (state["status"], state["released_sha256"], state["releases"]) == ("released", approved, 1)
    assert cluster.outbox_files() == [file_name + ".age", file_name + ".manifest.json"]

    sealed = (cluster.outbox / (file_name + ".age")).read_bytes()
    code, out = await asyncio.to_thread(cluster.run_cli, "release-again", *release)
    assert code == 2 and "既に送信" in out, out[-2000:]
    assert (cluster.outbox / (file_name + ".age")).read_bytes() == sealed
    assert (await release_state(cluster.pool, CODE, batch.batch_id))["releases"] == 1
    await invariants.check(cluster.pool, CODE, [], 0)
    print(f"{RELEASE_PAYMENTS} payments; outage {outage_s:.1f} s; re-run released in {rerun_s:.1f} s")
