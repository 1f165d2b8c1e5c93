"""Per-batch guardrails (payouts/guardrails.py, migration 0018): the 阿武町 shape (many households' money to
one account) needs a staff override before approval; no payment above its entitlement; a batch's payments
are fixed once prepared; one live payment per entitlement — each held by the database too."""

from __future__ import annotations

import asyncpg
import pytest

from app.errors import Conflict, Forbidden, InvalidInput
from app.tenancy.transaction import tenant_transaction
from payouts import batches, guardrails
from payouts.payments import insert_payment
from tests.jobs import draft, run_payout_jobs
from tests.staff.conftest import add_application, add_bank_settings

SHARED = "7777777"


async def _abu_world(make_world, app_pool, *, limit: int | None = None):
    """Three households whose applications all name one account, and one with its own."""
    world = await make_world(applications=0)
    async with tenant_transaction(app_pool, world.code) as conn:
        await add_bank_settings(conn, world.code)
        for _ in range(3):
            await add_application(conn, world, status="approved", account_number=SHARED)
        await add_application(conn, world, status="approved")
        if limit is not None:
            await conn.execute("UPDATE programs SET max_payments_per_account = $1", limit)
    return world


async def _drafted_and_hashed(app_pool, world, transfer_date, who="draft") -> tuple[int, str]:
    batch_id = await draft(app_pool, world, transfer_date, who)
    [sha] = await run_payout_jobs(app_pool, world.settings, world.code)
    return batch_id, sha


async def test_one_account_paid_for_several_households_waits_for_an_override(
    make_world, app_pool, settings, transfer_date
):
    world = await _abu_world(make_world, app_pool)
    code = world.code
    batch_id, sha = await _drafted_and_hashed(app_pool, world, transfer_date, who="draft2")
    async with tenant_transaction(app_pool, code) as conn:
        view = await batches.approval_view(conn, settings, world.cipher, code, world.staff["appr"], batch_id)
        [flag] = view["guardrails"]["accounts"]
        assert view["guardrails"]["limit"] == 1 and view["guardrails"]["open"] == 1
        assert (flag["payments"], flag["total_yen"], flag["account_number_masked"]) == (3, 300_000, "****777")
        assert len(flag["payment_ids"]) == 3
        with pytest.raises(Conflict, match="上限を超える口座が1件"):
            await batches.approve_batch(conn, settings, code, world.staff["appr"], batch_id, sha)
    # The database refuses the approval too, whatever the application does.
    with pytest.raises(asyncpg.CheckViolationError, match="payout_batches_accounts_within_limit|over the per-account"):
        async with tenant_transaction(app_pool, code) as conn:
            await conn.execute(batches.APPROVE, code, batch_id, world.staff["appr"].staff_id, sha)

    async with tenant_transaction(app_pool, code) as conn:
        with pytest.raises(Forbidden):  # a drafter without the approver or reviewer role
            await guardrails.override_account(conn, code, world.staff["draft"], batch_id, flag["account"], "施設")
        with pytest.raises(Forbidden, match="起案した本人"):
            await guardrails.override_account(conn, code, world.staff["draft2"], batch_id, flag["account"], "施設")
        with pytest.raises(InvalidInput, match="理由"):
            await guardrails.override_account(conn, code, world.staff["rev"], batch_id, flag["account"], "  ")
        await guardrails.override_account(conn, code, world.staff["rev"], batch_id, flag["account"], "同一施設の入所者")
        with pytest.raises(Conflict, match="確認済み"):
            await guardrails.override_account(conn, code, world.staff["rev"], batch_id, flag["account"], "二度目")
        view = await batches.approval_view(conn, settings, world.cipher, code, world.staff["appr"], batch_id)
        assert view["guardrails"]["open"] == 0
        assert view["guardrails"]["accounts"][0]["overridden_by_login"] == "rev"
        assert await batches.approve_batch(conn, settings, code, world.staff["appr"], batch_id, sha) == sha
        audited = await conn.fetchval(
            "SELECT details FROM audit_log WHERE action = 'batch.account_override' AND object_id = $1", str(batch_id)
        )
    assert "同一施設の入所者" in audited and SHARED not in audited


async def test_the_drafters_own_override_does_not_count_in_the_database(make_world, app_pool, settings, transfer_date):
    world = await _abu_world(make_world, app_pool)
    code = world.code
    batch_id, sha = await _drafted_and_hashed(app_pool, world, transfer_date)
    with pytest.raises(asyncpg.CheckViolationError, match="over the per-account"):
        async with tenant_transaction(app_pool, code) as conn:
            await conn.execute(
                "UPDATE payout_batch_account_flags"
                " SET overridden_by = $1, overridden_at = now(), override_reason = 'x'",
                world.staff["draft"].staff_id,
            )
            await conn.execute(batches.APPROVE, code, batch_id, world.staff["appr"].staff_id, sha)


