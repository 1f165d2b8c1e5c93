"""Paper intake at the console (/staff/paper...): two clerks key a box, the outcome of each form is shown to
the clerk, a refused entry keeps what was typed and writes nothing, the third clerk decides, 不備返戻."""

from __future__ import annotations

import csv
import io
import re

import pytest
from starlette.testclient import TestClient

from app.intake.claims import submit_application
from app.intake.forms import parse_bank
from app.main import create_app
from app.tenancy.transaction import tenant_transaction
from tests.staff.conftest import PASSWORD
from tests.staff.paper_world import paper_world, receive

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings), follow_redirects=False) as c:
        yield c


def sign_in(client, code, login):
    client.cookies.clear()
    token = CSRF.search(client.get("/staff/login").text).group(1)
    r = client.post(
        "/staff/login",
        data={"csrf_token": token, "municipality_code": code, "login": login, "password": PASSWORD, "totp": ""},
    )
    assert r.status_code == 303, r.text[-500:]
    return CSRF.search(client.get("/staff/").text).group(1)


def follow(client, r):
    """Follow the console's redirects (as a browser does) to the page they end on."""
    while r.status_code == 303:
        r = client.get(r.headers["location"])
    return r


@pytest.fixture
def world(app_pool, municipality, settings):
    async def make(households: int = 3):
        return await paper_world(app_pool, municipality, settings, households)

    return make


async def _count(app_pool, code, query, *args):
    async with tenant_transaction(app_pool, code) as conn:
        return await conn.fetchval(query, code, *args)


async def test_two_clerks_key_a_box_at_the_console_and_the_box_shows_each_forms_outcome(world, client, app_pool):
    w, program_id, [h, g, _] = await world()
    token = sign_in(client, w.code, "keyer1")
    home = client.get("/staff/paper")
    assert home.status_code == 200 and "箱を受け付ける" in home.text
    r = client.post(
        "/staff/paper/boxes",
        data={
            "csrf_token": token,
            "program_id": str(program_id),
            "box_no": "b-0007",
            "received_on": "2026-05-01",
            "form_count": "2",
        },
    )
    assert r.status_code == 303
    box_url = r.headers["location"]
    box = follow(client, r)
    assert "箱を受け付けました" in box.text and "B-0007" in box.text and "未入力 2" in box.text
    for household in (h, g):  # keyer1 keys both forms, one after the other
        entry = follow(client, client.get(box_url + "/next"))
        assert "1回目の入力" in entry.text and "autofocus" in entry.text
        action = re.search(r'action="(/staff/paper/forms/\d+/entry)"', entry.text).group(1)
        r = client.post(action, data=household.form() | {"csrf_token": token})
        assert r.status_code == 303 and "prev=" in r.headers["location"]
    done = follow(client, r)
    assert "あなたが入力できる申請書は残っていません" in done.text and "1回目入力済" in done.text
    added = follow(client, client.post(box_url + "/add", data={"csrf_token": token}))
    assert "申請書を1枚追加しました" in added.text and 'id="form-3"' in added.text and "未入力 1" in added.text

    token = sign_in(client, w.code, "keyer2")
    entry = follow(client, client.get(box_url + "/next"))
    assert "2回目の入力" in entry.text
    action = re.search(r'action="(/staff/paper/forms/\d+/entry)"', entry.text).group(1)
    nxt = follow(client, client.post(action, data=h.form() | {"csrf_token": token}))
    receipt = re.search(r"前の申請書（箱 B-0007 通番 1）: 受付済（受付番号 (\d{11})）", nxt.text)
    assert receipt, nxt.text[:3000]
    box = client.get(box_url)
    assert f"受付番号 {receipt.group(1)}" in box.text
    assert await _count(
        app_pool, w.code, "SELECT count(*) FROM applications WHERE municipality_code = $1 AND channel = 'paper'"
    ) == (1)


