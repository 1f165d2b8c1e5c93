"""支給保留・支給停止 (payouts/holds.py, migration 0025): a held entitlement is never drafted, a batch holding
one is neither approved nor released, a stop is lifted only by a second reviewer, every step is audited,
and the resident only learns that the application is being checked."""

from __future__ import annotations

import asyncpg
import pytest
from starlette.testclient import TestClient

from app.errors import Conflict, Forbidden, InvalidInput
from app.intake import status
from app.main import create_app
from app.registry import screening
from app.tenancy.transaction import tenant_transaction
from payouts import batches, holds
from payouts.payments import insert_payment
from tests.hostile.helpers import staff_signed_in
from tests.jobs import draft, run_payout_jobs
from tests.staff.conftest import add_bank_settings, make_staff


async def _entitlement(conn, app_id: int) -> int:
    return await conn.fetchval("SELECT entitlement_id FROM applications WHERE application_id = $1", app_id)


async def _batch_entitlements(conn, batch_id: int) -> set[int]:
    rows = await conn.fetch("SELECT entitlement_id FROM payments WHERE batch_id = $1", batch_id)
    return {r["entitlement_id"] for r in rows}


async def test_a_held_entitlement_is_left_out_of_the_draft_until_released(make_world, app_pool, transfer_date):
    world = await make_world(applications=3, status="approved")
    async with tenant_transaction(app_pool, world.code) as conn:
        held = await _entitlement(conn, world.applications[0])
        hold_id = await holds.place_hold(conn, world.code, world.staff["rev"], held, "investigation", "書類を確認中")
        preview = await batches.draft_preview(conn, world.code, world.program_id)
        assert preview["pending_count"] == 2
    batch_id = await draft(app_pool, world, transfer_date)
    async with tenant_transaction(app_pool, world.code) as conn:
        entitlements = await _batch_entitlements(conn, batch_id)
        assert len(entitlements) == 2 and held not in entitlements
        await holds.release_hold(conn, world.code, world.staff["rev"], hold_id, "書類が揃った")
        assert (await batches.draft_preview(conn, world.code, world.program_id))["pending_count"] == 1


async def test_the_database_refuses_a_held_payment_in_a_batch(make_world, app_pool, transfer_date):
    """Whatever writes the row: no payment of a held entitlement is created into a batch or moved into one."""
    world = await make_world(applications=1, status="approved")
    code = world.code
    async with tenant_transaction(app_pool, code) as conn:
        entitlement = await _entitlement(conn, world.applications[0])
        payment = await insert_payment(
            conn,
            world.cipher,
            code,
            entitlement_id=entitlement,
            application_id=world.applications[0],
            amount_yen=100000,
            bank_code="0001",
            branch_code="001",
            account_type=1,
            account_number="1234567",
            holder_kana="ﾔﾏﾀﾞ ﾀﾛｳ",
        )
        await holds.place_hold(
            conn, code, world.staff["draft"], entitlement, "death", "家族から連絡", payment_id=payment
        )
        batch = await conn.fetchval(
            "INSERT INTO payout_batches (municipality_code, program_id, transfer_date, drafted_by, record_count,"
            " total_yen, status) VALUES ($1, $2, $3, $4, 0, 0, 'preparing') RETURNING batch_id",
            code,
            world.program_id,
            transfer_date,
            world.staff["draft"].staff_id,
        )
    with pytest.raises(asyncpg.CheckViolationError, match="on hold") as refused:
        async with tenant_transaction(app_pool, code) as conn:
            await conn.execute(
                "UPDATE payments SET status = 'in_batch', batch_id = $2 WHERE payment_id = $1", payment, batch
            )
    assert refused.value.constraint_name == "payments_not_held"
    with pytest.raises(asyncpg.CheckViolationError, match="on hold"):
        async with tenant_transaction(app_pool, code) as conn:
            await conn.execute("UPDATE payments SET status = 'cancelled' WHERE payment_id = $1", payment)
            await conn.execute(
                "INSERT INTO payments (municipality_code, entitlement_id, amount_yen, bank_code, branch_code,"
                " account_type, account_number_enc, holder_kana_enc, status, batch_id)"
                " VALUES ($1, $2, 100000, '0001', '001', 1, '\\x00', '\\x00', 'in_batch', $3)",
                code,
                entitlement,
                batch,
            )


