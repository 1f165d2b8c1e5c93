"""Admin screens over HTTP: bank settings, role changes, and per-address sign-in throttling."""

from __future__ import annotations

import json
import logging
import secrets

import pytest
from redis.asyncio import Redis
from starlette.testclient import TestClient

from app.main import create_app
from app.staff import throttle
from app.tenancy.transaction import tenant_transaction
from payouts.settings_store import get_bank_settings
from tests.staff.conftest import add_bank_settings, make_staff
from tests.staff.test_web import csrf_of, login


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings), follow_redirects=False) as c:
        yield c


def admin_login(client, world, login_name="admin"):
    assert login(client, world.code, login_name, totp=world.totp_now(login_name)).status_code == 303


async def last_audit(app_pool, code, action):
    async with tenant_transaction(app_pool, code) as conn:
        row = await conn.fetchrow(
            "SELECT action, object_id, details FROM audit_log WHERE municipality_code = $1"
            " AND action = $2 ORDER BY seq DESC LIMIT 1",
            code,
            action,
        )
    return row and {"object_id": row["object_id"], "details": json.loads(row["details"])}


def age_key() -> str:
    from pyrage import x25519

    return str(x25519.Identity.generate().to_public())


def bank_form(token, **changes):
    return {
        "csrf_token": token,
        "requester_code": "1234567890",
        "requester_name_kana": "ﾃｽﾄｼ",
        "bank_code": "0001",
        "bank_name_kana": "",
        "branch_code": "001",
        "branch_name_kana": "",
        "account_type": "1",
        "account_number": "7654321",
        "separator": "crlf",
        "clearing_house_fill": "zeros",
        "transfer_designation": "7",
        "reference_field": "customer_code1",
        "min_business_days_ahead": "2",
        "age_recipients": age_key(),
    } | changes


# ---- bank settings -------------------------------------------------------------------------------------


async def test_admin_first_saves_bank_settings_and_the_payout_stage_reads_them(make_world, client, app_pool):
    world = await make_world(applications=0)
    admin_login(client, world)
    page = client.get("/staff/admin/bank")
    assert page.status_code == 200 and 'id="not-stored"' in page.text
    keys = [age_key(), age_key()]
    r = client.post(
        "/staff/admin/bank",
        data=bank_form(
            csrf_of(client),
            requester_name_kana="ｷﾕｳﾌｼ",
            bank_name_kana="ﾃｽﾄｷﾞﾝｺｳ",
            separator="none",
            clearing_house_fill="spaces",
            transfer_designation="space",
            reference_field="edi",
            allow_wo="1",
            age_recipients=f"{keys[0]}\r\n\r\n  {keys[1]}  \r\n",
            min_business_days_ahead="5",
        ),
    )
    assert r.status_code == 303 and r.headers["location"] == "/staff/admin/bank?saved=1"
    async with tenant_transaction(app_pool, world.code) as conn:
        stored = await get_bank_settings(conn, world.code)
    b = stored.bank
    assert (
        b.requester_name_kana,
        b.bank_name_kana,
        b.separator,
        b.clearing_house_fill,
        b.transfer_designation,
        b.reference_field,
        b.allow_wo,
    ) == ("ｷﾕｳﾌｼ", "ﾃｽﾄｷﾞﾝｺｳ", "none", "spaces", " ", "edi", True)
    assert stored.age_recipients == tuple(keys) and stored.min_business_days_ahead == 5
    assert stored.updated_by == world.staff["admin"].staff_id
    page = client.get("/staff/admin/bank?saved=1")
    assert 'id="saved"' in page.text and "ｷﾕｳﾌｼ" in page.text and keys[1] in page.text
    assert 'value="space" checked' in page.text and 'value="none" checked' in page.text
    entry = await last_audit(app_pool, world.code, "settings.bank")
    assert entry["details"]["created"] is True and "account_number" in entry["details"]["changed"]


