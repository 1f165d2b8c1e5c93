"""口座変更の届出（紙） keyed at the console (app/staff/account_change.py): the resident's own rule and
effects (app/intake/changes.py), under the clerk's name, with every refusal inline and nothing written."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from app.main import create_app
from app.tenancy.transaction import tenant_transaction
from tests.jobs import draft
from tests.staff.conftest import add_bank_settings
from tests.staff.test_web import csrf_of, login

NEW = {"bank_code": "0005", "branch_code": "001", "account_type": "1", "account_number": "7654321"}


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings), follow_redirects=False) as c:
        yield c


def _form(client, app_id, **fields):
    return {"csrf_token": csrf_of(client, f"/staff/applications/{app_id}/account"), **fields}


async def _changes(pool, code, app_id):
    async with tenant_transaction(pool, code) as conn:
        return await conn.fetch(
            "SELECT channel, changed_by FROM application_account_changes WHERE application_id = $1", app_id
        )


async def test_a_clerk_keys_a_paper_change_under_their_name_and_verification_starts_again(make_world, client, app_pool):
    world = await make_world(applications=1, status="approved")
    app_id = world.applications[0]
    assert login(client, world.code, "rev").status_code == 303
    page = client.get(f"/staff/applications/{app_id}")
    assert 'id="account-change-link"' in page.text
    r = client.post(
        f"/staff/applications/{app_id}/account",
        data=_form(client, app_id, **NEW, holder_kana="ヤマダ タロウ", evidence_checked="yes"),
    )
    assert r.status_code == 303 and r.headers["location"] == f"/staff/applications/{app_id}"
    shown = client.get(r.headers["location"])
    assert "口座変更の届出を記録しました" in shown.text and 'id="account-changed"' in shown.text
    assert [tuple(c) for c in await _changes(app_pool, world.code, app_id)] == [("paper", "rev")]
    async with tenant_transaction(app_pool, world.code) as conn:
        app = await conn.fetchrow("SELECT status, bank_code FROM applications WHERE application_id = $1", app_id)
        entry = await conn.fetchrow(
            "SELECT actor_staff_id, details FROM audit_log WHERE action = 'application.account_change'"
        )
    assert (app["status"], app["bank_code"]) == ("received", "0005")
    assert entry["actor_staff_id"] == world.staff["rev"].staff_id and "7654321" not in entry["details"]


async def test_a_form_with_errors_lists_every_field_keeps_the_input_and_writes_nothing(make_world, client, app_pool):
    world = await make_world(applications=1, status="approved")
    app_id = world.applications[0]
    login(client, world.code, "rev")
    r = client.post(
        f"/staff/applications/{app_id}/account",
        data=_form(client, app_id, bank_code="", branch_code="", account_number="12ab", holder_kana="山田太郎"),
    )
    assert r.status_code == 422
    for label in ("金融機関コード", "口座番号", "口座名義（カナ）"):
        assert label + ":" in r.text, label
    assert 'value="12ab"' in r.text  # what the clerk typed is kept
    missing_evidence = client.post(
        f"/staff/applications/{app_id}/account",
        data=_form(client, app_id, **NEW, holder_kana="ヤマダ タロウ"),
    )
    assert missing_evidence.status_code == 422 and "口座確認書類" in missing_evidence.text
    assert await _changes(app_pool, world.code, app_id) == []


async def test_once_the_payment_is_in_a_batch_the_clerk_is_sent_to_the_recall_path(
    make_world, client, app_pool, transfer_date
):
    world = await make_world(applications=1, status="approved")
    app_id = world.applications[0]
    async with tenant_transaction(app_pool, world.code) as conn:
        await add_bank_settings(conn, world.code)
    await draft(app_pool, world, transfer_date)
    login(client, world.code, "rev")
    r = client.post(
        f"/staff/applications/{app_id}/account",
        data=_form(client, app_id, **NEW, holder_kana="ヤマダ タロウ", evidence_checked="yes"),
    )
    assert r.status_code == 409 and "組戻し" in r.text
    assert await _changes(app_pool, world.code, app_id) == []


async def test_only_a_reviewer_keys_account_changes(make_world, client):
    world = await make_world(applications=1, status="approved")
    login(client, world.code, "draft")
    assert client.get(f"/staff/applications/{world.applications[0]}/account").status_code == 403