async def test_a_hold_after_the_draft_stops_approval_and_release(make_world, app_pool, settings, transfer_date):
    world = await make_world(applications=2, status="approved")
    code, approver = world.code, world.staff["appr"]
    async with tenant_transaction(app_pool, code) as conn:
        await add_bank_settings(conn, code)
        await screening.screen(conn, code, world.snapshot_id)  # what an import does
    batch_id = await draft(app_pool, world, transfer_date)
    [sha] = await run_payout_jobs(app_pool, settings, code)
    async with tenant_transaction(app_pool, code) as conn:
        first, second = [await _entitlement(conn, a) for a in world.applications]
        hold_id = await holds.place_hold(conn, code, world.staff["rev"], first, "dv", "支援措置の申出あり")
        assert "1件" in await holds.batch_hold(conn, code, batch_id)
        with pytest.raises(Conflict, match="支給保留"):
            await batches.approve_batch(conn, settings, code, approver, batch_id, sha)
        view = await batches.approval_view(conn, settings, world.cipher, code, approver, batch_id)
        assert view["on_hold"]
    with pytest.raises(asyncpg.CheckViolationError) as refused:
        async with tenant_transaction(app_pool, code) as conn:
            await conn.execute(batches.APPROVE, code, batch_id, approver.staff_id, sha)
    assert refused.value.constraint_name == "payout_batches_no_held_payment"
    with TestClient(create_app(settings), follow_redirects=False) as client:
        await staff_signed_in(client, app_pool, code, approver.staff_id)
        page = client.get(f"/staff/batches/{batch_id}")
        assert 'id="on-hold"' in page.text and 'id="approve"' not in page.text
        assert f"スナップショット {world.snapshot_id} で照合済み" in page.text  # what the batch was screened against
    async with tenant_transaction(app_pool, code) as conn:
        await holds.release_hold(conn, code, world.staff["rev"], hold_id, "確認の結果、支給")
        await batches.approve_batch(conn, settings, code, approver, batch_id, sha)
        # Held after approval: the release is not asked for, and the job seals nothing.
        await holds.place_hold(conn, code, world.staff["rev"], second, "seizure", "差押えの照会")
        with pytest.raises(Conflict, match="支給保留"):
            await batches.release_batch(conn, settings, code, approver, batch_id)
        await conn.execute(
            "UPDATE payout_batches SET release_attempt = 1, release_requested_at = now(), release_requested_by = $2"
            " WHERE batch_id = $1",
            batch_id,
            approver.staff_id,
        )
    assert await batches.perform_release(app_pool, settings, code, batch_id, 1) == "refused: hold"
    async with tenant_transaction(app_pool, code, readonly=True) as conn:
        row = await conn.fetchrow("SELECT status, release_error FROM payout_batches WHERE batch_id = $1", batch_id)
    assert row["status"] == "approved" and "支給保留" in row["release_error"]