async def test_a_change_is_audited_by_field_name_without_the_account_number(make_world, client, app_pool):
    world = await make_world(applications=0)
    async with tenant_transaction(app_pool, world.code) as conn:
        await add_bank_settings(conn, world.code)
        before = await get_bank_settings(conn, world.code)
    admin_login(client, world)
    page = client.get("/staff/admin/bank")
    assert 'value="1234567890"' in page.text and 'value="7654321"' in page.text  # the current settings
    form = bank_form(
        csrf_of(client), account_number="1111111", branch_code="123", age_recipients="\n".join(before.age_recipients)
    )
    assert client.post("/staff/admin/bank", data=form).status_code == 303
    entry = await last_audit(app_pool, world.code, "settings.bank")
    assert entry["details"] == {"changed": ["branch_code", "account_number"], "created": False}
    async with tenant_transaction(app_pool, world.code) as conn:
        raw = await conn.fetchval("SELECT string_agg(details::text || object_id, '') FROM audit_log")
        assert (await get_bank_settings(conn, world.code)).bank.account_number == "1111111"
    assert "1111111" not in raw and "7654321" not in raw
    # Saving the same values again changes nothing and logs nothing.
    n = await _count(app_pool, world.code, "settings.bank")
    form["csrf_token"] = csrf_of(client)
    assert client.post("/staff/admin/bank", data=form).status_code == 303
    assert await _count(app_pool, world.code, "settings.bank") == n


async def _count(app_pool, code, action):
    async with tenant_transaction(app_pool, code) as conn:
        return await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = $1", action)


async def test_every_wrong_field_gets_its_own_message_and_nothing_is_written(make_world, client, app_pool):
    world = await make_world(applications=0)
    async with tenant_transaction(app_pool, world.code) as conn:
        await add_bank_settings(conn, world.code)
        before = await get_bank_settings(conn, world.code)
    admin_login(client, world)
    bad = {
        "requester_code": "12345678901",
        "requester_name_kana": "漢字",
        "bank_code": "01",
        "branch_code": "x",
        "account_type": "4",
        "account_number": "12345678",
        "separator": "lf",
        "clearing_house_fill": "none",
        "transfer_designation": "9",
        "reference_field": "memo",
        "bank_name_kana": "ｱ" * 16,
        "age_recipients": "age1notakey\nssh-ed25519 AAAA",
        "min_business_days_ahead": "31",
    }
    r = client.post("/staff/admin/bank", data=bank_form(csrf_of(client), **bad))
    assert r.status_code == 422 and "保存していません" in r.text
    for name in bad:
        assert f'id="{name}-error"' in r.text, name
    assert "1 番目の受取人" in r.text and "0〜30" in r.text
    assert 'value="12345678901"' in r.text  # the form keeps what was typed
    # One good field among bad ones is not saved either.
    r = client.post("/staff/admin/bank", data=bank_form(csrf_of(client), account_number="2222222", bank_code="1"))
    assert r.status_code == 422 and 'id="bank_code-error"' in r.text and 'id="account_number-error"' not in r.text
    r = client.post("/staff/admin/bank", data=bank_form(csrf_of(client), age_recipients=""))
    assert r.status_code == 422 and 'id="age_recipients-error"' in r.text
    r = client.post("/staff/admin/bank", data=bank_form(csrf_of(client), age_recipients="\n".join([age_key()] * 2)))
    assert r.status_code == 422 and "2回以上" in r.text
    r = client.post(
        "/staff/admin/bank", data=bank_form(csrf_of(client), age_recipients="\n".join(age_key() for _ in range(11)))
    )
    assert r.status_code == 422 and "10件まで" in r.text
    # Without the session's CSRF token.
    assert client.post("/staff/admin/bank", data=bank_form("forged", account_number="3333333")).status_code == 403
    async with tenant_transaction(app_pool, world.code) as conn:
        assert await get_bank_settings(conn, world.code) == before
    assert await _count(app_pool, world.code, "settings.bank") == 0


async def test_bank_settings_are_admin_only_and_per_municipality(make_world, client, app_pool):
    a, b = await make_world(applications=0), await make_world(applications=0)
    async with tenant_transaction(app_pool, b.code) as conn:
        await add_bank_settings(conn, b.code)
        b_before = await get_bank_settings(conn, b.code)
    assert login(client, a.code, "rev").status_code == 303
    assert client.get("/staff/admin/bank").status_code == 403
    assert client.post("/staff/admin/bank", data=bank_form(csrf_of(client))).status_code == 403
    client.cookies.clear()
    admin_login(client, a)
    page = client.get("/staff/admin/bank")
    assert 'id="not-stored"' in page.text and "1234567890" not in page.text  # B's settings are not A's
    assert (
        client.post("/staff/admin/bank", data=bank_form(csrf_of(client), account_number="4444444")).status_code == 303
    )
    async with tenant_transaction(app_pool, b.code) as conn:
        assert await get_bank_settings(conn, b.code) == b_before
    async with tenant_transaction(app_pool, a.code) as conn:
        assert (await get_bank_settings(conn, a.code)).bank.account_number == "4444444"


# ---- role changes --------------------------------------------------------------------------------------


