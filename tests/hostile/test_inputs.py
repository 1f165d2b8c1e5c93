"""Hostile input in every text field of the API and the forms: kana, kanji, emoji, control characters,
NUL, lone surrogates, SQL- and template-looking strings, traversal strings and oversized values never give
a 5xx, are never reflected unescaped, and oversized bodies are refused with 413 before they are read."""

from __future__ import annotations

import json
import uuid

import pytest
from starlette.testclient import TestClient

from app.main import create_app
from tests.hostile.helpers import HOSTILE, csrf_from, forget_ip_failures, form, get, no_raw_markup, resident_sign_in
from tests.intake.helpers import application_body, make_letters
from tests.staff.conftest import PASSWORD


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings), follow_redirects=False) as c:
        yield c


def _set(body: dict, path: tuple[str, ...], value) -> dict:
    body = json.loads(json.dumps(body))
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return body


API_FIELDS = [
    ("municipality_code",),
    ("access_code",),
    ("pin",),
    ("bank", "bank_code"),
    ("bank", "branch_code"),
    ("bank", "account_number"),
    ("bank", "holder_kana"),
    ("bank", "account_type"),
]


def _post_json(client, url: str, body: dict, **headers):
    # json.dumps escapes a lone surrogate as \ud800, which is valid JSON the server must cope with.
    return client.post(url, content=json.dumps(body), headers={"content-type": "application/json", **headers})


async def test_every_api_text_field_survives_hostile_strings(client, app_pool, municipality, settings):
    code = await municipality()
    letters = await make_letters(app_pool, settings.master_key_bytes, code, 2)
    seen = set()
    for path in API_FIELDS:
        for value in HOSTILE:
            body = _set(application_body(letters[0]), path, value)
            r = _post_json(client, "/api/v1/applications", body, **{"Idempotency-Key": uuid.uuid4().hex})
            assert r.status_code < 500 and "error" in r.json(), (path, value, r.status_code, r.text[:200])
            seen.add(r.status_code)
            if path[0] in ("municipality_code", "access_code", "pin"):
                status_body = {k: body[k] for k in ("municipality_code", "access_code", "pin")}
                r = _post_json(client, "/api/v1/status", status_body)
                assert r.status_code < 500, (path, value, r.status_code)
    # The hostile Idempotency-Key header and query strings too.
    for value in HOSTILE:
        # Raw UTF-8 bytes in the header (what a hostile client can send); CR, LF and NUL cannot be sent.
        raw = value.encode("utf-8", "surrogatepass").translate(None, b"\r\n\x00")[:300] or b"x"
        r = client.post(
            "/api/v1/applications",
            content=json.dumps(application_body(letters[1])),
            headers={"content-type": "application/json", "Idempotency-Key": raw},
        )
        assert r.status_code < 500, (value, r.status_code)
        q = raw.decode("latin-1")  # percent-encoded bytes, whatever they are
        assert client.get("/api/v1/banks", params={"q": q}).status_code < 500
        assert client.get("/api/v1/banks/0001/branches", params={"q": q}).status_code < 500
        assert client.get("/api/v1/banks?q=%ff%fe%00%ed%a0%80").status_code < 500
    assert 422 in seen and seen <= {401, 404, 409, 422, 429, 201}, seen


async def test_every_resident_form_field_survives_hostile_strings(client, app_pool, municipality, settings):
    code = await municipality()
    letters = await make_letters(app_pool, settings.master_key_bytes, code, 1)
    for value in HOSTILE:
        for form_path in ("signin", "status"):
            page = client.get(f"/m/{code}/{form_path}")
            r = form(
                client,
                f"/m/{code}/{form_path}",
                {"csrf_token": csrf_from(page.text), "access_code": value, "pin": value},
            )
            assert r.status_code < 500 and no_raw_markup(r.text), (form_path, value, r.status_code)
    client.cookies.clear()
    await forget_ip_failures(settings.redis_url)
    resident_sign_in(client, code, letters[0])
    fields = (
        "bank_code",
        "branch_code",
        "account_type",
        "account_number",
        "yucho_kigou",
        "yucho_bangou",
        "holder_kana",
    )
    for field in fields:
        for value in HOSTILE:
            page = client.get(f"/m/{code}/bank")
            data = {
                "csrf_token": csrf_from(page.text),
                "bank_code": "0001",
                "branch_code": "001",
                "account_type": "1",
                "account_number": "1234567",
                "holder_kana": "ヤマダ タロウ",
                field: value,
            }
            r = form(client, f"/m/{code}/bank", data)
            assert r.status_code < 500 and no_raw_markup(r.text), (field, value, r.status_code)
            assert r.status_code in (200, 303, 422), (field, value, r.status_code)


