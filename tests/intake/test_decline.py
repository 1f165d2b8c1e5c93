"""辞退 online for a プッシュ型 payout, the real dates on the start and status pages, and the status after a
decline made online or by `kyufu push decline` (the same domain function)."""

from __future__ import annotations

import datetime as dt

import httpx

from app.registry.push import decline
from app.tenancy.transaction import tenant_transaction
from tests.intake.helpers import make_letters
from tests.intake.identify_world import csrf

INSERT_PUSH_PROGRAM = """
INSERT INTO programs (municipality_code, name, base_date, unit, amount_yen, payment_mode, decline_deadline)
VALUES ($1, 'プッシュ型給付金', '2026-01-01', 'household', 100000, 'push', current_date + $2::int)
RETURNING program_id, decline_deadline
"""


def jdate(day: dt.date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


async def _push_letter(app_pool, settings, code, days_left: int):
    async with tenant_transaction(app_pool, code) as conn:
        row = await conn.fetchrow(INSERT_PUSH_PROGRAM, code, days_left)
    [letter] = await make_letters(app_pool, settings.master_key_bytes, code, program_id=row["program_id"])
    async with tenant_transaction(app_pool, code) as conn:
        await conn.execute("UPDATE letters SET kind = 'push_notice' WHERE letter_id = $1", letter.letter_id)
    return letter, row["decline_deadline"]


async def _sign_in(client, letter):
    page = await client.get(f"/m/{letter.code}/signin")
    r = await client.post(
        f"/m/{letter.code}/signin",
        data={"csrf_token": csrf(page.text), "access_code": letter.access_code, "pin": letter.pin},
    )
    assert r.status_code == 303


async def _entitlement_status(app_pool, code, entitlement_id) -> str:
    async with tenant_transaction(app_pool, code, readonly=True) as conn:
        return await conn.fetchval("SELECT status FROM entitlements WHERE entitlement_id = $1", entitlement_id)


def client_for(live_server) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=live_server, follow_redirects=False, timeout=30)


async def test_a_push_resident_declines_online_after_a_confirmation(app_pool, settings, municipality, live_server):
    code = await municipality()
    letter, deadline = await _push_letter(app_pool, settings, code, 10)
    base = f"/m/{code}"
    async with client_for(live_server) as client:
        start = await client.get(base + "/")
        assert f"{jdate(deadline)}まで" in start.text and "辞退期限" in start.text
        assert "別途お知らせします" not in start.text

        await _sign_in(client, letter)
        status = await client.get(base + "/status")
        assert jdate(deadline) in status.text and 'href="/m/' + code + '/decline"' in status.text
        assert "申請へ進む" not in status.text

        confirm = await client.get(base + "/decline")
        assert confirm.status_code == 200 and "辞退する" in confirm.text
        assert await _entitlement_status(app_pool, code, letter.entitlement_id) == "open"  # nothing yet
        r = await client.post(base + "/decline", data={"csrf_token": csrf(confirm.text)})
        assert r.status_code == 303 and r.headers["location"] == base + "/decline"
        result = await client.get(base + "/decline")
        assert "辞退済み" in result.text and "辞退を受け付けました" in result.text

        status = await client.get(base + "/status")
        assert "辞退済み" in status.text and "申請へ進む" not in status.text and "/decline" not in status.text
        household = await client.get(base + "/household")
        assert "辞退済み" in household.text and "振込口座の入力へ進む" not in household.text
    assert await _entitlement_status(app_pool, code, letter.entitlement_id) == "declined"
    async with tenant_transaction(app_pool, code, readonly=True) as conn:
        audit = await conn.fetchrow("SELECT actor_label, details FROM audit_log WHERE action = 'push.decline'")
    assert audit["actor_label"] == f"resident:letter:{letter.letter_id}"


async def test_after_the_deadline_the_page_says_so_and_nothing_changes(app_pool, settings, municipality, live_server):
    code = await municipality()
    letter, deadline = await _push_letter(app_pool, settings, code, -1)
    base = f"/m/{code}"
    async with client_for(live_server) as client:
        await _sign_in(client, letter)
        page = await client.get(base + "/decline")
        assert f"辞退期限（{jdate(deadline)}）を過ぎているため" in page.text
        assert 'id="decline"' not in page.text
        token = csrf((await client.get(base + "/bank")).text)
        r = await client.post(base + "/decline", data={"csrf_token": token})
        assert r.status_code == 409 and "過ぎているため" in r.text
        status = await client.get(base + "/status")
        assert "/decline" not in status.text
    assert await _entitlement_status(app_pool, code, letter.entitlement_id) == "open"


async def test_after_a_cli_decline_the_status_page_says_declined_and_offers_no_application(
    app_pool, settings, municipality, live_server
):
    code = await municipality()
    letter, _ = await _push_letter(app_pool, settings, code, 5)
    async with tenant_transaction(app_pool, code) as conn:
        await decline(conn, code, letter.entitlement_id, actor="cli:operator")  # what `kyufu push decline` runs
    async with client_for(live_server) as client:
        page = await client.get(f"/m/{code}/status")
        r = await client.post(
            f"/m/{code}/status",
            data={"csrf_token": csrf(page.text), "access_code": letter.access_code, "pin": letter.pin},
        )
        assert r.status_code == 200
        assert "辞退済み" in r.text and "申請へ進む" not in r.text


async def test_a_letter_program_shows_its_application_deadline(app_pool, settings, municipality, live_server):
    code = await municipality()
    [letter] = await make_letters(app_pool, settings.master_key_bytes, code)
    async with client_for(live_server) as client:
        start = await client.get(f"/m/{code}/")
        assert "2026年12月28日まで" in start.text
        await _sign_in(client, letter)
        status = await client.get(f"/m/{code}/status")
        assert "申請期限：2026年12月28日まで" in status.text and "申請へ進む" in status.text
        assert "/decline" not in status.text
        page = await client.get(f"/m/{code}/decline")
        assert "辞退の届出の対象ではありません" in page.text
