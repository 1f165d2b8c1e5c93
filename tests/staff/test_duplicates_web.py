"""重複の疑い in the console: a reviewer sees this municipality's side (the other municipality's name and
the reference, nothing of its residents), the matched member on the case itself (an audited view), and
records this side's answer; payment waits until the other side answers."""

from __future__ import annotations

import secrets

from starlette.testclient import TestClient

from app.main import create_app
from app.registry import duplicates
from app.tenancy.transaction import tenant_transaction
from payouts import batches
from tests.hostile.helpers import staff_signed_in
from tests.staff.conftest import build_world


async def _matched_worlds(make_world, municipality, app_pool, settings):
    """A (one verified application) and 隣町 whose registry also lists A's head, under one scheme."""
    a = await make_world(applications=1, status="verified")
    b = await build_world(app_pool, await municipality("隣町"), settings, applications=0)
    scheme = f"T-{secrets.token_hex(4).upper()}"
    async with tenant_transaction(app_pool, a.code, readonly=True) as conn:
        shared = await conn.fetchrow(
            "SELECT r.* FROM entitlements e JOIN residents r ON r.snapshot_id = e.snapshot_id"
            " AND r.resident_code = e.head_resident_code"
        )
    async with tenant_transaction(app_pool, b.code) as conn:
        await conn.execute(
            "INSERT INTO residents (municipality_code, snapshot_id, resident_code, household_no, relationship,"
            " is_head, family_name, given_name, family_kana, given_kana, birth_date, sex, address)"
            " VALUES ($1, $2, $3, 'TONARI-1', '世帯主', true, $4, $5, $6, $7, $8, '1', '隣町1-1')",
            b.code,
            b.snapshot_id,
            shared["resident_code"],
            shared["family_name"],
            shared["given_name"],
            shared["family_kana"],
            shared["given_kana"],
            shared["birth_date"],
        )
        await conn.execute(
            "INSERT INTO entitlements (municipality_code, program_id, snapshot_id, household_no, head_resident_code,"
            " members_counted, amount_yen, rule) VALUES ($1, $2, $3, 'TONARI-1', $4, 1, 100000, 'test')",
            b.code,
            b.program_id,
            b.snapshot_id,
            shared["resident_code"],
        )
    for world in (a, b):
        async with tenant_transaction(app_pool, world.code) as conn:
            await duplicates.set_scheme(conn, world.code, world.program_id, scheme)
            await duplicates.contribute(conn, settings.duplicate_key_bytes, world.code, world.program_id)
    return a, b, shared


async def test_the_reviewer_sees_this_side_only_and_records_its_answer(make_world, municipality, app_pool, settings):
    a, b, shared = await _matched_worlds(make_world, municipality, app_pool, settings)
    async with tenant_transaction(app_pool, a.code, readonly=True) as conn:
        [case] = await duplicates.cases(conn, a.code)
        assert (await batches.draft_preview(conn, a.code, a.program_id))["pending_count"] == 0  # held
    reference = case["reference"]
    with TestClient(create_app(settings), follow_redirects=False) as client:
        await staff_signed_in(client, app_pool, a.code, a.staff["draft"].staff_id)
        page = client.get("/staff/duplicates")
        assert page.status_code == 200 and "重複の疑い" in page.text
        assert reference in page.text and "隣町" in page.text and 'id="duplicates-held">1<' in page.text
        # A drafter sees the list, not the member (personal data is for reviewers and admins).
        page = client.get(f"/staff/duplicates?reference={reference}")
        assert page.status_code == 200 and shared["resident_code"] not in page.text and 'id="case"' not in page.text

        token = await staff_signed_in(client, app_pool, a.code, a.staff["rev"].staff_id)
        page = client.get(f"/staff/duplicates?reference={reference.lower()}")
        assert page.status_code == 200
        assert shared["resident_code"] in page.text and f"{shared['family_name']} {shared['given_name']}" in page.text
        assert "TONARI-1" not in page.text and "隣町1-1" not in page.text  # nothing of the other side
        assert 'id="other-answer">未回答<' in page.text
        assert client.get("/staff/duplicates?reference=D-0000-0000-0000").status_code == 404

        r = client.post(
            "/staff/duplicates/resolve",
            data={"csrf_token": token, "reference": reference, "resolution": "not_pay", "comment": " "},
        )
        assert r.status_code == 422 and "理由" in r.text and 'id="case"' in r.text  # the case page, again
        r = client.post(
            "/staff/duplicates/resolve",
            data={"csrf_token": token, "reference": reference, "resolution": "pay", "comment": "隣町に電話で確認"},
        )
        assert r.status_code == 303 and r.headers["location"] == f"/staff/duplicates?reference={reference}&saved=1#case"
        page = client.get(r.headers["location"])
        assert 'id="duplicate-saved"' in page.text and "当団体で支給する（rev" in page.text
        assert "未終了" in page.text  # the other side has not answered: still held

    async with tenant_transaction(app_pool, a.code, readonly=True) as conn:
        assert (await batches.draft_preview(conn, a.code, a.program_id))["pending_count"] == 0
        actions = [
            r["action"]
            for r in await conn.fetch(
                "SELECT action FROM audit_log WHERE object_type = 'duplicate_case' AND object_id = $1 ORDER BY seq",
                reference,
            )
        ]
        # The refused answer shows the case again (with its member): a view of its own.
        assert actions == ["personal_data.view", "personal_data.view", "duplicate.resolve", "personal_data.view"]
    async with tenant_transaction(app_pool, b.code) as conn:
        [other] = await duplicates.cases(conn, b.code)
        assert other["other_answered"] and other["resolution"] is None
        assert await duplicates.resolve(conn, b.code, b.staff["rev"], reference, "not_pay", "基準日前に転出") is True
    async with tenant_transaction(app_pool, a.code, readonly=True) as conn:
        assert (await batches.draft_preview(conn, a.code, a.program_id))["pending_count"] == 1  # payable now
