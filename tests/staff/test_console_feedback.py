"""How the console answers its staff (issue 18, points 7-10): a refusal shows the page the person was on with
the message and their input, in Japanese only; an expired session goes to the login and back; every action
says it was done; times are JST and say so; receipts are found as printed; codes have Japanese names; and
destructive admin buttons ask first."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from starlette.testclient import TestClient

from app.main import create_app
from app.staff import enrolment
from app.staff.web.common import console_message
from app.tenancy.transaction import tenant_transaction
from payouts.bankdays import JST
from tests.hostile.helpers import csrf_from, staff_signed_in
from tests.jobs import draft
from tests.staff.conftest import PASSWORD, add_bank_settings

RESIDENT_BRAND = "給付金オンライン申請"  # the resident site's header: never on a console page
CONSOLE_BRAND = "給付金 職員コンソール"


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings), follow_redirects=False) as c:
        yield c


def console_page(r) -> bool:
    return CONSOLE_BRAND in r.text and RESIDENT_BRAND not in r.text and 'class="staff-nav"' in r.text


def no_field_names(text: str) -> bool:
    return re.search(r"（[a-z][a-z0-9_]*）", text) is None


# ---- point 7: refusals on the page, with the input; expired sessions; success messages --------------------


async def test_a_refused_decision_shows_the_review_page_again_with_the_message_and_the_input(
    make_world, client, app_pool
):
    world = await make_world(applications=1)
    app_id = world.applications[0]
    await staff_signed_in(client, app_pool, world.code, world.staff["rev"].staff_id)
    page = client.get(f"/staff/applications/{app_id}", params={"purpose": "review"})
    token = csrf_from(page.text)
    r = client.post(
        f"/staff/applications/{app_id}/decision",
        data={"csrf_token": token, "decision": "reject", "comment": "", "purpose": "review"},
    )
    assert r.status_code == 422 and console_page(r)
    assert 'id="console-error"' in r.text and "却下の理由を入力してください。" in r.text
    assert no_field_names(r.text)
    assert 'value="reject" checked' in r.text  # the choice is kept
    assert "ﾔﾏﾀﾞ ﾀﾛｳ" in r.text  # the side-by-side view is there again (for the purpose it was open for)
    long = "長" * 1001
    r = client.post(
        f"/staff/applications/{app_id}/decision",
        data={"csrf_token": token, "decision": "reject", "comment": long, "purpose": "review"},
    )
    assert r.status_code == 422 and f'value="{long}"' in r.text and "1000文字以内" in r.text
    async with tenant_transaction(app_pool, world.code) as conn:
        assert await conn.fetchval("SELECT status FROM applications WHERE application_id = $1", app_id) == (
            "needs_review"
        )


async def test_a_bad_date_shows_the_draft_page_again_with_the_typed_date(make_world, client, app_pool):
    world = await make_world(applications=1, status="approved")
    async with tenant_transaction(app_pool, world.code) as conn:
        await add_bank_settings(conn, world.code)
    token = await staff_signed_in(client, app_pool, world.code, world.staff["draft"].staff_id)
    r = client.post(
        f"/staff/programs/{world.program_id}/draft",
        data={"csrf_token": token, "transfer_date": "2026/13/40", "expected_count": "1", "expected_total_yen": "1"},
    )
    assert r.status_code == 422 and console_page(r)
    assert "振込指定日は YYYY-MM-DD 形式の日付で入力してください。" in r.text and no_field_names(r.text)
    assert 'name="transfer_date" value="2026/13/40"' in r.text


async def test_a_refusal_without_a_page_to_go_back_to_is_still_a_console_page(make_world, client, app_pool):
    """Another municipality's id (or any refusal of a page that cannot be shown) answers in the console's
    layout, not the resident site's."""
    world = await make_world(applications=0)
    await staff_signed_in(client, app_pool, world.code, world.staff["rev"].staff_id)
    r = client.get("/staff/applications/999999999")
    assert r.status_code == 404 and console_page(r) and 'id="console-error"' in r.text


async def test_an_expired_session_sends_a_post_to_the_login_and_back_to_its_page(make_world, client, app_pool):
    world = await make_world(applications=1)
    app_id = world.applications[0]
    token = await staff_signed_in(client, app_pool, world.code, world.staff["rev"].staff_id)
    async with tenant_transaction(app_pool, world.code) as conn:
        await conn.execute("UPDATE staff_sessions SET last_seen_at = now() - interval '31 minutes'")
    here = f"http://testserver/staff/applications/{app_id}?purpose=review"
    r = client.post(
        f"/staff/applications/{app_id}/decision",
        data={"csrf_token": token, "decision": "approve"},
        headers={"referer": here},
    )
    assert r.status_code == 303
    assert r.headers["location"] == f"/staff/login?expired=1&next=%2Fstaff%2Fapplications%2F{app_id}%3Fpurpose%3Dreview"
    page = client.get(r.headers["location"])
    assert "セッションの有効期限が切れました。もう一度ログインしてください。" in page.text
    assert f'name="next" value="/staff/applications/{app_id}?purpose=review"' in page.text
    r = client.post(
        "/staff/login",
        data={
            "csrf_token": csrf_from(page.text),
            "municipality_code": world.code,
            "login": "rev",
            "password": PASSWORD,
            "next": f"/staff/applications/{app_id}?purpose=review",
        },
    )
    assert r.status_code == 303 and r.headers["location"] == f"/staff/applications/{app_id}?purpose=review"
    # Another site, or the login page itself, is never where sign-in sends anyone.
    client.cookies.clear()
    for hostile in ("https://evil.example/staff/", "//evil.example/staff/", "/staff/login", "/m/131016/"):
        page = client.get("/staff/login", params={"next": hostile})
        assert 'name="next" value="/staff/"' in page.text, hostile


