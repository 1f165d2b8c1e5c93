"""A 口座変更 racing a draft's preparation (payouts/payments.py ELIGIBLE_CHUNK takes FOR SHARE on the
applications it reads): no payment is ever made on the account a committed change replaced."""

from __future__ import annotations

import asyncio

from app.intake.changes import change_account
from app.intake.forms import parse_bank
from app.tenancy.transaction import tenant_transaction
from payouts import drafting
from payouts.payments import open_bank
from tests.staff.conftest import add_bank_settings

NEW = parse_bank(
    {
        "bank_code": "0005",
        "branch_code": "001",
        "account_type": "1",
        "account_number": "7654321",
        "holder_kana": "ﾔﾏﾀﾞ ﾀﾛｳ",
    }
)


async def test_a_change_in_progress_makes_the_chunk_wait_and_the_old_account_is_never_paid(
    make_world, app_pool, settings, transfer_date
):
    world = await make_world(applications=3, status="approved")
    changed = world.applications[1]
    async with tenant_transaction(app_pool, world.code) as conn:
        await add_bank_settings(conn, world.code)
        entitlement = await conn.fetchval("SELECT entitlement_id FROM applications WHERE application_id = $1", changed)
        batch_id = await drafting.draft_batch(conn, world.code, world.staff["draft"], world.program_id, transfer_date)

    async with tenant_transaction(app_pool, world.code) as change_conn:
        # The resident's change holds the application (FOR UPDATE), not yet committed...
        result = await change_account(change_conn, world.cipher, world.code, entitlement, NEW, actor="resident:test")
        assert result.kind == "changed"
        preparing = asyncio.create_task(drafting.prepare_batch(app_pool, settings, world.code, batch_id, 0))
        await asyncio.sleep(1.0)
        # ...so the chunk that reads it waits instead of copying the old account into a payment.
        assert not preparing.done()
    outcome = await asyncio.wait_for(preparing, 30)

    async with tenant_transaction(app_pool, world.code, readonly=True) as conn:
        rows = await conn.fetch(
            "SELECT payment_id, application_id, status, bank_code, bank_enc, account_number_enc, holder_kana_enc"
            " FROM payments WHERE batch_id = $1 OR status = 'ready'",
            batch_id,
        )
        status = await conn.fetchval("SELECT status FROM applications WHERE application_id = $1", changed)
    # The changed application is being verified again: it waits for the next draft, on its new account.
    assert status == "received"
    assert changed not in {r["application_id"] for r in rows}
    assert len(rows) == 2 and {open_bank(world.cipher, r)[0] for r in rows}.isdisjoint({"7654321"})
    assert outcome == "prepared 2"


async def test_a_change_after_the_chunk_committed_is_too_late(make_world, app_pool, settings, transfer_date):
    world = await make_world(applications=2, status="approved")
    async with tenant_transaction(app_pool, world.code) as conn:
        await add_bank_settings(conn, world.code)
        entitlement = await conn.fetchval(
            "SELECT entitlement_id FROM applications WHERE application_id = $1", world.applications[0]
        )
        batch_id = await drafting.draft_batch(conn, world.code, world.staff["draft"], world.program_id, transfer_date)
    assert await drafting.prepare_batch(app_pool, settings, world.code, batch_id, 0) == "prepared 2"
    async with tenant_transaction(app_pool, world.code) as conn:
        result = await change_account(conn, world.cipher, world.code, entitlement, NEW, actor="resident:test")
    assert result.kind == "too_late"
