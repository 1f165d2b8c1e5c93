"""振込起案 in the worker (payouts/drafting.py): the request records the draft, the worker's `prepare_batch`
creates its payments in committed chunks, step after step, and finishes it — each payment once, whatever
is repeated or interrupted."""

from __future__ import annotations

import pytest

from app.errors import Conflict
from app.tenancy.transaction import tenant_transaction
from payouts import batches, drafting
from tests.jobs import run_payout_jobs
from tests.staff.conftest import add_application, add_bank_settings

PAYMENTS = """
SELECT count(*) AS payments, count(DISTINCT entitlement_id) AS entitlements,
       count(*) FILTER (WHERE batch_id = $1 AND status = 'in_batch') AS in_batch,
       count(*) FILTER (WHERE status = 'ready') AS ready
FROM payments
"""


async def _world(make_world, app_pool, n):
    world = await make_world(applications=n, status="approved")
    async with tenant_transaction(app_pool, world.code) as conn:
        await add_bank_settings(conn, world.code)
    return world


async def _request(app_pool, world, transfer_date, **expected) -> int:
    async with tenant_transaction(app_pool, world.code) as conn:
        return await drafting.draft_batch(
            conn, world.code, world.staff["draft"], world.program_id, transfer_date, **expected
        )


async def _state(app_pool, world, batch_id):
    async with tenant_transaction(app_pool, world.code, readonly=True) as conn:
        return await batches.get_batch(conn, world.code, batch_id), await conn.fetchrow(PAYMENTS, batch_id)


@pytest.fixture
def small_steps(monkeypatch):
    """Two payments per chunk and no time per job: every chunk is its own job step."""
    monkeypatch.setattr(drafting, "PREPARE_CHUNK", 2)
    monkeypatch.setattr(drafting, "PREPARE_BUDGET_S", 0.0)


async def test_a_draft_is_prepared_step_by_step_and_each_payment_made_once(
    make_world, app_pool, settings, transfer_date, small_steps
):
    world = await _world(make_world, app_pool, 5)
    batch_id = await _request(app_pool, world, transfer_date, expected_count=5, expected_total_yen=500_000)
    batch, payments = await _state(app_pool, world, batch_id)
    assert batch["status"] == "preparing" and payments["payments"] == 0  # nothing made in the request

    outcomes = await run_payout_jobs(app_pool, settings, world.code, ("prepare_batch",))
    assert outcomes == ["continued", "continued", "prepared 5"]
    batch, payments = await _state(app_pool, world, batch_id)
    assert (batch["status"], batch["record_count"], batch["total_yen"]) == ("draft", 5, 500_000)
    assert batch["prepared_count"] == 5 and batch["prepared_at"] is not None and batch["hash_generation"] == 1
    assert dict(payments) == {"payments": 5, "entitlements": 5, "in_batch": 5, "ready": 0}

    # A step repeated (Redis lost its result, the sweeper re-enqueued it) does nothing.
    for step in range(3):
        assert await drafting.prepare_batch(app_pool, settings, world.code, batch_id, step) == "stale"
    assert (await _state(app_pool, world, batch_id))[1]["payments"] == 5
    # The last step asked for the hash, which the worker then records.
    [sha] = await run_payout_jobs(app_pool, settings, world.code)
    assert (await _state(app_pool, world, batch_id))[0]["plaintext_sha256"] == sha


async def test_a_step_that_dies_mid_chunk_is_redone_without_a_second_payment(
    make_world, app_pool, settings, transfer_date, monkeypatch
):
    world = await _world(make_world, app_pool, 5)
    monkeypatch.setattr(drafting, "PREPARE_CHUNK", 2)
    batch_id = await _request(app_pool, world, transfer_date)
    real, calls = drafting.create_payments, {"n": 0}

    async def dies_on_the_second_chunk(conn, *args):
        calls["n"] += 1
        created = await real(conn, *args)  # written, then the worker dies before the chunk commits
        if calls["n"] == 2:
            raise ConnectionResetError("worker killed")
        return created

    monkeypatch.setattr(drafting, "create_payments", dies_on_the_second_chunk)
    with pytest.raises(ConnectionResetError):
        await drafting.prepare_batch(app_pool, settings, world.code, batch_id, 0)
    batch, payments = await _state(app_pool, world, batch_id)
    assert batch["status"] == "preparing" and batch["prepared_count"] == 2 and payments["payments"] == 2

    monkeypatch.setattr(drafting, "create_payments", real)
    assert await run_payout_jobs(app_pool, settings, world.code, ("prepare_batch",)) == ["prepared 5"]
    batch, payments = await _state(app_pool, world, batch_id)
    assert batch["record_count"] == 5 and dict(payments) == {
        "payments": 5,
        "entitlements": 5,
        "in_batch": 5,
        "ready": 0,
    }


async def test_applications_decided_after_the_draft_wait_for_the_next_one(
    make_world, app_pool, settings, transfer_date
):
    world = await _world(make_world, app_pool, 2)
    batch_id = await _request(app_pool, world, transfer_date, expected_count=2, expected_total_yen=200_000)
    async with tenant_transaction(app_pool, world.code) as conn:  # verification goes on meanwhile
        await add_application(conn, world, status="approved")
    assert await run_payout_jobs(app_pool, settings, world.code, ("prepare_batch",)) == ["prepared 2"]
    assert (await _state(app_pool, world, batch_id))[0]["record_count"] == 2
    async with tenant_transaction(app_pool, world.code, readonly=True) as conn:
        pending = await batches.draft_preview(conn, world.code, world.program_id)
    assert (pending["pending_count"], pending["ready_count"]) == (1, 0)


async def test_one_preparation_per_program_and_a_cancel_stops_it(
    make_world, app_pool, settings, transfer_date, small_steps
):
    world = await _world(make_world, app_pool, 5)
    batch_id = await _request(app_pool, world, transfer_date)
    with pytest.raises(Conflict, match="処理中"):
        await _request(app_pool, world, transfer_date)
    assert await drafting.prepare_batch(app_pool, settings, world.code, batch_id, 0) == "continued"
    async with tenant_transaction(app_pool, world.code) as conn:
        await batches.cancel_batch(conn, world.code, world.staff["draft"], batch_id)
    assert await run_payout_jobs(app_pool, settings, world.code, ("prepare_batch",)) == ["stale"]
    batch, payments = await _state(app_pool, world, batch_id)
    assert batch["status"] == "cancelled" and dict(payments) == {
        "payments": 2,
        "entitlements": 2,
        "in_batch": 0,
        "ready": 2,
    }
    # The next draft takes the two ready payments and makes the other three.
    second = await _request(app_pool, world, transfer_date, expected_count=5, expected_total_yen=500_000)
    assert (await run_payout_jobs(app_pool, settings, world.code, ("prepare_batch",)))[-1] == "prepared 5"
    assert dict((await _state(app_pool, world, second))[1]) == {
        "payments": 5,
        "entitlements": 5,
        "in_batch": 5,
        "ready": 0,
    }


async def test_a_draft_with_nothing_to_pay_is_cancelled_with_the_reason(make_world, app_pool, settings, transfer_date):
    world = await _world(make_world, app_pool, 0)
    batch_id = await _request(app_pool, world, transfer_date)
    assert await run_payout_jobs(app_pool, settings, world.code) == ["refused"]
    batch, _ = await _state(app_pool, world, batch_id)
    assert batch["status"] == "cancelled" and "起案できる支払がありません" in batch["draft_error"]
