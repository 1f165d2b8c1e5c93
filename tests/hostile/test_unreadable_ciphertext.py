"""Bank details that do not decrypt (a key that does not match after a restore, a damaged or misplaced
ciphertext) never give a 500: the review view says so in Japanese and the reviewer cannot approve such an
application, drafting refuses naming its receipt number and creates nothing, the approver's batch view
shows the problem instead of a hash to approve. The log names the error type and ids, never the data."""

from __future__ import annotations

import logging

import pytest
from starlette.testclient import TestClient

from app.main import create_app
from app.tenancy.transaction import tenant_transaction
from payouts.payments import ACCOUNT_NUMBER, BANK_UNREADABLE, HOLDER_KANA
from tests.hostile.helpers import staff_signed_in
from tests.jobs import draft, run_payout_jobs
from tests.staff.conftest import add_bank_settings

HOLDER = "ﾔﾏﾀﾞ ﾀﾛｳ"  # what tests/staff/conftest.add_application encrypts
ACCOUNT = "1234567"  # a payment's account, where a test writes one itself


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings), follow_redirects=False) as c:
        yield c


def _corruptions(world, app_id: int) -> dict[str, bytes]:
    good = world.cipher.encrypt("applications", ACCOUNT_NUMBER, app_id, ACCOUNT)
    return {
        # Authentic, but bound to another row: what a copied row or a restore into the wrong place gives.
        "another row's": world.cipher.encrypt("applications", ACCOUNT_NUMBER, app_id + 10_000, ACCOUNT),
        "one bit flipped": good[:-1] + bytes([good[-1] ^ 1]),
        "truncated": good[:3],
        "another key version": b"\x01\x00\x00\x00\x07" + good[5:],
    }


def _logged(caplog) -> str:
    return "\n".join(f"{r.getMessage()} {r.exc_info or ''}" for r in caplog.records)


@pytest.mark.parametrize("damage", ["another row's", "one bit flipped", "truncated", "another key version"])
async def test_the_review_view_explains_and_the_reviewer_cannot_approve(damage, make_world, client, app_pool, caplog):
    world = await make_world(applications=1)
    code, app_id = world.code, world.applications[0]
    # A holder name nobody in the registry has: the page shows the payee's own registry kana, never this.
    holder = "ｽｽﾞｷ ﾊﾅｺ"
    async with tenant_transaction(app_pool, code) as conn:
        await conn.execute(
            "UPDATE applications SET account_number_enc = $3, holder_kana_enc = $4"
            " WHERE municipality_code = $1 AND application_id = $2",
            code,
            app_id,
            _corruptions(world, app_id)[damage],
            world.cipher.encrypt("applications", HOLDER_KANA, app_id, holder),
        )
    token = await staff_signed_in(client, app_pool, code, world.staff["rev"].staff_id)
    with caplog.at_level(logging.INFO):
        page = client.get(f"/staff/applications/{app_id}", params={"purpose": "review"})
        assert page.status_code == 200 and BANK_UNREADABLE in page.text
        # Neither field is shown (the holder name decrypts, but half an account is no account) and there
        # is nothing to approve with.
        assert holder not in page.text and ACCOUNT not in page.text
        assert 'value="approve"' not in page.text
        r = client.post(f"/staff/applications/{app_id}/decision", data={"csrf_token": token, "decision": "approve"})
        assert r.status_code == 409 and BANK_UNREADABLE in r.text
        async with tenant_transaction(app_pool, code) as conn:
            status = await conn.fetchval("SELECT status FROM applications WHERE application_id = $1", app_id)
            viewed = await conn.fetchval(
                "SELECT details FROM audit_log WHERE action = 'personal_data.view' AND object_id = $1", str(app_id)
            )
        assert status == "needs_review" and "bank_unreadable" in str(viewed)
        r = client.post(
            f"/staff/applications/{app_id}/decision",
            data={"csrf_token": token, "decision": "reject", "comment": "口座情報の破損"},
        )
        assert r.status_code == 303
    logged = _logged(caplog)
    assert "DecryptionError" in logged and f"application {app_id}" in logged
    assert ACCOUNT not in logged and HOLDER not in logged


