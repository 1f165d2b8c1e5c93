"""Once-only across channels, and no lost verification when Redis is down at submit time."""

from __future__ import annotations

import subprocess
import tempfile
import time
import uuid

import httpx
from arq.jobs import Job

from app import outbox
from app.intake.claims import submit_application
from app.intake.forms import parse_bank
from app.main import arq_redis, create_app
from app.services import _free_port, _port_open, _valkey_bin
from app.tenancy.transaction import tenant_transaction
from tests.intake.helpers import application_body, bank_body, make_letters
from tests.live_server import start_live_server


async def test_paper_after_online_returns_the_online_receipt(app_pool, settings, municipality, live_server):
    code = await municipality()
    [letter] = await make_letters(app_pool, settings.master_key_bytes, code)
    async with httpx.AsyncClient(base_url=live_server) as client:
        online = await client.post(
            "/api/v1/applications", json=application_body(letter), headers={"Idempotency-Key": str(uuid.uuid4())}
        )
    assert online.status_code == 201
    async with tenant_transaction(app_pool, code) as conn:
        paper = await submit_application(conn, settings, code, letter.entitlement_id, parse_bank(bank_body()), "paper")
    assert paper.kind == "duplicate" and paper.receipt_no == online.json()["receipt_no"]
    async with tenant_transaction(app_pool, code, readonly=True) as conn:
        assert (
            await conn.fetchval("SELECT count(*) FROM applications WHERE entitlement_id = $1", letter.entitlement_id)
            == 1
        )
        assert (
            await conn.fetchval(
                "SELECT channel FROM intake_duplicate_claims WHERE entitlement_id = $1", letter.entitlement_id
            )
            == "paper"
        )


async def test_online_after_paper_is_409_with_the_paper_receipt(app_pool, settings, municipality, live_server):
    code = await municipality()
    [letter] = await make_letters(app_pool, settings.master_key_bytes, code)
    async with tenant_transaction(app_pool, code) as conn:
        paper = await submit_application(conn, settings, code, letter.entitlement_id, parse_bank(bank_body()), "paper")
    assert paper.kind == "created"
    async with httpx.AsyncClient(base_url=live_server) as client:
        online = await client.post(
            "/api/v1/applications", json=application_body(letter), headers={"Idempotency-Key": str(uuid.uuid4())}
        )
    assert online.status_code == 409 and online.json()["receipt_no"] == paper.receipt_no
    async with tenant_transaction(app_pool, code, readonly=True) as conn:
        row = await conn.fetchrow(
            "SELECT channel, count(*) OVER () AS n FROM applications WHERE entitlement_id = $1", letter.entitlement_id
        )
    assert row["channel"] == "paper" and row["n"] == 1


def _start_valkey(port: int, workdir: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            str(_valkey_bin()),
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            workdir,
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not _port_open(port):
        assert time.monotonic() < deadline, "valkey did not start"
        time.sleep(0.05)
    return proc


async def test_redis_down_at_submit_still_gives_a_receipt_and_the_job_is_enqueued_later(
    app_pool, settings, municipality
):
    """A private Valkey is stopped before the submit and restarted after; the sweeper enqueues the job."""
    code = await municipality()
    [letter] = await make_letters(app_pool, settings.master_key_bytes, code)
    port = _free_port()
    own = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{port}/0"})
    workdir = tempfile.mkdtemp(prefix="kyufu-valkey-")
    valkey = _start_valkey(port, workdir)
    server = start_live_server(create_app(own))
    try:
        valkey.terminate()
        valkey.wait(10)
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            r = await client.post(
                "/api/v1/applications", json=application_body(letter), headers={"Idempotency-Key": str(uuid.uuid4())}
            )
        assert r.status_code == 201, r.text
        async with tenant_transaction(app_pool, code, readonly=True) as conn:
            app_id = await conn.fetchval(
                "SELECT application_id FROM applications WHERE entitlement_id = $1", letter.entitlement_id
            )
            row = await conn.fetchrow(
                "SELECT enqueued_at, done_at FROM outbox WHERE job_id = $1", f"verify:{code}:{app_id}"
            )
        assert row is not None and row["done_at"] is None
        valkey = _start_valkey(port, workdir)
        redis = arq_redis(own)
        try:
            # What the worker's sweep_outbox cron does every 15 s.
            await outbox.sweep(app_pool, redis, retry_after_s=0)
            queued = [
                j.decode()
                for j in await redis.zrange(redis.default_queue_name, 0, -1)
                if j.decode().startswith(f"verify_applications_batch:{code}:")
            ]
            assert [(await Job(j, redis).info()).args for j in queued] == [(code, [app_id])]
        finally:
            await redis.aclose()
    finally:
        server.stop()
        valkey.terminate()
        valkey.wait(10)