async def test_roles_added_wait_for_a_second_admin_and_roles_taken_away_end_sessions(
    make_world, client, app_pool, settings
):
    """Adding a role is a request (nothing changes for the person until another admin confirms); taking
    one away is immediate and ends the person's sessions. Both are audited."""
    world = await make_world(applications=0)
    rev_id = world.staff["rev"].staff_id
    async with tenant_transaction(app_pool, world.code) as conn:
        await make_staff(conn, world, "admin2", ["admin"])
    with (
        TestClient(create_app(settings), follow_redirects=False) as rev,
        TestClient(create_app(settings), follow_redirects=False) as admin2,
    ):
        assert login(rev, world.code, "rev").status_code == 303
        admin_login(client, world)
        page = client.get("/staff/admin/staff")
        assert 'id="roles-rev"' in page.text and 'action="/staff/admin/staff/' in page.text
        r = client.post(
            f"/staff/admin/staff/{rev_id}/roles", data={"csrf_token": csrf_of(client), "roles": ["reviewer", "drafter"]}
        )
        assert r.status_code == 303
        assert rev.get("/staff/").status_code == 200  # nothing taken away: still signed in
        assert rev.get(f"/staff/programs/{world.program_id}/draft").status_code == 403  # not a drafter yet
        page = client.get("/staff/admin/staff")
        assert 'id="pending-grants"' in page.text and "confirm-" not in page.text  # not by the one who asked
        entry = await last_audit(app_pool, world.code, "grant.request")
        grant_id = int(entry["object_id"])
        assert entry["details"] == {"staff_id": rev_id, "login": "rev", "role": "drafter"}
        async with tenant_transaction(app_pool, world.code) as conn:
            assert await conn.fetchval("SELECT roles FROM staff_users WHERE staff_id = $1", rev_id) == ["reviewer"]
        # The asking admin cannot confirm it, even by posting the form.
        r = client.post(f"/staff/admin/grants/{grant_id}/confirm", data={"csrf_token": csrf_of(client)})
        assert r.status_code == 403 and "自分が申請した" in r.text
        admin_login(admin2, world, "admin2")
        assert f'id="confirm-{grant_id}"' in admin2.get("/staff/admin/staff").text
        r = admin2.post(f"/staff/admin/grants/{grant_id}/confirm", data={"csrf_token": csrf_of(admin2)})
        assert r.status_code == 303
        assert rev.get(f"/staff/programs/{world.program_id}/draft").status_code == 200  # effective at once
        entry = await last_audit(app_pool, world.code, "grant.confirm")
        assert (
            entry["object_id"] == str(grant_id)
            and entry["details"]["requested_by"] == f"staff:{world.staff['admin'].staff_id}"
        )
        # Taking a role away is immediate and signs the person out.
        r = client.post(
            f"/staff/admin/staff/{rev_id}/roles", data={"csrf_token": csrf_of(client), "roles": ["drafter"]}
        )
        assert r.status_code == 303
        assert rev.get("/staff/").status_code == 303
    entry = await last_audit(app_pool, world.code, "staff.roles")
    assert entry == {"object_id": str(rev_id), "details": {"from": ["reviewer", "drafter"], "to": ["drafter"]}}
    async with tenant_transaction(app_pool, world.code) as conn:
        assert await conn.fetchval("SELECT roles FROM staff_users WHERE staff_id = $1", rev_id) == ["drafter"]
        # The reviewer grant is revoked: putting the role back takes a new confirmed grant.
        assert (
            await conn.fetchval(
                "SELECT status FROM staff_role_grants WHERE staff_id = $1 AND role = 'reviewer'"
                " ORDER BY grant_id DESC LIMIT 1",
                rev_id,
            )
            == "revoked"
        )
    r = client.post(f"/staff/admin/staff/{rev_id}/roles", data={"csrf_token": csrf_of(client), "roles": ["boss"]})
    assert r.status_code == 422
    # Asking for approval shows no TOTP secret (the person enrols it through a link).
    r = client.post(f"/staff/admin/staff/{rev_id}/roles", data={"csrf_token": csrf_of(client), "roles": ["approver"]})
    assert r.status_code == 303 and 'id="totp-secret"' not in client.get("/staff/admin/staff").text