async def test_every_staff_form_field_survives_hostile_strings(client, make_world, settings):
    world = await make_world(applications=1)
    for field in ("municipality_code", "login", "password", "totp"):
        for value in HOSTILE:
            page = client.get("/staff/login")
            data = {
                "csrf_token": csrf_from(page.text),
                "municipality_code": world.code,
                "login": "draft",
                "password": "wrong",
                "totp": "000000",
                field: value,
            }
            r = form(client, "/staff/login", data)
            assert r.status_code < 500 and no_raw_markup(r.text), (field, value, r.status_code)
    client.cookies.clear()
    # The rounds above failed sign-in on purpose and throttled this address (app/staff/throttle.py).
    from redis.asyncio import Redis

    from app.staff.throttle import IP_KEY

    redis = Redis.from_url(settings.redis_url)
    await redis.delete(IP_KEY + "testclient")
    await redis.aclose()
    page = client.get("/staff/login")
    r = client.post(
        "/staff/login",
        data={
            "csrf_token": csrf_from(page.text),
            "municipality_code": world.code,
            "login": "admin",
            "password": PASSWORD,
            "totp": world.totp_now("admin"),
        },
    )
    assert r.status_code == 303
    token = csrf_from(client.get("/staff/").text)
    app_id = world.applications[0]
    for value in HOSTILE:
        posts = [
            ("/staff/review/search", {"receipt_no": value}),
            (f"/staff/applications/{app_id}/decision", {"decision": value, "comment": value}),
            ("/staff/admin/staff", {"login": value, "display_name": value, "password": value, "roles": value}),
        ]
        for url, data in posts:
            r = form(client, url, {"csrf_token": token, **data})
            assert r.status_code < 500 and no_raw_markup(r.text), (url, value, r.status_code)
        for url, params in (
            (f"/staff/applications/{app_id}", {"purpose": value}),
            ("/staff/admin/audit/export", {"format": value}),
        ):
            r = get(client, url, params)
            assert r.status_code < 500 and no_raw_markup(r.text), (url, value, r.status_code)


def test_oversized_bodies_are_refused_with_413_in_japanese(client):
    big = b"{" + b'"a":"' + b"x" * (70 * 1024) + b'"}'
    r = client.post(
        "/api/v1/applications", content=big, headers={"content-type": "application/json", "Idempotency-Key": "k"}
    )
    assert r.status_code == 413 and r.json()["error"]["message"] == "送信された内容が大きすぎます。"

    def chunks():  # no Content-Length: the limit applies while streaming
        for _ in range(100):
            yield b"x" * 4096

    r = client.post("/api/v1/status", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    r = client.post(
        "/m/131016/signin",
        content=b"a=" + b"x" * (2 * 2**20),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 413 and "送信された内容が大きすぎます。" in r.text
    r = client.post(
        "/staff/login",
        content=b"x",
        headers={"content-length": "-1", "content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code in (400, 413)


def test_traversal_in_paths_and_file_name_parameters_finds_nothing(client):
    for url in (
        "/static/../../../../etc/passwd",
        "/static/%2e%2e/%2e%2e/etc/passwd",
        "/static/..%2f..%2fapp/settings.py",
        "/api/v1/banks/..%2f..%2f/branches",
        "/m/..%2f..%2f/status",
        "/m/131016/..%2f..%2fstaff/",
    ):
        r = client.get(url)
        assert r.status_code in (400, 404) and "root:" not in r.text and "Settings" not in r.text, (url, r.status_code)


async def test_release_and_audit_file_names_cannot_leave_their_directory(settings, app_pool):
    """The outbox and export names are built from a validated municipality code and integer ids only: a
    hostile code never reaches the file system (the release fails before any directory is made)."""
    from payouts import release

    outbox = settings.outbox_path
    before = set(outbox.parent.rglob("*")) if outbox.parent.exists() else set()
    for hostile in ("../../evil", "..", "/tmp/evil", "131016/../../x"):
        with pytest.raises(Exception) as caught:
            await release.release_batch(app_pool, settings, hostile, 1, None)
        assert not isinstance(caught.value, (AssertionError, OSError)), caught.value
    after = set(outbox.parent.rglob("*")) if outbox.parent.exists() else set()
    assert not {p for p in after - before if "evil" in str(p) or not str(p).startswith(str(outbox.parent))}


async def test_file_uploads_are_refused_before_any_handler_sees_them(client, make_world, app_pool):
    """No form of ours takes a file: a multipart body with a file part is a 400 in Japanese (it used to
    reach handlers as an UploadFile where text was expected, and leave its spooled file unclosed)."""
    from tests.hostile.helpers import staff_signed_in

    world = await make_world(applications=1)
    body = (
        b'--b\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n{token}\r\n'
        b'--b\r\nContent-Disposition: form-data; name="comment"; filename="x.txt"\r\n\r\nx\r\n--b--\r\n'
    )
    multipart = {"content-type": "multipart/form-data; boundary=b"}
    token = await staff_signed_in(client, app_pool, world.code, world.staff["rev"].staff_id)
    r = client.post(
        f"/staff/applications/{world.applications[0]}/decision",
        content=body.replace(b"{token}", token.encode()),
        headers=multipart,
    )
    assert r.status_code == 400 and "リクエストの形式が正しくありません。" in r.text
    page = client.get(f"/m/{world.code}/signin")
    r = client.post(
        f"/m/{world.code}/signin", content=body.replace(b"{token}", csrf_from(page.text).encode()), headers=multipart
    )
    assert r.status_code == 400 and "リクエストの形式が正しくありません。" in r.text
    # Text fields in multipart are still read (a browser may send a form that way).
    text_only = body.split(b'--b\r\nContent-Disposition: form-data; name="comment"')[0] + b"--b--\r\n"
    r = client.post(
        f"/staff/applications/{world.applications[0]}/decision",
        content=text_only.replace(b"{token}", token.encode()),
        headers=multipart,
    )
    assert r.status_code == 422 and "判定は承認か却下を選んでください" in r.text