async def test_a_stop_is_lifted_only_by_another_reviewer_and_every_step_is_audited(make_world, app_pool):
    world = await make_world(applications=1, status="approved")
    code, rev = world.code, world.staff["rev"]
    async with tenant_transaction(app_pool, code) as conn:
        rev2 = await make_staff(conn, world, "rev2", ["reviewer"])
        entitlement = await _entitlement(conn, world.applications[0])
        with pytest.raises(InvalidInput, match="経緯"):
            await holds.place_hold(conn, code, rev, entitlement, "death", " ")
        with pytest.raises(InvalidInput, match="理由"):
            await holds.place_hold(conn, code, rev, entitlement, "bankrupt", "x")
        with pytest.raises(Forbidden):  # a drafter may hold, not stop
            await holds.place_hold(conn, code, world.staff["draft"], entitlement, "death", "x", kind="stop")
        hold_id = await holds.place_hold(conn, code, rev, entitlement, "death", "死亡届の写しを受領")
        # The same reason again: the active hold stands.
        assert await holds.place_hold(conn, code, rev, entitlement, "death", "再度") == hold_id
        await holds.stop_hold(conn, code, rev, hold_id, "相続人への支給は対象外")
        assert (await holds.get_hold(conn, code, hold_id))["stop_note"] == "相続人への支給は対象外"
        with pytest.raises(Forbidden, match="別の審査担当者"):
            await holds.release_hold(conn, code, rev, hold_id, "誤り")
    with pytest.raises(asyncpg.CheckViolationError) as refused:
        async with tenant_transaction(app_pool, code) as conn:
            await conn.execute(
                "UPDATE payment_holds SET released_by = $2, released_at = now(), decision = 'release'"
                " WHERE hold_id = $1",
                hold_id,
                rev.staff_id,
            )
    assert refused.value.constraint_name == "payment_holds_stop_four_eyes"
    async with tenant_transaction(app_pool, code) as conn:
        await holds.release_hold(conn, code, rev2, hold_id, "死亡日は基準日前と判明せず、申請どおり支給")
        with pytest.raises(Conflict, match="解除されています"):
            await holds.release_hold(conn, code, rev2, hold_id, "again")
        entries = await conn.fetch(
            "SELECT action, actor_label, details FROM audit_log WHERE object_type = 'hold' AND object_id = $1"
            " ORDER BY seq",
            str(hold_id),
        )
    assert [(e["action"], e["actor_label"]) for e in entries] == [
        ("hold.place", "rev"),
        ("hold.stop", "rev"),
        ("hold.release", "rev2"),
    ]
    assert '"reason":"death"' in entries[0]["details"] and "死亡届の写しを受領" in entries[0]["details"]
    assert '"decision":"release"' in entries[2]["details"]
    with pytest.raises(asyncpg.CheckViolationError, match="released and cannot change"):
        async with tenant_transaction(app_pool, code) as conn:
            await conn.execute("UPDATE payment_holds SET note = 'rewritten' WHERE hold_id = $1", hold_id)


async def test_the_service_may_hold_for_another_module_and_a_sent_payment_cannot_be_held(make_world, app_pool):
    world = await make_world(applications=1, status="approved")
    code = world.code
    async with tenant_transaction(app_pool, code) as conn:
        entitlement = await _entitlement(conn, world.applications[0])
        hold_id = await holds.place_hold(conn, code, None, entitlement, "dv", None)
        row = await holds.get_hold(conn, code, hold_id)
        assert row["source"] == "system" and row["placed_by"] is None
        assert await conn.fetchval("SELECT actor_label FROM audit_log WHERE action = 'hold.place'") == "system"
        await conn.execute("UPDATE entitlements SET status = 'paid' WHERE entitlement_id = $1", entitlement)
        with pytest.raises(Conflict, match="組戻し"):
            await holds.place_hold(conn, code, world.staff["rev"], entitlement, "seizure", "照会")


async def test_the_resident_sees_a_neutral_message_whatever_the_reason(make_world, app_pool):
    world = await make_world(applications=2, status="approved")
    code = world.code
    shown = []
    async with tenant_transaction(app_pool, code) as conn:
        for app_id, reason in zip(world.applications, ("dv", "death")):
            entitlement = await _entitlement(conn, app_id)
            before = status.progress(await status.latest_application(conn, code, entitlement))
            assert before.key == "approved"
            await holds.place_hold(conn, code, world.staff["rev"], entitlement, reason, "内部の経緯")
            shown.append(status.progress(await status.latest_application(conn, code, entitlement)))
    assert shown[0] == shown[1]  # the same words for a DV hold and a death
    assert shown[0].key == "checking" and shown[0].label == "確認中"
    for word in ("DV", "暴力", "死亡", "保留", "停止", "内部の経緯"):
        assert word not in shown[0].label + shown[0].detail