async def test_the_last_admin_cannot_remove_their_own_admin_role(make_world, client, app_pool):
    world = await make_world(applications=0)
    admin_id = world.staff["admin"].staff_id
    admin_login(client, world)
    r = client.post(f"/staff/admin/staff/{admin_id}/roles", data={"csrf_token": csrf_of(client), "roles": ["reviewer"]})
    assert r.status_code == 409 and "最後の管理者" in r.text
    async with tenant_transaction(app_pool, world.code) as conn:
        assert await conn.fetchval("SELECT roles FROM staff_users WHERE staff_id = $1", admin_id) == ["admin"]
        # Refused as a whole: the reviewer role asked for with it was not recorded either.
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM staff_role_grants WHERE staff_id = $1 AND status = 'pending'", admin_id
            )
            == 0
        )
        # A disabled admin does not count: nobody could sign in with it.
        other = await make_staff(conn, world, "admin2", ["admin"])
        await conn.execute("UPDATE staff_users SET disabled_at = now() WHERE staff_id = $1", other.staff_id)
    r = client.post(f"/staff/admin/staff/{admin_id}/roles", data={"csrf_token": csrf_of(client), "roles": ["reviewer"]})
    assert r.status_code == 409
    async with tenant_transaction(app_pool, world.code) as conn:
        await conn.execute("UPDATE staff_users SET disabled_at = NULL WHERE staff_id = $1", other.staff_id)
    # With another enabled admin it is allowed, and the admin's own session ends; the roles asked for wait.
    r = client.post(
        f"/staff/admin/staff/{admin_id}/roles", data={"csrf_token": csrf_of(client), "roles": ["reviewer", "approver"]}
    )
    assert r.status_code == 303 and r.headers["location"] == "/staff/login"
    assert client.get("/staff/").status_code == 303
    async with tenant_transaction(app_pool, world.code) as conn:
        assert await conn.fetchval("SELECT roles FROM staff_users WHERE staff_id = $1", admin_id) == []
        assert sorted(
            r["role"]
            for r in await conn.fetch(
                "SELECT role FROM staff_role_grants WHERE staff_id = $1 AND status = 'pending'", admin_id
            )
        ) == ["approver", "reviewer"]


# ---- per-address throttling ----------------------------------------------------------------------------


async def test_failures_from_one_address_throttle_it_without_checking_the_password(make_world, settings, app_pool):
    world = await make_world(applications=0)
    ip = f"198.51.100.{secrets.randbelow(250) + 1}-{secrets.token_hex(4)}"
    redis = Redis.from_url(settings.redis_url)
    try:
        await redis.delete(throttle.IP_KEY + ip)
        with TestClient(create_app(settings), follow_redirects=False, client=(ip, 5000)) as c:
            # Spread over logins that do not exist, so no account lockout is involved.
            for i in range(throttle.IP_MAX_FAILURES):
                assert login(c, world.code, f"nobody{i}", password="wrong-password").status_code == 401
            async with tenant_transaction(app_pool, world.code) as conn:
                audit_before = await conn.fetchval("SELECT count(*) FROM audit_log")
            r = login(c, world.code, "rev")  # the right password
            assert (
                r.status_code == 429
                and "ログインできませんでした" in r.text
                and "kyufu_staff=" not in r.headers.get("set-cookie", "")
            )
            assert 0 < int(r.headers["retry-after"]) <= throttle.IP_WINDOW_S
            async with tenant_transaction(app_pool, world.code) as conn:
                assert await conn.fetchval("SELECT count(*) FROM audit_log") == audit_before  # not even tried
            assert 0 < await redis.ttl(throttle.IP_KEY + ip) <= throttle.IP_WINDOW_S
            with TestClient(create_app(settings), follow_redirects=False, client=(ip + "-other", 5000)) as other:
                assert login(other, world.code, "rev").status_code == 303  # another address is not affected
            await redis.delete(throttle.IP_KEY + ip)  # the window passes
            assert login(c, world.code, "rev").status_code == 303
    finally:
        await redis.delete(throttle.IP_KEY + ip, throttle.IP_KEY + ip + "-other")
        await redis.aclose()


async def test_throttling_fails_open_when_redis_is_down(make_world, settings, caplog):
    world = await make_world(applications=0)
    down = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    ip = "192.0.2.77"
    with caplog.at_level(logging.WARNING, logger="kyufu.staff"):
        with TestClient(create_app(down), follow_redirects=False, client=(ip, 5000)) as c:
            assert login(c, world.code, "rev", password="wrong-password").status_code == 401
            assert login(c, world.code, "rev").status_code == 303
    messages = [r.getMessage() for r in caplog.records if r.name == "kyufu.staff"]
    assert messages and all(m.startswith("staff sign-in throttle unavailable (") for m in messages)
    assert not any(ip in m or "rev" in m for m in messages)