async def test_a_refused_entry_names_every_field_keeps_what_was_typed_and_writes_nothing(world, client, app_pool):
    w, program_id, [h, *_] = await world()
    [form_id] = await receive(app_pool, w, program_id, 1)
    token = sign_in(client, w.code, "keyer1")
    bad = h.form(bank_code="0001", branch_code="99x", account_number="", holder_kana="ヤマダ タロウ")
    r = client.post(f"/staff/paper/forms/{form_id}/entry", data=bad | {"csrf_token": token})
    assert r.status_code in (400, 422)
    assert "支店コード" in r.text and "口座番号を入力してください" in r.text
    assert 'value="ヤマダ タロウ"' in r.text and f'value="{h.access_code}"' in r.text  # kept
    assert 'id="branch_code-error"' in r.text
    # The first field in error has the focus (not the first field of the form).
    assert re.search(r'id="branch_code"[^>]* autofocus', r.text) and not re.search(
        r'id="identifier"[^>]* autofocus', r.text
    )
    assert await _count(app_pool, w.code, "SELECT count(*) FROM paper_entries WHERE municipality_code = $1") == 0
    assert (
        await _count(
            app_pool, w.code, "SELECT state FROM paper_forms WHERE municipality_code = $1 AND form_id = $2", form_id
        )
        == "received"
    )


async def test_the_second_clerk_is_shown_a_household_that_already_applied_online(world, client, app_pool):
    w, program_id, [h, *_] = await world()
    async with tenant_transaction(app_pool, w.code) as conn:
        account = parse_bank(
            {"bank_code": "0005", "branch_code": "001", "account_number": "1111111", "holder_kana": "ﾔﾏﾀﾞ"}
        )
        online = await submit_application(conn, w.settings, w.code, h.entitlement_id, account, "online")
    [form_id] = await receive(app_pool, w, program_id, 1)
    for login in ("keyer1", "keyer2"):
        token = sign_in(client, w.code, login)
        page = follow(client, client.post(f"/staff/paper/forms/{form_id}/entry", data=h.form() | {"csrf_token": token}))
    assert "この世帯は既に申請しています" in page.text
    assert f"オンライン、受付番号 {online.receipt_no}" in page.text


async def test_the_third_clerk_sees_both_entries_and_decides(world, client, app_pool):
    w, program_id, [h, *_] = await world()
    [form_id] = await receive(app_pool, w, program_id, 1)
    for login, data in (("keyer1", h.form()), ("keyer2", h.form(account_number="7654321"))):
        token = sign_in(client, w.code, login)
        client.post(f"/staff/paper/forms/{form_id}/entry", data=data | {"csrf_token": token})
    # A keyer cannot decide.
    assert client.get(f"/staff/paper/forms/{form_id}/resolve").status_code == 403
    token = sign_in(client, w.code, "rev")
    page = client.get(f"/staff/paper/forms/{form_id}/resolve")
    assert page.status_code == 200
    assert "不一致" in page.text and "7654321" in page.text and h.form()["account_number"] in page.text
    assert "keyer1" in page.text and "keyer2" in page.text
    r = client.post(f"/staff/paper/forms/{form_id}/resolve", data=h.form() | {"csrf_token": token})
    assert r.status_code == 303
    box = follow(client, r)
    assert "裁定を保存しました" in box.text and "受付済" in box.text


async def test_paper_pages_by_role_and_the_return_letters_file(world, client, app_pool):
    w, program_id, [h, *_] = await world()
    [form_id] = await receive(app_pool, w, program_id, 1)
    for login in ("keyer1", "keyer2"):
        token = sign_in(client, w.code, login)
        client.post(f"/staff/paper/forms/{form_id}/entry", data=h.form(id_document="") | {"csrf_token": token})
    assert client.get("/staff/paper/deficiencies").status_code == 403  # keyers key; they do not send letters
    sign_in(client, w.code, "draft")
    assert client.get("/staff/paper").status_code == 403
    token = sign_in(client, w.code, "rev")
    listed = client.get("/staff/paper/deficiencies")
    assert "本人確認書類の写しが添付されていません" in listed.text and "未出力" in listed.text
    r = client.post("/staff/paper/deficiencies/export", data={"csrf_token": token, "encoding": "cp932"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.content.decode("cp932"))))
    assert rows[0][:2] == ["箱番号", "通番"] and len(rows) == 2 and rows[1][1] == "1"
    assert "出力済" in client.get("/staff/paper/deficiencies").text