async def test_every_decision_says_it_was_done_once(make_world, client, app_pool):
    world = await make_world(applications=2)
    token = await staff_signed_in(client, app_pool, world.code, world.staff["rev"].staff_id)
    first, second = world.applications
    r = client.post(f"/staff/applications/{first}/decision", data={"csrf_token": token, "decision": "approve"})
    assert r.status_code == 303
    queue = client.get("/staff/review")
    assert 'id="flash"' in queue.text and "承認しました" in queue.text
    assert 'id="flash"' not in client.get("/staff/review").text  # shown once
    r = client.post(
        f"/staff/applications/{second}/decision",
        data={"csrf_token": token, "decision": "reject", "comment": "重複申請"},
    )
    assert r.status_code == 303 and "却下しました。" in client.get("/staff/review").text


async def test_sending_a_batch_back_says_so_and_a_refusal_stays_on_the_batch(
    make_world, client, app_pool, transfer_date
):
    world = await make_world(applications=1, status="approved")
    async with tenant_transaction(app_pool, world.code) as conn:
        await add_bank_settings(conn, world.code)
    batch_id = await draft(app_pool, world, transfer_date)
    token = await staff_signed_in(client, app_pool, world.code, world.staff["appr"].staff_id)
    r = client.post(f"/staff/batches/{batch_id}/reject", data={"csrf_token": token, "comment": ""})
    assert r.status_code == 422 and console_page(r) and f"起案 #{batch_id}" in r.text
    assert 'id="console-error"' in r.text and no_field_names(r.text)
    r = client.post(f"/staff/batches/{batch_id}/reject", data={"csrf_token": token, "comment": "金額の確認"})
    assert r.status_code == 303
    assert "差し戻しました。" in client.get(f"/staff/batches/{batch_id}").text


def test_console_messages_leave_out_the_field_identifiers():
    assert console_message("却下の理由（comment）を入力してください。") == "却下の理由を入力してください。"
    assert console_message("返還請求額（amount_yen）は半角数字") == "返還請求額は半角数字"
    # Japanese or upper-case words in parentheses are part of the message.
    assert console_message("ファイル（SHA-256）は（全角）で") == "ファイル（SHA-256）は（全角）で"


async def test_enrolment_errors_name_no_english_fields(make_world, app_pool, settings):
    world = await make_world(applications=0)
    async with tenant_transaction(app_pool, world.code) as conn:
        issued = await enrolment.issue(
            conn, world.cipher, world.code, world.staff["admin"], world.staff["rev"].staff_id
        )
    with TestClient(create_app(settings), follow_redirects=False) as owner:
        page = owner.get(issued.path)
        r = owner.post(
            issued.path,
            data={"csrf_token": csrf_from(page.text), "password": "short", "password_confirm": "short"},
        )
    assert r.status_code == 422 and "パスワードは12文字以上" in r.text and no_field_names(r.text)


# ---- point 8: JST, labelled ----------------------------------------------------------------------------


async def test_times_are_japan_time_and_say_so(make_world, client, app_pool, transfer_date):
    world = await make_world(applications=1)
    async with tenant_transaction(app_pool, world.code) as conn:
        await conn.execute(
            "UPDATE applications SET submitted_at = '2026-12-06 01:53:00+00' WHERE application_id = $1",
            world.applications[0],
        )
    await staff_signed_in(client, app_pool, world.code, world.staff["rev"].staff_id)
    queue = client.get("/staff/review")
    assert "2026-12-06 10:53 JST" in queue.text and "01:53" not in queue.text
    await staff_signed_in(client, app_pool, world.code, world.staff["admin"].staff_id)
    async with tenant_transaction(app_pool, world.code) as conn:
        at = await conn.fetchval("SELECT max(occurred_at) FROM audit_log")  # the admin's sign-in
    log = client.get("/staff/admin/audit")
    local, utc = at.astimezone(JST), at.astimezone(dt.UTC)
    assert log.status_code == 200 and local.strftime("%Y-%m-%d %H:%M:%S JST") in log.text
    assert utc.strftime("%Y-%m-%d %H:%M:%S") not in log.text
    assert not re.search(r"<td>\d{4}-\d\d-\d\d \d\d:\d\d(:\d\d)?</td>", log.text)  # no unlabelled time


