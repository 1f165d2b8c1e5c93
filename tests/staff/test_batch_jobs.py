"""Hashing and release in the worker (issue 13): no console request renders a batch's file. Drafting asks
the worker for the file's hash (the page shows ハッシュ計算中 with progress until it is recorded), the
approver approves the recorded hash, 送信 asks the worker for the release (the page shows 送信処理中), and
the worker's job releases it once."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from app.main import create_app
from app.tenancy.transaction import tenant_transaction
from payouts import batches, pipeline
from tests.hostile.helpers import csrf_from, staff_signed_in
from tests.jobs import draft, run_payout_jobs
from tests.staff.conftest import add_bank_settings


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings), follow_redirects=False) as c:
        yield c


@pytest.fixture
def renderer_forbidden(monkeypatch):
    """While `state["in_request"]` is set, rendering a batch's file fails the test; jobs run with it unset."""
    state = {"in_request": True, "calls": 0}
    real = pipeline.render_in_transaction

    async def guarded(*args, **kwargs):
        state["calls"] += 1
        if state["in_request"]:
            raise AssertionError("a console request rendered the batch's file")
        return await real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "render_in_transaction", guarded)
    return state


async def _jobs(state, app_pool, settings, code):
    state["in_request"] = False
    try:
        return await run_payout_jobs(app_pool, settings, code)
    finally:
        state["in_request"] = True


async def test_the_console_never_renders_the_file_and_the_worker_hashes_and_releases_it(
    make_world, client, app_pool, settings, transfer_date, renderer_forbidden
):
    world = await make_world(applications=3, status="approved")
    code = world.code
    async with tenant_transaction(app_pool, code) as conn:
        await add_bank_settings(conn, code)
        preview = await batches.draft_preview(conn, code, world.program_id)

    # 振込起案 through the console: the page says the hash is being computed.
    token = await staff_signed_in(client, app_pool, code, world.staff["draft"].staff_id)
    r = client.post(
        f"/staff/programs/{world.program_id}/draft",
        data={
            "csrf_token": token,
            "transfer_date": transfer_date.isoformat(),
            "expected_count": str(preview["pending_count"]),
            "expected_total_yen": str(preview["pending_yen"]),
        },
    )
    assert r.status_code == 303, r.text
    batch_id = int(r.headers["location"].rsplit("/", 1)[1])
    # The request only recorded the draft: the worker creates its payments.
    page = client.get(f"/staff/batches/{batch_id}")
    assert "起案処理中" in page.text and "作成中（0 / 3 件）" in page.text and 'http-equiv="refresh"' in page.text
    async with tenant_transaction(app_pool, code, readonly=True) as conn:
        assert await conn.fetchval("SELECT count(*) FROM payments") == 0
    assert await run_payout_jobs(app_pool, settings, code, ("prepare_batch",)) == ["prepared 3"]
    page = client.get(f"/staff/batches/{batch_id}")
    assert "ハッシュ計算中（0 / 3 件）" in page.text and 'http-equiv="refresh"' in page.text

    # The approver's view before the hash exists: nothing to approve, and approving is refused.
    client.cookies.clear()
    token = await staff_signed_in(client, app_pool, code, world.staff["appr"].staff_id)
    page = client.get(f"/staff/batches/{batch_id}")
    assert page.status_code == 200 and 'id="approve"' not in page.text and 'id="file-sha256"' not in page.text
    assert (
        client.post(f"/staff/batches/{batch_id}/approve", data={"csrf_token": token, "sha256": "0" * 64}).status_code
        == 409
    )

    # The worker's hash job records the SHA-256; the approver approves exactly that.
    [sha] = await _jobs(renderer_forbidden, app_pool, settings, code)
    page = client.get(f"/staff/batches/{batch_id}")
    assert f'<code id="file-sha256">{sha}</code>' in page.text and 'http-equiv="refresh"' not in page.text
    r = client.post(f"/staff/batches/{batch_id}/approve", data={"csrf_token": csrf_from(page.text), "sha256": sha})
    assert r.status_code == 303

    # 送信: the request only asks; the worker releases.
    page = client.get(f"/staff/batches/{batch_id}")
    r = client.post(f"/staff/batches/{batch_id}/release", data={"csrf_token": csrf_from(page.text)})
    assert r.status_code == 303
    page = client.get(f"/staff/batches/{batch_id}")
    assert 'id="releasing"' in page.text and 'id="release"' not in page.text  # no second click meanwhile
    [outcome] = await _jobs(renderer_forbidden, app_pool, settings, code)
    assert outcome.startswith("released ")
    async with tenant_transaction(app_pool, code, readonly=True) as conn:
        batch = await batches.get_batch(conn, code, batch_id)
        actions = [
            r["action"]
            for r in await conn.fetch(
                "SELECT action FROM audit_log WHERE object_type = 'batch' AND object_id = $1 ORDER BY seq",
                str(batch_id),
            )
        ]
    assert batch["status"] == "released" and batch["released_sha256"] == sha == batch["approved_sha256"]
    assert actions == [
        "batch.draft",
        "batch.prepared",
        "personal_data.view",
        "personal_data.view",  # the refused approval shows the page again, with its sample
        "personal_data.view",
        "batch.approve",
        "personal_data.view",
        "batch.release_request",
        "personal_data.view",
        "batch.release",
    ]
    # The renderer ran twice, both times in a job: once for the hash, once for the release.
    assert renderer_forbidden["calls"] == 2