async def test_drafting_refuses_naming_the_receipt_and_creates_nothing(
    make_world, client, app_pool, transfer_date, caplog, settings
):
    world = await make_world(applications=3, status="approved")
    code, broken = world.code, world.applications[1]
    async with tenant_transaction(app_pool, code) as conn:
        await add_bank_settings(conn, code)
        await conn.execute(
            "UPDATE applications SET holder_kana_enc = $3 WHERE municipality_code = $1 AND application_id = $2",
            code,
            broken,
            b"\x01",
        )
        receipt = await conn.fetchval("SELECT receipt_no FROM applications WHERE application_id = $1", broken)
    token = await staff_signed_in(client, app_pool, code, world.staff["draft"].staff_id)
    assert client.get(f"/staff/programs/{world.program_id}/draft").status_code == 200
    with caplog.at_level(logging.INFO):
        r = client.post(
            f"/staff/programs/{world.program_id}/draft",
            data={
                "csrf_token": token,
                "transfer_date": transfer_date.isoformat(),
                "expected_count": "3",
                "expected_total_yen": "300000",
            },
        )
        # The request records the draft; the worker's preparation finds the unreadable account.
        assert r.status_code == 303
        batch_path = r.headers["location"]
        assert await run_payout_jobs(app_pool, settings, code) == ["refused"]
    page = client.get(batch_path)
    assert page.status_code == 200 and BANK_UNREADABLE in page.text and receipt in page.text
    assert "起案できませんでした" in page.text and "取消" in page.text
    async with tenant_transaction(app_pool, code) as conn:
        assert await conn.fetchval("SELECT count(*) FROM payments") == 0
        assert await conn.fetchval("SELECT status FROM payout_batches") == "cancelled"
    logged = _logged(caplog)
    assert "DecryptionError" in logged and ACCOUNT not in logged and HOLDER not in logged


async def test_the_approver_sees_which_payment_is_unreadable_instead_of_a_hash(
    make_world, client, app_pool, transfer_date, caplog, settings
):
    world = await make_world(applications=2, status="approved")
    code = world.code
    async with tenant_transaction(app_pool, code) as conn:
        await add_bank_settings(conn, code)
    batch_id = await draft(app_pool, world, transfer_date)
    async with tenant_transaction(app_pool, code) as conn:
        payment_id = await conn.fetchval("SELECT min(payment_id) FROM payments WHERE batch_id = $1", batch_id)
        await conn.execute(
            "UPDATE payments SET bank_enc = $2 WHERE payment_id = $1",
            payment_id,
            world.cipher.encrypt("payments", "bank", payment_id + 10_000, ACCOUNT + "\x00" + HOLDER),
        )
    with caplog.at_level(logging.INFO):
        assert await run_payout_jobs(app_pool, settings, code) == ["refused"]  # the worker's hash job
    token = await staff_signed_in(client, app_pool, code, world.staff["appr"].staff_id)
    with caplog.at_level(logging.INFO):
        page = client.get(f"/staff/batches/{batch_id}")
        assert page.status_code == 200 and "（復号できません）" in page.text and 'id="file-sha256"' not in page.text
        assert 'id="hash-error"' in page.text and str(payment_id) in page.text
        r = client.post(f"/staff/batches/{batch_id}/approve", data={"csrf_token": token, "sha256": "0" * 64})
        assert r.status_code == 409
    logged = _logged(caplog)
    assert "DecryptionError" in logged and ACCOUNT not in logged and HOLDER not in logged


async def test_an_approvers_unreadable_totp_secret_fails_the_sign_in_without_a_500(
    make_world, client, app_pool, caplog
):
    """A TOTP secret that no longer decrypts (damaged row, wrong key after a restore) is a failed sign-in,
    recorded in the audit log, not a 500 (found in the issue 12 review)."""
    from tests.staff.conftest import PASSWORD
    from tests.staff.test_web import login

    world = await make_world()
    approver = world.staff["appr"]
    async with tenant_transaction(app_pool, world.code) as conn:
        good = await conn.fetchval("SELECT totp_secret FROM staff_users WHERE staff_id = $1", approver.staff_id)
        await conn.execute(
            "UPDATE staff_users SET totp_secret = $2 WHERE staff_id = $1",
            approver.staff_id,
            good[:-1] + bytes([good[-1] ^ 1]),
        )
    caplog.set_level(logging.INFO)
    r = login(client, world.code, "appr", PASSWORD, world.totp_now("appr"))
    assert r.status_code == 401, r.status_code
    assert world.totp["appr"] not in _logged(caplog)
    async with tenant_transaction(app_pool, world.code, readonly=True) as conn:
        reasons = [
            d["reason"]
            for d in await conn.fetch(
                "SELECT details::jsonb->>'reason' AS reason FROM audit_log"
                " WHERE action = 'login.failed' AND object_id = $1",
                str(approver.staff_id),
            )
        ]
    assert reasons == ["totp_unreadable"]