async def test_the_console_places_stops_and_releases_a_hold(make_world, app_pool, settings):
    world = await make_world(applications=1, status="approved")
    code, app_id = world.code, world.applications[0]
    async with tenant_transaction(app_pool, code) as conn:
        rev2 = await make_staff(conn, world, "rev2", ["reviewer"])
    with TestClient(create_app(settings), follow_redirects=False) as client:
        token = await staff_signed_in(client, app_pool, code, world.staff["rev"].staff_id)
        page = client.get(f"/staff/applications/{app_id}")
        assert page.status_code == 200 and 'id="hold-form"' in page.text and 'id="application-holds-none"' in page.text
        r = client.post(f"/staff/applications/{app_id}/hold", data={"csrf_token": token, "reason": "death", "note": ""})
        assert r.status_code == 422 and "経緯" in r.text and 'id="hold-form"' in r.text  # the page again
        r = client.post(
            f"/staff/applications/{app_id}/hold",
            data={"csrf_token": token, "reason": "death", "kind": "hold", "note": "親族から電話"},
        )
        assert r.status_code == 303 and r.headers["location"].startswith("/staff/holds?hold=")
        hold_id = int(r.headers["location"].split("=")[1].split("#")[0])
        page = client.get(r.headers["location"])
        assert 'id="hold-reason">死亡<' in page.text and "親族から電話" in page.text and 'id="stop"' in page.text
        r = client.post(
            f"/staff/holds/{hold_id}/stop", data={"csrf_token": token, "hold": hold_id, "note": "死亡を確認"}
        )
        assert r.status_code == 303
        page = client.get(r.headers["location"])
        assert 'id="stop-four-eyes"' in page.text and 'id="release-hold"' not in page.text
        r = client.post(f"/staff/holds/{hold_id}/release", data={"csrf_token": token, "hold": hold_id, "note": "x"})
        assert r.status_code == 403 and "別の審査担当者" in r.text
        token = await staff_signed_in(client, app_pool, code, rev2.staff_id)
        page = client.get("/staff/holds")
        assert f"#{hold_id}" in page.text and "支給停止" in page.text
        r = client.post(
            f"/staff/holds/{hold_id}/release", data={"csrf_token": token, "hold": hold_id, "note": "誤報と判明"}
        )
        assert r.status_code == 303
        page = client.get("/staff/holds")
        assert 'id="holds-empty"' in page.text and 'id="holds-released"' in page.text
        page = client.get(f"/staff/applications/{app_id}")
        assert "解除済み" in page.text
        # A drafter sees the list but has no application page to hold from, and cannot release.
        token = await staff_signed_in(client, app_pool, code, world.staff["draft"].staff_id)
        assert client.get("/staff/holds").status_code == 200
        assert (
            client.post(f"/staff/holds/{hold_id}/release", data={"csrf_token": token, "note": "x"}).status_code == 403
        )


async def test_an_admin_sets_the_programs_rule_for_a_payee_who_died(make_world, app_pool, settings):
    world = await make_world(applications=0)
    code = world.code
    with TestClient(create_app(settings), follow_redirects=False) as client:
        token = await staff_signed_in(client, app_pool, code, world.staff["admin"].staff_id)
        page = client.get("/staff/holds")
        assert 'id="program-rules"' in page.text and '<option value="new_head" selected>' in page.text
        r = client.post("/staff/holds/rule", data={"csrf_token": token, "program": world.program_id, "rule": "pay"})
        assert r.status_code == 422 and "死亡した場合の扱い" in r.text
        r = client.post("/staff/holds/rule", data={"csrf_token": token, "program": world.program_id, "rule": "stop"})
        assert r.status_code == 303
        assert '<option value="stop" selected>' in client.get("/staff/holds").text
        token = await staff_signed_in(client, app_pool, code, world.staff["rev"].staff_id)
        assert 'id="program-rules"' not in client.get("/staff/holds").text
        r = client.post(
            "/staff/holds/rule", data={"csrf_token": token, "program": world.program_id, "rule": "new_head"}
        )
        assert r.status_code == 403
    async with tenant_transaction(app_pool, code, readonly=True) as conn:
        assert await conn.fetchval("SELECT after_base_date_rule FROM programs") == "stop"
        details = await conn.fetchval("SELECT details FROM audit_log WHERE action = 'programs.after_base_date_rule'")
    assert '"before":"new_head"' in details and '"rule":"stop"' in details