async def test_a_send_back_asks_for_a_new_hash_and_a_stale_hash_job_does_nothing(
    make_world, app_pool, settings, transfer_date
):
    world = await make_world(applications=2, status="approved")
    code = world.code
    async with tenant_transaction(app_pool, code) as conn:
        await add_bank_settings(conn, code)
    batch_id = await draft(app_pool, world, transfer_date)
    async with tenant_transaction(app_pool, code) as conn:
        # Sent back before the first hash job ran: the first job is stale, the second one counts.
        await batches.reject_batch(conn, settings, code, world.staff["appr"], batch_id, "口座の確認")
        generation = (await batches.get_batch(conn, code, batch_id))["hash_generation"]
    outcomes = await run_payout_jobs(app_pool, settings, code)
    assert generation == 2 and outcomes[0] == "stale" and len(outcomes[1]) == 64
    async with tenant_transaction(app_pool, code, readonly=True) as conn:
        batch = await batches.get_batch(conn, code, batch_id)
    assert batch["plaintext_sha256"] == outcomes[1] and batch["hash_progress"] == batch["record_count"] == 2


async def test_a_batch_the_stage_cannot_write_shows_why_instead_of_a_hash(
    make_world, app_pool, settings, transfer_date
):
    world = await make_world(applications=1, status="approved")
    code = world.code
    batch_id = await draft(app_pool, world, transfer_date)  # no bank settings: the stage cannot make a header
    assert await run_payout_jobs(app_pool, settings, code) == ["refused"]
    async with tenant_transaction(app_pool, code) as conn:
        batch = await batches.get_batch(conn, code, batch_id)
        assert batch["plaintext_sha256"] is None and batch["hash_error"].startswith("振込ファイルを作成できません")
        with pytest.raises(batches.Conflict, match="振込ファイルを作成できません"):
            await batches.approve_batch(conn, settings, code, world.staff["appr"], batch_id, "0" * 64)


async def test_the_database_refuses_an_approval_of_any_other_hash(make_world, app_pool, settings, transfer_date):
    import asyncpg

    world = await make_world(applications=1, status="approved")
    code = world.code
    async with tenant_transaction(app_pool, code) as conn:
        await add_bank_settings(conn, code)
    batch_id = await draft(app_pool, world, transfer_date)
    await run_payout_jobs(app_pool, settings, code)
    with pytest.raises(asyncpg.CheckViolationError, match="payout_batches_approves_the_recorded_hash"):
        async with tenant_transaction(app_pool, code) as conn:
            await conn.execute(batches.APPROVE, code, batch_id, world.staff["appr"].staff_id, "a" * 64)