async def test_a_program_may_allow_more_payments_per_account(make_world, app_pool, settings, transfer_date):
    world = await _abu_world(make_world, app_pool, limit=3)
    batch_id, sha = await _drafted_and_hashed(app_pool, world, transfer_date)
    async with tenant_transaction(app_pool, world.code) as conn:
        assert await guardrails.open_flags(conn, world.code, batch_id) == 0
        assert await batches.approve_batch(conn, settings, world.code, world.staff["appr"], batch_id, sha) == sha


async def test_no_payment_above_its_entitlement_and_none_joins_a_prepared_batch(
    make_world, app_pool, settings, transfer_date
):
    world = await make_world(applications=2, status="approved")
    code = world.code
    async with tenant_transaction(app_pool, code) as conn:
        await add_bank_settings(conn, code)
    batch_id = await draft(app_pool, world, transfer_date)
    async with tenant_transaction(app_pool, code) as conn:
        late = await add_application(conn, world, status="approved")
        entitlement = await conn.fetchval("SELECT entitlement_id FROM applications WHERE application_id = $1", late)
    common = dict(
        entitlement_id=entitlement,
        application_id=late,
        bank_code="0001",
        branch_code="001",
        account_type=1,
        account_number="7654321",
        holder_kana="ﾔﾏﾀﾞ ﾊﾅｺ",
    )
    with pytest.raises(asyncpg.CheckViolationError, match="above its entitlement"):
        async with tenant_transaction(app_pool, code) as conn:
            await insert_payment(conn, world.cipher, code, amount_yen=100_001, **common)
    async with tenant_transaction(app_pool, code) as conn:
        payment_id = await insert_payment(conn, world.cipher, code, amount_yen=100_000, **common)
    with pytest.raises(asyncpg.CheckViolationError, match="above its entitlement"):
        async with tenant_transaction(app_pool, code) as conn:
            await conn.execute("UPDATE payments SET amount_yen = 200000 WHERE payment_id = $1", payment_id)
    # The prepared draft's set of payments cannot grow, nor can the draft be reopened.
    with pytest.raises(asyncpg.CheckViolationError, match="not being prepared"):
        async with tenant_transaction(app_pool, code) as conn:
            await conn.execute(
                "UPDATE payments SET status = 'in_batch', batch_id = $2 WHERE payment_id = $1", payment_id, batch_id
            )
    with pytest.raises(asyncpg.CheckViolationError, match="back to preparing"):
        async with tenant_transaction(app_pool, code) as conn:
            await conn.execute("UPDATE payout_batches SET status = 'preparing' WHERE batch_id = $1", batch_id)
    # One live payment per entitlement (held since migration 0002): a second one for a batched entitlement.
    with pytest.raises(asyncpg.UniqueViolationError, match="payments_one_live"):
        async with tenant_transaction(app_pool, code) as conn:
            batched = await conn.fetchval("SELECT entitlement_id FROM payments WHERE batch_id = $1 LIMIT 1", batch_id)
            await insert_payment(conn, world.cipher, code, amount_yen=1, **(common | {"entitlement_id": batched}))


async def test_the_approval_page_shows_the_account_and_takes_the_override(
    make_world, app_pool, settings, transfer_date
):
    from starlette.testclient import TestClient

    from app.main import create_app
    from tests.hostile.helpers import csrf_from, staff_signed_in

    world = await _abu_world(make_world, app_pool)
    batch_id, sha = await _drafted_and_hashed(app_pool, world, transfer_date)
    with TestClient(create_app(settings), follow_redirects=False) as client:
        await staff_signed_in(client, app_pool, world.code, world.staff["appr"].staff_id)
        page = client.get(f"/staff/batches/{batch_id}")
        assert page.status_code == 200 and 'id="over-limit-open">1<' in page.text and "****777" in page.text
        assert 'id="guardrails-open"' in page.text and 'id="approve"' not in page.text
        assert "payments_within_entitlement" in page.text  # the rules the database holds are stated
        async with tenant_transaction(app_pool, world.code, readonly=True) as conn:
            account = await conn.fetchval("SELECT encode(account_key, 'hex') FROM payout_batch_account_flags")
        url = f"/staff/batches/{batch_id}/accounts/{account}/override"
        r = client.post(url, data={"csrf_token": csrf_from(page.text), "reason": "同一施設の入所者"})
        assert r.status_code == 303
        page = client.get(f"/staff/batches/{batch_id}")
        assert "確認済み: appr（同一施設の入所者）" in page.text and 'id="approve"' in page.text
        r = client.post(f"/staff/batches/{batch_id}/approve", data={"csrf_token": csrf_from(page.text), "sha256": sha})
        assert r.status_code == 303