# ---- point 9: receipts as printed ----------------------------------------------------------------------


async def test_receipts_are_found_as_printed_and_a_miss_stays_on_the_queue(make_world, client, app_pool):
    world = await make_world(applications=1)
    app_id = world.applications[0]
    async with tenant_transaction(app_pool, world.code) as conn:
        await conn.execute("UPDATE applications SET receipt_no = '00000000024' WHERE application_id = $1", app_id)
    token = await staff_signed_in(client, app_pool, world.code, world.staff["rev"].staff_id)
    for typed in ("000-0000-0024", "０００－００００－００２４", "000ー0000ー0024", " 000 0000 0024 ", "00000000024"):
        r = client.post("/staff/review/search", data={"csrf_token": token, "receipt_no": typed})
        assert r.status_code == 303 and r.headers["location"] == f"/staff/applications/{app_id}", typed
    r = client.post("/staff/review/search", data={"csrf_token": token, "receipt_no": "000-000-0025"})
    assert r.status_code == 404 and console_page(r) and "審査待ち" in r.text  # the queue page, not an error page
    assert "その受付番号の申請は見つかりません" in r.text
    assert 'name="receipt_no" value="000-000-0025"' in r.text
    r = client.post("/staff/review/search", data={"csrf_token": token, "receipt_no": " - "})
    assert r.status_code == 422 and "受付番号を入力してください。" in r.text and no_field_names(r.text)
    async with tenant_transaction(app_pool, world.code) as conn:
        found = [
            r["details"]
            for r in await conn.fetch("SELECT details FROM audit_log WHERE action = 'application.search' ORDER BY seq")
        ]
    assert len(found) == 6 and '"found":false' in found[-1].replace(" ", "")  # the miss is recorded too


# ---- point 10: Japanese labels, bank names, confirmation of destructive admin actions ----------------------


async def test_the_review_view_names_codes_in_japanese(make_world, client, app_pool):
    world = await make_world(applications=1)
    app_id = world.applications[0]
    await staff_signed_in(client, app_pool, world.code, world.staff["rev"].staff_id)
    queue = client.get("/staff/review")
    assert "<td>オンライン</td>" in queue.text
    client.get(f"/staff/applications/{app_id}", params={"purpose": "review"})
    page = client.get(f"/staff/applications/{app_id}", params={"purpose": "inquiry"})
    channel = re.search(r'id="app-channel">([^<]*)<', page.text).group(1)
    account = re.search(r'id="app-account">([^<]*)<', page.text).group(1)
    assert channel == "オンライン"
    assert "0001 みずほ 001 東京営業部 普通" in account and "種目" not in account
    assert "個人情報の閲覧" in page.text and "personal_data.view" not in page.text


async def test_the_audit_log_names_actions_in_japanese(make_world, client, app_pool):
    world = await make_world(applications=0)
    await staff_signed_in(client, app_pool, world.code, world.staff["admin"].staff_id)
    async with tenant_transaction(app_pool, world.code) as conn:
        await conn.execute(
            "INSERT INTO audit_log (municipality_code, actor_label, action, object_type, object_id, details)"
            " VALUES ($1, 'tests', 'personal_data.view', 'application', '1', '{}')",
            world.code,
        )
    log = client.get("/staff/admin/audit").text
    assert '<td title="personal_data.view">個人情報の閲覧</td><td>申請 1</td>' in log


@pytest.mark.parametrize("action", ["disable", "revoke", "enroll"])
async def test_destructive_admin_buttons_ask_first(make_world, client, app_pool, action):
    world = await make_world(applications=0)
    rev_id = world.staff["rev"].staff_id
    token = await staff_signed_in(client, app_pool, world.code, world.staff["admin"].staff_id)
    async with tenant_transaction(app_pool, world.code) as conn:
        before = await conn.fetchval("SELECT count(*) FROM audit_log")
    r = client.post(f"/staff/admin/staff/{rev_id}/{action}", data={"csrf_token": token})
    assert r.status_code == 200 and console_page(r) and 'id="confirm-form"' in r.text
    assert 'name="confirm" value="1"' in r.text and "rev（revさん）" in r.text
    async with tenant_transaction(app_pool, world.code) as conn:
        assert await conn.fetchval("SELECT count(*) FROM audit_log") == before  # nothing was done
        assert await conn.fetchval("SELECT disabled_at FROM staff_users WHERE staff_id = $1", rev_id) is None
    r = client.post(f"/staff/admin/staff/{rev_id}/{action}", data={"csrf_token": csrf_from(r.text), "confirm": "1"})
    assert r.status_code in (200, 303)
    if action == "disable":
        assert "アカウントを無効にしました。" in client.get("/staff/admin/staff").text
        async with tenant_transaction(app_pool, world.code) as conn:
            assert await conn.fetchval("SELECT disabled_at FROM staff_users WHERE staff_id = $1", rev_id)
    elif action == "revoke":
        assert "全セッションを終了し" in client.get("/staff/admin/staff").text
    else:
        assert 'id="enrol-link"' in r.text
